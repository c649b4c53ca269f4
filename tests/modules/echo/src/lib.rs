//! Test module: does no I/O and answers every SMS with `echo-<id>`, with failures on
//! demand. It serves the tests of retries and time limits, and the benchmark of the
//! cost of a call into a module.
//!
//! Blob (JSON, every key optional):
//! - `transient_before_attempt`: N fails with a transient error while the attempt
//!   number is below N (so N = 3 succeeds on the third attempt);
//! - `permanent_if_text_contains`: a permanent error for texts containing this string;
//! - `sleep_ms`: sleeps this long in `send` (a hung provider, for time limits);
//! - `sleep_if_text_contains`: sleeps only for texts containing this string (one stuck
//!   call among quick ones);
//! - `log`: a line to log through the host when the provider is created.

use std::time::Duration;

use plugin_api::{export_sms_module, Host, ModuleError, OutboundSms, SmsModule, Step};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    transient_before_attempt: u32,
    #[serde(default)]
    permanent_if_text_contains: Option<String>,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    sleep_if_text_contains: Option<String>,
    #[serde(default)]
    log: Option<String>,
}

impl Config {
    fn parse(blob: &str) -> Result<Config, ModuleError> {
        if blob.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_json::from_str(blob).map_err(|e| ModuleError::configuration(format!("bad echo blob: {e}")))
    }
}

pub struct Echo {
    config: Config,
}

impl SmsModule for Echo {
    const NAME: &'static str = "echo";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "test module: answers echo-<id>, fails on demand";

    fn check_config(config: &str) -> Result<(), ModuleError> {
        Config::parse(config).map(drop)
    }

    fn new(config: &str, host: Host) -> Result<Self, ModuleError> {
        let config = Config::parse(config)?;
        if let Some(line) = &config.log {
            host.info(line);
        }
        Ok(Echo { config })
    }

    fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError> {
        let sleeps = match &self.config.sleep_if_text_contains {
            Some(needle) => sms.text.contains(needle.as_str()),
            None => true,
        };
        if self.config.sleep_ms > 0 && sleeps {
            std::thread::sleep(Duration::from_millis(self.config.sleep_ms));
        }
        if sms.attempt < self.config.transient_before_attempt {
            return Err(ModuleError::transient(format!(
                "provider busy (attempt {} of the {} needed)",
                sms.attempt, self.config.transient_before_attempt
            )));
        }
        if let Some(needle) = &self.config.permanent_if_text_contains {
            if sms.text.contains(needle.as_str()) {
                return Err(ModuleError::permanent(format!(
                    "provider rejected the text: contains {needle:?}"
                )));
            }
        }
        Ok(Step::Done {
            result: format!("echo-{}", sms.id).into(),
        })
    }
}

export_sms_module!(Echo);
