//! Test module: a session module (plugin-api 1.2) speaking a small line protocol, to
//! test the gateway's session driver against a real TCP peer written in the tests
//! (tests/tests/sessions.rs). Every line ends with `\n`.
//!
//! Blob (JSON): `{"port": P, "sessions": N, "window": W, "password": "…",
//! "keepalive_ms": K}` (host 127.0.0.1, no TLS; `keepalive_ms` default 1000).
//!
//! | module writes | peer answers |
//! | --- | --- |
//! | `LOGIN <password>` on connect | `OK` (ready) or `DENIED <reason>` (closes with the reason) |
//! | `SUBMIT <seq> <to> <text>` per SMS | `ACK <seq> <provider id>`, `NACK <seq> <reason>` (permanent) or `BUSY <seq>` (transient, pause 200 ms) |
//! | `PING` every `keepalive_ms` | `PONG` |
//! | `LOGOUT` once asked to close and nothing is pending | `BYE` (closed) |
//!
//! The peer may push `MO <from> <to> <text>` (an inbound SMS) and `DLR <provider id>
//! <DELIVRD|UNDELIV>` (a delivery report) at any time.

use std::{collections::HashMap, sync::Mutex};

use plugin_api::{
    export_sms_module, CallbackEvent, DeliveryStatus, Host, ModuleError, OutboundSms, SessionAction,
    SessionEvent, SessionId, SessionPlan, SmsModule, Step,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    port: u16,
    #[serde(default = "one")]
    sessions: u32,
    #[serde(default = "one")]
    window: u32,
    password: String,
    #[serde(default = "keepalive")]
    keepalive_ms: u64,
}

fn one() -> u32 {
    1
}

fn keepalive() -> u64 {
    1000
}

/// What one connection's session holds.
#[derive(Default)]
struct Session {
    /// Bytes read and not yet a whole line.
    buffer: Vec<u8>,
    next_seq: u64,
    /// Sends awaiting their answer: sequence number → the gateway's SMS id.
    pending: HashMap<u64, String>,
    /// The gateway asked to close: log out once nothing is pending.
    closing: bool,
    logged_out: bool,
}

pub struct Lines {
    config: Config,
    sessions: Mutex<HashMap<SessionId, Session>>,
}

impl Lines {
    fn line(&self, session: &mut Session, line: &str, actions: &mut Vec<SessionAction>) {
        let mut words = line.splitn(2, ' ');
        let (verb, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        match verb {
            "OK" => actions.push(SessionAction::Ready),
            "DENIED" => actions.push(SessionAction::close(format!("login refused: {rest}"))),
            "PONG" => {}
            "BYE" => actions.push(SessionAction::close("logged out")),
            "ACK" | "NACK" | "BUSY" => {
                let mut parts = rest.splitn(2, ' ');
                let seq: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
                let detail = parts.next().unwrap_or("").to_string();
                let Some(sms_id) = session.pending.remove(&seq) else {
                    return;
                };
                let result = match verb {
                    "ACK" => Ok(detail),
                    "NACK" => Err(ModuleError::permanent(format!("refused: {detail}"))),
                    _ => {
                        actions.push(SessionAction::Pause { ms: 200 });
                        Err(ModuleError::transient("the peer is busy"))
                    }
                };
                actions.push(SessionAction::sent(sms_id, result));
            }
            "MO" => {
                let mut parts = rest.splitn(3, ' ');
                let (from, to, text) = (
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                );
                actions.push(SessionAction::event(CallbackEvent::Inbound {
                    from: from.into(),
                    to: to.into(),
                    text: text.into(),
                    provider_id: String::new().into(),
                }));
            }
            "DLR" => {
                let mut parts = rest.splitn(2, ' ');
                let id = parts.next().unwrap_or("");
                let stat = parts.next().unwrap_or("");
                let status = if stat == "DELIVRD" {
                    DeliveryStatus::DELIVERED
                } else {
                    DeliveryStatus::UNDELIVERED
                };
                actions.push(SessionAction::event(CallbackEvent::delivery_report(
                    id, None, status, stat,
                )));
            }
            _ => {}
        }
    }

    fn maybe_log_out(session: &mut Session, actions: &mut Vec<SessionAction>) {
        if session.closing && session.pending.is_empty() && !session.logged_out {
            session.logged_out = true;
            actions.push(SessionAction::write("LOGOUT\n"));
        }
    }
}

impl SmsModule for Lines {
    const NAME: &'static str = "lines";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "test module: a line protocol over a session";

    fn check_config(config: &str) -> Result<(), ModuleError> {
        serde_json::from_str::<Config>(config)
            .map(drop)
            .map_err(|e| ModuleError::configuration(format!("bad lines blob: {e}")))
    }

    fn new(config: &str, _host: Host) -> Result<Self, ModuleError> {
        let config = serde_json::from_str(config)
            .map_err(|e| ModuleError::configuration(format!("bad lines blob: {e}")))?;
        Ok(Lines {
            config,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn send(&self, _sms: &OutboundSms) -> Result<Step, ModuleError> {
        Err(ModuleError::permanent("lines sends over sessions only"))
    }

    fn session_plan(&self) -> Option<SessionPlan> {
        Some(SessionPlan {
            host: "127.0.0.1".into(),
            port: self.config.port,
            tls: false,
            sessions: self.config.sessions,
            window: self.config.window,
        })
    }

    fn session_event(&self, id: SessionId, event: SessionEvent) -> Result<Vec<SessionAction>, ModuleError> {
        let mut sessions = self.sessions.lock().unwrap();
        let mut actions = Vec::new();
        match event {
            SessionEvent::Connected => {
                sessions.insert(id, Session::default());
                actions.push(SessionAction::write(format!("LOGIN {}\n", self.config.password)));
                actions.push(SessionAction::Timer {
                    ms: self.config.keepalive_ms,
                });
            }
            SessionEvent::Received(bytes) => {
                let session = sessions.entry(id).or_default();
                session.buffer.extend_from_slice(&bytes);
                while let Some(end) = session.buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = session.buffer.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line[..end]).to_string();
                    self.line(session, &line, &mut actions);
                }
                Self::maybe_log_out(session, &mut actions);
            }
            SessionEvent::Timer => {
                actions.push(SessionAction::write("PING\n"));
                actions.push(SessionAction::Timer {
                    ms: self.config.keepalive_ms,
                });
            }
            SessionEvent::Closing => {
                let session = sessions.entry(id).or_default();
                session.closing = true;
                Self::maybe_log_out(session, &mut actions);
            }
            SessionEvent::Disconnected { .. } => {
                sessions.remove(&id);
            }
            _ => {}
        }
        Ok(actions)
    }

    fn session_send(&self, id: SessionId, sms: &OutboundSms) -> Result<Vec<SessionAction>, ModuleError> {
        let mut sessions = self.sessions.lock().unwrap();
        let session = sessions
            .get_mut(&id)
            .ok_or_else(|| ModuleError::transient("no such session"))?;
        session.next_seq += 1;
        let seq = session.next_seq;
        session.pending.insert(seq, sms.id.to_string());
        Ok(vec![SessionAction::write(format!(
            "SUBMIT {seq} {} {}\n",
            sms.to,
            sms.text.replace('\n', " ")
        ))])
    }
}

export_sms_module!(Lines);
