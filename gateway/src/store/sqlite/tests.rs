use std::collections::HashSet;
use std::time::Instant;

use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use serde_json::json;

use super::schema::{configure_writer, migrate, SCHEMA_VERSION};
use super::writer::apply_batch;
use super::*;
use crate::store::{DeliveryStatus, LeaseToken, Outcome, Status};

/// Ends one lease the way a worker does; true if the outcome applied.
async fn settle(store: &SqliteStore, leased: &Leased, outcome: Outcome) -> bool {
    store.settle(vec![leased.settle(outcome)]).await.unwrap()[0]
}

fn sent(provider_id: Option<&str>) -> Outcome {
    Outcome::Sent {
        provider_id: provider_id.map(str::to_owned),
    }
}

fn failed(error: &str) -> Outcome {
    Outcome::Failed { error: error.into() }
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("data").join("queue.db")).expect("open the store")
}

fn sms(text: &str) -> NewMessage {
    NewMessage {
        channel: Channel::Sms,
        payload: json!({ "to": "+447700900123", "text": text }),
        mailing_id: None,
    }
}

fn email(subject: &str) -> NewMessage {
    NewMessage {
        channel: Channel::Email,
        payload: json!({ "to": ["a@example.com"], "subject": subject }),
        mailing_id: None,
    }
}

/// The idempotency key `key` of `POST /v1/sms` with a body of `text`.
fn key(key: &str, text: &str) -> Option<Idempotency> {
    Some(Idempotency::new(
        key.into(),
        "POST /v1/sms",
        &json!({ "text": text }),
    ))
}

/// The idempotency key `key` of `POST /v1/mailings`, with one body.
fn mailing_key(key: &str) -> Option<Idempotency> {
    Some(Idempotency::new(
        key.into(),
        "POST /v1/mailings",
        &json!({ "subject": "news" }),
    ))
}

/// A delivery report from the `file` module.
fn report(provider_id: Option<&str>, message_id: Option<&str>, status: DeliveryStatus) -> DeliveryReport {
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

fn applied(id: &str) -> ReportOutcome {
    ReportOutcome::Applied {
        message_id: id.to_owned(),
    }
}

/// Asks the file itself, the way an operator with the sqlite3 shell would.
fn count(store: &SqliteStore, sql: &str) -> i64 {
    let conn = Connection::open(store.path()).expect("open the file");
    conn.query_row(sql, [], |row| row.get(0)).expect("count")
}

#[tokio::test]
async fn enqueued_message_reads_back_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let before = SystemTime::now() - Duration::from_millis(1);

    let enqueued = store.enqueue(sms("hello"), None).await.unwrap();

    assert!(enqueued.created);
    let uuid = uuid::Uuid::parse_str(&enqueued.id).expect("the id is a UUID");
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(
        enqueued.id,
        uuid.hyphenated().to_string(),
        "printed plain, lowercase, no braces"
    );
    let record = store.get(&enqueued.id).await.unwrap().expect("stored");
    assert_eq!(record.id, enqueued.id);
    assert_eq!(record.channel, Channel::Sms);
    assert_eq!(record.status, Status::Queued);
    assert_eq!(record.attempts, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&record.payload).unwrap(),
        sms("hello").payload
    );
    assert_eq!(
        (
            record.lease_owner,
            record.provider_id,
            record.error,
            record.mailing_id
        ),
        (None, None, None, None)
    );
    assert!(record.updated_at >= before && record.updated_at <= SystemTime::now());
    assert_eq!(store.get("no-such-id").await.unwrap(), None);
}

