//! Bearer tokens and roles. Tokens are compared in constant time, and never logged
//! or echoed.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use crate::settings::{ApiToken, Role};

/// The caller, once its token is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// Which configured token it was (its position), to scope idempotency keys.
    pub token_index: usize,
}

/// Checks the `Authorization: Bearer …` header against `tokens`, and that the
/// token's role allows `needed`.
pub fn authorize(headers: &HeaderMap, tokens: &[ApiToken], needed: Role) -> Result<Caller, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Problem::unauthorized("send `Authorization: Bearer <token>`"));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if tokens.is_empty() {
        return Err(Problem::unauthorized(
            "this gateway has no API tokens configured: add [[auth.tokens]] to its settings",
        ));
    }
    // Compare against every token, so timing does not tell which one nearly matched.
    let mut found = None;
    for (index, token) in tokens.iter().enumerate() {
        if bool::from(token.token.expose().as_bytes().ct_eq(presented.as_bytes())) && found.is_none() {
            found = Some(Caller {
                role: token.role,
                token_index: index,
            });
        }
    }
    let caller = found.ok_or_else(|| Problem::unauthorized("the token is not valid"))?;
    match (needed, caller.role) {
        (Role::Admin, Role::Send) => Err(Problem::forbidden(
            "this endpoint needs a token with the admin role",
        )),
        _ => Ok(caller),
    }
}
