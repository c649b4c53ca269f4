//! The `file` SMS module: appends every SMS it is asked to send to a local file, one
//! JSON object a line, and reports it sent.
//!
//! It is the gateway's embedded default, so that a newcomer sees SMS flowing with no
//! provider account, and it is what tests and benchmarks count. It is not a provider:
//! nothing leaves the machine.
//!
//! Configuration blob (JSON, every key optional; an empty blob means all defaults):
//!
//! ```json
//! {"path": "data/sms.jsonl", "callback_token": "a shared secret"}
//! ```
//!
//! - `path`: the file to append to, created with its directory if missing; relative
//!   paths are relative to the gateway's working directory. Default `data/sms.jsonl`.
//! - `callback_token`: when set, a callback must carry it in `X-Callback-Token`.
//!
//! Each line holds `id` (the gateway's message id), `to`, `sender`, `text`, `attempt`
//! and `at` (RFC 3339, UTC). The line is written with one `write` to a file opened for
//! appending before `send` returns, so a line is whole even when several gateways
//! share the file, and survives the gateway being killed.
//!
//! Callbacks (`POST /v1/providers/file/callback`) let a tester play the provider: a
//! JSON body `{"type": "inbound", "from", "to", "text"}` is an inbound SMS, and
//! `{"type": "report", "provider_id", "status": "delivered" | "undelivered", "detail"}`
//! a delivery report.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use plugin_api::{
    export_sms_module, CallbackEvent, CallbackReply, CallbackRequest, DeliveryStatus, Host, ModuleError,
    OutboundSms, SmsModule, Step,
};
use serde::{Deserialize, Serialize};

const DEFAULT_PATH: &str = "data/sms.jsonl";

/// The parsed configuration blob.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_path")]
    path: PathBuf,
    #[serde(default)]
    callback_token: Option<String>,
}

fn default_path() -> PathBuf {
    PathBuf::from(DEFAULT_PATH)
}

impl Config {
    fn parse(blob: &str) -> Result<Config, ModuleError> {
        let config: Config = if blob.trim().is_empty() {
            serde_json::from_str("{}")
        } else {
            serde_json::from_str(blob)
        }
        .map_err(|e| ModuleError::configuration(format!("the blob is not valid file-module JSON: {e}")))?;
        if config.path.as_os_str().is_empty() {
            return Err(ModuleError::configuration("`path` is empty"));
        }
        Ok(config)
    }
}

/// The module: an open file and a lock so that lines never interleave.
pub struct FileModule {
    path: PathBuf,
    file: Mutex<File>,
    callback_token: Option<String>,
    host: Host,
}

/// One line of the output file.
#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    to: &'a str,
    sender: &'a str,
    text: &'a str,
    attempt: u32,
    at: String,
}

fn open_for_append(path: &Path) -> Result<File, ModuleError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            ModuleError::configuration(format!("cannot create directory {}: {e}", dir.display()))
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ModuleError::configuration(format!("cannot open {} for appending: {e}", path.display())))
}

impl SmsModule for FileModule {
    const NAME: &'static str = "file";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "appends each SMS as a JSON line to a local file (no provider)";

    fn check_config(config: &str) -> Result<(), ModuleError> {
        Config::parse(config).map(drop)
    }

    fn new(config: &str, host: Host) -> Result<Self, ModuleError> {
        let config = Config::parse(config)?;
        let file = open_for_append(&config.path)?;
        host.info(format_args!("appending SMS to {}", config.path.display()));
        Ok(FileModule {
            path: config.path,
            file: Mutex::new(file),
            callback_token: config.callback_token,
            host,
        })
    }

    fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError> {
        let line = Line {
            id: &sms.id,
            to: &sms.to,
            sender: &sms.sender,
            text: &sms.text,
            attempt: sms.attempt,
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        };
        let mut bytes = serde_json::to_vec(&line).expect("a line of strings always serialises");
        bytes.push(b'\n');
        // A poisoned lock only means another send panicked mid-call; the file is fine.
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&bytes).map_err(|e| {
            self.host
                .error(format_args!("write to {} failed: {e}", self.path.display()));
            ModuleError::transient(format!("cannot write to {}: {e}", self.path.display()))
        })?;
        Ok(Step::Done {
            result: format!("file-{}", sms.id).into(),
        })
    }

    fn parse_callback(&self, request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
        if let Some(token) = &self.callback_token {
            let given = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("x-callback-token"))
                .map(|h| h.value.as_str());
            if given != Some(token.as_str()) {
                return Err(ModuleError::permanent("missing or wrong X-Callback-Token"));
            }
        }
        let event: CallbackBody = serde_json::from_slice(&request.body)
            .map_err(|e| ModuleError::permanent(format!("callback body is not file-module JSON: {e}")))?;
        let event = match event {
            CallbackBody::Inbound { from, to, text } => CallbackEvent::Inbound {
                provider_id: format!("file-in-{}", now_millis()).into(),
                from: from.into(),
                to: to.into(),
                text: text.into(),
            },
            CallbackBody::Report {
                provider_id,
                status,
                detail,
            } => CallbackEvent::DeliveryReport {
                provider_id: provider_id.into(),
                message_id: None.into(),
                status: match status {
                    ReportStatus::Delivered => DeliveryStatus::DELIVERED,
                    ReportStatus::Undelivered => DeliveryStatus::UNDELIVERED,
                },
                detail: detail.into(),
            },
        };
        Ok(CallbackReply::ok(vec![event]))
    }

    fn self_check(&self) -> Result<Step, ModuleError> {
        open_for_append(&self.path)?;
        Ok(Step::Done {
            result: format!("{} is writable", self.path.display()).into(),
        })
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum CallbackBody {
    Inbound {
        from: String,
        to: String,
        text: String,
    },
    Report {
        provider_id: String,
        status: ReportStatus,
        #[serde(default)]
        detail: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReportStatus {
    Delivered,
    Undelivered,
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

export_sms_module!(FileModule);

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(id: &str) -> OutboundSms {
        OutboundSms {
            id: id.into(),
            to: "+447911123456".into(),
            sender: "ACME".into(),
            text: "héllo \"world\"\nline two".into(),
            attempt: 1,
        }
    }

    #[test]
    fn each_send_appends_one_parseable_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        let blob = serde_json::json!({ "path": path }).to_string();
        let module = FileModule::new(&blob, Host::discard()).unwrap();
        for id in ["a1", "a2"] {
            let step = module.send(&sms(id)).unwrap();
            assert_eq!(
                step,
                Step::Done {
                    result: format!("file-{id}").into()
                }
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["id"], "a1");
        assert_eq!(lines[1]["to"], "+447911123456");
        assert_eq!(lines[1]["text"], "héllo \"world\"\nline two");
        assert!(lines[0]["at"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn bad_blobs_are_refused_with_the_reason() {
        let err = FileModule::check_config("{\"path\": 3}").unwrap_err();
        assert!(err.message.contains("invalid type"), "{err}");
        let err = FileModule::check_config("{\"paht\": \"x\"}").unwrap_err();
        assert!(err.message.contains("unknown field `paht`"), "{err}");
        let err = FileModule::check_config("{\"path\": \"\"}").unwrap_err();
        assert!(err.message.contains("`path` is empty"), "{err}");
        assert!(FileModule::check_config("").is_ok());
    }
}
