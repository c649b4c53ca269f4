//! The module's blob, parsed once into checked values.

use plugin_api::{ModuleError, Secret};
use serde::Deserialize;

/// How the module binds to the SMSC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// One transceiver session per bind: submits, answers and deliveries on one.
    Transceiver,
    /// Two sessions per bind: a transmitter for submits, a receiver for deliveries.
    TransmitterReceiver,
}

/// Which encoding a text goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodingPolicy {
    /// GSM 03.38 7-bit when every character fits it, UCS-2 otherwise.
    Auto,
    /// Always UCS-2.
    Ucs2,
}

/// The blob: `{"host", "port", "system_id", "password", …}` (see the crate docs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub tls: bool,
    pub system_id: String,
    pub password: Secret,
    #[serde(default)]
    pub system_type: String,
    #[serde(default = "transceiver")]
    pub bind: BindMode,
    #[serde(default = "one")]
    pub binds: u32,
    #[serde(default = "ten")]
    pub window: u32,
    /// Submits a second on one bind; 0 for no cap.
    #[serde(default)]
    pub rate_per_second: u32,
    /// `source_addr_ton` / `npi` for a sender that is a number (alphanumeric senders are
    /// always TON 5, NPI 0).
    #[serde(default = "one_u8")]
    pub number_source_ton: u8,
    #[serde(default = "one_u8")]
    pub number_source_npi: u8,
    #[serde(default = "yes")]
    pub delivery_reports: bool,
    #[serde(default = "auto")]
    pub encoding: EncodingPolicy,
    /// How often an idle session sends `enquire_link`; a session whose last one is
    /// unanswered at the next is dead.
    #[serde(default = "thirty_seconds")]
    pub enquire_link_ms: u64,
}

fn transceiver() -> BindMode {
    BindMode::Transceiver
}
fn one() -> u32 {
    1
}
fn ten() -> u32 {
    10
}
fn one_u8() -> u8 {
    1
}
fn yes() -> bool {
    true
}
fn auto() -> EncodingPolicy {
    EncodingPolicy::Auto
}
fn thirty_seconds() -> u64 {
    30_000
}

impl Config {
    /// Parses and checks a blob; the error names the key.
    pub fn parse(blob: &str) -> Result<Config, ModuleError> {
        let config: Config = serde_json::from_str(blob)
            .map_err(|e| ModuleError::configuration(format!("the smpp blob is not valid: {e}")))?;
        let bad = |key: &str, why: &str| Err(ModuleError::configuration(format!("{key}: {why}")));
        if config.host.trim().is_empty() {
            return bad("host", "must not be empty");
        }
        if config.system_id.is_empty() || config.system_id.len() > 15 {
            return bad("system_id", "must be 1 to 15 characters (SMPP 3.4)");
        }
        if config.password.expose().len() > 8 {
            return bad("password", "must be at most 8 characters (SMPP 3.4)");
        }
        if config.system_type.len() > 12 {
            return bad("system_type", "must be at most 12 characters (SMPP 3.4)");
        }
        if config.binds == 0 {
            return bad("binds", "must be at least 1");
        }
        if config.window == 0 {
            return bad("window", "must be at least 1");
        }
        if config.enquire_link_ms < 100 {
            return bad("enquire_link_ms", "must be at least 100");
        }
        Ok(config)
    }
}
