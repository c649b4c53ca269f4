//! Test module: needs a set number of HTTP exchanges to send one SMS, to test the
//! gateway's step limit against a real local HTTP server.
//!
//! Blob (JSON): `{"url": "http://127.0.0.1:PORT/", "exchanges": N}`. `send` asks for a
//! `POST` to `url` with the header `X-Step: 1`; the server is expected to answer 200
//! with the step number it was sent as its body. Each answer to step `k < N` asks for
//! step `k + 1`; the answer to step `N` finishes with `steps-<id>-<N>`. Any other answer
//! is a permanent error.

use plugin_api::{
    export_sms_module, Host, HttpRequest, HttpResponse, ModuleError, OutboundSms, SmsModule, Step,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
    exchanges: u32,
}

impl Config {
    fn parse(blob: &str) -> Result<Config, ModuleError> {
        serde_json::from_str(blob).map_err(|e| ModuleError::configuration(format!("bad steps blob: {e}")))
    }
}

pub struct Steps {
    config: Config,
}

impl Steps {
    fn request(&self, step: u32) -> Step {
        Step::http(HttpRequest::post(self.config.url.as_str()).header("X-Step", step.to_string()))
    }
}

impl SmsModule for Steps {
    const NAME: &'static str = "steps";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "test module: needs a set number of HTTP exchanges per SMS";

    fn check_config(config: &str) -> Result<(), ModuleError> {
        Config::parse(config).map(drop)
    }

    fn new(config: &str, _host: Host) -> Result<Self, ModuleError> {
        Ok(Steps {
            config: Config::parse(config)?,
        })
    }

    fn send(&self, _sms: &OutboundSms) -> Result<Step, ModuleError> {
        Ok(self.request(1))
    }

    fn send_response(&self, sms: &OutboundSms, response: &HttpResponse) -> Result<Step, ModuleError> {
        let step: u32 = std::str::from_utf8(&response.body)
            .ok()
            .and_then(|body| body.trim().parse().ok())
            .filter(|_| response.status == 200)
            .ok_or_else(|| {
                ModuleError::permanent(format!(
                    "expected 200 with the step number, got HTTP {}",
                    response.status
                ))
            })?;
        if step < self.config.exchanges {
            Ok(self.request(step + 1))
        } else {
            Ok(Step::done(format!("steps-{}-{step}", sms.id)))
        }
    }
}

export_sms_module!(Steps);
