//! One connection's batch: up to `max(1, max_per_connection / smtp_threads)` e-mails,
//! delivered over one SMTP connection, then QUIT.
//!
//! Replies are handled like a careful MTA (contract, section 2):
//! - 250: the e-mail is `sent`, with the server's reply as its provider id;
//! - 5xx for the e-mail (MAIL, RCPT or DATA): that e-mail fails for good with the
//!   server's reply; the transaction is reset and the batch goes on, on a new
//!   connection if the server closed this one;
//! - 4xx (421, 452, 454 …) or a dropped or silent connection: this e-mail and the rest
//!   of the batch go back to the queue, due after a backoff, and the batch ends. The
//!   e-mails never attempted get their attempt back.

use std::{collections::VecDeque, sync::Arc, time::SystemTime};

use tokio::sync::OwnedSemaphorePermit;

use lettre::address::Envelope;

use super::{
    error::{reply_text, Severity, SmtpError, Stage},
    message::{build, EmailPayload, MailingRecipient, MailingShared},
    session::Session,
};
use crate::{
    app::{App, Live},
    metrics::Metrics,
    store::{Channel, Leased, Settled},
};

/// An open connection, counted in the metrics while it is open.
struct Connection<'a> {
    session: Option<Session>,
    /// E-mails this connection carried (sent or refused).
    carried: u32,
    metrics: &'a Metrics,
}

impl<'a> Connection<'a> {
    fn new(session: Session, metrics: &'a Metrics) -> Connection<'a> {
        metrics.smtp_connections_open.inc();
        Connection {
            session: Some(session),
            carried: 0,
            metrics,
        }
    }

    fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a connection has its session until it quits")
    }

    async fn quit(mut self) {
        if let Some(session) = self.session.take() {
            if let Err(error) = session.quit().await {
                tracing::debug!(%error, "QUIT was not answered cleanly");
            }
        }
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        self.metrics.smtp_connections_open.dec();
        self.metrics
            .smtp_emails_per_connection
            .observe(f64::from(self.carried));
    }
}

/// A leased e-mail, built and ready to send.
struct Ready {
    id: String,
    attempts: u32,
    envelope: Envelope,
    bytes: Vec<u8>,
}

/// Delivers `batch` over one connection (occasionally a second, after a 5xx that made
/// the server close the first), and records every e-mail's outcome.
///
/// `connection` is the engine's permission to hold one connection open: it is given
/// back as soon as this batch's connection is closed, before the outcomes are durable,
/// so the next batch can connect meanwhile.
pub async fn deliver(app: Arc<App>, live: Arc<Live>, batch: Vec<Leased>, connection: OwnedSemaphorePermit) {
    // The outcomes are gathered while the e-mails go out and recorded in one write when
    // the connection is closed: a commit per e-mail would cost the connection a round
    // trip to the store each. An e-mail the server accepted is at worst sent again if
    // the gateway dies before that write (at-least-once). The batch ends only once the
    // write is durable, so a graceful stop never releases an e-mail that was sent.
    let mut outcomes = Vec::new();
    send_batch(&app, &live, batch, &mut outcomes).await;
    drop(connection);
    if !outcomes.is_empty() {
        let count = outcomes.len();
        match app.store.settle_many(&app.lease_owner, outcomes).await {
            Ok(applied) if applied < count => {
                tracing::warn!(
                    lost = count - applied,
                    "outcomes not recorded: their leases had run out"
                )
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "outcomes of a batch not recorded; the leases will run out")
            }
        }
    }
}

