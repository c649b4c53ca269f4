//! Sending one SMS through the module in force: over its sessions when it holds some
//! (plugin-api 1.2, [`super::session`]), else the module's send run to its end by the
//! step driver ([`crate::modules::steps`]), which performs the HTTP requests it asks for.
//! Every caller (the delivery worker, *Send test*, the self-check) goes through here,
//! so a session module is used the same way everywhere.

use plugin_api::OutboundSms;

use super::session::{self, SessionError};
use crate::{
    app::{session_limits, Live},
    modules::{
        http::HttpClient,
        steps::{self, Operation, SelfCheck, StepError, StepRecord},
        Module,
    },
    settings::Settings,
};

/// Why an SMS was not sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Steps(#[from] StepError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl SendError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Steps(error) => error.is_transient(),
            SendError::Session(error) => error.is_transient(),
        }
    }
}

/// Sends `sms` through `live`'s module; returns the provider's message id, and the
/// HTTP exchanges it took (none over a session).
pub async fn run(live: &Live, sms: OutboundSms) -> (Vec<StepRecord>, Result<String, SendError>) {
    match &live.sessions {
        Some(sessions) => (Vec::new(), sessions.send(sms).await.map_err(SendError::from)),
        None => {
            let run = steps::run(&live.module, &live.http, Operation::Send(sms)).await;
            (run.steps, run.outcome.map_err(SendError::from))
        }
    }
}

/// Sends `sms` through `live`'s module; returns the provider's message id.
pub async fn send(live: &Live, sms: OutboundSms) -> Result<String, SendError> {
    run(live, sms).await.1
}

/// The self-check of `module`: over a session of its own if it asks for sessions,
/// else its HTTP self-check with `http`.
pub async fn self_check(module: &Module, http: &HttpClient, settings: &Settings) -> SelfCheck {
    match module.session_plan().await {
        Ok(Some(plan)) => session::self_check(module, plan, session_limits(settings)).await,
        _ => steps::self_check(module, http).await,
    }
}
