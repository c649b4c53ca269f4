//! The suppression list for admins: `GET`, `POST /v1/admin/suppressions` and
//! `DELETE /v1/admin/suppressions/{address}`. What puts an address there by itself (an
//! unsubscribe, a 5xx at RCPT) and what it changes is in `store::suppression`.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};

use super::{body::BodyLimit, body::JsonBody, problem::Problem};
use crate::{
    app::App,
    email::message::{delivery_key, parse_mailbox},
    store::{NewSuppression, Suppression, SuppressionReason},
    time::rfc3339,
};

/// Addresses one request may add: an import of more is several requests (the CLI's is).
const MAX_ADDRESSES: usize = 10_000;

/// An address as the list keeps it, or the 422 naming `field`.
fn normalised(field: &str, address: &str) -> Result<String, Problem> {
    parse_mailbox(address)
        .map(|mailbox| delivery_key(&mailbox.email))
        .map_err(|reason| Problem::invalid(field, reason))
}

fn unreadable(error: crate::store::StoreError) -> Problem {
    tracing::error!(%error, "cannot use the suppression list");
    Problem::unavailable("the suppression list cannot be used now; try again")
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddRequest {
    addresses: Vec<String>,
    /// An admin's note, kept with each entry.
    #[serde(default)]
    detail: Option<String>,
}

impl BodyLimit for AddRequest {}

#[derive(Debug, Serialize)]
pub(super) struct Added {
    /// Addresses that were not listed before.
    added: u64,
}

/// `POST /v1/admin/suppressions`: adds addresses (an address already listed keeps its entry).
pub(super) async fn add(
    State(app): State<Arc<App>>,
    JsonBody(request): JsonBody<AddRequest>,
) -> Result<Json<Added>, Problem> {
    if request.addresses.is_empty() || request.addresses.len() > MAX_ADDRESSES {
        return Err(Problem::invalid(
            "addresses",
            format!("give 1 to {MAX_ADDRESSES} addresses"),
        ));
    }
    let entries = request
        .addresses
        .iter()
        .enumerate()
        .map(|(i, address)| {
            Ok(NewSuppression {
                address: normalised(&format!("addresses[{i}]"), address)?,
                reason: SuppressionReason::Admin,
                detail: request.detail.clone(),
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    let added = app.store.suppress(entries).await.map_err(unreadable)?;
    tracing::info!(
        added,
        given = request.addresses.len(),
        "addresses added to the suppression list"
    );
    Ok(Json(Added { added }))
}

/// `DELETE /v1/admin/suppressions/{address}`: 204, or 404 when it was not listed.
pub(super) async fn remove(
    State(app): State<Arc<App>>,
    Path(address): Path<String>,
) -> Result<Response, Problem> {
    let key = normalised("address", &address)?;
    if app.store.unsuppress(&key).await.map_err(unreadable)? {
        tracing::info!("an address was removed from the suppression list");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found(format!(
            "`{key}` is not on the suppression list"
        )))
    }
}

/// An entry as the API shows it.
#[derive(Debug, Serialize)]
pub(super) struct EntryView {
    address: String,
    reason: SuppressionReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    created_at: String,
}

impl From<Suppression> for EntryView {
    fn from(entry: Suppression) -> EntryView {
        EntryView {
            address: entry.address,
            reason: entry.reason,
            detail: entry.detail,
            created_at: rfc3339(entry.created_at),
        }
    }
}

/// One page of the list, in address order.
#[derive(Debug, Serialize)]
pub(super) struct Page {
    items: Vec<EntryView>,
    /// The `after` of the next page; `null` on the last.
    next: Option<String>,
}

/// `GET /v1/admin/suppressions?limit=100&after=ADDRESS`.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Page>, Problem> {
    let (mut limit, mut after) = (100usize, None);
    let mut seen = Vec::new();
    for (name, value) in query {
        if seen.contains(&name) && (name == "limit" || name == "after") {
            return Err(Problem::invalid(name, "is given more than once"));
        }
        match name.as_str() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=1000).contains(limit))
                    .ok_or_else(|| Problem::invalid("limit", "must be a whole number from 1 to 1000"))?;
            }
            "after" => after = Some(value),
            _ => {}
        }
        seen.push(name);
    }
    let entries = app.store.suppressions(limit, after).await.map_err(unreadable)?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.address.clone()))
        .flatten();
    Ok(Json(Page {
        items: entries.into_iter().map(EntryView::from).collect(),
        next,
    }))
}
