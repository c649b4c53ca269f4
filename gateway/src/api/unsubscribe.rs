//! `/u/{token}`: the unsubscribe link of a mailing e-mail (RFC 8058), for people and
//! for mail clients' one-click button.
//!
//! A visit (`GET`) only shows a page with a button: link checkers and mail scanners
//! open links, and must not unsubscribe anyone. The button, or a mail client's
//! one-click (`POST` with `List-Unsubscribe=One-Click`), puts the address on the
//! suppression list. Doing it again changes nothing and says so; a token the gateway
//! did not make is a 404 that tells nothing about any address.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};

use super::console::escape;
use crate::{
    app::App,
    email::unsubscribe::Unsubscriber,
    store::{NewSuppression, SuppressionReason},
};

/// An HTML page with `status`.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\n<body style=\"font-family: sans-serif; max-width: 32em; margin: 3em auto\">\n\
         <h1>{title}</h1>\n{body}\n</body></html>\n"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // The page is never framed, and loads nothing.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        html,
    )
        .into_response()
}

/// Who the token is for, or the answer to a token the gateway did not make (or that
/// cannot be checked now).
async fn open(app: &App, token: &str) -> Result<Unsubscriber, Response> {
    let key = app.unsubscribe_key().await.map_err(|error| {
        tracing::error!(%error, "cannot read the unsubscribe key");
        page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again",
            "<p>Your request could not be handled just now. Please try again in a few minutes.</p>",
        )
    })?;
    key.open(token).ok_or_else(|| {
        page(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "<p>This unsubscribe link is not valid. Please use the link in the e-mail you received, in full.</p>",
        )
    })
}

/// `GET /u/{token}`: the confirmation page, with its button.
pub(super) async fn confirm(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let who = match open(&app, &token).await {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop sending mailings to <strong>{}</strong>?</p>\n\
             <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            escape(&who.address)
        ),
    )
}

/// `POST /u/{token}`: records the unsubscribe (the button, or a one-click).
pub(super) async fn unsubscribe(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let who = match open(&app, &token).await {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    let entry = NewSuppression {
        address: who.address.clone(),
        reason: SuppressionReason::Unsubscribe,
        detail: Some(format!("mailing {}", who.mailing_id)),
    };
    match app.store.suppress(vec![entry]).await {
        Ok(added) => {
            // The address is the recipient's own business: the log names the mailing.
            tracing::info!(mailing_id = %who.mailing_id, new = added > 0, "unsubscribed");
            page(
                StatusCode::OK,
                "Unsubscribed",
                &format!(
                    "<p><strong>{}</strong> will receive no more mailings from us.</p>",
                    escape(&who.address)
                ),
            )
        }
        Err(error) => {
            tracing::error!(%error, "cannot record an unsubscribe");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>Your request could not be recorded just now. Please try again in a few minutes.</p>",
            )
        }
    }
}
