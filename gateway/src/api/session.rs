//! The admin console's sessions: signing in with an admin token, the cookie that then
//! stands for it, and signing out.
//!
//! - **The token never reaches page script.** It is typed into a plain form posted to
//!   `POST /console/sign-in`; the answer sets a random session id (32 bytes from the
//!   OS) in an `HttpOnly; SameSite=Strict; Path=/` cookie, `Secure` when the browser
//!   reached the gateway over HTTPS (through a TLS-terminating proxy that says so
//!   with `X-Forwarded-Proto`, since the gateway's own listener is plain HTTP).
//! - **The store keeps digests only** (`store::console_sessions`), so every gateway of
//!   a fleet recognises the session and a database dump opens none.
//! - **Expiry.** `auth.console_session_ttl` after sign-in (default 12 h), or after
//!   `auth.console_idle_timeout` unused (default 1 h). A session also ends with its
//!   token: removed from `auth.tokens`, or no longer `admin`.
//! - **Forgery.** A cookie rides along with any request the browser makes, whichever
//!   site caused it, so a state-changing request authenticated by the cookie must come
//!   from the console's own origin (`Origin`, or `Referer` without it); else 403.
//!   `SameSite=Strict` already stops this in current browsers; the check holds for
//!   the others. Sign-in counts wrong tokens as the API does (`auth_failures.rs`).

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use axum::{
    extract::{ConnectInfo, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    auth::{find_token, Identified},
    console::sign_in_page,
    problem::Problem,
    ApiState,
};
use crate::{store::NewConsoleSession, token::Role};

/// The session cookie's name.
pub const COOKIE: &str = "gateway_console";

/// A session's use is written at most this often (or every quarter of the idle
/// timeout, when that is shorter), so that a console polling every second does not
/// write to the store every second; the idle timeout is that much less exact.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The session id a request's `Cookie` header presents, if any.
pub(super) fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// SHA-256 of `text`, hex: how sessions and their tokens are kept.
pub(super) fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The admin a session cookie stands for; refuses a cross-site state-changing request.
pub(super) async fn identify(parts: &Parts, state: &ApiState) -> Result<Identified, Problem> {
    if !is_safe(&parts.method) && !same_origin(&parts.headers) {
        return Err(Problem::forbidden(
            "a change made with the console's session must come from the console's own page \
             (the Origin header names another site, or is missing)",
        ));
    }
    let ended = || Problem::unauthorized("the console session has ended: sign in again");
    let id = presented(&parts.headers).ok_or_else(ended)?;
    match session_token(state, id).await? {
        Some(token_index) => Ok(Identified {
            role: Role::Admin,
            token_index,
            console: true,
        }),
        None => Err(ended()),
    }
}

/// The position in `auth.tokens` of the admin token the session `id` stands for, if
/// the session is live; an ended one is deleted.
pub(super) async fn session_token(state: &ApiState, id: &str) -> Result<Option<usize>, Problem> {
    let store = &state.app.store;
    let id_digest = digest(id);
    let session = store.console_session(&id_digest).await.map_err(store_failed)?;
    let Some(session) = session else {
        return Ok(None);
    };
    let live = state.app.live();
    let limits = live.settings.console_sessions;
    let now = SystemTime::now();
    let idle = now.duration_since(session.last_seen_at).unwrap_or_default();
    let token_index =
        live.settings.auth.iter().position(|token| {
            token.role == Role::Admin && digest(token.token.expose()) == session.token_digest
        });
    let (Some(token_index), false, false) = (token_index, now >= session.expires_at, idle >= limits.idle)
    else {
        store
            .end_console_session(&id_digest)
            .await
            .map_err(store_failed)?;
        return Ok(None);
    };
    if idle >= TOUCH_EVERY.min(limits.idle / 4) {
        store
            .touch_console_session(&id_digest)
            .await
            .map_err(store_failed)?;
    }
    Ok(Some(token_index))
}

/// GET and HEAD change nothing; everything else may.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request comes from a page of this gateway: its `Origin` (or, when a
/// browser sends none, its `Referer`) is the scheme and `Host` the request was sent to.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let ours = |origin: &str| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest == host)
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().is_ok_and(ours);
    }
    headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|referer| {
            let scheme_end = referer.find("://")? + 3;
            let path = referer[scheme_end..]
                .find('/')
                .map_or(referer.len(), |p| p + scheme_end);
            Some(ours(&referer[..path]))
        })
        .unwrap_or(false)
}

