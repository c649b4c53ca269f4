//! E-mail endpoints: `POST /v1/email`, `POST /v1/mailings`, `GET /v1/mailings/{id}`,
//! and the admin's *Check SMTP connection*.

use std::{collections::HashSet, sync::Arc};

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
    body::{from_json, BodyLimit, JsonBody, JsonText},
    callbacks::Page,
    enqueue, idempotency_key,
    problem::Problem,
    recipients::{self, OneOrMany, Recipient, Recipients},
};
use crate::{
    app::App,
    email::{
        check,
        message::{check_header_text, parse_mailbox, EmailPayload, MailingRecipient, MailingShared},
        template::OnMissing,
    },
    metrics::Metrics,
    settings::{ServerSettings, Settings},
    store::{Channel, MailingCounts, MailingSummary, NewMailing, Texts},
    time::rfc3339,
};

/// Recipients (to, cc and bcc together) one e-mail may have; a mailing has no limit
/// but its body size.
const MAX_RECIPIENTS: usize = 100;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EmailRequest {
    to: OneOrMany,
    #[serde(default)]
    cc: Vec<Recipient>,
    #[serde(default)]
    bcc: Vec<Recipient>,
    #[serde(default)]
    from: Option<String>,
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    /// Merge fields for the templates, beneath the first `to` recipient's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "OnMissing::is_empty")]
    on_missing: OnMissing,
    /// An e-mail the recipient must get (a receipt, a password reset): sent to suppressed
    /// addresses too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    transactional: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MailingRequest<'a> {
    #[serde(default)]
    from: Option<String>,
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    /// Each recipient's JSON text, a slice of the request's, read one by one when
    /// checked: a mailing of 200,000 recipients with merge fields, held as values, would
    /// take several hundred MB, and even as copies of their text 200,000 allocations.
    #[serde(borrow)]
    recipients: Vec<&'a serde_json::value::RawValue>,
    #[serde(default, skip_serializing_if = "OnMissing::is_empty")]
    on_missing: OnMissing,
}

impl BodyLimit for EmailRequest {}

impl BodyLimit for MailingRequest<'_> {
    /// A mailing's body lists every recipient.
    fn limit(server: &ServerSettings) -> u64 {
        server.max_mailing_body_bytes
    }
}

/// Which of `keys` are on the suppression list.
async fn suppressed(app: &App, keys: Vec<String>) -> Result<HashSet<String>, Problem> {
    let found = app.store.suppressed(keys).await.map_err(|error| {
        tracing::error!(%error, "cannot read the suppression list");
        Problem::unavailable("the suppression list cannot be read now; nothing was accepted, try again")
    })?;
    Ok(found.into_iter().collect())
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
    let to = request.to.into_vec();
    if to.is_empty() {
        return Err(Problem::invalid("to", "needs at least one address"));
    }
    if to.len() + request.cc.len() + request.bcc.len() > MAX_RECIPIENTS {
        return Err(Problem::invalid(
            "to",
            format!(
                "to, cc and bcc together may hold {MAX_RECIPIENTS} addresses; use POST /v1/mailings for more"
            ),
        ));
    }
    // One list of seen addresses for all three: an address in to and bcc gets one copy.
    let mut recipients = Recipients::default();
    recipients.add("to", to)?;
    let to_count = recipients.list.len();
    recipients.add("cc", request.cc)?;
    let cc_count = recipients.list.len() - to_count;
    recipients.add("bcc", request.bcc)?;
    content(&request.subject, &request.text, &request.html)?;
    // One e-mail: rendered now, for its first `to` recipient, so that a template that
    // fails is this request's 422 rather than a failed message later.
    let templates = recipients::compile(
        &request.subject,
        request.text.as_deref(),
        request.html.as_deref(),
        request.on_missing,
    )?;
    let first = recipients.list.first().expect("to has at least one address");
    let mut merged = request.fields.unwrap_or_default();
    merged.extend(first.fields.clone());
    let rendered = MailingRecipient {
        fields: merged,
        ..first.clone()
    }
    .render_with(&templates, None)
    .map_err(recipients::template_problem)?;
    let skipped = if request.transactional {
        HashSet::new()
    } else {
        suppressed(&app, recipients.keys.iter().map(str::to_owned).collect()).await?
    };
    let (mut to, mut cc, mut bcc) = (Vec::new(), Vec::new(), Vec::new());
    for (n, (recipient, key)) in recipients
        .list
        .into_iter()
        .zip(recipients.keys.iter())
        .enumerate()
    {
        if skipped.contains(key) {
            continue;
        }
        let list = match n {
            n if n < to_count => &mut to,
            n if n < to_count + cc_count => &mut cc,
            _ => &mut bcc,
        };
        list.push(recipient.to);
    }
    if to.is_empty() {
        return Err(Problem::invalid(
            "to",
            "every `to` address is on the suppression list (unsubscribed, refused for good, or \
             added by an admin); an e-mail the recipient must get (a receipt, a password reset) \
             says `\"transactional\": true`",
        ));
    }
    if !skipped.is_empty() {
        tracing::info!(
            suppressed = skipped.len(),
            "e-mail recipients skipped: on the suppression list"
        );
    }
    let payload = EmailPayload {
        from: sender(request.from, &live.settings)?,
        to,
        cc,
        bcc,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        list_unsubscribe: None,
    };
    let payload = serde_json::to_value(&payload).expect("an e-mail payload serialises");
    enqueue(&app, Channel::Email, payload, key).await
}

