//! Provider callbacks (`/v1/providers/{module}/callback`, no token: the module checks
//! the provider's signature or secret) and the inbound SMS list.

use std::sync::Arc;

use abi_stable::std_types::RVec;
use axum::{
    body::{to_bytes, Body},
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    Json,
};
use plugin_api::{CallbackRequest, Header};
use serde::{Deserialize, Serialize};

use super::problem::Problem;
use crate::{app::App, sms::inbound, store::InboundRecord, time::rfc3339};

pub(super) async fn callback(
    State(app): State<Arc<App>>,
    Path(module): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let live = app.live();
    if module != live.module.name() {
        return Err(Problem::not_found(format!(
            "module `{module}` is not the SMS module in force (`{}`); nothing was recorded",
            live.module.name()
        )));
    }
    let limit = live.settings.server.max_body_bytes;
    let body = to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| Problem::too_large(limit))?;
    let request = CallbackRequest {
        method: method.as_str().into(),
        path: uri.path().into(),
        query: uri.query().unwrap_or("").into(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some(Header::new(name.as_str(), value.to_str().ok()?)))
            .collect::<RVec<Header>>(),
        body: body.to_vec().into(),
    };
    let reply = live.module.parse_callback(request).await.map_err(|error| {
        tracing::warn!(module = %module, %error, "callback refused by the module");
        Problem::bad_request(format!(
            "the module refused the callback; nothing was recorded: {error}"
        ))
    })?;
    let applied = inbound::apply(&app, &live, reply.events.into_iter().collect())
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot record a callback");
            Problem::unavailable("the callback could not be recorded; the provider should retry it")
        })?;
    tracing::debug!(module = %module, ?applied, "callback recorded");
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut response = (status, reply.body.into_string()).into_response();
    if let Ok(content_type) = HeaderValue::from_str(&reply.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct Page {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    before: Option<String>,
}

/// One page of inbound SMS.
#[derive(Debug, Serialize)]
pub(super) struct InboundPage {
    items: Vec<InboundView>,
    /// The `before` of the next page; `null` on the last.
    next: Option<String>,
}

/// An inbound SMS as the API shows it: the record, with its time in RFC 3339.
#[derive(Debug, Serialize)]
pub(super) struct InboundView {
    #[serde(flatten)]
    record: InboundRecord,
    received_at: String,
}

/// `GET /v1/inbound?limit=50&before=ID`: inbound SMS, newest first.
pub(super) async fn list_inbound(
    State(app): State<Arc<App>>,
    Query(page): Query<Page>,
) -> Result<Json<InboundPage>, Problem> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid("limit", "must be 1 to 1000"));
    }
    let items = app
        .store
        .list_inbound(limit, page.before)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot list inbound SMS");
            Problem::unavailable("the store cannot be read now; try again")
        })?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|r| r.id.clone()))
        .flatten();
    let items = items
        .into_iter()
        .map(|record| InboundView {
            received_at: rfc3339(record.received_at),
            record,
        })
        .collect();
    Ok(Json(InboundPage { items, next }))
}