#[tokio::test]
async fn ids_sort_by_creation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(store.enqueue(sms(&n.to_string()), None).await.unwrap().id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

#[tokio::test]
async fn same_idempotency_key_twice_stores_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    let first = store.enqueue(sms("once"), key("key-1", "once")).await.unwrap();
    let second = store.enqueue(sms("once"), key("key-1", "once")).await.unwrap();
    let other = store.enqueue(sms("once"), key("key-2", "once")).await.unwrap();

    assert!(first.created);
    assert_eq!(
        second,
        Enqueued {
            id: first.id.clone(),
            created: false
        }
    );
    assert!(other.created);
    assert_ne!(other.id, first.id);
    assert_eq!(count(&store, "SELECT count(*) FROM messages"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_idempotency_key_concurrently_stores_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store: Arc<dyn Store> = store.clone();
            tokio::spawn(async move { store.enqueue(sms("once"), key("same", "once")).await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    let ids: HashSet<_> = answers.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), 1, "every caller got the same id");
    assert_eq!(
        answers.iter().filter(|a| a.created).count(),
        1,
        "exactly one caller created it"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM messages"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_enqueues_share_few_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let commits_before = store.commits();
    let requests = 500;

    let started = Instant::now();
    let tasks: Vec<_> = (0..requests)
        .map(|n| {
            let store: Arc<dyn Store> = store.clone();
            tokio::spawn(async move { store.enqueue(sms(&format!("message {n}")), None).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let enqueued = task.await.unwrap().expect("every enqueue succeeds");
        assert!(enqueued.created);
        ids.insert(enqueued.id);
    }
    let elapsed = started.elapsed();
    let commits = store.commits() - commits_before;

    println!("{requests} concurrent enqueues: {elapsed:?}, {commits} commits");
    assert_eq!(ids.len(), requests);
    assert_eq!(count(&store, "SELECT count(*) FROM messages"), requests as i64);
    assert!(
        commits < requests as u64 / 4,
        "{commits} commits for {requests} enqueues"
    );
}

/// Feeds the writer one batch by hand, so that what shares a transaction is certain.
#[test]
fn one_batch_survives_a_failing_request_and_dedups_a_repeated_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let mut conn = Connection::open(&path).unwrap();
    configure_writer(&conn).unwrap();
    migrate(&mut conn, &path).unwrap();
    let message = |mailing_id: Option<&str>| MessageRow {
        channel: Channel::Sms,
        payload: "{}".into(),
        mailing_id: mailing_id.map(str::to_owned),
    };
    let mut answers = Vec::new();
    let mut batch = Vec::new();
    for (mailing_id, key) in [
        (None, Some("k")),
        (Some("no-such-mailing"), None),
        (None, Some("k")),
        (None, None),
    ] {
        let (reply, answer) = oneshot::channel();
        answers.push(answer);
        let idempotency = key.and_then(|k| self::key(k, "once"));
        let message = message(mailing_id);
        let write =
            move |conn: &Connection, now| messages::insert_message(conn, &message, idempotency.as_ref(), now);
        batch.push(Write::new(write, reply, false));
    }

    let state = WriterState::default();
    let kept = apply_batch(&conn, batch, &state);
    assert!(kept.is_empty());
    let commits = &state.commits;

    assert_eq!(
        commits.load(Ordering::Relaxed),
        1,
        "one commit for the whole batch"
    );

    let answers: Vec<_> = answers
        .into_iter()
        .map(|mut answer| answer.try_recv().unwrap())
        .collect();
    let first = answers[0].clone().expect("the first request is stored");
    assert!(first.created);
    assert!(
        matches!(&answers[1], Err(StoreError::Invalid(why)) if why.contains("no-such-mailing")),
        "{:?}",
        answers[1]
    );
    assert_eq!(
        answers[2],
        Ok(Enqueued {
            id: first.id.clone(),
            created: false
        })
    );
    assert!(answers[3].as_ref().expect("the last request is stored").created);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_the_first_owner_loses() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store.enqueue(sms("hi"), None).await.unwrap().id;

    let first = store
        .lease(Channel::Sms, 10, "worker-a", Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(
        first
            .iter()
            .map(|l| (l.id.as_str(), l.attempts))
            .collect::<Vec<_>>(),
        [(id.as_str(), 1)]
    );
    assert_eq!(first[0].payload, sms("hi").payload.to_string());
    assert!(store
        .lease(Channel::Sms, 10, "worker-b", Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());

    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = store
        .lease(Channel::Sms, 10, "worker-b", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        second
            .iter()
            .map(|l| (l.id.as_str(), l.attempts))
            .collect::<Vec<_>>(),
        [(id.as_str(), 2)]
    );

    assert!(!settle(&store, &first[0], sent(Some("late"))).await);
    assert!(!settle(&store, &first[0], failed("late")).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.lease_owner.as_deref()),
        (Status::Sending, Some("worker-b"))
    );

    assert!(settle(&store, &second[0], sent(Some("provider-1"))).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Sent);
    assert_eq!(record.provider_id.as_deref(), Some("provider-1"));
    assert_eq!((record.lease_owner, record.lease_expires_at), (None, None));
    assert!(
        !settle(&store, &second[0], sent(None)).await,
        "an outcome applies once"
    );
}

/// Issue 9, defect 1: one gateway re-leases a message whose lease it let run out (a slow
/// SMTP server, a stalled module). Both leases have the same owner; only the token tells
/// them apart, and the first holder's late outcome must change nothing.
#[tokio::test]
async fn a_late_outcome_of_an_expired_lease_retaken_by_the_same_gateway_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store.enqueue(sms("hi"), None).await.unwrap().id;
    let gateway = "gateway-1";

    let first = store
        .lease(Channel::Sms, 1, gateway, Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let second = store
        .lease(Channel::Sms, 1, gateway, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((second.len(), second[0].id.as_str()), (1, id.as_str()));
    assert_ne!(first[0].token, second[0].token, "every lease has its own token");

    for late in [
        sent(Some("late")),
        failed("late"),
        Outcome::Retry {
            due_at: SystemTime::now(),
            error: "late".into(),
        },
        Outcome::GiveBack {
            due_at: SystemTime::now(),
        },
    ] {
        assert!(!settle(&store, &first[0], late.clone()).await, "{late:?} applied");
    }
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Sending, 2));
    assert_eq!(record.provider_id, None);

    let forged = Leased {
        token: LeaseToken::new(),
        ..second[0].clone()
    };
    assert!(!settle(&store, &forged, sent(Some("forged"))).await);
    assert!(settle(&store, &second[0], sent(Some("provider-2"))).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.provider_id.as_deref()),
        (Status::Sent, Some("provider-2"))
    );
}

/// Several settlements in one call answer one by one, in order.
#[tokio::test]
async fn settle_answers_each_settlement_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for n in 0..3 {
        store.enqueue(sms(&n.to_string()), None).await.unwrap();
    }
    let leased = store
        .lease(Channel::Sms, 3, "w", Duration::from_secs(60))
        .await
        .unwrap();
    let stale = Leased {
        token: LeaseToken::new(),
        ..leased[1].clone()
    };
    let applied = store
        .settle(vec![
            leased[0].settle(sent(Some("a"))),
            stale.settle(sent(Some("b"))),
            leased[2].settle(failed("c")),
        ])
        .await
        .unwrap();
    assert_eq!(applied, [true, false, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_leasers_never_share_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    for n in 0..200 {
        store.enqueue(sms(&n.to_string()), None).await.unwrap();
    }

    let leasers: Vec<_> = (0..4)
        .map(|worker| {
            let store: Arc<dyn Store> = store.clone();
            tokio::spawn(async move {
                let owner = format!("worker-{worker}");
                let mut mine = Vec::new();
                loop {
                    let leased = store
                        .lease(Channel::Sms, 7, &owner, Duration::from_secs(60))
                        .await
                        .unwrap();
                    if leased.is_empty() {
                        return mine;
                    }
                    mine.extend(leased.into_iter().map(|l| l.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for leaser in leasers {
        all.extend(leaser.await.unwrap());
    }

    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200, "every message leased once");
    assert_eq!(distinct.len(), 200, "no message leased twice");
}

#[tokio::test]
async fn lease_takes_the_oldest_due_first_and_only_its_channel() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store.enqueue(sms("a"), None).await.unwrap().id;
    let b = store.enqueue(sms("b"), None).await.unwrap().id;
    let mail = store.enqueue(email("e"), None).await.unwrap().id;
    let c = store.enqueue(sms("c"), None).await.unwrap().id;
    let leased = store
        .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(leased[0].id, a);
    // Due long ago: now the oldest due of all.
    let retry = Outcome::Retry {
        due_at: UNIX_EPOCH + Duration::from_secs(1),
        error: "busy".into(),
    };
    assert!(settle(&store, &leased[0], retry).await);

    let leased = store
        .lease(Channel::Sms, 10, "w", Duration::from_secs(60))
        .await
        .unwrap();

    assert_eq!(leased.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [a, b, c]);
    let email = store
        .lease(Channel::Email, 10, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(email.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [mail]);
}

#[tokio::test]
async fn retry_waits_for_its_due_time_and_failure_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store.enqueue(sms("later"), None).await.unwrap().id;
    let leased = store
        .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
        .await
        .unwrap();

    let later = SystemTime::now() + Duration::from_secs(3600);
    let retry = Outcome::Retry {
        due_at: later,
        error: "provider busy".into(),
    };
    assert!(settle(&store, &leased[0], retry).await);

    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error.as_deref()),
        (Status::Queued, Some("provider busy"))
    );
    assert_eq!(unix_millis(record.due_at), unix_millis(later));
    assert!(store
        .lease(Channel::Sms, 10, "w", Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());

    let doomed = store.enqueue(sms("doomed"), None).await.unwrap().id;
    let leased = store
        .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(settle(&store, &leased[0], failed("number unreachable")).await);
    let record = store.get(&doomed).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error.as_deref()),
        (Status::Failed, Some("number unreachable"))
    );
    assert!(store
        .lease(Channel::Sms, 10, "w", Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn inbound_sms_are_kept_once_listed_newest_first_and_forwarded_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let inbound = |n: u32, url: Option<&str>| NewInbound {
        module: "file".into(),
        sender: "+447911123456".into(),
        recipient: "+447700900000".into(),
        text: format!("reply {n}"),
        provider_id: format!("p{n}"),
        forward_url: url.map(str::to_string),
    };
    let first = store.store_inbound(inbound(1, None)).await.unwrap();
    let again = store.store_inbound(inbound(1, None)).await.unwrap();
    assert_eq!((again.id.as_str(), again.created), (first.id.as_str(), false));
    let second = store
        .store_inbound(inbound(2, Some("http://127.0.0.1:9/hook")))
        .await
        .unwrap();

    let page = store.list_inbound(10, None).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["reply 2", "reply 1"]
    );
    let older = store.list_inbound(10, Some(second.id.clone())).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].id, first.id);

    let due = store.lease_forwards(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(due.len(), 1, "only the one with a webhook is forwarded");
    assert!(
        store
            .lease_forwards(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    store
        .forward_retry(&second.id, SystemTime::now(), "connection refused")
        .await
        .unwrap();
    let due = store.lease_forwards(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!((due.len(), due[0].forward_attempts), (1, 2));
    store.forward_done(&second.id).await.unwrap();
    assert!(store
        .lease_forwards(10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    let record = &store.list_inbound(1, None).await.unwrap()[0];
    assert_eq!(record.forward_status, "forwarded");
}

#[tokio::test]
async fn after_a_crash_every_lease_is_void_and_its_attempt_still_counted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store.enqueue(sms("in flight"), None).await.unwrap();
        store.enqueue(sms("waiting"), None).await.unwrap();
        let leased = store
            .lease(Channel::Sms, 1, "dead", Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(leased.len(), 1);
    }
    let store = open(&dir);
    assert_eq!(store.expire_all_leases().await.unwrap(), 1);
    let leased = store
        .lease(Channel::Sms, 10, "next", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(leased.len(), 2, "the dead process's message is due at once");
    let retried = leased.iter().find(|l| l.payload.contains("in flight")).unwrap();
    assert_eq!(retried.attempts, 2, "the interrupted attempt still counts");
    assert_eq!(store.expire_all_leases().await.unwrap(), 2);
}

#[tokio::test]
async fn release_leases_requeues_and_uncounts_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for n in 0..3 {
        store.enqueue(sms(&n.to_string()), None).await.unwrap();
    }
    let leased = store
        .lease(Channel::Sms, 2, "leaving", Duration::from_secs(60))
        .await
        .unwrap();
    let kept = store
        .lease(Channel::Sms, 1, "staying", Duration::from_secs(60))
        .await
        .unwrap();

    assert_eq!(store.release_leases("leaving").await.unwrap(), 2);

    for message in &leased {
        let record = store.get(&message.id).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.attempts, record.lease_owner),
            (Status::Queued, 0, None)
        );
    }
    let record = store.get(&kept[0].id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.lease_owner.as_deref()),
        (Status::Sending, Some("staying"))
    );
    let again = store
        .lease(Channel::Sms, 10, "next", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|l| l.attempts == 1));
    assert_eq!(store.release_leases("nobody").await.unwrap(), 0);
}

#[tokio::test]
async fn queue_depth_counts_what_a_lease_would_pick() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(
        store.queue_depth(Channel::Sms).await.unwrap(),
        QueueDepth {
            due: 0,
            oldest_due_age: None
        }
    );
    store.enqueue(sms("1"), None).await.unwrap();
    store.enqueue(sms("2"), None).await.unwrap();
    store.enqueue(email("3"), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;

    let depth = store.queue_depth(Channel::Sms).await.unwrap();
    assert_eq!(depth.due, 2);
    assert!(
        depth.oldest_due_age.unwrap() >= Duration::from_millis(30),
        "{depth:?}"
    );
    assert_eq!(store.queue_depth(Channel::Email).await.unwrap().due, 1);

    store
        .lease(Channel::Sms, 10, "w", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        store.queue_depth(Channel::Sms).await.unwrap().due,
        2,
        "expired leases are due"
    );
    store
        .lease(Channel::Sms, 10, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.queue_depth(Channel::Sms).await.unwrap(),
        QueueDepth {
            due: 0,
            oldest_due_age: None
        }
    );
}

#[tokio::test]
async fn mailing_of_100k_recipients_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let shared = json!({ "from": "news@example.com", "subject": "Spring news", "text": "Hello" });
    let recipients: Vec<_> = (0..100_000)
        .map(|n| json!({ "to": format!("reader{n}@example.com"), "name": format!("Reader {n}") }))
        .collect();
    let mailing = NewMailing {
        shared: shared.clone(),
        recipients,
    };

    let started = Instant::now();
    let created = store
        .create_mailing(mailing.clone(), mailing_key("spring"))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    println!("mailing of 100000 recipients: {elapsed:?}");

    assert!(created.created);
    let counts = store
        .mailing_counts(&created.id)
        .await
        .unwrap()
        .expect("the mailing exists");
    assert_eq!(
        counts,
        MailingCounts {
            total: 100_000,
            queued: 100_000,
            sending: 0,
            sent: 0,
            failed: 0
        }
    );

    let again = store
        .create_mailing(mailing, mailing_key("spring"))
        .await
        .unwrap();
    assert_eq!(
        again,
        Enqueued {
            id: created.id.clone(),
            created: false
        }
    );
    assert_eq!(count(&store, "SELECT count(*) FROM messages"), 100_000);

    let leased = store
        .lease(Channel::Email, 10, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(leased.len(), 10);
    for message in &leased {
        assert_eq!(message.mailing_id.as_deref(), Some(created.id.as_str()));
        assert_eq!(
            message.mailing_payload.as_deref(),
            Some(shared.to_string().as_str())
        );
    }
    assert_eq!(
        leased[0].payload,
        json!({ "to": "reader0@example.com", "name": "Reader 0" }).to_string()
    );
    assert!(settle(&store, &leased[0], sent(None)).await);
    assert!(settle(&store, &leased[1], failed("550 no such user")).await);
    let counts = store.mailing_counts(&created.id).await.unwrap().unwrap();
    assert_eq!(
        counts,
        MailingCounts {
            total: 100_000,
            queued: 99_990,
            sending: 8,
            sent: 1,
            failed: 1
        }
    );
    assert_eq!(store.mailing_counts("no-such-mailing").await.unwrap(), None);
}

#[tokio::test]
async fn a_mailing_without_recipients_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let empty = NewMailing {
        shared: json!({}),
        recipients: Vec::new(),
    };
    assert!(matches!(
        store.create_mailing(empty, None).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn everything_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (sent, queued, mailing) = {
        let store = open(&dir);
        let sent = store
            .enqueue(sms("sent"), key("key-sent", "sent"))
            .await
            .unwrap()
            .id;
        let leased = store
            .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(leased[0].id, sent);
        assert!(settle(&store, &leased[0], self::sent(Some("provider-9"))).await);
        let queued = store.enqueue(sms("queued"), None).await.unwrap().id;
        let recipients = vec![json!({ "to": "a@example.com" }), json!({ "to": "b@example.com" })];
        let mailing = store
            .create_mailing(
                NewMailing {
                    shared: json!({}),
                    recipients,
                },
                None,
            )
            .await
            .unwrap()
            .id;
        (sent, queued, mailing)
    };

    let store = open(&dir);

    let record = store
        .get(&sent)
        .await
        .unwrap()
        .expect("the sent message is still there");
    assert_eq!(
        (record.status, record.provider_id.as_deref()),
        (Status::Sent, Some("provider-9"))
    );
    assert_eq!(store.get(&queued).await.unwrap().unwrap().status, Status::Queued);
    let counts = store.mailing_counts(&mailing).await.unwrap().unwrap();
    assert_eq!((counts.total, counts.queued), (2, 2));
    let again = store.enqueue(sms("sent"), key("key-sent", "sent")).await.unwrap();
    assert_eq!(
        again,
        Enqueued {
            id: sent,
            created: false
        },
        "idempotency keys outlive a restart"
    );
    let leased = store
        .lease(Channel::Sms, 10, "w2", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(leased.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [queued]);
}

#[tokio::test]
async fn delivery_report_moves_sent_to_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = store.enqueue(sms("1"), None).await.unwrap().id;
    let second = store.enqueue(sms("2"), None).await.unwrap().id;
    let leased = store
        .lease(Channel::Sms, 2, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!([&leased[0].id, &leased[1].id], [&first, &second]);
    assert!(settle(&store, &leased[0], sent(Some("p-1"))).await);
    assert!(settle(&store, &leased[1], sent(Some("p-2"))).await);

    let delivered = store
        .record_delivery_report(report(Some("p-1"), None, DeliveryStatus::Delivered))
        .await;
    let undelivered = store.record_delivery_report(report(Some("p-2"), None, DeliveryStatus::Undelivered));

    assert_eq!(delivered.unwrap(), applied(&first));
    assert_eq!(undelivered.await.unwrap(), applied(&second));
    let record = store.get(&first).await.unwrap().unwrap();
    assert_eq!((record.status, record.error), (Status::Delivered, None));
    let record = store.get(&second).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error.as_deref()),
        (Status::Undelivered, Some("absent subscriber"))
    );
    assert_eq!(count(&store, "SELECT count(*) FROM held_reports"), 0);
}

/// Defect 4: a report that arrived before its send's outcome was recorded was dropped,
/// and the SMS stayed `sent` for ever.
#[tokio::test]
async fn a_report_before_the_send_is_recorded_is_held_and_applied_with_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store.enqueue(sms("1"), None).await.unwrap().id;
    let other = store.enqueue(sms("2"), None).await.unwrap().id;
    let leased = store
        .lease(Channel::Sms, 2, "w", Duration::from_secs(60))
        .await
        .unwrap();

    // By provider id (not stored yet), then by message id (still `sending`): both held.
    let by_provider = store
        .record_delivery_report(report(Some("p-1"), None, DeliveryStatus::Undelivered))
        .await
        .unwrap();
    let by_id = store
        .record_delivery_report(report(None, Some(&id), DeliveryStatus::Delivered))
        .await
        .unwrap();
    assert_eq!((by_provider, by_id), (ReportOutcome::Held, ReportOutcome::Held));
    assert_eq!(store.get(&id).await.unwrap().unwrap().status, Status::Sending);

    assert!(settle(&store, &leased[0], sent(Some("p-1"))).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error, record.provider_id.as_deref()),
        (Status::Delivered, None, Some("p-1")),
        "the newest held report applies with the outcome"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM held_reports"), 0);

    // The other SMS takes none of them.
    assert!(settle(&store, &leased[1], sent(Some("p-2"))).await);
    assert_eq!(store.get(&other).await.unwrap().unwrap().status, Status::Sent);
}

/// Defect 4: a report naming the gateway's own message id was matched only by provider id.
#[tokio::test]
async fn a_report_naming_the_message_id_is_matched_whatever_its_provider_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store.enqueue(sms("1"), None).await.unwrap().id;
    let leased = store
        .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(settle(&store, &leased[0], sent(Some("p-1"))).await);

    // A multipart SMS is reported part by part, under ids the send's answer never gave.
    let outcome = store
        .record_delivery_report(report(Some("p-1-part-2"), Some(&id), DeliveryStatus::Undelivered))
        .await
        .unwrap();
    assert_eq!(outcome, applied(&id));
    assert_eq!(store.get(&id).await.unwrap().unwrap().status, Status::Undelivered);

    // An e-mail's id is no SMS's: held (and purged in time), the e-mail unchanged.
    let mail = store.enqueue(email("hello"), None).await.unwrap().id;
    let outcome = store
        .record_delivery_report(report(None, Some(&mail), DeliveryStatus::Delivered))
        .await;
    assert!(matches!(outcome, Err(StoreError::Invalid(_))), "{outcome:?}");
    assert_eq!(store.get(&mail).await.unwrap().unwrap().status, Status::Queued);
}

#[tokio::test]
async fn a_stale_outcome_takes_no_held_report() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store.enqueue(sms("1"), None).await.unwrap().id;
    let first = store
        .lease(Channel::Sms, 1, "w", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = store
        .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
        .await
        .unwrap();
    store
        .record_delivery_report(report(None, Some(&id), DeliveryStatus::Delivered))
        .await
        .unwrap();

    assert!(!settle(&store, &first[0], sent(Some("p-old"))).await);
    assert_eq!(
        count(&store, "SELECT count(*) FROM held_reports"),
        1,
        "still held"
    );
    assert!(settle(&store, &second[0], sent(Some("p-new"))).await);
    assert_eq!(store.get(&id).await.unwrap().unwrap().status, Status::Delivered);
}

/// Defect 5: a key reused with another body, or on another endpoint, silently answered
/// with what the first request created.
#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = store.enqueue(sms("once"), key("k", "once")).await.unwrap();

    let other_body = store.enqueue(sms("twice"), key("k", "twice")).await;
    assert_eq!(
        other_body,
        Err(StoreError::IdempotencyKeyReused {
            endpoint: "POST /v1/sms".into(),
            same_endpoint: true
        })
    );
    let as_email = Some(Idempotency::new(
        "k".into(),
        "POST /v1/email",
        &json!({ "text": "once" }),
    ));
    let other_endpoint = store.enqueue(email("once"), as_email).await;
    assert_eq!(
        other_endpoint,
        Err(StoreError::IdempotencyKeyReused {
            endpoint: "POST /v1/sms".into(),
            same_endpoint: false
        })
    );
    let mailing = NewMailing {
        shared: json!({ "subject": "news" }),
        recipients: vec![json!({ "to": "a@example.com" })],
    };
    let as_mailing = Some(Idempotency::new(
        "k".into(),
        "POST /v1/mailings",
        &json!({ "text": "once" }),
    ));
    assert!(matches!(
        store.create_mailing(mailing, as_mailing).await,
        Err(StoreError::IdempotencyKeyReused { .. })
    ));

    let again = store.enqueue(sms("once"), key("k", "once")).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
    assert_eq!(count(&store, "SELECT count(*) FROM messages"), 1);
    assert_eq!(count(&store, "SELECT count(*) FROM mailings"), 0);
}

/// Keys stored before bodies were digested keep answering on their own endpoint.
#[tokio::test]
async fn keys_of_a_version_3_file_move_to_their_table_and_match_on_their_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("migrations/0002_base.sql"))
            .unwrap();
        conn.execute_batch(include_str!("migrations/0003_lease_tokens.sql"))
            .unwrap();
        conn.execute_batch(
            "INSERT INTO messages (id, channel, status, payload, due_at, idempotency_key, created_at, updated_at)
             VALUES ('m-1', 'sms', 'sent', '{}', 1, 'old-key', 1, 1);
             INSERT INTO mailings (id, payload, total, idempotency_key, created_at)
             VALUES ('l-1', '{}', 0, 'old-mailing', 1);
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let again = store
        .enqueue(sms("whatever"), key("old-key", "whatever"))
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), again.created), ("m-1", false));
    let as_email = Some(Idempotency::new("old-key".into(), "POST /v1/email", &json!({})));
    assert!(matches!(
        store.enqueue(email("x"), as_email).await,
        Err(StoreError::IdempotencyKeyReused {
            same_endpoint: false,
            ..
        })
    ));
    let mailing = NewMailing {
        shared: json!({}),
        recipients: vec![json!({ "to": "a@example.com" })],
    };
    let again = store
        .create_mailing(mailing, mailing_key("old-mailing"))
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), again.created), ("l-1", false));
}

