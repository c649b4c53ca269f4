//! What the tests store, and small steps they share: messages, idempotency keys,
//! delivery reports, and ending a lease as a worker does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::store::{
    Channel, DeliveryReport, DeliveryStatus, Idempotency, Leased, NewInbound, NewMessage, Outcome, PurgeKind,
    ReportOutcome, Store,
};
use serde_json::json;

/// An SMS with `text`.
pub fn sms(text: &str) -> NewMessage {
    NewMessage {
        channel: Channel::Sms,
        payload: json!({ "to": "+447700900123", "text": text }),
        mailing_id: None,
    }
}

/// An e-mail with `subject`.
pub fn email(subject: &str) -> NewMessage {
    NewMessage {
        channel: Channel::Email,
        payload: json!({ "to": ["a@example.com"], "subject": subject }),
        mailing_id: None,
    }
}

/// The idempotency key `key` of `POST /v1/sms` with a body of `text`.
pub fn key(key: &str, text: &str) -> Option<Idempotency> {
    Some(Idempotency::new(
        key.into(),
        "POST /v1/sms",
        &json!({ "text": text }),
    ))
}

/// The idempotency key `key` of `POST /v1/mailings`, with one body.
pub fn mailing_key(key: &str) -> Option<Idempotency> {
    Some(Idempotency::new(
        key.into(),
        "POST /v1/mailings",
        &json!({ "subject": "news" }),
    ))
}

/// Inbound SMS number `n` from the `file` module, to be forwarded to `url` if given.
pub fn inbound(n: u32, url: Option<&str>) -> NewInbound {
    NewInbound {
        module: "file".into(),
        sender: "+447911123456".into(),
        recipient: "+447700900000".into(),
        text: format!("reply {n}"),
        provider_id: format!("in-{n}"),
        forward_url: url.map(str::to_string),
    }
}

/// A delivery report from the `file` module.
pub fn report(provider_id: Option<&str>, message_id: Option<&str>, status: DeliveryStatus) -> DeliveryReport {
    DeliveryReport {
        module: "file".into(),
        provider_id: provider_id.map(str::to_owned),
        message_id: message_id.map(str::to_owned),
        status,
        detail: match status {
            DeliveryStatus::Delivered => None,
            DeliveryStatus::Undelivered => Some("absent subscriber".into()),
        },
    }
}

/// What recording a report that changed message `id` answers.
pub fn applied(id: &str) -> ReportOutcome {
    ReportOutcome::Applied {
        message_id: id.to_owned(),
    }
}

pub fn sent(provider_id: Option<&str>) -> Outcome {
    Outcome::Sent {
        provider_id: provider_id.map(str::to_owned),
    }
}

pub fn failed(error: &str) -> Outcome {
    Outcome::Failed { error: error.into() }
}

/// Ends one lease the way a worker does; true if the outcome applied.
pub async fn settle(store: &dyn Store, leased: &Leased, outcome: Outcome) -> bool {
    store.settle(vec![leased.settle(outcome)]).await.unwrap()[0]
}

/// Leases up to `limit` SMS for a minute as `owner`.
pub async fn lease_sms(store: &dyn Store, limit: usize, owner: &str) -> Vec<Leased> {
    store
        .lease(Channel::Sms, limit, owner, Duration::from_secs(60))
        .await
        .unwrap()
}

/// How many delivery reports are held, found by purging them (at most 1000): only for
/// the end of a test, or where they are no longer wanted.
pub async fn purge_held_reports(store: &dyn Store) -> u64 {
    let later = SystemTime::now() + Duration::from_secs(60);
    store
        .purge(PurgeKind::HeldReports, later, 1000)
        .await
        .unwrap()
        .rows
}

/// Milliseconds since the epoch: the precision the stores keep times with.
pub fn millis(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis()
}
