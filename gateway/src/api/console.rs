//! The admin console's pages (issue 11): plain HTML, CSS and JavaScript written by
//! hand in `gateway/console/`, embedded in the binary, served at `/console/` on the
//! API's listener. Nothing is loaded from another host, and the page script only
//! calls the same `/v1/…` endpoints a script would, with the session cookie.
//!
//! Every console answer carries a strict Content-Security-Policy (no inline script,
//! nothing from elsewhere, no framing) and the headers that go with it.

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};

use super::{session, ApiState};

const INDEX: &str = include_str!("../../console/index.html");
const SIGN_IN: &str = include_str!("../../console/sign-in.html");
const CSS: &str = include_str!("../../console/console.css");
const JS: &str = include_str!("../../console/console.js");

/// Where the sign-in page puts a message.
const MESSAGE_SLOT: &str = "<!--message-->";

/// The console's security headers: scripts and styles from this origin only, no
/// framing, no sniffing, no referrer to other sites.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
];

/// Adds [`SECURITY_HEADERS`] to a console answer.
pub(super) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    response
}

/// `GET /console`: the console lives at `/console/`.
pub(super) async fn root() -> Redirect {
    Redirect::permanent("/console/")
}

/// `GET /console/`: the console for a signed-in admin, else the sign-in page.
pub(super) async fn index(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(id) = session::presented(&headers) {
        match session::session_token(&state, id).await {
            Ok(Some(_)) => return Html(INDEX).into_response(),
            Ok(None) => {}
            Err(problem) => return problem.into_response(),
        }
    }
    Redirect::to("/console/sign-in").into_response()
}

/// `GET /console/sign-in`: the sign-in form.
pub(super) async fn sign_in_form() -> Response {
    Html(SIGN_IN.replace(MESSAGE_SLOT, "")).into_response()
}

/// The sign-in form again, with `message` (why the last try failed) above it.
pub(super) fn sign_in_page(status: StatusCode, message: &str) -> Response {
    let message = format!(
        "<p class=\"alert error\" role=\"alert\" id=\"sign-in-error\">{}</p>",
        escape(message)
    );
    (status, Html(SIGN_IN.replace(MESSAGE_SLOT, &message))).into_response()
}

pub(super) async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub(super) async fn js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS).into_response()
}

/// Text made safe to put in HTML (the console's pages and the unsubscribe pages).
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_nothing_from_another_host_and_have_no_inline_script() {
        for page in [INDEX, SIGN_IN] {
            assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
            for (i, _) in page.match_indices("<script") {
                let tag = &page[i..page[i..].find('>').unwrap() + i];
                assert!(tag.contains("src=\"/console/"), "inline script: {tag}");
            }
            for handler in ["onclick=", "onsubmit=", "onload=", "onchange=", "style="] {
                assert!(!page.contains(handler), "inline {handler} in a page");
            }
        }
        assert!(SIGN_IN.contains(MESSAGE_SLOT));
    }

    #[test]
    fn messages_are_escaped() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }
}
