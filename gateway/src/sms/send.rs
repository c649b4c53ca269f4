//! Sending one SMS through a module: the module's steps, with the gateway doing the
//! HTTP requests it asks for, until the provider's id or an error.

use plugin_api::{OutboundSms, Step};

use crate::modules::{
    http::{HttpClient, HttpError},
    CallError, Module,
};

/// A module gets this many HTTP exchanges for one SMS (a token fetch, then the send).
const MAX_HTTP_STEPS: usize = 4;

/// Why an SMS was not sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("module `{module}`: {error}")]
    Http { module: String, error: HttpError },
    #[error("module `{module}` asked for more than {MAX_HTTP_STEPS} HTTP requests for one SMS")]
    TooManySteps { module: String },
}

impl SendError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Call(e) => e.is_transient(),
            SendError::Http { error, .. } => matches!(error, HttpError::NoAnswer { .. }),
            SendError::TooManySteps { .. } => false,
        }
    }
}

/// Sends `sms` through `module`; returns the provider's message id.
pub async fn send(module: &Module, http: &HttpClient, sms: OutboundSms) -> Result<String, SendError> {
    let mut step = module.send(sms.clone()).await?;
    for _ in 0..=MAX_HTTP_STEPS {
        match step {
            Step::Done { result } => return Ok(result.into_string()),
            Step::Http(request) => {
                let response = http.perform(&request).await.map_err(|error| SendError::Http {
                    module: module.name().to_string(),
                    error,
                })?;
                step = module.send_response(sms.clone(), response).await?;
            }
            _ => {
                return Err(SendError::Call(CallError::UnknownStep {
                    module: module.name().to_string(),
                    operation: "send",
                }))
            }
        }
    }
    Err(SendError::TooManySteps {
        module: module.name().to_string(),
    })
}
