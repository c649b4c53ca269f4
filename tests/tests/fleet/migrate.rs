//! `gateway store migrate --to postgres://…`: an operator moves a stopped gateway's
//! SQLite queue (queued, leased and finished messages) into an empty PostgreSQL
//! database, then starts a gateway on it, which delivers what was waiting.

use std::{collections::HashMap, process::Command, time::Duration};

use e2e::{gateway_bin, smtp::SmtpServer, Api, GatewayProcess, TestConfig, SEND_TOKEN};
use serde_json::{json, Value};

use crate::record::copies;
use crate::setup::{one_at_a_time, post_mailing, recipients};

/// The password in the database URL given to `migrate`, which no output may show.
/// (The test server trusts loopback connections, so it accepts any password.)
const PASSWORD: &str = "pg-secret-3f9a";

/// Recipients of the mailing queued before the move: with 5 / 1, one connection of
/// five stalls, five more wait leased for the next connection, the rest stay queued.
const MAILING: usize = 12;

/// `gateway --config CONFIG store migrate --to URL`: its exit status, stdout and stderr.
fn migrate(config: &TestConfig, to: &str) -> (bool, String, String) {
    let output = Command::new(gateway_bin())
        .arg("--config")
        .arg(config.dir.path().join("gateway.toml"))
        .args(["store", "migrate", "--to", to])
        .env_remove("RUST_LOG")
        .output()
        .expect("run gateway store migrate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// POSTs one e-mail with an idempotency key; returns the status and body.
async fn post_email(api: &Api, key: &str) -> (u16, Value) {
    let body = json!({ "to": ["single@example.org"], "subject": "Invoice", "text": "Attached" });
    let response = api
        .client
        .post(format!("{}/v1/email", api.url))
        .bearer_auth(SEND_TOKEN)
        .header("content-type", "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), e2e::json_body(response).await)
}

/// Each message's status and attempts in a SQLite queue, read as an operator would.
fn sqlite_statuses(config: &TestConfig) -> HashMap<String, (String, i64)> {
    let db = rusqlite::Connection::open(config.sqlite_file()).expect("open the SQLite queue");
    let mut select = db.prepare("SELECT id, status, attempts FROM messages").unwrap();
    let rows = select
        .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_queue_moved_to_postgres_is_delivered_by_a_gateway_there() {
    let _turn = one_at_a_time().await;
    // A mail server that takes the connection and never greets: the batch on it stays
    // leased (`sending`) for as long as the test runs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let email = format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {silent_port}\nmax_per_connection = 5\nsmtp_threads = 1\n\
         default_from = \"Shop <shop@example.com>\"\ncommand_timeout_ms = 60000\n"
    );
    let before = TestConfig::new("file", None, "", &email);
    let gateway = GatewayProcess::start(&before).await;
    let api = Api::new(&gateway.url);

    let mut sms = Vec::new();
    for n in 0..3 {
        let (status, body) = api
            .post(
                "/v1/sms",
                SEND_TOKEN,
                &json!({ "to": "+447911123456", "text": format!("sms {n}") }),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        api.wait_status(&id, &["sent"]).await;
        sms.push(id);
    }
    let mailing = post_mailing(&api, &recipients(MAILING)).await;
    let (status, single) = post_email(&api, "invoice-42").await;
    assert_eq!(status, 202, "{single}");
    let single = single["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let (_, counts) = api.get(&format!("/v1/mailings/{mailing}"), SEND_TOKEN).await;
        if counts["sending"] == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Killed, not stopped: a graceful stop would give the leases back first.
    gateway.signal(libc::SIGKILL);
    assert!(!gateway.wait().success());

    let stored = sqlite_statuses(&before);
    let count = |status: &str| stored.values().filter(|(s, _)| s == status).count();
    assert_eq!(
        (count("sent"), count("sending"), count("queued")),
        (3, 10, MAILING - 10 + 1),
        "the SQLite queue before the move: {stored:?}"
    );

    let database = e2e::postgres::database();
    let to = database.replacen("gateway@", &format!("gateway:{PASSWORD}@"), 1);
    let (ok, moved, stderr) = migrate(&before, &to);
    assert!(ok, "migrate failed: {moved}{stderr}");
    assert!(moved.contains("16 messages, 1 mailings"), "{moved}");
    assert!(!format!("{moved}{stderr}").contains(PASSWORD), "{moved}{stderr}");

    // A second move into the same database is refused, naming it without the password.
    let (ok, stdout, refused) = migrate(&before, &to);
    assert!(!ok, "a second migrate into a queue succeeded: {stdout}");
    assert!(
        refused.contains(&format!("the database {database} already holds a queue")),
        "{refused}"
    );
    assert!(!refused.contains(PASSWORD), "the password shown: {refused}");
    eprintln!("the first move: {moved}the second, refused: {refused}");

    // A gateway on the new database, with a mail server that answers, sends the lot.
    let server = SmtpServer::builder().pipelining().start();
    let email = crate::setup::email_section(server.port, 5);
    let after = TestConfig::new("file", None, "", &email).with_storage_url(&to);
    let gateway = GatewayProcess::start(&after).await;
    let api = Api::new(&gateway.url);
    let counts = api.wait_mailing(&mailing, Duration::from_secs(30)).await;
    assert_eq!(counts["sent"], MAILING, "{counts}");
    api.wait_status(&single, &["sent"]).await;
    let events = server.wait_sessions_closed(1);
    let copies = copies(&events);
    assert_eq!(copies.len(), MAILING + 1, "{copies:?}");
    assert!(copies.values().all(|n| *n == 1), "each once: {copies:?}");

    // Each message tells its story: the leased ones counted the attempt they were
    // leased for, the finished SMS answer as they did.
    for (id, (status, attempts)) in &stored {
        let (code, message) = api.get(&format!("/v1/messages/{id}"), SEND_TOKEN).await;
        assert_eq!(code, 200, "{message}");
        assert_eq!(message["status"], "sent", "{message}");
        let expected = match status.as_str() {
            "sent" => *attempts,
            _ => attempts + 1,
        };
        assert_eq!(
            message["attempts"], expected,
            "{status} before the move: {message}"
        );
    }
    for id in &sms {
        let (_, message) = api.get(&format!("/v1/messages/{id}"), SEND_TOKEN).await;
        assert_eq!(message["provider_id"], format!("file-{id}"), "{message}");
    }
    // The idempotency key came along: the same request is the same e-mail.
    let (status, again) = post_email(&api, "invoice-42").await;
    assert!(status == 200 || status == 202, "{status} {again}");
    assert_eq!(again["id"], single.as_str(), "{again}");
    drop(silent);
}
