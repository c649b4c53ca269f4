//! Raw settings to checked ones: every value that has the right type but makes no
//! sense is refused here, with its key named, and a type error from the file or the
//! environment keeps figment's key and source without echoing a secret's value.

use std::{
    num::NonZeroU32,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::error::Kind;

use super::{
    raw::{RawBlob, RawDkim, RawDuration, RawEmail, RawSettings, RawSms},
    shown::is_secret,
    EmailSettings, FailureLimit, LogSettings, ServerSettings, SessionLimits, Settings, SettingsError,
    SmsSettings, StorageSettings, StorageUrl,
};
use crate::{
    email::{
        dkim::{Dkim, DkimError},
        limits::EmailLimits,
    },
    modules::{ModuleName, PluginConfig},
    retry::{RetryPolicy, RetryPolicyError},
    secret::Secret,
    sms::{country::CountryCode, sender::SenderId},
    store::QuotaWindow,
    token::ApiToken,
};

/// A value refused for `reason`, naming its key.
pub(super) fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Settings {
    /// Raw settings as checked ones, or the first refusal (a start or a reload stops
    /// at it, so one message is enough).
    pub(super) fn check(raw: RawSettings) -> Result<Settings, SettingsError> {
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
            if let Err(error) = raw.storage.url.parse::<tokio_postgres::Config>() {
                return Err(invalid("storage.url", format!("not a PostgreSQL URL: {error}")));
            }
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
            dead_after: raw.storage.dead_after.check("storage.dead_after")?,
        };
        if storage.dead_after < Duration::from_secs(1) {
            return Err(invalid(
                "storage.dead_after",
                "must be at least 1s: gateways beat three times as often",
            ));
        }

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
            auth.push(ApiToken {
                token: Secret::new(token.token),
                role: token.role,
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

        let console_sessions = SessionLimits {
            ttl: raw.auth.console_session_ttl.check("auth.console_session_ttl")?,
            idle: raw.auth.console_idle_timeout.check("auth.console_idle_timeout")?,
        };

        let log = LogSettings {
            format: raw.log.format,
            level: raw.log.level,
        };

        Ok(Settings {
            server,
            storage,
            email,
            sms,
            auth,
            auth_failures,
            console_sessions,
            log,
        })
    }
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
    let public_url = raw.public_url.as_deref().map(public_url).transpose()?;
    let quota = quota(&raw)?;
    let dkim = dkim(&raw.dkim)?;
    Ok(EmailSettings {
        public_url,
        quota,
        dkim,
        limits,
        default_from: raw.default_from,
        host: raw.host,
        port,
        username: raw.username,
        password: raw.password.map(Secret::new),
        tls: raw.tls,
        check_address: raw.check_address,
        ca_file: raw.ca_file,
        connect_timeout: Duration::from_millis(raw.connect_timeout_ms.max(1)),
        command_timeout: Duration::from_millis(raw.command_timeout_ms.max(1)),
        retry,
    })
}

/// `email.max_per_minute|hour|day` as the store's windows. Each window is a little
/// longer than its name (a 60th, at most a second): an e-mail is counted when it is
/// handed over, and reaches the server a moment later, so the server never sees more
/// than the maximum within the window either.
fn quota(raw: &RawEmail) -> Result<Vec<QuotaWindow>, SettingsError> {
    let minute = positive_ms("email.quota_minute_ms", raw.quota_minute_ms)?;
    let mut windows = Vec::new();
    for (key, value, minutes) in [
        ("email.max_per_minute", raw.max_per_minute, 1),
        ("email.max_per_hour", raw.max_per_hour, 60),
        ("email.max_per_day", raw.max_per_day, 1440),
    ] {
        let Some(value) = value else { continue };
        let max = u32::try_from(value).ok().filter(|m| *m >= 1).ok_or_else(|| {
            invalid(
                key,
                format!("{value} makes no sense: it must be a whole number of at least 1 (or unset)"),
            )
        })?;
        let length = minute * minutes;
        let margin = (length / 60).min(Duration::from_secs(1));
        windows.push(QuotaWindow {
            length: length + margin,
            max,
        });
    }
    Ok(windows)
}

/// `[email.dkim]` as a signer, or `None` when the section is empty. The key file is
/// read here, so a start, a reload and a console save all refuse a bad key with the
/// key's name, the file and the reason; the key itself is never quoted.
fn dkim(raw: &RawDkim) -> Result<Option<Dkim>, SettingsError> {
    let set = [
        raw.domain.is_some(),
        raw.selector.is_some(),
        raw.private_key_file.is_some(),
        raw.private_key.is_some(),
        raw.public_key.is_some(),
    ];
    if !set.contains(&true) {
        return Ok(None);
    }
    let needed = "DKIM signing needs email.dkim.domain, email.dkim.selector and a private key \
                  (email.dkim.private_key_file, or email.dkim.private_key)";
    let domain = raw
        .domain
        .as_deref()
        .ok_or_else(|| invalid("email.dkim.domain", format!("is not set: {needed}")))?;
    let selector = raw
        .selector
        .as_deref()
        .ok_or_else(|| invalid("email.dkim.selector", format!("is not set: {needed}")))?;
    let (key_name, origin, text) = match (&raw.private_key_file, &raw.private_key) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "email.dkim.private_key",
                "and email.dkim.private_key_file are both set: give the key one way",
            ))
        }
        (None, None) => {
            return Err(invalid(
                "email.dkim.private_key_file",
                format!("is not set: {needed}"),
            ))
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "email.dkim.private_key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            (
                "email.dkim.private_key_file",
                format!("{} ", path.display()),
                text,
            )
        }
        (None, Some(text)) => ("email.dkim.private_key", String::new(), text.clone()),
    };
    Dkim::new(domain, selector, &text, raw.public_key.as_deref())
        .map(Some)
        .map_err(|e| match e {
            DkimError::PrivateKey(reason) => invalid(key_name, format!("{origin}{reason}")),
            DkimError::PublicKey(reason) => invalid("email.dkim.public_key", reason),
            DkimError::Domain(reason) => invalid("email.dkim.domain", reason),
            DkimError::Selector(reason) => invalid("email.dkim.selector", reason),
        })
}

