//! Who is calling: the [`Caller`] extractor checks the bearer token and the role a
//! route needs, and counts refused tokens per client address ([`AuthFailures`]).
//! Tokens are compared in constant time, and never logged or echoed.
//!
//! The admin console's browser presents no token but a session cookie instead
//! (`session.rs`): it stands for the admin token it was opened with, so the console's
//! pages call the same endpoints a script does.
//!
//! The route table (`api/mod.rs`) puts every route in a group by role and runs
//! `Caller<role::…>` in front of the group's routes, so no route can forget its
//! check; a handler that needs to know the caller (to scope an idempotency key) takes
//! `Caller` too and gets the identity already established, without a second check.

use std::{marker::PhantomData, net::SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts, MatchedPath},
    http::{header, request::Parts, HeaderMap, StatusCode},
};
use subtle::ConstantTimeEq;

use super::{auth_failures::AuthFailures, problem::Problem, session, ApiState};
use crate::token::{ApiToken, Role};

/// The roles a route may need, as types, so that a signature states it.
pub mod role {
    /// What a route needs of its caller's token.
    pub trait Needed: std::marker::Send + Sync + 'static {
        const ROLE: super::Role;
    }

    /// Sends and reads status (`send` or `admin` tokens).
    pub struct Send;
    impl Needed for Send {
        const ROLE: super::Role = super::Role::Send;
    }

    /// Admin endpoints (`admin` tokens).
    pub struct Admin;
    impl Needed for Admin {
        const ROLE: super::Role = super::Role::Admin;
    }
}

/// A caller whose token allows role `R`.
pub struct Caller<R> {
    /// Which configured token it was (its position), to scope idempotency keys.
    pub token_index: usize,
    /// Whether it came through a console session rather than with the token.
    pub console: bool,
    role: PhantomData<R>,
}

/// A token found valid on this request: kept in its extensions, so that a second
/// `Caller` on the same request does not check (or count) it again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Identified {
    pub(super) role: Role,
    pub(super) token_index: usize,
    pub(super) console: bool,
}

impl<R: role::Needed> FromRequestParts<ApiState> for Caller<R> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        let identified = match parts.extensions.get::<Identified>() {
            Some(identified) => *identified,
            None => {
                let identified = if !parts.headers.contains_key(header::AUTHORIZATION)
                    && session::presented(&parts.headers).is_some()
                {
                    session::identify(parts, state).await?
                } else {
                    identify_counting_failures(parts, state)?
                };
                parts.extensions.insert(identified);
                identified
            }
        };
        match (R::ROLE, identified.role) {
            (Role::Admin, Role::Send) => Err(Problem::forbidden(
                "this endpoint needs a token with the admin role",
            )),
            _ => Ok(Caller {
                token_index: identified.token_index,
                console: identified.console,
                role: PhantomData,
            }),
        }
    }
}

/// [`identify`], holding off a client address that presented too many wrong tokens
/// and counting each wrong one. A request without a token is refused (401) but not
/// counted: it guesses nothing.
fn identify_counting_failures(parts: &Parts, state: &ApiState) -> Result<Identified, Problem> {
    let live = state.app.live();
    let limit = live.settings.auth_failures;
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
        .filter(|_| parts.headers.contains_key(header::AUTHORIZATION));
    let Some(client) = client else {
        return identify(&parts.headers, &live.settings.auth);
    };
    let failures: &AuthFailures = &state.auth_failures;
    failures
        .check(client, limit)
        .map_err(Problem::too_many_failures)?;
    identify(&parts.headers, &live.settings.auth).inspect_err(|problem| {
        if problem.status == StatusCode::UNAUTHORIZED {
            let route = parts
                .extensions
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str);
            failures.failed(client, route, limit);
        }
    })
}

/// Finds the configured token the `Authorization: Bearer …` header presents.
fn identify(headers: &HeaderMap, tokens: &[ApiToken]) -> Result<Identified, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Problem::unauthorized("send `Authorization: Bearer <token>`"));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <token>`"))?;
    find_token(presented, tokens)
}

/// The configured token `presented` is, by a constant-time comparison with each.
pub(super) fn find_token(presented: &str, tokens: &[ApiToken]) -> Result<Identified, Problem> {
    if tokens.is_empty() {
        return Err(Problem::unauthorized(
            "this gateway has no API tokens configured: add [[auth.tokens]] to its settings",
        ));
    }
    // Compare against every token, so timing does not tell which one nearly matched.
    let mut found = None;
    for (index, token) in tokens.iter().enumerate() {
        if bool::from(token.token.expose().as_bytes().ct_eq(presented.as_bytes())) && found.is_none() {
            found = Some(Identified {
                role: token.role,
                token_index: index,
                console: false,
            });
        }
    }
    found.ok_or_else(|| Problem::unauthorized("the token is not valid"))
}
