//! The configuration blob, read once into checked values.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;

use plugin_api::{ModuleError, Secret};

/// Twilio's REST API, unless `base_url` says otherwise (tests point it at a local server).
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Everything the module needs, checked. Not `Debug`: it holds the credentials.
#[derive(Clone)]
pub struct Config {
    pub account_sid: String,
    /// `Basic base64(sid:secret)` for the REST API: the account's auth token, or an
    /// API key when one is configured.
    pub authorization: Secret,
    /// Signs Twilio's callbacks (an API key cannot).
    pub auth_token: Option<Secret>,
    /// Sent instead of `From` when set: Twilio picks the sender from the service.
    pub messaging_service_sid: Option<String>,
    pub status_callback: Option<String>,
    /// The URL Twilio calls for callbacks, as Twilio sees it; with `auth_token`, turns
    /// on the `X-Twilio-Signature` check.
    pub public_url: Option<String>,
    /// Without a trailing `/`.
    pub base_url: String,
    /// Every credential, to blank out of quoted answers.
    pub secrets: Vec<Secret>,
}

impl Config {
    /// The token that signs callbacks, when callbacks are to be verified.
    pub fn signature_check(&self) -> Option<(&Secret, &str)> {
        Some((self.auth_token.as_ref()?, self.public_url.as_deref()?))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    account_sid: String,
    auth_token: Option<Secret>,
    api_key_sid: Option<String>,
    api_key_secret: Option<Secret>,
    messaging_service_sid: Option<String>,
    status_callback: Option<String>,
    public_url: Option<String>,
    base_url: Option<String>,
}

fn bad(key: &str, reason: impl fmt::Display) -> ModuleError {
    ModuleError::configuration(format!("`{key}`: {reason}"))
}

impl Config {
    pub fn parse(blob: &str) -> Result<Config, ModuleError> {
        if !blob.trim_start().starts_with('{') {
            return Err(ModuleError::configuration(
                "the blob is not valid: it must be a JSON object with at least `account_sid` and `auth_token`",
            ));
        }
        let raw: RawConfig = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(blob))
            .map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    ModuleError::configuration(format!("the blob is not valid: {}", e.inner()))
                } else {
                    bad(&path, e.inner())
                }
            })?;
        raw.check()
    }
}

impl RawConfig {
    fn check(self) -> Result<Config, ModuleError> {
        check_sid(&self.account_sid, "AC").map_err(|reason| bad("account_sid", reason))?;
        if let Some(sid) = &self.messaging_service_sid {
            check_sid(sid, "MG").map_err(|reason| bad("messaging_service_sid", reason))?;
        }
        if self.auth_token.as_ref().is_some_and(Secret::is_empty) {
            return Err(bad("auth_token", "is empty"));
        }

        let (user, password) = match (&self.api_key_sid, &self.api_key_secret, &self.auth_token) {
            (Some(sid), Some(secret), _) => {
                check_sid(sid, "SK").map_err(|reason| bad("api_key_sid", reason))?;
                if secret.is_empty() {
                    return Err(bad("api_key_secret", "is empty"));
                }
                (sid, secret)
            }
            (Some(_), None, _) => return Err(bad("api_key_secret", "is required with `api_key_sid`")),
            (None, Some(_), _) => return Err(bad("api_key_sid", "is required with `api_key_secret`")),
            (None, None, Some(token)) => (&self.account_sid, token),
            (None, None, None) => {
                return Err(ModuleError::configuration(
                    "no credentials: give `auth_token`, or `api_key_sid` and `api_key_secret`",
                ))
            }
        };
        let credentials = format!("{user}:{}", password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes());
        let authorization = Secret::new(format!("Basic {encoded}"));

        let base_url = match &self.base_url {
            None => DEFAULT_BASE_URL.to_string(),
            Some(url) => {
                check_url(url).map_err(|reason| bad("base_url", reason))?;
                url.trim_end_matches('/').to_string()
            }
        };

        if let Some(url) = &self.public_url {
            check_url(url).map_err(|reason| bad("public_url", reason))?;
            if url.contains('?') {
                return Err(bad(
                    "public_url",
                    "give it without a query: each callback's query is added as it arrives",
                ));
            }
            if self.auth_token.is_none() {
                return Err(bad(
                    "public_url",
                    "checking Twilio's signature needs `auth_token` (an API key cannot verify it)",
                ));
            }
        }
        if let Some(url) = &self.status_callback {
            check_url(url).map_err(|reason| bad("status_callback", reason))?;
            if let Some(public) = &self.public_url {
                let rest = url.strip_prefix(public.as_str());
                if !rest.is_some_and(|rest| rest.is_empty() || rest.starts_with('?')) {
                    return Err(bad(
                        "status_callback",
                        "Twilio signs the URL it calls, so with `public_url` set this must be `public_url`, \
                         optionally followed by a query",
                    ));
                }
            }
        }

        let secrets = [self.auth_token.clone(), self.api_key_secret.clone()]
            .into_iter()
            .flatten()
            .collect();
        Ok(Config {
            account_sid: self.account_sid,
            authorization,
            auth_token: self.auth_token,
            messaging_service_sid: self.messaging_service_sid,
            status_callback: self.status_callback,
            public_url: self.public_url,
            base_url,
            secrets,
        })
    }
}

/// A Twilio SID: two letters saying its kind, then 32 hex digits.
fn check_sid(sid: &str, prefix: &str) -> Result<(), String> {
    let hex = sid.strip_prefix(prefix);
    if !hex.is_some_and(|hex| hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())) {
        return Err(format!(
            "must be `{prefix}` followed by 32 hex digits, as the Twilio console shows it"
        ));
    }
    Ok(())
}

/// An absolute `http(s)` URL without a fragment (Twilio's callbacks are signed over
/// the URL, and a fragment never reaches the server).
fn check_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or("must start with `https://` or `http://`")?;
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err("has no host".to_string());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds a space or a control character".to_string());
    }
    if url.contains('#') {
        return Err("may not have a `#fragment`".to_string());
    }
    Ok(())
}