pub(super) async fn post_mailing(
    State(app): State<Arc<App>>,
    caller: Caller<role::Send>,
    headers: HeaderMap,
    body: JsonText<MailingRequest<'static>>,
) -> Result<Response, Problem> {
    let request: MailingRequest = body.parse()?;
    let live = app.live();
    let key = idempotency_key(&app, &headers, &caller, "POST /v1/mailings", &request)?;
    content(&request.subject, &request.text, &request.html)?;
    let from = sender(request.from, &live.settings)?;
    if request.recipients.is_empty() {
        return Err(Problem::invalid("recipients", "needs at least one address"));
    }
    let mut recipients = Recipients::default();
    let mut stored = Texts::default();
    let mut keep = |recipient: MailingRecipient| {
        stored.push(&serde_json::to_string(&recipient).expect("a recipient serialises"));
    };
    for (i, raw) in request.recipients.into_iter().enumerate() {
        let recipient = from_json::<Recipient>(raw.get().as_bytes(), &format!("recipients[{i}]"))?;
        recipients.add_one("recipients", i, recipient, &mut keep)?;
    }
    let shared = MailingShared {
        from,
        subject: request.subject,
        text: request.text,
        html: request.html,
        on_missing: request.on_missing,
    };
    // Compiled here only to refuse a template that does not compile; the engine
    // compiles it again, once, when it sends.
    shared.compile().map_err(recipients::template_problem)?;
    let mailing = NewMailing {
        addresses: recipients.keys,
        shared: serde_json::to_value(&shared).expect("a mailing serialises"),
        recipients: stored,
    };
    let count = mailing.recipients.len() as u64;
    let enqueued = app.store.create_mailing(mailing, key).await.map_err(|error| {
        super::not_stored(
            error,
            "the mailing could not be stored; nothing was accepted, try again",
        )
    })?;
    if enqueued.created {
        tracing::info!(mailing_id = %enqueued.id, recipients = count, duplicates = recipients.duplicates, "mailing queued");
        app.metrics
            .accepted
            .get_or_create(&Metrics::channel(Channel::Email))
            .inc_by(count);
        app.email_queued.notify_one();
    }
    Ok(accepted(&enqueued.id, "mailings"))
}

/// A mailing's progress: its id and how many of its e-mails stand where, and whether
/// they carry an unsubscribe link.
#[derive(Debug, Serialize)]
pub(super) struct MailingView {
    id: String,
    #[serde(flatten)]
    counts: MailingCounts,
    /// Whether this gateway's mailing e-mails carry `List-Unsubscribe` (email.public_url is set).
    list_unsubscribe: bool,
    /// When the sending quota lets the next e-mail go (RFC 3339), while the mailing has
    /// e-mails waiting and the quota holds them; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_send_at: Option<String>,
    /// What an admin should know about how the mailing goes out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<&'static str>,
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
    let live = app.live();
    let list_unsubscribe = live.settings.email.public_url.is_some();
    let next_send_at = if counts.queued > 0 {
        let next = app
            .store
            .next_send(&live.settings.email.quota)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot read the sending quota");
                Problem::unavailable("the store cannot be read now; try again")
            })?;
        next.map(crate::time::rfc3339)
    } else {
        None
    };
    let mut warnings = Vec::new();
    if !list_unsubscribe {
        warnings.push(
            "email.public_url is not set: the e-mails go out without a List-Unsubscribe link, which \
             the law and large mailbox providers require of bulk mail",
        );
    }
    Ok(Json(MailingView {
        id,
        counts,
        list_unsubscribe,
        next_send_at,
        warnings,
    }))
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
    let to = parse_mailbox(&request.to)
        .map(|mailbox| vec![mailbox.to_string()])
        .map_err(|reason| Problem::invalid("to", reason))?;
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
        // A transactional e-mail: no unsubscribe link.
        list_unsubscribe: None,
    };
    let payload = serde_json::to_value(&payload).expect("an e-mail payload serialises");
    tracing::info!("test e-mail queued");
    enqueue(&app, Channel::Email, payload, None).await
}
