//! The HTTP API (contract, section 4): JSON in, JSON out, problem+json errors, bearer
//! tokens with roles. Handlers check and normalise what they are given, store it, and
//! answer; delivery happens in the workers.

mod admin;
mod auth;
mod auth_failures;
mod body;
mod callbacks;
mod console;
mod email;
mod messages;
pub mod problem;
mod recipients;
mod session;
mod settings;
mod sms;
mod suppressions;
mod unsubscribe;

use std::sync::Arc;

use axum::{
    extract::{FromRef, MatchedPath, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Json, Router,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    app::App,
    metrics::{HttpLabels, Metrics},
    store::{Channel, Idempotency, NewMessage, StoreError},
};
use auth::Caller;
use auth_failures::AuthFailures;
use problem::Problem;

/// Declares the routes once, grouped by the role their caller needs: [`ROUTES`]
/// (method, path) for the OpenAPI check, and the function that adds them to a router
/// with each group's check in front, so that the table is what is enforced.
macro_rules! routes {
    ($($group:ident { $($method:ident $path:literal => $handler:path,)* })*) => {
        /// Every route the API serves, as (method, path); `any` accepts every method.
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path),)*)*];

        fn add_routes(state: &ApiState) -> Router<ApiState> {
            Router::new()
                $(.merge(access::$group(
                    Router::new() $(.route($path, axum::routing::$method($handler)))*,
                    state,
                )))*
        }
    };
}

routes! {
    public {
        get "/healthz" => healthz,
        get "/readyz" => readyz,
        get "/metrics" => metrics,
        get "/openapi.json" => openapi,
        // No token: the module checks the provider's signature or secret.
        any "/v1/providers/{module}/callback" => callbacks::callback,
        // No token: the link itself is the proof (sealed with the store's key).
        get "/u/{token}" => unsubscribe::confirm,
        post "/u/{token}" => unsubscribe::unsubscribe,
    }
    // The admin console's pages and its sign-in: each page checks the session itself
    // (the sign-in form needs none), and every answer gets the console's headers.
    console {
        get "/console" => console::root,
        get "/console/" => console::index,
        get "/console/sign-in" => console::sign_in_form,
        post "/console/sign-in" => session::sign_in,
        post "/console/sign-out" => session::sign_out,
        get "/console/console.css" => console::css,
        get "/console/console.js" => console::js,
    }
    send {
        post "/v1/sms" => sms::post_sms,
        post "/v1/email" => email::post_email,
        post "/v1/mailings" => email::post_mailing,
        get "/v1/mailings" => email::list_mailings,
        get "/v1/mailings/{id}" => email::get_mailing,
        get "/v1/messages/{id}" => messages::get_message,
        get "/v1/inbound" => callbacks::list_inbound,
    }
    admin {
        post "/v1/admin/sms/test" => admin::sms_test,
        post "/v1/admin/sms/check" => admin::sms_check,
        get "/v1/admin/sms/modules" => admin::sms_modules,
        post "/v1/admin/email/check" => email::email_check,
        post "/v1/admin/email/test" => email::email_test,
        get "/v1/admin/queue" => admin::queue,
        get "/v1/admin/settings" => settings::settings,
        put "/v1/admin/settings" => settings::save,
        get "/v1/admin/settings/history" => settings::history,
        post "/v1/admin/settings/rollback" => settings::rollback,
        post "/v1/admin/reload" => admin::reload,
        get "/v1/admin/suppressions" => suppressions::list,
        post "/v1/admin/suppressions" => suppressions::add,
        delete "/v1/admin/suppressions/{address}" => suppressions::remove,
    }
}

/// The groups of the route table: what runs in front of a group's routes.
mod access {
    use axum::{middleware::from_extractor_with_state, Router};

    use super::{
        auth::{role, Caller},
        ApiState,
    };

    pub fn public(routes: Router<ApiState>, _: &ApiState) -> Router<ApiState> {
        routes
    }

    pub fn console(routes: Router<ApiState>, _: &ApiState) -> Router<ApiState> {
        routes.layer(axum::middleware::map_response(super::console::security_headers))
    }

    pub fn send(routes: Router<ApiState>, state: &ApiState) -> Router<ApiState> {
        routes.route_layer(from_extractor_with_state::<Caller<role::Send>, _>(state.clone()))
    }

    pub fn admin(routes: Router<ApiState>, state: &ApiState) -> Router<ApiState> {
        routes.route_layer(from_extractor_with_state::<Caller<role::Admin>, _>(state.clone()))
    }
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
    add_routes(&state)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app, count_requests))
        .with_state(state)
}

/// The answer of `GET /healthz` and `GET /readyz`.
#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: whether this gateway should be sent traffic. Not while its store
/// cannot write (a full disk): every message would be refused with a 503, and outcomes of
/// messages already sent are waiting to be written. `/healthz` stays the liveness check:
/// the process is fine and recovers by itself once the store can write again.
async fn readyz(State(app): State<Arc<App>>) -> Result<Json<Health>, Problem> {
    let health = app.store.health();
    if !health.writable {
        return Err(Problem::unavailable(format!(
            "the queue store cannot write (a full disk, an I/O error); {} outcomes wait to be written",
            health.pending_settlements
        )));
    }
    Ok(Json(Health { status: "ready" }))
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
    key: Option<Idempotency>,
) -> Result<Response, Problem> {
    let message = NewMessage {
        channel,
        payload,
        mailing_id: None,
    };
    let enqueued = app.store.enqueue(message, key).await.map_err(|error| {
        not_stored(
            error,
            "the message could not be stored; nothing was accepted, try again",
        )
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

/// The answer of every `POST` that creates something.
#[derive(Serialize)]
struct Accepted<'a> {
    id: &'a str,
}

/// 202 with `{"id": …}` and the `Location` of the created resource.
fn accepted(id: &str, collection: &str) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(Accepted { id })).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/{collection}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The problem for a request the store did not take: a reused idempotency key is the
/// caller's mistake (422, as the IETF Idempotency-Key draft says); anything else is the
/// store's, and nothing was stored (503 with `unavailable`).
fn not_stored(error: StoreError, unavailable: &str) -> Problem {
    match error {
        StoreError::IdempotencyKeyReused { .. } => Problem::invalid("Idempotency-Key", error.to_string()),
        error => {
            tracing::error!(%error, "cannot store a request");
            Problem::unavailable(unavailable)
        }
    }
}

/// The `Idempotency-Key` header of a request to `endpoint` with `body`: the key is
/// scoped to the caller's token so that two apps cannot collide (and never stored in
/// clear with the token), and the request is digested so that the key's reuse for
/// another request is refused.
fn idempotency_key<R>(
    app: &App,
    headers: &HeaderMap,
    caller: &Caller<R>,
    endpoint: &'static str,
    body: &impl serde::Serialize,
) -> Result<Option<Idempotency>, Problem> {
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
    Ok(Some(Idempotency::new(format!("{scope}:{key}"), endpoint, body)))
}
