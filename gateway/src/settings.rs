//! Settings: read once with figment (defaults < `gateway.toml` < `GATEWAY_…`
//! environment), then checked into ready types, so that an invalid value is refused
//! at start (or at reload) with the key named, and cannot travel further.
//!
//! The raw layer (`Raw*`) mirrors the file; the checked layer ([`Settings`]) is what
//! the rest of the gateway takes.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    num::NonZeroU32,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    value::{Dict, Value},
    Figment, Source,
};
use serde::{Deserialize, Serialize};

use crate::{
    api::{ApiToken, Role},
    email::{limits::EmailLimits, tls::TlsMode},
    logging::LogFormat,
    modules::ModuleName,
    retry::{RetryPolicy, RetryPolicyError},
    secret::Secret,
    sms::{country::CountryCode, sender::SenderId},
};

/// The environment variable that names the settings file.
pub const CONFIG_ENV: &str = "GATEWAY_CONFIG";
/// The prefix of every settings environment variable.
pub const ENV_PREFIX: &str = "GATEWAY_";
/// The environment variable of the plugin blob, taken verbatim (see [`load`]).
const PLUGIN_CONFIG_ENV: &str = "GATEWAY_SMS__PLUGIN_CONFIG";

/// Keys whose values are secrets: redacted wherever settings are shown.
const SECRET_KEYS: &[&str] = &[
    "email.password",
    "sms.plugin_config",
    "auth.tokens",
    "storage.url",
];

// ---------------------------------------------------------------------------------
// The raw layer: what the file and the environment say.

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSettings {
    server: RawServer,
    storage: RawStorage,
    email: RawEmail,
    sms: RawSms,
    auth: RawAuth,
    log: RawLog,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    max_body_bytes: u64,
    max_mailing_body_bytes: u64,
    shutdown_grace_ms: u64,
    header_read_timeout_ms: u64,
    idle_timeout_ms: u64,
    max_connections: u64,
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
struct RawStorage {
    url: String,
    retention: RawDuration,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            url: "sqlite://data/gateway.db".into(),
            retention: RawDuration::Text("30d".into()),
        }
    }
}

/// A duration key without a unit in its name: a text with units (`30d`, `24h`, `1s`,
/// `1h 30m`), or a whole number of milliseconds like the `…_ms` keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Millis(u64),
    Text(String),
}

impl RawDuration {
    /// The duration, at least one millisecond; `key` names it in the error.
    fn check(&self, key: &'static str) -> Result<Duration, SettingsError> {
        let duration = match self {
            RawDuration::Millis(ms) => Duration::from_millis(*ms),
            RawDuration::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                invalid(
                    key,
                    format!("`{text}` is not a duration such as 30d, 24h or 90s ({e})"),
                )
            })?,
        };
        if duration < Duration::from_millis(1) {
            return Err(invalid(key, "must be longer than 0"));
        }
        Ok(duration)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEmail {
    max_per_connection: i64,
    smtp_threads: i64,
    default_from: Option<String>,
    host: String,
    port: i64,
    username: Option<String>,
    password: Option<String>,
    tls: String,
    check_address: Option<String>,
    ca_file: Option<PathBuf>,
    connect_timeout_ms: u64,
    command_timeout_ms: u64,
    max_attempts: u32,
    retry_base_ms: u64,
    retry_max_ms: u64,
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
            tls: "none".into(),
            check_address: None,
            ca_file: None,
            connect_timeout_ms: 10_000,
            command_timeout_ms: 60_000,
            max_attempts: 10,
            retry_base_ms: 5_000,
            retry_max_ms: 3_600_000,
        }
    }
}

/// `sms.plugin_config`: a string handed over verbatim, or a table that becomes JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RawBlob {
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
struct RawSms {
    module: String,
    modules_dir: Option<PathBuf>,
    default_country_code: Option<String>,
    sender: Option<String>,
    plugin_config: RawBlob,
    inbound_webhook: Option<String>,
    call_timeout_ms: u64,
    http_timeout_ms: u64,
    max_attempts: u32,
    retry_base_ms: u64,
    retry_max_ms: u64,
    report_hold: RawDuration,
}