/// `email.public_url`: where recipients reach this gateway's `/u/…` unsubscribe pages;
/// an http(s) URL with no query or fragment, kept without a trailing `/`.
fn public_url(text: &str) -> Result<String, SettingsError> {
    let key = "email.public_url";
    let url = reqwest::Url::parse(text).map_err(|e| invalid(key, format!("`{text}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            key,
            format!("`{text}` must be an http:// or https:// URL with a host"),
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid(
            key,
            format!("`{text}` must have no query, fragment or user: links are made by adding /u/TOKEN"),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
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
        RawBlob::Text(text) => PluginConfig::verbatim(text),
        RawBlob::Table(value) => PluginConfig::from_table(&value),
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
        number_check: raw.number_check,
        sender,
        plugin_config,
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
pub(super) fn read_error(error: figment::Error) -> String {
    let mut lines = Vec::new();
    for e in error {
        let key = e.path.join(".");
        let secret = is_secret(&key);
        let source = e
            .metadata
            .as_ref()
            .map(|md| match &md.source {
                Some(source) => format!(" (from {source})"),
                None => format!(" (from {})", md.name),
            })
            .unwrap_or_default();
        let what = match &e.kind {
            // A choice (`email.tls`, a token's `role`, `log.format`): say what would do,
            // as the settings file spells it.
            Kind::UnknownVariant(found, expected) if !secret => {
                format!("`{found}` is not accepted: use {}", one_of(expected))
            }
            // These name a field, never carry a value: safe to show for a secret too.
            Kind::MissingField(_) | Kind::UnknownField(..) | Kind::DuplicateField(_) => e.kind.to_string(),
            _ if secret => "has a value of the wrong type".to_string(),
            _ => e.kind.to_string(),
        };
        lines.push(if key.is_empty() {
            format!("{what}{source}")
        } else {
            format!("{key}: {what}{source}")
        });
    }
    lines.join("; ")
}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
fn one_of(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}
