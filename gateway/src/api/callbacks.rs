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
use serde::Serialize;

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

/// The query of `GET /v1/inbound`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Page {
    pub(super) limit: usize,
    pub(super) before: Option<String>,
}

impl Page {
    /// Reads `limit` and `before` from the query's pairs. Done here rather than by
    /// `Query<T>`, whose rejection is a plain-text 400: a bad parameter is a
    /// problem+json 422 naming it, as for a body field.
    pub(super) fn parse(pairs: Vec<(String, String)>) -> Result<Page, Problem> {
        let mut page = Page {
            limit: 50,
            before: None,
        };
        let mut seen = Vec::new();
        for (name, value) in pairs {
            if seen.contains(&name) && (name == "limit" || name == "before") {
                return Err(Problem::invalid(name, "is given more than once"));
            }
            match name.as_str() {
                "limit" => {
                    page.limit = value
                        .parse()
                        .ok()
                        .filter(|limit| (1..=1000).contains(limit))
                        .ok_or_else(|| Problem::invalid("limit", "must be a whole number from 1 to 1000"))?;
                }
                "before" => page.before = Some(value),
                _ => {}
            }
            seen.push(name);
        }
        Ok(page)
    }
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
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<InboundPage>, Problem> {
    let Page { limit, before } = Page::parse(query)?;
    let items = app.store.list_inbound(limit, before).await.map_err(|error| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_page_defaults_to_fifty_and_reads_its_parameters() {
        assert_eq!(
            Page::parse(vec![]).unwrap(),
            Page {
                limit: 50,
                before: None
            }
        );
        assert_eq!(
            Page::parse(pairs(&[("limit", "1000"), ("before", "01ab"), ("other", "x")])).unwrap(),
            Page {
                limit: 1000,
                before: Some("01ab".into())
            }
        );
    }

    /// Defect 7: `?limit=null` got axum's plain-text 400, which the document does not
    /// list; every bad `limit` is now the documented 422 naming it.
    #[test]
    fn a_malformed_limit_is_a_422_naming_limit_not_a_plain_text_400() {
        for bad in ["null", "", "0", "1001", "-1", "1.5", "ten"] {
            let problem = Page::parse(pairs(&[("limit", bad)])).unwrap_err();
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert_eq!(problem.field.as_deref(), Some("limit"), "{bad}");
        }
        let twice = Page::parse(pairs(&[("limit", "5"), ("limit", "5")])).unwrap_err();
        assert_eq!(twice.field.as_deref(), Some("limit"));
    }
}
