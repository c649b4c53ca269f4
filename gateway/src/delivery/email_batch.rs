//! One connection's batch: up to `max(1, max_per_connection / smtp_threads)` e-mails,
//! delivered over one SMTP connection, then QUIT.
//!
//! Replies are handled like a careful MTA (contract, section 2):
//! - 250: the e-mail is `sent`, with the server's reply as its provider id;
//! - 5xx for the e-mail (MAIL, RCPT or DATA): that e-mail fails for good with the
//!   server's reply; the transaction is reset and the batch goes on, on a new
//!   connection if the server closed this one. A 5xx at RCPT for an e-mail of one
//!   recipient also puts that address on the suppression list;
//! - 4xx (421, 452, 454 …) or a dropped or silent connection: this e-mail and the rest
//!   of the batch go back to the queue, due after a backoff, and the batch ends. The
//!   e-mails never attempted get their attempt back.

use std::{collections::VecDeque, sync::Arc, time::SystemTime};

use tokio::task::JoinSet;

use lettre::address::Envelope;

use super::connection_slot::ConnectionSlot;
use crate::email::{
    dkim::Dkim,
    error::{reply_text, Severity, SmtpError, Stage},
    message::{build, build_parsed, delivery_key, Addresses, Mailing, MailingRecipient, UnsubscribeLinks},
    session::Session,
};
use crate::{
    app::{App, Live},
    metrics::Metrics,
    store::{
        settle_and_log, Channel, LeaseToken, Leased, NewSuppression, Outcome, Settlement, SuppressionReason,
    },
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
    token: LeaseToken,
    attempts: u32,
    envelope: Envelope,
    bytes: Vec<u8>,
}

/// Delivers `batch` over one connection (occasionally a second, after a 5xx that made
/// the server close the first), and records every e-mail's outcome.
///
/// `connection` is the engine's permission to hold one connection open: it is given
/// back as soon as this batch's connection is closed, so the next batch can connect
/// while the last outcomes are written.
pub async fn deliver(app: Arc<App>, live: Arc<Live>, batch: Vec<Leased>, connection: ConnectionSlot) {
    let mut outcomes = Outcomes::new(&app);
    send_batch(&app, &live, batch, &mut outcomes).await;
    connection.give_back(&app).await;
    // The batch ends only once every outcome is durable, so a graceful stop never
    // releases an e-mail that was sent.
    outcomes.written().await;
}

/// The outcomes of one batch, each written as soon as it is known, while the connection
/// goes on with the next e-mail.
///
/// Writing while sending is what keeps a crash from sending a batch's e-mails twice: an
/// outcome held until the connection closed would be lost with the process, and every
/// e-mail the server had accepted would go out again. Group commit makes a write per
/// e-mail cheap (concurrent writes share one fsync), and the connection never waits for
/// one, so a crash repeats at most the e-mails accepted in the last few milliseconds.
struct Outcomes {
    app: Arc<App>,
    writes: JoinSet<()>,
}

impl Outcomes {
    fn new(app: &Arc<App>) -> Outcomes {
        Outcomes {
            app: app.clone(),
            writes: JoinSet::new(),
        }
    }

    /// Starts writing `outcome` for `email`.
    fn record(&mut self, email: &Ready, outcome: Outcome) {
        self.write(Settlement {
            id: email.id.clone(),
            token: email.token.clone(),
            outcome,
        });
    }

    /// Starts writing `settlement`.
    fn write(&mut self, settlement: Settlement) {
        let app = self.app.clone();
        self.writes
            .spawn(async move { settle_and_log(app.store.as_ref(), vec![settlement]).await });
    }

    /// Starts adding an address refused for good to the suppression list, then writing
    /// `email`'s outcome: once the e-mail shows as failed, its address is listed.
    fn record_bounce(&mut self, email: &Ready, entry: NewSuppression, outcome: Outcome) {
        let app = self.app.clone();
        let settlement = Settlement {
            id: email.id.clone(),
            token: email.token.clone(),
            outcome,
        };
        self.writes.spawn(async move {
            if let Err(error) = app.store.suppress(vec![entry]).await {
                tracing::error!(%error, "a refused address could not be added to the suppression list");
            }
            settle_and_log(app.store.as_ref(), vec![settlement]).await;
        });
    }

    /// Waits until every outcome recorded is written.
    async fn written(mut self) {
        while self.writes.join_next().await.is_some() {}
    }
}