/// Defect 6: nothing was ever purged.
#[tokio::test]
async fn finished_rows_older_than_the_retention_are_purged_in_batches_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut finished = Vec::new();
    for n in 0..5 {
        finished.push(
            store
                .enqueue(sms(&format!("{n}")), key(&format!("k{n}"), "x"))
                .await
                .unwrap()
                .id,
        );
    }
    let leased = store
        .lease(Channel::Sms, 5, "w", Duration::from_secs(60))
        .await
        .unwrap();
    for (n, lease) in leased.iter().enumerate() {
        let outcome = if n == 0 {
            failed("refused")
        } else {
            sent(Some(&format!("p-{n}")))
        };
        assert!(settle(&store, lease, outcome).await);
    }
    let sending = store.enqueue(sms("sending"), None).await.unwrap().id;
    store
        .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
        .await
        .unwrap();
    let queued = store.enqueue(sms("queued"), None).await.unwrap().id;
    let mailing = |n: usize| NewMailing {
        shared: json!({ "subject": "news" }),
        recipients: (0..n)
            .map(|i| json!({ "to": format!("r{i}@example.com") }))
            .collect(),
    };
    let done_mailing = store.create_mailing(mailing(3), None).await.unwrap().id;
    let emails = store
        .lease(Channel::Email, 3, "w", Duration::from_secs(60))
        .await
        .unwrap();
    for lease in &emails {
        assert!(settle(&store, lease, sent(None)).await);
    }
    let open_mailing = store.create_mailing(mailing(2), None).await.unwrap().id;
    let inbound = |n: u32, url: Option<&str>| NewInbound {
        module: "file".into(),
        sender: "+447911123456".into(),
        recipient: "+447700900000".into(),
        text: format!("reply {n}"),
        provider_id: format!("in-{n}"),
        forward_url: url.map(str::to_string),
    };
    store.store_inbound(inbound(1, None)).await.unwrap();
    let pending = store
        .store_inbound(inbound(2, Some("http://127.0.0.1:9/")))
        .await
        .unwrap()
        .id;
    store
        .record_delivery_report(report(Some("p-unknown"), None, DeliveryStatus::Delivered))
        .await
        .unwrap();

    // Nothing is older than an hour ago.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for kind in PurgeKind::ALL {
        assert_eq!(
            store.purge(kind, an_hour_ago, 2).await.unwrap(),
            Purged::default(),
            "{kind}"
        );
    }

    // Everything is older than a second from now: batches of 2 until none is left.
    let later = SystemTime::now() + Duration::from_secs(1);
    let mut purged = std::collections::HashMap::new();
    let mut writes = 0;
    for kind in PurgeKind::ALL {
        loop {
            let batch = store.purge(kind, later, 2).await.unwrap();
            writes += 1;
            assert!(batch.rows + batch.mailing_messages <= 2, "{kind}: {batch:?}");
            *purged.entry(kind).or_insert(0) += batch.rows;
            *purged.entry(PurgeKind::Messages).or_insert(0) += batch.mailing_messages;
            if !batch.more {
                break;
            }
        }
    }
    assert!(writes > PurgeKind::ALL.len(), "more than one batch");
    assert_eq!(
        purged[&PurgeKind::Messages],
        5 + 3,
        "five SMS and the finished mailing's three e-mails"
    );
    assert_eq!(purged[&PurgeKind::Mailings], 1);
    assert_eq!(purged[&PurgeKind::Inbound], 1);
    assert_eq!(purged[&PurgeKind::HeldReports], 1);
    assert_eq!(purged[&PurgeKind::IdempotencyKeys], 5);

    for id in &finished {
        assert_eq!(store.get(id).await.unwrap(), None);
    }
    assert_eq!(store.mailing_counts(&done_mailing).await.unwrap(), None);
    assert_eq!(
        store.get(&sending).await.unwrap().unwrap().status,
        Status::Sending
    );
    assert_eq!(store.get(&queued).await.unwrap().unwrap().status, Status::Queued);
    assert_eq!(
        store.mailing_counts(&open_mailing).await.unwrap().unwrap().queued,
        2
    );
    let left: Vec<_> = store.list_inbound(10, None).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [pending.as_str()]
    );
    assert_eq!(count(&store, "SELECT count(*) FROM held_reports"), 0);
    // A purged key is free again.
    assert!(store.enqueue(sms("0"), key("k0", "other")).await.unwrap().created);
}

