//! The `smpp` SMS module: SMPP 3.4 to a provider's or an operator's SMSC, over the
//! sessions the gateway holds for it (plugin-api 1.2). PDUs are rusmpp's; the module
//! is the protocol's state machine and never touches a socket.
//!
//! Blob (JSON):
//!
//! ```json
//! {"host": "smsc.example.net", "port": 2775, "tls": false,
//!  "system_id": "acme", "password": "s3cret", "system_type": "",
//!  "bind": "transceiver", "binds": 2, "window": 10, "rate_per_second": 0,
//!  "number_source_ton": 1, "number_source_npi": 1,
//!  "delivery_reports": true, "encoding": "auto", "enquire_link_ms": 30000}
//! ```
//!
//! - `tls`: TLS from the first byte, the SMSC's certificate checked against the
//!   system's roots (or the PEM file `SSL_CERT_FILE` names, for a private CA);
//! - `bind`: `transceiver` (one session a bind) or `transmitter_receiver` (a
//!   transmitter for submits and a receiver for deliveries, per bind; a receipt may
//!   come on any bind);
//! - `window`: submits one bind may have unanswered (the gateway counts SMS; the
//!   parts of a long text go out together);
//! - `rate_per_second`: a cap on submits per bind (0: none), kept by pausing the
//!   bind `1000 / rate` ms after each submit (the parts of a long text go together,
//!   then pause as long as that many submits);
//! - an alphanumeric sender goes as TON 5 / NPI 0, a number with
//!   `number_source_ton` / `number_source_npi` (international / ISDN by default);
//! - `encoding`: `auto` is GSM 03.38 7-bit when every character fits it and UCS-2
//!   otherwise; `ucs2` always. A long text goes in concatenated parts (UDH), and counts
//!   as sent when every part is acknowledged: its provider id is the first part's (a
//!   receipt naming a later part is matched to it);
//! - `delivery_reports`: ask for receipts (`registered_delivery`); a receipt moves the
//!   message to `delivered` or `undelivered`;
//! - `ESME_RTHROTTLED` and `generic_nack` pause the session for a second; they,
//!   `ESME_RMSGQFUL` and `ESME_RSYSERR` are transient; any other refusal is permanent
//!   and names its status.

mod config;
mod parts;
mod pdu;
mod session;

use std::{collections::HashMap, sync::Mutex};

use plugin_api::{
    export_sms_module, Host, ModuleError, OutboundSms, SessionAction, SessionEvent, SessionId, SessionPlan,
    SmsModule, Step,
};

use config::{BindMode, Config};
use parts::PartIds;
use session::{Role, Session};

pub struct Smpp {
    config: Config,
    sessions: Mutex<Sessions>,
}

/// The module's state, behind one lock: each session's, and what they share.
#[derive(Default)]
struct Sessions {
    by_id: HashMap<SessionId, Session>,
    /// Long texts' later part ids, for receipts that may come on any session.
    parts: PartIds,
}

impl Smpp {
    /// What session `id` binds as: with transmitter/receiver binds, even numbers
    /// transmit and odd ones receive; a self-check's session transmits.
    fn role(&self, id: SessionId) -> Role {
        match self.config.bind {
            BindMode::Transceiver => Role::Transceiver,
            BindMode::TransmitterReceiver if id.0 == u32::MAX || id.0 % 2 == 0 => Role::Transmitter,
            BindMode::TransmitterReceiver => Role::Receiver,
        }
    }
}

impl SmsModule for Smpp {
    const NAME: &'static str = "smpp";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "SMPP 3.4 to an SMSC (binds held by the gateway)";

    fn check_config(config: &str) -> Result<(), ModuleError> {
        Config::parse(config).map(drop)
    }

    fn new(config: &str, _host: Host) -> Result<Self, ModuleError> {
        Ok(Smpp {
            config: Config::parse(config)?,
            sessions: Mutex::new(Sessions::default()),
        })
    }

    fn send(&self, _sms: &OutboundSms) -> Result<Step, ModuleError> {
        Err(ModuleError::permanent(
            "the smpp module sends over sessions only (a gateway of plugin-api 1.2 or later)",
        ))
    }

    fn session_plan(&self) -> Option<SessionPlan> {
        let per_bind = match self.config.bind {
            BindMode::Transceiver => 1,
            BindMode::TransmitterReceiver => 2,
        };
        Some(SessionPlan {
            host: self.config.host.as_str().into(),
            port: self.config.port,
            tls: self.config.tls,
            sessions: self.config.binds * per_bind,
            window: self.config.window,
        })
    }

    fn session_event(&self, id: SessionId, event: SessionEvent) -> Result<Vec<SessionAction>, ModuleError> {
        let mut guard = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Sessions {
            by_id: sessions,
            parts,
        } = &mut *guard;
        match event {
            SessionEvent::Connected => {
                let mut session = Session::new(self.role(id));
                let actions = session.bind(&self.config)?;
                sessions.insert(id, session);
                Ok(actions)
            }
            SessionEvent::Received(bytes) => match sessions.get_mut(&id) {
                Some(session) => session.received(&bytes, parts),
                None => Ok(Vec::new()),
            },
            SessionEvent::Timer => Ok(sessions
                .get_mut(&id)
                .map(|session| session.timer(&self.config))
                .unwrap_or_default()),
            SessionEvent::Closing => Ok(sessions
                .get_mut(&id)
                .map(Session::closing)
                .unwrap_or_else(|| vec![SessionAction::close("closed before the bind completed")])),
            SessionEvent::Disconnected { .. } => {
                sessions.remove(&id);
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn session_send(&self, id: SessionId, sms: &OutboundSms) -> Result<Vec<SessionAction>, ModuleError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let session = sessions
            .by_id
            .get_mut(&id)
            .ok_or_else(|| ModuleError::transient("the session is gone"))?;
        session.submit(&self.config, sms)
    }
}

export_sms_module!(Smpp);
