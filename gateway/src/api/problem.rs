//! Errors as `application/problem+json` (RFC 9457): a status, a title, a `detail` a
//! person can act on, and for validation errors the `field` at fault.

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// The `Retry-After` of a 503 from the store: what it means here passes in seconds (a
/// full disk freed, a store back), so a client or a load balancer tries again then, not
/// at once and not never.
const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 5;

/// An HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: StatusCode,
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// The request field that failed validation (422s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(rename = "status")]
    status_code: u16,
    /// Seconds for the `Retry-After` header.
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            field: None,
            status_code: status.as_u16(),
            retry_after: None,
        }
    }

    /// 400: the body is not JSON, or not the JSON shape asked for.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "/problems/bad-request",
            "Bad request",
            detail,
        )
    }

    /// 401: no token, or a token the gateway does not know.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "/problems/unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403: a known token whose role may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "/problems/forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "/problems/not-found", "Not found", detail)
    }

    pub fn method_not_allowed() -> Problem {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "/problems/method-not-allowed",
            "Method not allowed",
            "this path does not accept this method",
        )
    }

    /// 413: the body is over `server.max_body_bytes`.
    pub fn too_large(limit: u64) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "/problems/too-large",
            "Request body too large",
            format!("the body is over the limit of {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "/problems/unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 422: `field` failed validation for `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Problem {
        let field = field.into();
        let reason = reason.into();
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/problems/invalid-field",
            "Invalid field",
            format!("{field}: {reason}"),
        );
        problem.field = Some(field);
        problem
    }

    /// 429: this client address presented too many wrong tokens; it may try again
    /// after `wait` (sent as `Retry-After`, in whole seconds, rounded up).
    pub fn too_many_failures(wait: Duration) -> Problem {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "/problems/too-many-failures",
            "Too many refused tokens",
            format!(
                "this address presented too many wrong tokens (auth.max_failures); every request with a token \
                 is refused for {seconds} s more"
            ),
        )
        .with_retry_after(seconds)
    }

    /// Adds `Retry-After: seconds` (at least 1) to the answer.
    pub fn with_retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 409: the request was made on a state that has changed since (another admin saved).
    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "/problems/conflict", "Conflict", detail)
    }

    /// 502: the SMS module or its provider failed.
    pub fn bad_gateway(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "/problems/provider-error",
            "Provider error",
            detail,
        )
    }

    /// 503: the gateway cannot take this now (stopping, store unavailable).
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "/problems/unavailable",
            "Service unavailable",
            detail,
        )
        .with_retry_after(UNAVAILABLE_RETRY_AFTER_SECONDS)
    }

    /// 500: a fault of the gateway's; the detail says what failed without internals.
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/problems/internal",
            "Internal error",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).expect("a problem always serialises");
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
