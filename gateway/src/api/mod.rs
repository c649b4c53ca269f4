//! The HTTP API (contract, section 4): JSON in, JSON out, problem+json errors, bearer
//! tokens with roles. Handlers check and normalise what they are given, store it, and
//! answer; delivery happens in the workers.

mod admin;
mod auth;
mod auth_failures;
mod body;
mod callbacks;
mod email;
mod messages;
pub mod problem;
mod sms;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, FromRef, MatchedPath, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Json, Router,
};
use sha2::{Digest, Sha256};

use crate::{
    app::App,
    metrics::{HttpLabels, Metrics},
    settings::Role,
    store::{Channel, NewMessage},
};
use auth::Caller;
use auth_failures::AuthFailures;
use problem::Problem;

pub use messages::rfc3339;

/// Declares the routes once: [`ROUTES`] (method, path) for the OpenAPI check, and the
/// function that adds them to a router, so that the two cannot differ.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path,)*) => {
        /// Every route the API serves, as (method, path); `any` accepts every method.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn add_routes(router: Router<ApiState>) -> Router<ApiState> {
            router $(.route($path, axum::routing::$method($handler)))*
        }
    };
}

routes! {
    get "/healthz" => healthz,
    get "/metrics" => metrics,
    get "/openapi.json" => openapi,
    post "/v1/sms" => sms::post_sms,
    post "/v1/email" => email::post_email,
    post "/v1/mailings" => email::post_mailing,
    get "/v1/mailings/{id}" => email::get_mailing,
    get "/v1/messages/{id}" => messages::get_message,
    get "/v1/inbound" => callbacks::list_inbound,
    any "/v1/providers/{module}/callback" => callbacks::callback,
    post "/v1/admin/sms/test" => admin::sms_test,
    post "/v1/admin/email/check" => email::email_check,
    get "/v1/admin/settings" => admin::settings,
    post "/v1/admin/reload" => admin::reload,
}

/// The OpenAPI 3.1 document of this API, kept in the repository (`gateway/openapi.json`)
/// and checked against [`ROUTES`] by a test.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// What the routes share: the gateway, and the refused tokens per client address.
/// A handler takes only the part it uses (`State<Arc<App>>`).
#[derive(Clone)]
struct ApiState {
    app: Arc<App>,
    auth_failures: Arc<AuthFailures>,
}

impl FromRef<ApiState> for Arc<App> {
    fn from_ref(state: &ApiState) -> Arc<App> {
        state.app.clone()
    }
}

/// The API's routes over the shared state. The client's address comes from the
/// listener (`ConnectInfo<SocketAddr>`).
pub fn router(app: Arc<App>) -> Router {
    let state = ApiState {
        app: app.clone(),
        auth_failures: Arc::default(),
    };
    add_routes(Router::new())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard_tokens))
        .layer(middleware::from_fn_with_state(app, count_requests))
        .with_state(state)
}

/// Holds off a client address that presented too many wrong tokens (429 with
/// `Retry-After`, see `auth_failures`), and counts each token refused with 401.
async fn guard_tokens(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let (Some(client), true) = (client, request.headers().contains_key(header::AUTHORIZATION)) else {
        return next.run(request).await;
    };
    let limit = state.app.live().settings.auth_failures;
    if let Err(wait) = state.auth_failures.check(client, limit) {
        return Problem::too_many_failures(wait).into_response();
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        state.auth_failures.failed(client, &route, limit);
    }
    response
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> Problem {
    Problem::not_found("no such endpoint")
}

async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
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

/// Stores one message durably and answers 202 with its id, or 503 with nothing stored.
async fn enqueue(
    app: &App,
    channel: Channel,
    payload: serde_json::Value,
    key: Option<String>,
) -> Result<Response, Problem> {
    let message = NewMessage {
        channel,
        payload,
        mailing_id: None,
    };
    let enqueued = app.store.enqueue(message, key).await.map_err(|error| {
        tracing::error!(%error, %channel, "cannot store a message");
        Problem::unavailable("the message could not be stored; nothing was accepted, try again")
    })?;
    if enqueued.created {
        tracing::debug!(message_id = %enqueued.id, %channel, "queued");
        app.metrics
            .accepted
            .get_or_create(&Metrics::channel(channel))
            .inc();
        match channel {
            Channel::Sms => app.sms_queued.notify_one(),
            Channel::Email => app.email_queued.notify_one(),
        }
    }
    Ok(accepted(&enqueued.id, "messages"))
}

/// 202 with `{"id": …}` and the `Location` of the created resource.
fn accepted(id: &str, collection: &str) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/{collection}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
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