/// Whether the browser reached the gateway over HTTPS, as far as the gateway can tell.
fn over_tls(headers: &HeaderMap) -> bool {
    let says_https = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("https"))
    };
    says_https("x-forwarded-proto") || says_https(header::ORIGIN.as_str())
}

/// The sign-in form.
#[derive(Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    token: String,
}

/// `POST /console/sign-in`: an admin token opens a session; anything else shows the
/// form again with the reason.
pub(super) async fn sign_in(
    State(state): State<ApiState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !same_origin(&headers) {
        return sign_in_page(
            StatusCode::FORBIDDEN,
            "This sign-in did not come from the console's own page.",
        );
    }
    let live = state.app.live();
    let limit = live.settings.auth_failures;
    let client = connect.map(|Extension(ConnectInfo(address))| address.ip());
    if let Some(client) = client {
        if let Err(wait) = state.auth_failures.check(client, limit) {
            return sign_in_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many wrong tokens from this address: try again in {} s.",
                    wait.as_secs() + 1
                ),
            );
        }
    }
    let token = form.token.trim();
    if token.is_empty() {
        return sign_in_page(StatusCode::UNPROCESSABLE_ENTITY, "Type or paste an admin token.");
    }
    let identified = match find_token(token, &live.settings.auth) {
        Ok(identified) => identified,
        Err(_) => {
            if let Some(client) = client {
                state.auth_failures.failed(client, "/console/sign-in", limit);
            }
            return sign_in_page(StatusCode::UNAUTHORIZED, "That token is not valid.");
        }
    };
    if identified.role != Role::Admin {
        return sign_in_page(
            StatusCode::FORBIDDEN,
            "This is a send token: it can send messages, but the console needs a token with the admin role.",
        );
    }
    let mut id = [0u8; 32];
    if let Err(error) = getrandom::getrandom(&mut id) {
        tracing::error!(%error, "no random bytes for a console session");
        return sign_in_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway cannot open a session now.",
        );
    }
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let limits = live.settings.console_sessions;
    let session = NewConsoleSession {
        id_digest: digest(&id),
        token_digest: digest(token),
        expires_at: SystemTime::now() + limits.ttl,
    };
    if let Err(error) = state.app.store.create_console_session(session, limits.idle).await {
        tracing::error!(%error, "cannot keep a console session");
        return sign_in_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway's store cannot keep a session now; try again.",
        );
    }
    tracing::info!(token = identified.token_index + 1, "console: signed in");
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        limits.ttl.as_secs(),
        if over_tls(&headers) { "; Secure" } else { "" }
    );
    with_cookie(Redirect::to("/console/"), &cookie)
}

/// `POST /console/sign-out`: ends the session and clears the cookie.
pub(super) async fn sign_out(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return Problem::forbidden("a sign-out must come from the console's own page").into_response();
    }
    if let Some(id) = presented(&headers) {
        if let Err(error) = state.app.store.end_console_session(&digest(id)).await {
            return store_failed(error).into_response();
        }
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    with_cookie(Redirect::to("/console/sign-in"), &cookie)
}

fn with_cookie(redirect: Redirect, cookie: &str) -> Response {
    let mut response = redirect.into_response();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn store_failed(error: crate::store::StoreError) -> Problem {
    tracing::error!(%error, "cannot read or write a console session");
    Problem::unavailable("the store cannot read console sessions now; try again")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_origin_must_be_the_host_the_request_was_sent_to() {
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080.evil.example")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:8080/console/")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:8080.evil.example/x")
        ])));
        assert!(!same_origin(&headers(&[host])), "neither header: refused");
        assert!(
            !same_origin(&headers(&[("origin", "http://127.0.0.1:8080")])),
            "no Host"
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; gateway_console=abc ; b=2")]);
        assert_eq!(presented(&h), Some("abc"));
        assert_eq!(presented(&headers(&[("cookie", "gateway_console=")])), None);
        assert_eq!(presented(&headers(&[("cookie", "other=1")])), None);
    }
}
