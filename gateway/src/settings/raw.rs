//! The raw layer: the settings file and the environment as serde reads them, with
//! the defaults a key takes when neither sets it. Nothing here is checked beyond its
//! type; `check.rs` turns it into [`Settings`](super::Settings).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{email::tls::TlsMode, logging::LogFormat, sms::number::NumberCheck, token::Role};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSettings {
    pub(super) server: RawServer,
    pub(super) storage: RawStorage,
    pub(super) email: RawEmail,
    pub(super) sms: RawSms,
    pub(super) auth: RawAuth,
    pub(super) log: RawLog,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) max_body_bytes: u64,
    pub(super) max_mailing_body_bytes: u64,
    pub(super) shutdown_grace_ms: u64,
    pub(super) header_read_timeout_ms: u64,
    pub(super) idle_timeout_ms: u64,
    pub(super) max_connections: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            max_mailing_body_bytes: 64 * 1024 * 1024,
            shutdown_grace_ms: 10_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 4096,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStorage {
    pub(super) url: String,
    pub(super) retention: RawDuration,
    pub(super) dead_after: RawDuration,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            url: "sqlite://data/gateway.db".into(),
            retention: RawDuration::Text("30d".into()),
            dead_after: RawDuration::Text("30s".into()),
        }
    }
}

/// A duration key without a unit in its name: a text with units (`30d`, `24h`, `1s`,
/// `1h 30m`), or a whole number of milliseconds like the `…_ms` keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum RawDuration {
    Millis(u64),
    Text(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEmail {
    pub(super) max_per_connection: i64,
    pub(super) smtp_threads: i64,
    pub(super) default_from: Option<String>,
    pub(super) host: String,
    pub(super) port: i64,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) tls: TlsMode,
    pub(super) check_address: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) connect_timeout_ms: u64,
    pub(super) command_timeout_ms: u64,
    pub(super) max_attempts: u32,
    pub(super) retry_base_ms: u64,
    pub(super) retry_max_ms: u64,
    pub(super) public_url: Option<String>,
    pub(super) max_per_minute: Option<i64>,
    pub(super) max_per_hour: Option<i64>,
    pub(super) max_per_day: Option<i64>,
    /// For tests only: how long the quota's "minute" is (an hour is 60 of them, a day
    /// 1440), so a test sees windows pass without waiting real minutes.
    pub(super) quota_minute_ms: u64,
    pub(super) dkim: RawDkim,
}

/// `[email.dkim]`: unset, e-mails go out unsigned.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDkim {
    pub(super) domain: Option<String>,
    pub(super) selector: Option<String>,
    /// The private key's PEM file, read at every start and reload.
    pub(super) private_key_file: Option<PathBuf>,
    /// The private key itself, a secret: for the console and the environment, which
    /// cannot put a file on every gateway. One of the two.
    pub(super) private_key: Option<String>,
    /// The TXT record published at `SELECTOR._domainkey.DOMAIN`, for the check.
    pub(super) public_key: Option<String>,
}

impl Default for RawEmail {
    fn default() -> Self {
        RawEmail {
            max_per_connection: 100,
            smtp_threads: 5,
            default_from: None,
            host: "localhost".into(),
            port: 25,
            username: None,
            password: None,
            tls: TlsMode::None,
            check_address: None,
            ca_file: None,
            connect_timeout_ms: 10_000,
            command_timeout_ms: 60_000,
            max_attempts: 10,
            retry_base_ms: 5_000,
            retry_max_ms: 3_600_000,
            public_url: None,
            max_per_minute: None,
            max_per_hour: None,
            max_per_day: None,
            quota_minute_ms: 60_000,
            dkim: RawDkim::default(),
        }
    }
}

/// `sms.plugin_config`: a string handed over verbatim, or a table that becomes JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum RawBlob {
    Text(String),
    Table(serde_json::Value),
}

impl Default for RawBlob {
    fn default() -> Self {
        RawBlob::Text(String::new())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSms {
    pub(super) module: String,
    pub(super) modules_dir: Option<PathBuf>,
    pub(super) default_country_code: Option<String>,
    pub(super) number_check: NumberCheck,
    pub(super) sender: Option<String>,
    pub(super) plugin_config: RawBlob,
    pub(super) inbound_webhook: Option<String>,
    pub(super) call_timeout_ms: u64,
    pub(super) http_timeout_ms: u64,
    pub(super) max_attempts: u32,
    pub(super) retry_base_ms: u64,
    pub(super) retry_max_ms: u64,
    pub(super) report_hold: RawDuration,
}

impl Default for RawSms {
    fn default() -> Self {
        RawSms {
            module: "file".into(),
            modules_dir: None,
            default_country_code: None,
            number_check: NumberCheck::default(),
            sender: None,
            plugin_config: RawBlob::default(),
            inbound_webhook: None,
            call_timeout_ms: 5_000,
            http_timeout_ms: 15_000,
            max_attempts: 5,
            retry_base_ms: 2_000,
            retry_max_ms: 600_000,
            report_hold: RawDuration::Text("24h".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuth {
    pub(super) tokens: Vec<RawToken>,
    pub(super) max_failures: u64,
    pub(super) failure_window_ms: u64,
    pub(super) console_session_ttl: RawDuration,
    pub(super) console_idle_timeout: RawDuration,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            tokens: Vec::new(),
            max_failures: 20,
            failure_window_ms: 60_000,
            console_session_ttl: RawDuration::Text("12h".into()),
            console_idle_timeout: RawDuration::Text("1h".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) token: String,
    pub(super) role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) level: String,
    pub(super) format: LogFormat,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}
