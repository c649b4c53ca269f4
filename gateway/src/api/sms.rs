//! `POST /v1/sms`: check, normalise, store durably, answer 202 with the id.

use std::sync::Arc;

use axum::{extract::State, http::HeaderMap, response::Response};
use serde::{Deserialize, Serialize};

use super::{
    auth::{role, Caller},
    body::{BodyLimit, JsonBody},
    enqueue, idempotency_key,
    problem::Problem,
};
use crate::{
    app::App,
    settings::Settings,
    sms::{number, sender::SenderId, SmsPayload},
    store::Channel,
};

/// The longest text accepted: what providers accept as one concatenated SMS.
pub const MAX_TEXT_CHARS: usize = 1600;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SmsRequest {
    pub to: String,
    pub text: String,
    #[serde(default)]
    pub sender: Option<String>,
}

impl BodyLimit for SmsRequest {}

/// Checks a request into the payload that is queued or sent.
pub(super) fn check(request: SmsRequest, settings: &Settings) -> Result<SmsPayload, Problem> {
    let to = number::normalize(
        &request.to,
        settings.sms.default_country_code,
        settings.sms.number_check,
    )
    .map_err(|e| Problem::invalid("to", e.to_string()))?;
    if request.text.trim().is_empty() {
        return Err(Problem::invalid("text", "is empty"));
    }
    let chars = request.text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(Problem::invalid(
            "text",
            format!("has {chars} characters; the most an SMS can carry is {MAX_TEXT_CHARS}"),
        ));
    }
    let sender = match request.sender {
        Some(sender) => SenderId::parse(&sender).map_err(|e| Problem::invalid("sender", e))?,
        None => settings.sms.sender.clone().ok_or_else(|| {
            Problem::invalid(
                "sender",
                "is not given, and the gateway has no default (sms.sender)",
            )
        })?,
    };
    Ok(SmsPayload {
        to: to.to_string(),
        text: request.text,
        sender: sender.as_str().to_string(),
    })
}

pub(super) async fn post_sms(
    State(app): State<Arc<App>>,
    caller: Caller<role::Send>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SmsRequest>,
) -> Result<Response, Problem> {
    let live = app.live();
    let key = idempotency_key(&app, &headers, &caller, "POST /v1/sms", &request)?;
    let payload = check(request, &live.settings)?;
    let payload = serde_json::to_value(&payload).expect("a payload of strings serialises");
    enqueue(&app, Channel::Sms, payload, key).await
}
