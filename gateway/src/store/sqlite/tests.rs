//! What only concerns SQLite's file: group commit, the writer's batches, migrating
//! files of older versions, refusing newer ones, WAL mode, the query plans, and what a
//! `kill -9` leaves on disk.
//!
//! The store's behaviour through the `Store` trait (leases, outcomes, idempotency,
//! mailings, delivery reports, inbound SMS, retention) is one suite for SQLite and
//! PostgreSQL alike: `tests/tests/store/` in the e2e crate.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;

use super::schema::{configure_writer, migrate, SCHEMA_VERSION};
use super::writer::apply_batch;
use super::*;
use crate::store::{Outcome, Texts};

fn sent(provider_id: Option<&str>) -> Outcome {
    Outcome::Sent {
        provider_id: provider_id.map(str::to_owned),
    }
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

/// Asks the file itself, the way an operator with the sqlite3 shell would.
fn count(store: &SqliteStore, sql: &str) -> i64 {
    let conn = Connection::open(store.path()).expect("open the file");
    conn.query_row(sql, [], |row| row.get(0)).expect("count")
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

/// The writer's connection to a new, migrated queue file in `dir`.
fn writer_connection(dir: &std::path::Path) -> Connection {
    let path = dir.join("queue.db");
    let mut conn = Connection::open(&path).unwrap();
    configure_writer(&conn).unwrap();
    migrate(&mut conn, &path).unwrap();
    conn
}

/// Feeds the writer one batch by hand, so that what shares a transaction is certain.
#[test]
fn one_batch_survives_a_failing_request_and_dedups_a_repeated_key() {
    let dir = tempfile::tempdir().unwrap();
    let conn = writer_connection(dir.path());
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

/// A lease needs no new page where an outcome needs one: on a full disk it could commit
/// in the batch where the outcome of its message failed, and send that message again.
/// Once a write that must land fails, the rest of its batch is refused unapplied.
#[test]
fn writes_after_an_outcome_that_could_not_be_written_are_refused_unapplied() {
    let dir = tempfile::tempdir().unwrap();
    let conn = writer_connection(dir.path());
    let (outcome_reply, mut outcome) = oneshot::channel::<Result<(), StoreError>>();
    let full_disk = |_: &Connection, _now| -> Result<(), StoreError> {
        Err(StoreError::Database {
            operation: "settle",
            cause: "database or disk is full".into(),
        })
    };
    let (other_reply, mut other) = oneshot::channel();
    let row = MessageRow {
        channel: Channel::Sms,
        payload: "{}".into(),
        mailing_id: None,
    };
    let insert = move |conn: &Connection, now| messages::insert_message(conn, &row, None, now);
    let batch = vec![
        Write::new(full_disk, outcome_reply, true),
        Write::new(insert, other_reply, false),
    ];

    let kept = apply_batch(&conn, batch, &WriterState::default());
    assert_eq!(kept.len(), 1, "the outcome is kept to be written again");
    assert!(outcome.try_recv().is_err(), "its caller waits");
    assert!(
        matches!(other.try_recv().unwrap(), Err(StoreError::Database { .. })),
        "the other write is refused"
    );
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0, "and was not applied");
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
        recipients: [json!({ "to": "a@example.com" }).to_string()]
            .into_iter()
            .collect(),
        addresses: Texts::default(),
    };
    let again = store
        .create_mailing(mailing, mailing_key("old-mailing"))
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), again.created), ("l-1", false));
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
