//! `GET /v1/messages/{id}`: where a message stands.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    Json,
};
use serde::Serialize;

use super::problem::Problem;
use crate::{
    app::App,
    store::{Channel, MessageRecord, Status},
    time::rfc3339,
};

#[derive(Debug, Serialize)]
pub(super) struct MessageView {
    id: String,
    channel: Channel,
    status: Status,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mailing_id: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<MessageRecord> for MessageView {
    fn from(record: MessageRecord) -> Self {
        MessageView {
            id: record.id,
            channel: record.channel,
            status: record.status,
            attempts: record.attempts,
            error: record.error,
            provider_id: record.provider_id,
            mailing_id: record.mailing_id,
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
        }
    }
}

pub(super) async fn get_message(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, Problem> {
    let record = app.store.get(&id).await.map_err(|error| {
        tracing::error!(%error, "cannot read a message");
        Problem::unavailable("the store cannot be read now; try again")
    })?;
    record
        .map(|r| Json(MessageView::from(r)))
        .ok_or_else(|| Problem::not_found(format!("no message has the id `{id}`")))
}
