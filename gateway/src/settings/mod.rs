//! Settings: read once with figment (defaults < `gateway.toml` < the admin console's
//! saved version < `GATEWAY_…` environment), then checked into ready types, so that an invalid value is refused
//! at start (or at reload) with the key named, and cannot travel further.
//!
//! - `raw.rs`: the `Raw*` structs, mirroring the file, with their defaults;
//! - `check.rs`: raw to checked, naming the key of a refused value;
//! - `shown.rs`: the redacted view with sources, and the one list of secret keys;
//! - `env.rs`: which `GATEWAY_` variables are settings;
//! - `console.rs`: the console's layer, and which keys it may set;
//! - here: the checked layer ([`Settings`]), which the rest of the gateway takes, and
//!   [`load`].
//!
//! The domain types a setting becomes (`ModuleName`, `CountryCode`, `RetryPolicy`, …)
//! live with the code that owns them; settings imports them, never the other way.

mod check;
mod console;
mod env;
mod raw;
mod shown;

use std::{
    fmt,
    net::SocketAddr,
    num::NonZeroU32,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    providers::{Format, Serialized, Toml},
    Figment,
};

pub use self::console::{refuse_key, ConsoleLayer, CONSOLE_KEYS};
pub use self::shown::{is_secret, Shown};
pub use crate::email::EmailSettings;

use self::{check::read_error, raw::RawSettings};
use crate::{
    logging::LogFormat,
    modules::{ModuleName, PluginConfig},
    retry::RetryPolicy,
    secret::Secret,
    sms::{country::CountryCode, number::NumberCheck, sender::SenderId},
    token::ApiToken,
};

/// The environment variable that names the settings file.
pub const CONFIG_ENV: &str = "GATEWAY_CONFIG";
/// The prefix of every settings environment variable.
pub const ENV_PREFIX: &str = "GATEWAY_";

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
    /// `auth.console_session_ttl` and `auth.console_idle_timeout`.
    pub console_sessions: SessionLimits,
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
    /// A fleet's gateway whose heartbeat is older than this is dead: its peers end its
    /// leases and free its SMTP slots. Gateways beat three times as often.
    pub dead_after: Duration,
}

impl StorageSettings {
    /// How often a gateway of a fleet writes its heartbeat.
    pub fn heartbeat_every(&self) -> Duration {
        self.dead_after / 3
    }
}

/// Where messages are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// `sqlite://PATH`: the embedded store.
    Sqlite(PathBuf),
    /// `postgres://…`: a queue shared by several gateways.
    Postgres(Secret),
}

#[derive(Debug, Clone)]
pub struct SmsSettings {
    pub module: ModuleName,
    pub modules_dir: PathBuf,
    pub default_country_code: Option<CountryCode>,
    pub number_check: NumberCheck,
    pub sender: Option<SenderId>,
    /// What the module is handed: the string as written, or a table as JSON.
    pub plugin_config: PluginConfig,
    pub inbound_webhook: Option<String>,
    /// The longest the gateway waits for one call into the module.
    pub call_timeout: Duration,
    /// The longest the gateway waits for a provider's HTTP answer.
    pub http_timeout: Duration,
    pub retry: RetryPolicy,
    /// How long a delivery report that matched no sent SMS is kept for its message.
    pub report_hold: Duration,
}

/// How long an admin console sign-in lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session ends this long after its sign-in, however busy (default 12 h).
    pub ttl: Duration,
    /// A session unused this long ends early (default 1 h).
    pub idle: Duration,
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

/// Settings as loaded, with the figment they came from (for [`Loaded::describe`]).
#[derive(Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// The file the settings were read from, so that a reload reads it again; `None`
    /// for settings built in memory.
    pub source: Option<ConfigFile>,
    /// `GATEWAY_` environment variables that are not settings, and were left out (a
    /// typo such as `GATEWAY_EMIAL__HOST`): names only, for a warning.
    pub ignored_env: Vec<String>,
    /// The console's layer merged in, if any.
    console: Option<ConsoleLayer>,
    /// Every value as read, secrets in the clear: never printed (see `Debug`).
    figment: Figment,
    /// The layers beneath the console's (the defaults and the file), to stack a new
    /// console layer on without reading the file again.
    base: Figment,
    /// Whether the environment is a layer (not for settings built in memory).
    reads_env: bool,
}

