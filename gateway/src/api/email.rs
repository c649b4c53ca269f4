//! E-mail endpoints: `POST /v1/email`, `POST /v1/mailings`, `GET /v1/mailings/{id}`,
//! and the admin's *Check SMTP connection*.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::Response,
    Json,
};
use serde::{Deserialize, Serialize};

use super::{
    accepted,
    auth::{role, Caller},
    body::{BodyLimit, JsonBody},
    callbacks::Page,
    enqueue, idempotency_key,
    problem::Problem,
};
use crate::{
    app::App,
    email::{
        check,
        message::{check_header_text, parse_mailbox, EmailPayload, MailingRecipient, MailingShared},
    },
    metrics::Metrics,
    settings::{ServerSettings, Settings},
    store::{Channel, MailingCounts, MailingSummary, NewMailing},
    time::rfc3339,
};

/// Recipients (to, cc and bcc together) one e-mail may have; a mailing has no limit
/// but its body size.
const MAX_RECIPIENTS: usize = 100;

/// `to` may be one address or a list.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EmailRequest {
    to: OneOrMany,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    #[serde(default)]
    from: Option<String>,
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MailingRequest {
    #[serde(default)]
    from: Option<String>,
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    recipients: Vec<String>,
}

impl BodyLimit for EmailRequest {}

impl BodyLimit for MailingRequest {
    /// A mailing's body lists every recipient.
    fn limit(server: &ServerSettings) -> u64 {
        server.max_mailing_body_bytes
    }
}

/// Parses each address of `field`, naming `field[i]` when one is wrong.
fn addresses(field: &str, list: Vec<String>) -> Result<Vec<String>, Problem> {
    list.into_iter()
        .enumerate()
        .map(|(i, address)| {
            parse_mailbox(&address)
                .map(|mailbox| mailbox.to_string())
                .map_err(|reason| Problem::invalid(format!("{field}[{i}]"), reason))
        })
        .collect()
}

/// The sender: the request's, else `email.default_from`.
fn sender(from: Option<String>, settings: &Settings) -> Result<String, Problem> {
    let from = from
        .or_else(|| settings.email.default_from.clone())
        .ok_or_else(|| {
            Problem::invalid(
                "from",
                "is not given, and the gateway has no default (email.default_from)",
            )
        })?;
    parse_mailbox(&from)
        .map(|mailbox| mailbox.to_string())
        .map_err(|reason| Problem::invalid("from", reason))
}

/// Subject and bodies: no line breaks in the subject, at least one body.
fn content(subject: &str, text: &Option<String>, html: &Option<String>) -> Result<(), Problem> {
    check_header_text(subject).map_err(|reason| Problem::invalid("subject", reason))?;
    if text.is_none() && html.is_none() {
        return Err(Problem::invalid("text", "give text, html, or both"));
    }
    Ok(())
}

pub(super) async fn post_email(
    State(app): State<Arc<App>>,
    caller: Caller<role::Send>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<EmailRequest>,
) -> Result<Response, Problem> {
    let live = app.live();
    let key = idempotency_key(&app, &headers, &caller, "POST /v1/email", &request)?;
    let to = addresses("to", request.to.into_vec())?;
    if to.is_empty() {
        return Err(Problem::invalid("to", "needs at least one address"));
    }
    let cc = addresses("cc", request.cc)?;
    let bcc = addresses("bcc", request.bcc)?;
    if to.len() + cc.len() + bcc.len() > MAX_RECIPIENTS {
        return Err(Problem::invalid(
            "to",
            format!(
                "to, cc and bcc together may hold {MAX_RECIPIENTS} addresses; use POST /v1/mailings for more"
            ),
        ));
    }
    content(&request.subject, &request.text, &request.html)?;
    let payload = EmailPayload {
        from: sender(request.from, &live.settings)?,
        to,
        cc,
        bcc,
        subject: request.subject,
        text: request.text,
        html: request.html,
    };
    let payload = serde_json::to_value(&payload).expect("an e-mail payload serialises");
    enqueue(&app, Channel::Email, payload, key).await
}