async fn send_batch(
    app: &Arc<App>,
    live: &Arc<Live>,
    batch: Vec<Leased>,
    outcomes: &mut Vec<(String, Settled)>,
) {
    let mut pending: VecDeque<Ready> = VecDeque::new();
    for leased in batch {
        match prepare(&leased) {
            Ok(ready) => pending.push_back(ready),
            Err(reason) => {
                tracing::error!(message_id = %leased.id, %reason, "e-mail cannot be built");
                outcomes.push((leased.id.clone(), Settled::Failed(reason)));
            }
        }
    }
    let target = &live.smtp;
    let metrics = &app.metrics;
    let labels = Metrics::outcome(Channel::Email, "smtp");
    let mut session: Option<Connection> = None;
    // Whether the server may have closed the connection after refusing an e-mail: then
    // a dropped connection at the next MAIL FROM is met by reconnecting, once.
    let mut reconnect_allowed = false;
    while let Some(email) = pending.pop_front() {
        let mut current = match session.take() {
            Some(session) => session,
            None => match target.open(|_, _| {}).await {
                Ok(session) => Connection::new(session, metrics),
                Err(error) => {
                    tracing::warn!(server = %target.address(), %error, "cannot open an SMTP connection");
                    pending.push_front(email);
                    requeue(app, live, pending, &error, None).await;
                    return;
                }
            },
        };
        let result = current.session().send(&email.envelope, &email.bytes).await;
        if !matches!(&result, Err(e) if e.severity == Severity::Connection) {
            current.carried += 1;
        }
        match result {
            Ok(reply) => {
                metrics.sent.get_or_create(&labels).inc();
                tracing::debug!(message_id = %email.id, reply = %reply_text(&reply), "e-mail sent");
                outcomes.push((email.id.clone(), Settled::Sent(Some(reply_text(&reply)))));
                reconnect_allowed = false;
                session = Some(current);
            }
            Err(error) if error.severity == Severity::Permanent => {
                let reason = error.to_string();
                metrics.failed.get_or_create(&labels).inc();
                tracing::warn!(message_id = %email.id, %reason, "e-mail refused for good");
                outcomes.push((email.id.clone(), Settled::Failed(reason)));
                reconnect_allowed = true;
                if current.session().is_usable() {
                    session = Some(current);
                }
            }
            Err(error)
                if reconnect_allowed
                    && error.severity == Severity::Connection
                    && error.stage == Stage::MailFrom =>
            {
                tracing::debug!(message_id = %email.id, "the server closed the connection after a refusal; reconnecting");
                reconnect_allowed = false;
                pending.push_front(email);
            }
            Err(error) => {
                tracing::warn!(message_id = %email.id, %error, "batch interrupted; the rest goes back to the queue");
                current.session().abort().await;
                let attempted = email.id.clone();
                pending.push_front(email);
                requeue(app, live, pending, &error, Some(&attempted)).await;
                return;
            }
        }
    }
    if let Some(connection) = session {
        connection.quit().await;
    }
}

/// Parses a leased payload (a single e-mail, or one recipient of a mailing) and builds it.
fn prepare(leased: &Leased) -> Result<Ready, String> {
    let payload = match &leased.mailing_payload {
        Some(shared) => {
            let shared: MailingShared = serde_json::from_str(shared)
                .map_err(|e| format!("the stored mailing cannot be read: {e}"))?;
            let recipient: MailingRecipient = serde_json::from_str(&leased.payload)
                .map_err(|e| format!("the stored recipient cannot be read: {e}"))?;
            EmailPayload::for_recipient(shared, recipient)
        }
        None => serde_json::from_str(&leased.payload)
            .map_err(|e| format!("the stored e-mail cannot be read: {e}"))?,
    };
    let (envelope, bytes) = build(&payload, &leased.id).map_err(|e| e.to_string())?;
    Ok(Ready {
        id: leased.id.clone(),
        attempts: leased.attempts,
        envelope,
        bytes,
    })
}

/// Puts the unsent e-mails of an interrupted batch back in the queue.
///
/// `attempted` is the e-mail that was on the wire when the batch broke: it counts its
/// attempt, and fails for good once it has used them all; the others never reached
/// the server and get their attempt back. With no connection at all (`None`), every
/// e-mail counts the attempt, so that a server that stays down is retried less and
/// less often and the e-mails fail in the end instead of waiting forever.
async fn requeue(
    app: &App,
    live: &Live,
    pending: VecDeque<Ready>,
    error: &SmtpError,
    attempted: Option<&str>,
) {
    let retry = live.settings.email.retry;
    let reason = error.to_string();
    for email in pending {
        let counts = attempted.is_none_or(|id| id == email.id);
        if !counts {
            let due = SystemTime::now() + retry.backoff(1);
            outcome(
                app.store.give_back(&email.id, &app.lease_owner, due).await,
                &email.id,
            );
        } else if retry.may_retry(email.attempts) {
            app.metrics
                .retried
                .get_or_create(&Metrics::outcome(Channel::Email, "smtp"))
                .inc();
            let due = SystemTime::now() + retry.backoff(email.attempts);
            outcome(
                app.store
                    .mark_retry(&email.id, &app.lease_owner, due, &reason)
                    .await,
                &email.id,
            );
        } else {
            app.metrics
                .failed
                .get_or_create(&Metrics::outcome(Channel::Email, "smtp"))
                .inc();
            outcome(
                app.store.mark_failed(&email.id, &app.lease_owner, &reason).await,
                &email.id,
            );
        }
    }
}

fn outcome(result: Result<bool, crate::store::StoreError>, id: &str) {
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!(message_id = %id, "outcome not recorded: the lease had run out"),
        Err(error) => tracing::error!(message_id = %id, %error, "outcome not recorded"),
    }
}
