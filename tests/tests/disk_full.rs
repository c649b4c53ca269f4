//! A full disk under the queue store: the gateway stops taking work it cannot store, says
//! so on `/readyz`, and never sends an SMS twice because it could not write that the SMS
//! was sent.
//!
//! The store lives on a real tmpfs of a few megabytes, filled up by the test while SMS
//! are in flight at a real local HTTP server standing in for the provider. Mounting needs
//! root (as CI runs); elsewhere the test says it was skipped.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Bytes, http::StatusCode, response::IntoResponse};
use e2e::{Api, GatewayProcess, TestConfig, SEND_TOKEN};
use serde_json::json;
use tokio::sync::watch;

/// A tmpfs of `size` mounted on a new directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk refuses more; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let block = vec![0u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // Whatever is left below a block: fill it byte by byte.
        while file.write(&[0]).is_ok_and(|n| n == 1) {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A provider that holds every send until released, then accepts it; counts sends by text.
async fn holding_provider() -> (String, Arc<Mutex<HashMap<String, usize>>>, watch::Sender<bool>) {
    let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let (release, released) = watch::channel(false);
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let (log, mut released) = (log.clone(), released.clone());
        async move {
            let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
            let text = form.get("text").cloned().unwrap_or_default();
            *log.lock().unwrap().entry(text.clone()).or_default() += 1;
            let _ = released.wait_for(|released| *released).await;
            let answer = json!({ "message-count": "1", "messages": [{ "status": "0", "message-id": format!("P-{text}") }] });
            (StatusCode::OK, [("content-type", "application/json")], answer.to_string()).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen, release)
}

/// The latest lease expiry of the messages still `sending`, read from the file itself.
fn latest_lease_expiry(db: &Path) -> Option<Duration> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let ms: Option<i64> = conn
        .query_row(
            "SELECT max(lease_expires_at) FROM messages WHERE status = 'sending'",
            [],
            |row| row.get(0),
        )
        .ok()?;
    ms.map(|ms| Duration::from_millis(ms as u64))
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

/// Issue 9, defect 9: with the store on a full disk, an SMS the module had sent could not
/// have its outcome written; it stayed `sending`, and when its lease ran out it was sent
/// again (4 of 19 in one run). The outcome must be kept and written again until it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_sent_while_the_disk_is_full_is_not_sent_again_when_its_lease_runs_out() {
    let Some(disk) = SmallDisk::mount("16m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let (url, seen, release) = holding_provider().await;
    let blob = include_str!("../../plugins/http/blobs/vonage.json")
        .replace("https://rest.nexmo.com", &url)
        .replace('\n', " ");
    let mut config = TestConfig::new(
        "http",
        Some(&blob),
        "call_timeout_ms = 200\nhttp_timeout_ms = 3000",
        "",
    );
    let db = disk.path().join("gateway.db");
    let default_db = config.dir.path().join("gateway.db");
    config.toml = config
        .toml
        .replace(&default_db.display().to_string(), &db.display().to_string());
    let gateway = GatewayProcess::start(&config).await;
    let api = Api::new(&gateway.url);

    const COUNT: usize = 19;
    let mut ids = Vec::new();
    for n in 0..COUNT {
        let (status, body) = api
            .post(
                "/v1/sms",
                SEND_TOKEN,
                &json!({ "to": "+447911123456", "text": format!("sms-{n}") }),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    wait_for("every SMS to reach the provider", Duration::from_secs(30), || {
        seen.lock().unwrap().len() == COUNT
    })
    .await;

    let filler = disk.fill();
    release.send(true).unwrap();

    // The outcomes cannot be written: the gateway says it is not ready, and refuses new
    // work with a 503 a client can retry after.
    let client = reqwest::Client::new();
    let mut ready = None;
    for _ in 0..200 {
        let response = client
            .get(format!("{}/readyz", gateway.url))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            ready = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let not_ready = ready.unwrap_or_else(|| panic!("/readyz never said 503; log:\n{}", gateway.log_text()));
    assert!(not_ready.headers().contains_key("retry-after"));
    let refused = client
        .post(format!("{}/v1/sms", gateway.url))
        .bearer_auth(SEND_TOKEN)
        .header("content-type", "application/json")
        .body(json!({ "to": "+447911123456", "text": "while full" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let health = client
        .get(format!("{}/healthz", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the process itself is alive");

    // Keep the disk full until every lease taken for these SMS has run out: that is when
    // the old gateway sent them again.
    let expiry = latest_lease_expiry(&db).expect("the SMS are still `sending`, leased");
    let wait = expiry.saturating_sub(unix_now()) + Duration::from_secs(3);
    assert!(wait < Duration::from_secs(180), "leases of {wait:?}");
    tokio::time::sleep(wait).await;
    assert_eq!(
        seen.lock().unwrap().values().sum::<usize>(),
        COUNT,
        "nothing was sent again while the disk was full"
    );

    std::fs::remove_file(filler).unwrap();
    for id in &ids {
        let record = api.wait_status(id, &["sent", "failed"]).await;
        assert_eq!(record["status"], "sent", "{record}");
        assert_eq!(record["attempts"], 1, "{record}");
    }
    let sends = seen.lock().unwrap().clone();
    assert_eq!(sends.len(), COUNT);
    assert!(
        sends.values().all(|&n| n == 1),
        "an SMS was sent twice: {sends:?}"
    );
    let ready = client
        .get(format!("{}/readyz", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let log = gateway.log_text();
    assert!(
        log.contains("outcomes could not be written")
            || log.contains("rolled back")
            || log.contains("not committed"),
        "the log says why: {log}"
    );
}

async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