impl Default for RawSms {
    fn default() -> Self {
        RawSms {
            module: "file".into(),
            modules_dir: None,
            default_country_code: None,
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
struct RawAuth {
    tokens: Vec<RawToken>,
    max_failures: u64,
    failure_window_ms: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            tokens: Vec::new(),
            max_failures: 20,
            failure_window_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    token: String,
    role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: String,
    format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

// ---------------------------------------------------------------------------------
// The checked layer.

/// Every setting, checked. Built by [`load`] or [`Settings::from_figment`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub email: EmailSettings,
    pub sms: SmsSettings,
    pub auth: Vec<ApiToken>,
    /// `auth.max_failures` and `auth.failure_window_ms`.
    pub auth_failures: FailureLimit,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Request bodies above this get 413.
    pub max_body_bytes: u64,
    /// The same for `POST /v1/mailings`, whose body lists every recipient.
    pub max_mailing_body_bytes: u64,
    /// How long a graceful stop waits for in-flight work.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's headers, from its first byte
    /// (or from connecting, for a connection's first request).
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait, with no request in flight, for its
    /// next request.
    pub idle_timeout: Duration,
    /// The most connections open at once; the descriptor limit may lower it further
    /// (see `listener`).
    pub max_connections: NonZeroU32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    pub url: StorageUrl,
    /// How long finished messages, mailings, inbound SMS and idempotency keys are kept.
    pub retention: Duration,
}

/// Where messages are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// `sqlite://PATH`: the embedded store.
    Sqlite(PathBuf),
    /// `postgres://…`: a queue shared by several gateways (not yet supported).
    Postgres(Secret),
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub limits: EmailLimits,
    pub default_from: Option<String>,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: TlsMode,
    pub check_address: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone)]
pub struct SmsSettings {
    pub module: ModuleName,
    pub modules_dir: PathBuf,
    pub default_country_code: Option<CountryCode>,
    pub sender: Option<SenderId>,
    /// Handed to the module verbatim.
    pub plugin_config: Secret,
    pub inbound_webhook: Option<String>,
    /// The longest the gateway waits for one call into the module.
    pub call_timeout: Duration,
    /// The longest the gateway waits for a provider's HTTP answer.
    pub http_timeout: Duration,
    pub retry: RetryPolicy,
    /// How long a delivery report that matched no sent SMS is kept for its message.
    pub report_hold: Duration,
}

/// How many refused tokens a client address may present before it is held off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    /// Refused tokens within one window after which the address gets 429.
    pub max_failures: NonZeroU32,
    /// The window, counted from the address's first refused token in it.
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A `tracing` filter (`info`, `gateway=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

/// Why settings were refused. Always names the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file or the environment could not be read or has a wrong type.
    #[error("{0}")]
    Read(String),
    /// A value has the right type but makes no sense.
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Settings as loaded, with the figment they came from (for [`Loaded::describe`]).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// The file the settings were read from, so that a reload reads it again; `None`
    /// for settings built in memory.
    pub source: Option<ConfigFile>,
    figment: Figment,
}

/// Which settings file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Named by `--config` or `GATEWAY_CONFIG`: then it must exist. The implicit
    /// `./gateway.toml` may be absent (the embedded defaults apply).
    pub required: bool,
}

/// The settings file to read: `--config`, else `GATEWAY_CONFIG`, else `gateway.toml`.
pub fn config_file(flag: Option<&Path>) -> ConfigFile {
    match flag
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
    {
        Some(path) => ConfigFile { path, required: true },
        None => ConfigFile {
            path: PathBuf::from("gateway.toml"),
            required: false,
        },
    }
}

/// Reads the defaults, the file at `path` (if it exists) and the environment.
///
/// `GATEWAY_SMS__PLUGIN_CONFIG` is taken verbatim, not parsed as figment parses other
/// variables, because the blob belongs to the module.
pub fn load(file: &ConfigFile) -> Result<Loaded, SettingsError> {
    let path = &file.path;
    let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
    if path.exists() {
        if !path.is_file() {
            return Err(SettingsError::Read(format!("{} is not a file", path.display())));
        }
        figment = figment.merge(Toml::file_exact(path));
    } else if file.required {
        return Err(SettingsError::Read(format!("{} does not exist", path.display())));
    }
    figment = figment.merge(
        Env::prefixed(ENV_PREFIX)
            .split("__")
            .filter(|key| key != "config" && key != "sms.plugin_config"),
    );
    if let Ok(blob) = std::env::var(PLUGIN_CONFIG_ENV) {
        figment = figment.merge(Serialized::default("sms.plugin_config", blob));
    }
    let mut loaded = Settings::from_figment(figment)?;
    loaded.source = Some(file.clone());
    Ok(loaded)
}

impl Settings {
    /// Checks the settings a figment holds.
    pub fn from_figment(figment: Figment) -> Result<Loaded, SettingsError> {
        let raw: RawSettings = figment
            .extract()
            .map_err(|e| SettingsError::Read(read_error(e)))?;
        let settings = Settings::check(raw)?;
        Ok(Loaded {
            settings,
            source: None,
            figment,
        })
    }

    /// The settings from a TOML text alone (defaults beneath, no environment).
    pub fn from_toml(text: &str) -> Result<Settings, SettingsError> {
        Ok(Loaded::from_toml(text)?.settings)
    }

    fn check(raw: RawSettings) -> Result<Settings, SettingsError> {
        let server = ServerSettings {
            listen: raw.server.listen.parse().map_err(|_| {
                invalid(
                    "server.listen",
                    format!("`{}` is not an address such as 127.0.0.1:8080", raw.server.listen),
                )
            })?,
            max_body_bytes: match raw.server.max_body_bytes {
                0 => return Err(invalid("server.max_body_bytes", "must be at least 1")),
                n => n,
            },
            max_mailing_body_bytes: match raw.server.max_mailing_body_bytes {
                0 => return Err(invalid("server.max_mailing_body_bytes", "must be at least 1")),
                n => n,
            },
            shutdown_grace: Duration::from_millis(raw.server.shutdown_grace_ms),
            header_read_timeout: positive_ms(
                "server.header_read_timeout_ms",
                raw.server.header_read_timeout_ms,
            )?,
            idle_timeout: positive_ms("server.idle_timeout_ms", raw.server.idle_timeout_ms)?,
            max_connections: u32::try_from(raw.server.max_connections)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    invalid(
                        "server.max_connections",
                        format!(
                            "{} makes no sense: it must be a whole number from 1 to {}",
                            raw.server.max_connections,
                            u32::MAX
                        ),
                    )
                })?,
        };

        let url = if let Some(path) = raw.storage.url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid(
                    "storage.url",
                    "sqlite:// needs a file path, as in sqlite://data/gateway.db",
                ));
            }
            StorageUrl::Sqlite(PathBuf::from(path))
        } else if raw.storage.url.starts_with("postgres://") || raw.storage.url.starts_with("postgresql://") {
            StorageUrl::Postgres(Secret::new(raw.storage.url))
        } else {
            return Err(invalid(
                "storage.url",
                "must start with sqlite:// (embedded) or postgres:// (shared)",
            ));
        };
        let storage = StorageSettings {
            url,
            retention: raw.storage.retention.check("storage.retention")?,
        };

        let email = check_email(raw.email)?;
        let sms = check_sms(raw.sms)?;

        let mut auth = Vec::new();
        for (i, token) in raw.auth.tokens.into_iter().enumerate() {
            if token.token.len() < 16 {
                return Err(invalid(
                    "auth.tokens",
                    format!("token #{} is shorter than 16 characters", i + 1),
                ));
            }
            let role = match token.role.as_str() {
                "send" => Role::Send,
                "admin" => Role::Admin,
                other => {
                    return Err(invalid(
                        "auth.tokens",
                        format!("token #{} has role `{other}`: use `send` or `admin`", i + 1),
                    ))
                }
            };
            auth.push(ApiToken {
                token: Secret::new(token.token),
                role,
            });
        }

        let auth_failures = FailureLimit {
            max_failures: u32::try_from(raw.auth.max_failures)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    invalid(
                        "auth.max_failures",
                        format!(
                            "{} makes no sense: it must be a whole number of at least 1",
                            raw.auth.max_failures
                        ),
                    )
                })?,
            window: positive_ms("auth.failure_window_ms", raw.auth.failure_window_ms)?,
        };

        let log = LogSettings {
            format: match raw.log.format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(invalid("log.format", format!("`{other}`: use `text` or `json`"))),
            },
            level: raw.log.level,
        };

        Ok(Settings {
            server,
            storage,
            email,
            sms,
            auth,
            auth_failures,
            log,
        })
    }
}

/// A time limit in milliseconds that must not be zero (zero would close every
/// connection at once, or never, depending on who reads it).
fn positive_ms(key: &'static str, ms: u64) -> Result<Duration, SettingsError> {
    match ms {
        0 => Err(invalid(key, "must be at least 1 (milliseconds)")),
        ms => Ok(Duration::from_millis(ms)),
    }
}

fn check_email(raw: RawEmail) -> Result<EmailSettings, SettingsError> {
    let positive = |key: &'static str, value: i64| -> Result<NonZeroU32, SettingsError> {
        u32::try_from(value)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| {
                invalid(
                    key,
                    format!("{value} makes no sense: it must be a whole number of at least 1"),
                )
            })
    };
    let limits = EmailLimits {
        max_per_connection: positive("email.max_per_connection", raw.max_per_connection)?,
        smtp_threads: positive("email.smtp_threads", raw.smtp_threads)?,
    };
    let port = u16::try_from(raw.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid("email.port", format!("{} is not a TCP port", raw.port)))?;
    let tls = match raw.tls.as_str() {
        "none" => TlsMode::None,
        "starttls" => TlsMode::StartTls,
        "implicit" => TlsMode::Implicit,
        other => {
            return Err(invalid(
                "email.tls",
                format!("`{other}`: use `none`, `starttls` or `implicit`"),
            ))
        }
    };
    if raw.host.trim().is_empty() {
        return Err(invalid("email.host", "cannot be empty"));
    }
    if let Some(ca) = &raw.ca_file {
        if !ca.is_file() {
            return Err(invalid(
                "email.ca_file",
                format!("{} is not a readable file", ca.display()),
            ));
        }
    }
    for (key, value) in [
        ("email.default_from", &raw.default_from),
        ("email.check_address", &raw.check_address),
    ] {
        if let Some(address) = value {
            if !address.contains('@') || address.contains(['\r', '\n']) {
                return Err(invalid(key, format!("`{address}` is not an e-mail address")));
            }
        }
    }
    let retry = retry_policy("email", raw.max_attempts, raw.retry_base_ms, raw.retry_max_ms)?;
    if raw.password.is_some() && raw.username.is_none() {
        return Err(invalid(
            "email.password",
            "is set but email.username is not: AUTH needs both",
        ));
    }
    Ok(EmailSettings {
        limits,
        default_from: raw.default_from,
        host: raw.host,
        port,
        username: raw.username,
        password: raw.password.map(Secret::new),
        tls,
        check_address: raw.check_address,
        ca_file: raw.ca_file,
        connect_timeout: Duration::from_millis(raw.connect_timeout_ms.max(1)),
        command_timeout: Duration::from_millis(raw.command_timeout_ms.max(1)),
        retry,
    })
}

fn check_sms(raw: RawSms) -> Result<SmsSettings, SettingsError> {
    let module = ModuleName::new(&raw.module).map_err(|e| invalid("sms.module", e))?;
    let modules_dir = match raw.modules_dir {
        Some(dir) => dir,
        None => default_modules_dir().map_err(|e| invalid("sms.modules_dir", e))?,
    };
    let default_country_code = raw
        .default_country_code
        .as_deref()
        .map(CountryCode::parse)
        .transpose()
        .map_err(|e| invalid("sms.default_country_code", e))?;
    let sender = raw
        .sender
        .as_deref()
        .map(SenderId::parse)
        .transpose()
        .map_err(|e| invalid("sms.sender", e))?;
    let plugin_config = match raw.plugin_config {
        RawBlob::Text(text) => text,
        RawBlob::Table(value) => value.to_string(),
    };
    if let Some(url) = &raw.inbound_webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "sms.inbound_webhook",
                "must be an http:// or https:// URL",
            ));
        }
    }
    if raw.call_timeout_ms == 0 {
        return Err(invalid("sms.call_timeout_ms", "must be at least 1"));
    }
    if raw.http_timeout_ms == 0 {
        return Err(invalid("sms.http_timeout_ms", "must be at least 1"));
    }
    let retry = retry_policy("sms", raw.max_attempts, raw.retry_base_ms, raw.retry_max_ms)?;
    let report_hold = raw.report_hold.check("sms.report_hold")?;
    Ok(SmsSettings {
        module,
        modules_dir,
        default_country_code,
        sender,
        plugin_config: Secret::new(plugin_config),
        inbound_webhook: raw.inbound_webhook,
        call_timeout: Duration::from_millis(raw.call_timeout_ms),
        http_timeout: Duration::from_millis(raw.http_timeout_ms),
        retry,
        report_hold,
    })
}

/// `<section>.max_attempts`, `.retry_base_ms` and `.retry_max_ms` as a policy, a
/// refusal naming the key at fault.
fn retry_policy(
    section: &'static str,
    max_attempts: u32,
    base_ms: u64,
    max_ms: u64,
) -> Result<RetryPolicy, SettingsError> {
    let sms = section == "sms";
    RetryPolicy::new(
        max_attempts,
        Duration::from_millis(base_ms),
        Duration::from_millis(max_ms),
    )
    .map_err(|e| match e {
        RetryPolicyError::NoAttempts => invalid(
            if sms {
                "sms.max_attempts"
            } else {
                "email.max_attempts"
            },
            "must be at least 1",
        ),
        RetryPolicyError::Delays => invalid(
            if sms {
                "sms.retry_base_ms"
            } else {
                "email.retry_base_ms"
            },
            format!("must be at least 1 and no more than {section}.retry_max_ms"),
        ),
    })
}

/// The directory of the running executable: where `cargo build` puts the modules
/// next to the gateway, and where packages install them.
fn default_modules_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the gateway's own directory: {e}"))?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot find the gateway's own directory".to_string())
}

/// Figment's errors name the key and the file; keep that, without echoing a value of
/// a secret key.
fn read_error(error: figment::Error) -> String {
    let mut lines = Vec::new();
    for e in error {
        let key = e.path.join(".");
        let secret = SECRET_KEYS
            .iter()
            .any(|s| key == *s || key.starts_with(&format!("{s}.")));
        let source = e
            .metadata
            .as_ref()
            .map(|md| match &md.source {
                Some(source) => format!(" (from {source})"),
                None => format!(" (from {})", md.name),
            })
            .unwrap_or_default();
        let what = if secret {
            "has a value of the wrong type".to_string()
        } else {
            e.kind.to_string()
        };
        lines.push(if key.is_empty() {
            format!("{what}{source}")
        } else {
            format!("{key}: {what}{source}")
        });
    }
    lines.join("; ")
}

/// One setting as `gateway config` and `GET /v1/admin/settings` show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Shown {
    /// The value, or `"[redacted]"` for a secret.
    pub value: serde_json::Value,
    /// Where it came from: `default`, the file's path, or the environment variable.
    pub source: String,
}

impl Loaded {
    /// Settings from a TOML text alone (defaults beneath, no environment): for tests
    /// and tools that build a configuration in memory.
    pub fn from_toml(text: &str) -> Result<Loaded, SettingsError> {
        let figment = Figment::from(Serialized::defaults(RawSettings::default())).merge(Toml::string(text));
        Settings::from_figment(figment)
    }

    /// The keys whose values differ from `earlier`'s, secrets included: a secret is
    /// compared, never shown.
    pub fn changed_since(&self, earlier: &Loaded) -> Vec<String> {
        let (now, before) = (self.describe(), earlier.describe());
        let mut keys: Vec<String> = now
            .keys()
            .chain(before.keys())
            .filter(|key| !SECRET_KEYS.contains(&key.as_str()))
            .filter(|key| now.get(*key).map(|s| &s.value) != before.get(*key).map(|s| &s.value))
            .cloned()
            .collect();
        let (a, b) = (&self.settings, &earlier.settings);
        let tokens = |s: &Settings| -> Vec<(String, Role)> {
            s.auth
                .iter()
                .map(|t| (t.token.expose().to_string(), t.role))
                .collect()
        };
        for (key, differs) in [
            ("email.password", a.email.password != b.email.password),
            ("sms.plugin_config", a.sms.plugin_config != b.sms.plugin_config),
            ("auth.tokens", tokens(a) != tokens(b)),
            ("storage.url", a.storage.url != b.storage.url),
        ] {
            if differs {
                keys.push(key.to_string());
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every setting with a value, secrets redacted, with where each came from.
    pub fn describe(&self) -> BTreeMap<String, Shown> {
        let mut out = BTreeMap::new();
        if let Ok(dict) = self.figment.extract::<Dict>() {
            self.walk("", &dict, &mut out);
        }
        // The effective modules directory, even when it is the default.
        let modules_dir = out.entry("sms.modules_dir".to_string()).or_insert_with(|| Shown {
            value: serde_json::Value::Null,
            source: "default".into(),
        });
        if modules_dir.value.is_null() {
            modules_dir.value = self.settings.sms.modules_dir.display().to_string().into();
            modules_dir.source = "default (the gateway's own directory)".into();
        }
        out
    }

    fn walk(&self, prefix: &str, dict: &Dict, out: &mut BTreeMap<String, Shown>) {
        for (name, value) in dict {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                Value::Dict(_, inner) if key != "sms.plugin_config" => self.walk(&key, inner, out),
                _ => {
                    let secret = SECRET_KEYS.contains(&key.as_str());
                    let shown = if secret {
                        serde_json::Value::String("[redacted]".into())
                    } else {
                        serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
                    };
                    let source = match self.figment.find_metadata(&key) {
                        Some(md) => match &md.source {
                            Some(Source::File(path)) => format!("file {}", path.display()),
                            // Serialized providers: the defaults, or the blob taken
                            // verbatim from its environment variable.
                            Some(Source::Code(_)) | None => {
                                env_source(&key).unwrap_or_else(|| "default".into())
                            }
                            Some(other) => other.to_string(),
                        },
                        None => "default".into(),
                    };
                    out.insert(key, Shown { value: shown, source });
                }
            }
        }
    }
}

/// The environment variable that set `key`, if one did.
fn env_source(key: &str) -> Option<String> {
    let var = format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase());
    std::env::var_os(&var).map(|_| format!("environment variable {var}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(toml: &str) -> String {
        Settings::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_safe_and_complete() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.storage.url, StorageUrl::Sqlite("data/gateway.db".into()));
        assert_eq!(s.storage.retention, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(s.sms.report_hold, Duration::from_secs(24 * 3600));
        assert_eq!(s.sms.module.as_str(), "file");
        assert_eq!(s.email.limits.batch_size(), 20);
        assert_eq!(s.email.limits.connections(), 5);
        assert_eq!(s.sms.plugin_config.expose(), "");
    }

    #[test]
    fn limits_follow_the_contract() {
        let limits = |max, threads| {
            Settings::from_toml(&format!(
                "[email]\nmax_per_connection = {max}\nsmtp_threads = {threads}"
            ))
            .unwrap()
            .email
            .limits
        };
        assert_eq!(
            (limits(100, 5).batch_size(), limits(100, 5).connections()),
            (20, 5)
        );
        assert_eq!((limits(7, 3).batch_size(), limits(7, 3).connections()), (2, 3));
        assert_eq!((limits(3, 5).batch_size(), limits(3, 5).connections()), (1, 3));
    }

    #[test]
    fn nonsense_limits_are_refused_with_the_key() {
        assert!(err("[email]\nsmtp_threads = 0").starts_with("email.smtp_threads: 0 makes no sense"));
        assert!(err("[email]\nmax_per_connection = -4").starts_with("email.max_per_connection:"));
        let e = err("[email]\nsmtp_threads = \"five\"");
        assert!(e.contains("email.smtp_threads") && e.contains("string"), "{e}");
    }

    #[test]
    fn durations_take_units_or_milliseconds_and_a_bad_one_names_its_key() {
        let s = Settings::from_toml("[storage]\nretention = \"7d 12h\"\n[sms]\nreport_hold = 1500").unwrap();
        assert_eq!(
            s.storage.retention,
            Duration::from_secs(7 * 24 * 3600 + 12 * 3600)
        );
        assert_eq!(s.sms.report_hold, Duration::from_millis(1500));
        let e = err("[storage]\nretention = \"a month\"");
        assert!(
            e.starts_with("storage.retention: `a month` is not a duration"),
            "{e}"
        );
        assert!(err("[sms]\nreport_hold = \"0s\"").starts_with("sms.report_hold: must be longer than 0"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = err("[email]\nsmtp_thread = 3");
        assert!(e.contains("smtp_thread"), "{e}");
    }

    #[test]
    fn module_names_cannot_be_paths() {
        for bad in ["../evil", "a/b", "..", "a\\b", ""] {
            let e = err(&format!("[sms]\nmodule = {bad:?}"));
            assert!(e.starts_with("sms.module:"), "{bad}: {e}");
        }
        assert!(Settings::from_toml("[sms]\nmodule = \"my-provider_2\"").is_ok());
    }

    #[test]
    fn plugin_config_as_string_is_verbatim_and_as_table_is_json() {
        let s = Settings::from_toml("[sms]\nplugin_config = ' {\"path\" : \"x\"} '").unwrap();
        assert_eq!(s.sms.plugin_config.expose(), " {\"path\" : \"x\"} ");
        let s = Settings::from_toml("[sms.plugin_config]\npath = \"x\"\nretries = 3\n").unwrap();
        let json: serde_json::Value = serde_json::from_str(s.sms.plugin_config.expose()).unwrap();
        assert_eq!(json, serde_json::json!({"path": "x", "retries": 3}));
    }

    #[test]
    fn country_codes_and_senders() {
        // The values themselves are tested with their types (`sms/country.rs`,
        // `sms/sender.rs`); here, that a bad one is refused with its key.
        assert!(err("[sms]\nsender = \"bad sender!\"").starts_with("sms.sender:"));
        assert!(err("[sms]\ndefault_country_code = \"44x\"").starts_with("sms.default_country_code:"));
    }

    #[test]
    fn tokens_need_a_known_role_and_length() {
        assert!(
            err("[[auth.tokens]]\ntoken = \"short\"\nrole = \"admin\"").starts_with("auth.tokens: token #1")
        );
        let e = err("[[auth.tokens]]\ntoken = \"0123456789abcdef\"\nrole = \"root\"");
        assert!(e.contains("`root`"), "{e}");
    }

    #[test]
    fn the_packaged_example_is_valid_and_names_every_key() {
        let text = include_str!("../../packaging/gateway.toml");
        Settings::from_toml(text).expect("packaging/gateway.toml is valid");
        let defaults = Figment::from(Serialized::defaults(RawSettings::default()));
        let dict: Dict = defaults.extract().unwrap();
        let mut keys = Vec::new();
        for (section, value) in &dict {
            if let Value::Dict(_, inner) = value {
                keys.extend(inner.keys().map(|key| (section.clone(), key.clone())));
            }
        }
        for (section, key) in keys {
            let set = format!("\n{key} = ");
            let commented = format!("\n# {key} = ");
            let in_section = text.split(&format!("\n[{section}")).skip(1).any(|part| {
                let part = format!("\n{part}");
                part.contains(&set) || part.contains(&commented)
            });
            let array_of_tables = text.contains(&format!("\n[[{section}.{key}]]"))
                || text.contains(&format!("\n[{section}.{key}]"));
            assert!(
                in_section || array_of_tables,
                "packaging/gateway.toml does not mention {section}.{key}"
            );
        }
    }

    #[test]
    fn connection_limits_have_defaults_and_a_bad_one_names_its_key() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.server.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.server.max_connections.get(), 4096);
        for key in ["header_read_timeout_ms", "idle_timeout_ms", "max_connections"] {
            let e = err(&format!("[server]\n{key} = 0"));
            assert!(e.starts_with(&format!("server.{key}: ")), "{e}");
        }
        assert!(err("[server]\nmax_connections = -1").contains("max_connections"));
    }

    #[test]
    fn the_failure_limit_has_defaults_and_a_bad_one_names_its_key() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.auth_failures.max_failures.get(), 20);
        assert_eq!(s.auth_failures.window, Duration::from_secs(60));
        assert!(err("[auth]\nmax_failures = 0").starts_with("auth.max_failures: "));
        assert!(err("[auth]\nfailure_window_ms = 0").starts_with("auth.failure_window_ms: "));
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let s = Settings::from_toml(
            "[email]\nusername = \"u\"\npassword = \"hunter2-secret\"\n[sms]\nplugin_config = \"blob-secret\"\n\
             [[auth.tokens]]\ntoken = \"token-secret-0123456789\"\nrole = \"admin\"",
        )
        .unwrap();
        let debug = format!("{s:?}");
        for secret in ["hunter2-secret", "blob-secret", "token-secret-0123456789"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        let e = err("[email]\npassword = 12345");
        assert!(!e.contains("12345"), "{e}");
    }
}