/// Without the figment, whose `Debug` prints every value read, secrets included.
impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("settings", &self.settings)
            .field("source", &self.source)
            .field("ignored_env", &self.ignored_env)
            .field("console", &self.console)
            .finish_non_exhaustive()
    }
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

/// Reads the defaults, the file at `path` (if it exists) and the environment
/// (`GATEWAY_<SECTION>__<KEY>` of the file's sections only; see `env.rs`). The
/// console's layer, which lives in the store, is added with [`Loaded::with_console`].
///
/// `GATEWAY_SMS__PLUGIN_CONFIG` is taken verbatim, not parsed as figment parses other
/// variables, because the blob belongs to the module.
pub fn load(file: &ConfigFile) -> Result<Loaded, SettingsError> {
    let path = &file.path;
    let mut base = Figment::from(Serialized::defaults(RawSettings::default()));
    if path.exists() {
        if !path.is_file() {
            return Err(SettingsError::Read(format!("{} is not a file", path.display())));
        }
        base = base.merge(Toml::file_exact(path));
    } else if file.required {
        return Err(SettingsError::Read(format!("{} does not exist", path.display())));
    }
    let mut loaded = Loaded::checked(console::stack(&base, None, true), base, true)?;
    loaded.source = Some(file.clone());
    loaded.ignored_env =
        env::ignored(std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned()));
    Ok(loaded)
}

impl Settings {
    /// Checks the settings a figment holds.
    pub fn from_figment(figment: Figment) -> Result<Loaded, SettingsError> {
        Loaded::checked(figment.clone(), figment, false)
    }

    /// The settings from a TOML text alone (defaults beneath, no environment).
    pub fn from_toml(text: &str) -> Result<Settings, SettingsError> {
        Ok(Loaded::from_toml(text)?.settings)
    }
}

impl Loaded {
    /// Checks the settings `figment` holds, stacked on `base`.
    fn checked(figment: Figment, base: Figment, reads_env: bool) -> Result<Loaded, SettingsError> {
        let raw: RawSettings = figment
            .extract()
            .map_err(|e| SettingsError::Read(read_error(e)))?;
        let settings = Settings::check(raw)?;
        Ok(Loaded {
            settings,
            source: None,
            ignored_env: Vec::new(),
            console: None,
            figment,
            base,
            reads_env,
        })
    }

    /// Settings from a TOML text alone (defaults beneath, no environment): for tests
    /// and tools that build a configuration in memory.
    pub fn from_toml(text: &str) -> Result<Loaded, SettingsError> {
        let figment = Figment::from(Serialized::defaults(RawSettings::default())).merge(Toml::string(text));
        Settings::from_figment(figment)
    }
}

#[cfg(test)]
mod tests {
    use figment::value::{Dict, Value};