/// Set for the child process of `an_acknowledged_enqueue_survives_kill_9`.
const CRASH_CHILD_DB: &str = "GATEWAY_STORE_CRASH_CHILD_DB";

/// Does nothing in a normal run. In the child process of
/// `an_acknowledged_enqueue_survives_kill_9` it enqueues without end, printing each id
/// once its enqueue has returned, until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_enqueues_until_killed() {
    let Some(path) = std::env::var_os(CRASH_CHILD_DB) else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(Path::new(&path)).unwrap());
    loop {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.enqueue(sms("crash"), None).await.unwrap().id })
            })
            .collect();
        for task in tasks {
            let id = task.await.unwrap();
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "acknowledged {id}").unwrap();
            stdout.flush().unwrap();
        }
    }
}

/// The contract's promise: once enqueue returns (the API's 202), a `kill -9` loses nothing.
#[test]
fn an_acknowledged_enqueue_survives_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::sqlite::tests::crash_child_enqueues_until_killed",
            "--nocapture",
        ])
        .env(CRASH_CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 300 {
        let line = lines.next().expect("the child prints until killed").unwrap();
        if let Some(id) = line.strip_prefix("acknowledged ") {
            acknowledged.push(id.to_owned());
        }
    }

    child.kill().unwrap(); // SIGKILL: no destructor, no clean close of the file
    child.wait().unwrap();
    // What the child printed before it died was acknowledged too.
    acknowledged.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|line| line.strip_prefix("acknowledged ").map(str::to_owned)),
    );

    let conn = Connection::open(&path).unwrap();
    let mut select = conn
        .prepare("SELECT count(*) FROM messages WHERE id = ?1 AND status = 'queued'")
        .unwrap();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| select.query_row([id], |row| row.get::<_, i64>(0)).unwrap() != 1)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages lost: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
}

