//! Sending one SMS through a module: the module's send, run to its end by the step
//! driver ([`crate::modules::steps`]), which performs the HTTP requests it asks for.

use plugin_api::OutboundSms;

use crate::modules::{
    http::HttpClient,
    steps::{self, Operation},
    Module,
};

/// Why an SMS was not sent.
pub use crate::modules::steps::StepError as SendError;

/// Sends `sms` through `module`; returns the provider's message id.
pub async fn send(module: &Module, http: &HttpClient, sms: OutboundSms) -> Result<String, SendError> {
    steps::run(module, http, Operation::Send(sms)).await.outcome
}