pub(super) async fn post_mailing(
    State(app): State<Arc<App>>,
    caller: Caller<role::Send>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<MailingRequest>,
) -> Result<Response, Problem> {
    let live = app.live();
    let key = idempotency_key(&app, &headers, &caller, "POST /v1/mailings", &request)?;
    content(&request.subject, &request.text, &request.html)?;
    let from = sender(request.from, &live.settings)?;
    if request.recipients.is_empty() {
        return Err(Problem::invalid("recipients", "needs at least one address"));
    }
    let recipients = addresses("recipients", request.recipients)?;
    let shared = MailingShared {
        from,
        subject: request.subject,
        text: request.text,
        html: request.html,
    };
    let mailing = NewMailing {
        shared: serde_json::to_value(&shared).expect("a mailing serialises"),
        recipients: recipients
            .into_iter()
            .map(|to| serde_json::to_value(MailingRecipient { to }).expect("a recipient serialises"))
            .collect(),
    };
    let count = mailing.recipients.len() as u64;
    let enqueued = app.store.create_mailing(mailing, key).await.map_err(|error| {
        super::not_stored(
            error,
            "the mailing could not be stored; nothing was accepted, try again",
        )
    })?;
    if enqueued.created {
        tracing::info!(mailing_id = %enqueued.id, recipients = count, "mailing queued");
        app.metrics
            .accepted
            .get_or_create(&Metrics::channel(Channel::Email))
            .inc_by(count);
        app.email_queued.notify_one();
    }
    Ok(accepted(&enqueued.id, "mailings"))
}

/// A mailing's progress: its id and how many of its e-mails stand where.
#[derive(Debug, Serialize)]
pub(super) struct MailingView {
    id: String,
    #[serde(flatten)]
    counts: MailingCounts,
}

pub(super) async fn get_mailing(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<MailingView>, Problem> {
    let counts = app.store.mailing_counts(&id).await.map_err(|error| {
        tracing::error!(%error, "cannot read a mailing");
        Problem::unavailable("the store cannot be read now; try again")
    })?;
    let counts = counts.ok_or_else(|| Problem::not_found(format!("no mailing has the id `{id}`")))?;
    Ok(Json(MailingView { id, counts }))
}

/// `POST /v1/admin/email/check`: the admin's *Check SMTP connection*.
pub(super) async fn email_check(State(app): State<Arc<App>>) -> Json<check::Report> {
    let live = app.live();
    let report = check::check(&live.settings.email, &live.smtp).await;
    tracing::info!(ok = report.ok, failed_step = ?report.failed_step, server = %report.server, "SMTP connection check");
    Json(report)
}

/// One mailing of the list.
#[derive(Debug, Serialize)]
pub(super) struct MailingListed {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    created_at: String,
    #[serde(flatten)]
    counts: MailingCounts,
}

/// The answer of `GET /v1/mailings`.
#[derive(Debug, Serialize)]
pub(super) struct MailingList {
    /// Newest first.
    items: Vec<MailingListed>,
}

/// `GET /v1/mailings?limit=20`: the newest mailings with their progress (the
/// console's view of what is being sent).
pub(super) async fn list_mailings(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<MailingList>, Problem> {
    let page = Page::parse(query.into_iter().filter(|(name, _)| name == "limit").collect())?;
    let mailings = app.store.recent_mailings(page.limit).await.map_err(|error| {
        tracing::error!(%error, "cannot list mailings");
        Problem::unavailable("the store cannot be read now; try again")
    })?;
    let items = mailings
        .into_iter()
        .map(
            |MailingSummary {
                 id,
                 subject,
                 created_at,
                 counts,
             }| MailingListed {
                id,
                subject,
                created_at: rfc3339(created_at),
                counts,
            },
        )
        .collect();
    Ok(Json(MailingList { items }))
}

/// The body of `POST /v1/admin/email/test`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestEmailRequest {
    to: String,
}

impl BodyLimit for TestEmailRequest {}

/// `POST /v1/admin/email/test`: the admin's *Send a test e-mail*: one real e-mail from
/// `email.default_from` to the address given, queued like any other (so it goes
/// through the limits and retries, and its status is `GET /v1/messages/{id}`).
pub(super) async fn email_test(
    State(app): State<Arc<App>>,
    JsonBody(request): JsonBody<TestEmailRequest>,
) -> Result<Response, Problem> {
    let live = app.live();
    let to = addresses("to", vec![request.to]).map_err(|problem| {
        Problem::invalid("to", problem.detail.trim_start_matches("to[0]: ").to_string())
    })?;
    let from = live.settings.email.default_from.clone().ok_or_else(|| {
        Problem::invalid(
            "email.default_from",
            "a test e-mail needs a Default From address: set it first",
        )
    })?;
    let from = parse_mailbox(&from)
        .map(|mailbox| mailbox.to_string())
        .map_err(|reason| Problem::invalid("email.default_from", reason))?;
    let payload = EmailPayload {
        from,
        to,
        cc: Vec::new(),
        bcc: Vec::new(),
        subject: "Test e-mail from the gateway".into(),
        text: Some(format!(
            "This is a test e-mail, sent from the gateway's admin console to check its SMTP settings \
             (server {}:{}).\n",
            live.settings.email.host, live.settings.email.port
        )),
        html: None,
    };
    let payload = serde_json::to_value(&payload).expect("an e-mail payload serialises");
    tracing::info!("test e-mail queued");
    enqueue(&app, Channel::Email, payload, None).await
}