async fn send_batch(app: &Arc<App>, live: &Arc<Live>, batch: Vec<Leased>, outcomes: &mut Outcomes) {
    let mut pending: VecDeque<Ready> = VecDeque::new();
    // Mailing e-mails carry an unsubscribe link when the gateway has a public URL.
    let key = match &live.settings.email.public_url {
        Some(_) if batch.iter().any(|l| l.mailing_id.is_some()) => match app.unsubscribe_key().await {
            Ok(key) => Some(key),
            Err(error) => {
                // Never a mailing e-mail without its link: the batch waits for the store.
                tracing::error!(%error, "cannot read the unsubscribe key; the batch goes back to the queue");
                let due_at = SystemTime::now() + live.settings.email.retry.backoff(1);
                for leased in batch {
                    outcomes.write(leased.settle(Outcome::GiveBack { due_at }));
                }
                return;
            }
        },
        _ => None,
    };
    let base = live.settings.email.public_url.as_deref().unwrap_or_default();
    for leased in batch {
        let links = key
            .zip(leased.mailing_id.as_deref())
            .map(|(key, mailing_id)| UnsubscribeLinks {
                base,
                key,
                mailing_id,
            });
        match prepare(app, &leased, links.as_ref(), live.settings.email.dkim.as_ref()) {
            Ok(ready) => pending.push_back(ready),
            Err(reason) => {
                tracing::error!(message_id = %leased.id, %reason, "e-mail cannot be built");
                outcomes.write(leased.settle(Outcome::Failed { error: reason }));
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
    let quota = &live.settings.email.quota;
    while let Some(email) = pending.pop_front() {
        // Each e-mail takes its send from the quota just before it goes, so that the
        // server never sees more than the quota allows within a window.
        match app.store.take_send(quota).await {
            Ok(None) => {}
            Ok(Some(at)) => {
                let unix = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                metrics.email_quota_next_send.set(unix.as_secs_f64());
                tracing::debug!(message_id = %email.id, "the sending quota is used up; the rest waits in the queue");
                pending.push_front(email);
                for email in pending {
                    outcomes.record(&email, Outcome::GiveBack { due_at: at });
                }
                break;
            }
            Err(error) => {
                tracing::error!(%error, "cannot take a send from the quota; the rest goes back to the queue");
                let due_at = SystemTime::now() + live.settings.email.retry.backoff(1);
                pending.push_front(email);
                for email in pending {
                    outcomes.record(&email, Outcome::GiveBack { due_at });
                }
                break;
            }
        }
        let mut current = match session.take() {
            Some(session) => session,
            None => match target.open(|_, _| {}).await {
                Ok(session) => Connection::new(session, metrics),
                Err(error) => {
                    tracing::warn!(server = %target.address(), %error, "cannot open an SMTP connection");
                    pending.push_front(email);
                    requeue(app, live, pending, &error, None, outcomes);
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
                let provider_id = Some(reply_text(&reply));
                outcomes.record(&email, Outcome::Sent { provider_id });
                reconnect_allowed = false;
                session = Some(current);
            }
            Err(error) if error.severity == Severity::Permanent => {
                let reason = error.to_string();
                metrics.failed.get_or_create(&labels).inc();
                tracing::warn!(message_id = %email.id, %reason, "e-mail refused for good");
                match (email.envelope.to(), error.stage) {
                    // The mailbox does not exist (or will never take mail from us): no
                    // mailing sends to it again.
                    ([address], Stage::RcptTo) => outcomes.record_bounce(
                        &email,
                        NewSuppression {
                            address: delivery_key(address),
                            reason: SuppressionReason::Bounce,
                            detail: Some(reason.clone()),
                        },
                        Outcome::Failed { error: reason },
                    ),
                    _ => outcomes.record(&email, Outcome::Failed { error: reason }),
                }
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
                requeue(app, live, pending, &error, Some(&attempted), outcomes);
                return;
            }
        }
    }
    if let Some(connection) = session {
        connection.quit().await;
    }
}

/// Parses a leased payload (a single e-mail, or one recipient of a mailing, rendered
/// from the mailing's templates, compiled once per mailing) and builds it, signed with
/// `dkim` when set. A recipient whose render fails (a missing field with
/// `on_missing: fail`) fails for good.
fn prepare(
    app: &App,
    leased: &Leased,
    links: Option<&UnsubscribeLinks<'_>>,
    dkim: Option<&Dkim>,
) -> Result<Ready, String> {
    let (envelope, bytes) = match &leased.mailing_payload {
        Some(stored) => {
            let recipient: MailingRecipient = serde_json::from_str(&leased.payload)
                .map_err(|e| format!("the stored recipient cannot be read: {e}"))?;
            let mailing_id = leased.mailing_id.as_deref().unwrap_or(&leased.id);
            let mailing = app
                .templates
                .get_or_compile(mailing_id, || Mailing::prepare(stored));
            let mailing = mailing.as_ref().as_ref()?;
            let (payload, to) = recipient.render(mailing, links)?;
            let addresses = Addresses {
                from: mailing.from.clone(),
                to: vec![to],
                cc: Vec::new(),
                bcc: Vec::new(),
            };
            build_parsed(&payload, addresses, &leased.id, dkim, Some(&mailing.bodies))
        }
        None => {
            let payload = serde_json::from_str(&leased.payload)
                .map_err(|e| format!("the stored e-mail cannot be read: {e}"))?;
            build(&payload, &leased.id, dkim)
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(Ready {
        id: leased.id.clone(),
        token: leased.token.clone(),
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
fn requeue(
    app: &App,
    live: &Live,
    pending: VecDeque<Ready>,
    error: &SmtpError,
    attempted: Option<&str>,
    outcomes: &mut Outcomes,
) {
    let retry = live.settings.email.retry;
    let labels = Metrics::outcome(Channel::Email, "smtp");
    for email in pending {
        let counts = attempted.is_none_or(|id| id == email.id);
        let outcome = if !counts {
            Outcome::GiveBack {
                due_at: SystemTime::now() + retry.backoff(1),
            }
        } else if retry.may_retry(email.attempts) {
            app.metrics.retried.get_or_create(&labels).inc();
            Outcome::Retry {
                due_at: SystemTime::now() + retry.backoff(email.attempts),
                error: error.to_string(),
            }
        } else {
            app.metrics.failed.get_or_create(&labels).inc();
            Outcome::Failed {
                error: error.to_string(),
            }
        };
        outcomes.record(&email, outcome);
    }
}
