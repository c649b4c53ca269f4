//! Admin endpoints: *Send test*, the module's self-check, and the reload (the settings
//! themselves are in `settings.rs`).

use std::sync::Arc;

use axum::{extract::State, Json};
use plugin_api::OutboundSms;
use serde::Serialize;

use super::{
    body::JsonBody,
    problem::Problem,
    sms::{check, SmsRequest},
};
use crate::{
    app::{App, ReloadReport},
    modules::steps::{SelfCheck, StepRecord},
};

/// The answer of *Send test*.
#[derive(Debug, Serialize)]
pub(super) struct TestSent {
    /// `test-…`: never stored, so never in `GET /v1/messages`.
    id: String,
    module: String,
    /// The number as normalised and handed to the module.
    to: String,
    provider_id: String,
    /// The HTTP exchanges the send took.
    steps: Vec<StepRecord>,
}

/// `POST /v1/admin/sms/test`: sends one SMS at once through the loaded module,
/// bypassing the queue, and answers with the provider's id and the HTTP exchanges it
/// took, or the module's error.
pub(super) async fn sms_test(
    State(app): State<Arc<App>>,
    JsonBody(request): JsonBody<SmsRequest>,
) -> Result<Json<TestSent>, Problem> {
    let live = app.live();
    let payload = check(request, &live.settings)?;
    let id = format!("test-{}", uuid::Uuid::now_v7());
    let sms = OutboundSms {
        id: id.as_str().into(),
        to: payload.to.as_str().into(),
        sender: payload.sender.as_str().into(),
        text: payload.text.as_str().into(),
        attempt: 1,
    };
    let module = &live.module;
    let (steps, outcome) = crate::sms::send::run(&live, sms).await;
    match outcome {
        Ok(provider_id) => {
            tracing::info!(message_id = %id, module = module.name(), %provider_id, "test SMS sent");
            Ok(Json(TestSent {
                id,
                module: module.name().to_string(),
                to: payload.to,
                provider_id,
                steps,
            }))
        }
        Err(error) => {
            tracing::warn!(message_id = %id, module = module.name(), %error, "test SMS failed");
            Err(Problem::bad_gateway(format!(
                "the test SMS was not sent: {error}"
            )))
        }
    }
}

/// `POST /v1/admin/sms/check`: the module in force runs its self-check, with the HTTP
/// requests it asks for. A failed check is still a 200: the request worked, and the
/// answer says what failed.
pub(super) async fn sms_check(State(app): State<Arc<App>>) -> Json<SelfCheck> {
    let live = app.live();
    let check = crate::sms::send::self_check(&live.module, &live.http, &live.settings).await;
    match &check.error {
        None => tracing::info!(module = %check.module, "module self-check passed"),
        Some(error) => tracing::warn!(module = %check.module, %error, "module self-check failed"),
    }
    Json(check)
}

/// `POST /v1/admin/reload`: reads the settings file again, as SIGHUP does.
pub(super) async fn reload(State(app): State<Arc<App>>) -> Result<Json<ReloadReport>, Problem> {
    match app.reload().await {
        Ok(report) => Ok(Json(report)),
        Err(error) => {
            tracing::warn!(%error, "reload refused; the settings in force stay as they were");
            Err(Problem::invalid(
                "settings",
                format!("{error}; the settings in force stay as they were"),
            ))
        }
    }
}