    use super::*;
    use crate::email::tls::TlsMode;

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
    fn number_check_is_valid_by_default_and_a_bad_value_names_the_key() {
        assert_eq!(
            Settings::from_toml("").unwrap().sms.number_check,
            NumberCheck::Valid
        );
        let s = Settings::from_toml("[sms]\nnumber_check = \"possible\"").unwrap();
        assert_eq!(s.sms.number_check, NumberCheck::Possible);
        let e = err("[sms]\nnumber_check = \"lenient\"");
        assert!(e.contains("sms.number_check") && e.contains("`possible`"), "{e}");
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
    fn a_choice_outside_its_values_names_the_key_and_the_accepted_values() {
        let e = err("[email]\ntls = \"ssl\"");
        assert!(
            e.starts_with("email.tls: `ssl` is not accepted: use `none`, `starttls` or `implicit`"),
            "{e}"
        );
        let e = err("[log]\nformat = \"yaml\"");
        assert!(
            e.starts_with("log.format: `yaml` is not accepted: use `text` or `json`"),
            "{e}"
        );
        let e = err("[[auth.tokens]]\ntoken = \"token-secret-0123456789\"\nrole = \"root\"");
        assert!(
            e.starts_with("auth.tokens.0.role: `root` is not accepted: use `send` or `admin`"),
            "{e}"
        );
        assert!(!e.contains("token-secret"), "{e}");
        let s = Settings::from_toml("[email]\ntls = \"starttls\"\n[log]\nformat = \"json\"").unwrap();
        assert_eq!((s.email.tls, s.log.format), (TlsMode::StartTls, LogFormat::Json));
    }

    #[test]
    fn the_packaged_example_is_valid_and_names_every_key() {
        let text = include_str!("../../../packaging/gateway.toml");
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
    fn a_dkim_section_needs_its_domain_selector_and_one_key() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/dkim/rsa2048.pem");
        let dkim = |lines: &str| format!("[email.dkim]\n{lines}");
        let s = Settings::from_toml(&dkim(&format!(
            "domain = \"example.com\"\nselector = \"s\"\nprivate_key_file = {file:?}"
        )))
        .unwrap();
        assert_eq!(s.email.dkim.unwrap().selector, "s");
        assert!(Settings::from_toml("").unwrap().email.dkim.is_none());

        let e = err(&dkim(&format!("selector = \"s\"\nprivate_key_file = {file:?}")));
        assert!(e.starts_with("email.dkim.domain: is not set"), "{e}");
        let e = err(&dkim("domain = \"example.com\"\nselector = \"s\""));
        assert!(e.starts_with("email.dkim.private_key_file: is not set"), "{e}");
        let e = err(&dkim(&format!(
            "domain = \"example.com\"\nselector = \"s\"\nprivate_key_file = {file:?}\nprivate_key = \"x\""
        )));
        assert!(e.contains("both set"), "{e}");
        let e = err(&dkim(
            "domain = \"example.com\"\nselector = \"s\"\nprivate_key = \"hunter2-dkim\"",
        ));
        assert!(e.starts_with("email.dkim.private_key: "), "{e}");
        assert!(!e.contains("hunter2"), "the secret is echoed: {e}");
        let e = err(&dkim(
            "domain = \"example.com\"\nselector = \"s\"\nprivate_key = 12",
        ));
        assert!(e.contains("email.dkim.private_key") && !e.contains("12"), "{e}");
    }

    #[test]
    fn dead_after_has_a_default_and_a_floor_and_a_postgres_url_is_checked_without_echoing_it() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.storage.dead_after, Duration::from_secs(30));
        assert_eq!(s.storage.heartbeat_every(), Duration::from_secs(10));
        let s = Settings::from_toml("[storage]\ndead_after = \"3s\"").unwrap();
        assert_eq!(s.storage.dead_after, Duration::from_secs(3));
        let e = err("[storage]\ndead_after = 500");
        assert!(e.starts_with("storage.dead_after: must be at least 1s"), "{e}");

        let s = Settings::from_toml("[storage]\nurl = \"postgres://gw:pw@db:5432/gateway\"").unwrap();
        assert!(matches!(s.storage.url, StorageUrl::Postgres(_)));
        let e = err("[storage]\nurl = \"postgres://gw:hunter2@db:notaport/gateway\"");
        assert!(e.starts_with("storage.url: not a PostgreSQL URL"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
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
    fn console_sessions_last_12h_or_1h_idle_and_a_bad_duration_names_its_key() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.console_sessions.ttl, Duration::from_secs(12 * 3600));
        assert_eq!(s.console_sessions.idle, Duration::from_secs(3600));
        let s = Settings::from_toml("[auth]\nconsole_session_ttl = \"8h\"\nconsole_idle_timeout = 900000")
            .unwrap();
        assert_eq!(s.console_sessions.ttl, Duration::from_secs(8 * 3600));
        assert_eq!(s.console_sessions.idle, Duration::from_secs(900));
        let e = err("[auth]\nconsole_session_ttl = \"a day\"");
        assert!(e.starts_with("auth.console_session_ttl: "), "{e}");
        assert!(err("[auth]\nconsole_idle_timeout = 0").starts_with("auth.console_idle_timeout: "));
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

    #[test]
    fn the_loaded_settings_debug_printed_every_secret_through_its_figment() {
        let loaded = Loaded::from_toml(
            "[email]\nusername = \"u\"\npassword = \"hunter2-secret\"\n[sms]\nplugin_config = \"blob-secret\"\n\
             [[auth.tokens]]\ntoken = \"token-secret-0123456789\"\nrole = \"admin\"",
        )
        .unwrap();
        let debug = format!("{loaded:?}");
        for secret in ["hunter2-secret", "blob-secret", "token-secret-0123456789"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
    }
}