#[test]
fn opening_an_unusable_path_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "").unwrap();
    let path = blocker.join("queue.db");

    let error = SqliteStore::open(&path).expect_err("a file stands where the directory should be");

    assert!(
        matches!(&error, StoreError::Open { store, .. } if *store == path.display().to_string()),
        "{error:?}"
    );
    assert!(error.to_string().contains(&path.display().to_string()), "{error}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();

    let error = SqliteStore::open(&path).expect_err("schema 99 is unknown");

    assert_eq!(
        error,
        StoreError::SchemaTooNew {
            store: path.display().to_string(),
            found: 99,
            supported: SCHEMA_VERSION
        }
    );
}

/// A queue file written by the first release (schema version 2, no lease tokens), with
/// a message queued and one leased when that gateway stopped, opens and works on.
#[tokio::test]
async fn a_version_2_file_is_migrated_and_its_messages_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("migrations/0002_base.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO messages (id, channel, status, payload, attempts, due_at, created_at, updated_at)
                 VALUES ('old-queued', 'sms', 'queued', '{}', 0, 0, 0, 0);
             INSERT INTO messages (id, channel, status, payload, attempts, due_at, lease_owner,
                                   lease_expires_at, created_at, updated_at)
                 VALUES ('old-leased', 'sms', 'sending', '{}', 1, 0, 'gateway-old', 9999999999999, 0, 0);",
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path).expect("a version 2 file opens");
    assert_eq!(count(&store, "PRAGMA user_version"), SCHEMA_VERSION);
    assert_eq!(store.expire_all_leases().await.unwrap(), 1);
    let mut leased = store
        .lease(Channel::Sms, 10, "gateway-new", Duration::from_secs(60))
        .await
        .unwrap();
    leased.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        leased
            .iter()
            .map(|l| (l.id.as_str(), l.attempts))
            .collect::<Vec<_>>(),
        [("old-leased", 2), ("old-queued", 1)]
    );
    let applied = store
        .settle(leased.iter().map(|l| l.settle(sent(None))).collect())
        .await
        .unwrap();
    assert_eq!(applied, [true, true]);
}

