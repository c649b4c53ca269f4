//! The HTTP API (contract, section 4): JSON in, JSON out, problem+json errors, bearer
//! tokens with roles. Handlers check and normalise what they are given, store it, and
//! answer; delivery happens in the workers.

mod admin;
mod auth;
mod body;
mod callbacks;
mod email;
mod messages;
pub mod problem;
mod sms;

use std::sync::Arc;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderMap},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{any, get, post},
    Json, Router,
};
use sha2::{Digest, Sha256};

use crate::{
    app::App,
    metrics::{HttpLabels, Metrics},
    settings::Role,
    store::Channel,
};
use auth::Caller;
use problem::Problem;

pub use messages::rfc3339;

/// The API's routes over the shared state.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/sms", post(sms::post_sms))
        .route("/v1/email", post(email::post_email))
        .route("/v1/mailings", post(email::post_mailing))
        .route("/v1/mailings/{id}", get(email::get_mailing))
        .route("/v1/admin/email/check", post(email::email_check))
        .route("/v1/messages/{id}", get(messages::get_message))
        .route("/v1/admin/sms/test", post(admin::sms_test))
        .route("/v1/admin/settings", get(admin::settings))
        .route("/v1/admin/reload", post(admin::reload))
        .route("/v1/providers/{module}/callback", any(callbacks::callback))
        .route("/v1/inbound", get(callbacks::list_inbound))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .with_state(app)
}

/// Counts every request by route (the matched pattern, never the raw path) and status.
async fn count_requests(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    app.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route,
            method,
            status: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

/// `GET /metrics`: Prometheus text, with the queue measured now.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    for channel in [Channel::Sms, Channel::Email] {
        if let Ok(depth) = app.store.queue_depth(channel).await {
            let labels = Metrics::channel(channel);
            app.metrics.queue_due.get_or_create(&labels).set(depth.due as i64);
            app.metrics
                .queue_oldest_due_seconds
                .get_or_create(&labels)
                .set(depth.oldest_due_age.map(|d| d.as_secs_f64()).unwrap_or(0.0));
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn not_found() -> Problem {
    Problem::not_found("no such endpoint")
}

async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}

/// Checks the caller's token against the tokens in force.
fn authorize(app: &App, headers: &HeaderMap, needed: Role) -> Result<Caller, Problem> {
    auth::authorize(headers, &app.live().settings.auth, needed)
}

/// The `Idempotency-Key` header, scoped to the caller's token so that two apps
/// cannot collide, and never stored in clear with the token.
fn idempotency_key(app: &App, headers: &HeaderMap, caller: Caller) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| Problem::invalid("Idempotency-Key", "must be printable ASCII"))?;
    if key.is_empty() || key.len() > 255 {
        return Err(Problem::invalid("Idempotency-Key", "must be 1 to 255 characters"));
    }
    let live = app.live();
    let token = live
        .settings
        .auth
        .get(caller.token_index)
        .map(|t| t.token.expose().to_string())
        .unwrap_or_default();
    let scope = Sha256::digest(token.as_bytes());
    let scope: String = scope[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(format!("{scope}:{key}")))
}