#[test]
fn the_file_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let conn = Connection::open(store.path()).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Regression guard for queue latency: leasing and releasing must walk the partial
/// indexes, never the whole table, or a lease slows down as the queue grows.
#[test]
fn leases_use_the_partial_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let conn = Connection::open(store.path()).unwrap();
    let plan = |sql: &str| -> String {
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = explain.query_map([], |row| row.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    };
    let lease_plan = plan(
        "SELECT id FROM messages WHERE channel = 'sms' AND status = 'queued' AND due_at <= 5 ORDER BY due_at LIMIT 3",
    );
    assert!(lease_plan.contains("messages_queued_due"), "{lease_plan}");
    assert!(!lease_plan.contains("TEMP B-TREE"), "{lease_plan}");
    let release_plan = plan(
        "SELECT id FROM messages WHERE channel IN ('sms', 'email') AND status = 'sending' AND lease_owner = 'w'",
    );
    assert!(release_plan.contains("messages_lease_expiry"), "{release_plan}");
}

/// A purge batch must walk an index of the rows it may delete, oldest first, and stop at
/// its limit: never scan or sort the tables it keeps rows of.
#[test]
fn purges_and_held_reports_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let conn = Connection::open(store.path()).unwrap();
    let plan = |sql: &str| -> String {
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = explain.query_map([], |row| row.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    };
    for (sql, index) in [
        (
            "SELECT id FROM messages WHERE mailing_id IS NULL AND status IN ('sent', 'failed', 'delivered', 'undelivered') \
             AND updated_at < 5 ORDER BY updated_at LIMIT 500",
            "messages_finished",
        ),
        (
            "SELECT id FROM inbound WHERE forward_status IN ('none', 'forwarded') AND received_at < 5 \
             ORDER BY received_at LIMIT 500",
            "inbound_finished",
        ),
        (
            "SELECT seq FROM held_reports WHERE received_at < 5 ORDER BY received_at LIMIT 500",
            "held_reports_received_at",
        ),
        (
            "SELECT key FROM idempotency_keys WHERE created_at < 5 ORDER BY created_at LIMIT 500",
            "idempotency_keys_created_at",
        ),
        (
            "SELECT id FROM mailings WHERE created_at < 5 AND NOT EXISTS (SELECT 1 FROM messages \
             WHERE mailing_id = mailings.id AND status IN ('queued', 'sending')) ORDER BY created_at LIMIT 1",
            "mailings_created_at",
        ),
        (
            "SELECT id FROM messages WHERE mailing_id = 'm' LIMIT 500",
            "messages_mailing_status",
        ),
    ] {
        let plan = plan(sql);
        assert!(plan.contains(index), "{sql}:\n{plan}");
        assert!(!plan.contains("SCAN messages\n") && !plan.ends_with("SCAN messages"), "{sql}:\n{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{sql}:\n{plan}");
    }
    // The reports held for one message are few: sorting them is fine, scanning all is not.
    let held = plan(
        "SELECT status, detail FROM held_reports WHERE message_id = 'm' OR (message_id IS NULL AND provider_id = 'p') \
         ORDER BY seq DESC LIMIT 1",
    );
    assert!(
        held.contains("held_reports_message_id") && held.contains("held_reports_provider_id"),
        "{held}"
    );
    let mailing_check = plan(
        "SELECT id FROM mailings WHERE created_at < 5 AND NOT EXISTS (SELECT 1 FROM messages \
         WHERE mailing_id = mailings.id AND status IN ('queued', 'sending')) ORDER BY created_at LIMIT 1",
    );
    assert!(
        mailing_check.contains("messages_mailing_status"),
        "{mailing_check}"
    );
}
