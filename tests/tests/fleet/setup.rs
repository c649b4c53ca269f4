//! A fleet for the tests: `gateway serve` processes on one PostgreSQL database, with the
//! same shared settings (one mail server, the same limits, one SMS file), as an operator
//! runs them behind a load balancer.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use e2e::{Api, GatewayProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

/// `storage.dead_after` of every fleet here: short, so that a killed gateway is buried
/// within seconds. Gateways beat every third of it.
pub const DEAD_AFTER: Duration = Duration::from_secs(3);

/// How often each gateway beats: `storage.dead_after / 3`.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// E-mails per connection at 100 / 5 (contract, section 2).
pub const BATCH: usize = 20;

/// The fleet tests start three gateways and an SMTP server each, and assert on timing
/// (sessions at once, a burial within seconds): run side by side on two cores they
/// would starve each other, so they take turns. (A test that fails gives up its turn
/// as it unwinds; tokio's mutex is not poisoned.)
pub async fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::const_new(());
    TURN.lock().await
}

/// The `[email]` section for the SMTP server on `port` with `max_per_connection = 100`
/// and `smtp_threads`, quick retries, and timeouts long enough for a busy machine.
pub fn email_section(port: u16, smtp_threads: u32) -> String {
    format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {port}\nmax_per_connection = 100\nsmtp_threads = {smtp_threads}\n\
         default_from = \"Shop <shop@example.com>\"\nretry_base_ms = 20\nretry_max_ms = 200\n\
         max_attempts = 50\ncommand_timeout_ms = 10000\n"
    )
}

/// One gateway of the fleet.
pub struct Member {
    /// Its settings (its own directory, `gateway.toml` and log).
    pub config: TestConfig,
    pub process: GatewayProcess,
    pub api: Api,
    /// Its id in the fleet: what its heartbeat, leases and slots are held under.
    pub id: String,
}

impl Member {
    /// `GET /v1/admin/settings`.
    pub async fn settings(&self) -> Value {
        let (status, body) = self.api.get("/v1/admin/settings", ADMIN_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The ids of the peers its last heartbeat saw (`fleet.peers`).
    pub async fn peers(&self) -> Vec<String> {
        let settings = self.settings().await;
        settings["fleet"]["peers"]
            .as_array()
            .map(|peers| {
                peers
                    .iter()
                    .map(|peer| peer["gateway"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many messages of `channel` it reports sent in `/metrics`
    /// (`gateway_messages_sent_total`).
    pub async fn sent(&self, channel: &str) -> u64 {
        metric(
            &self.api.metrics().await,
            "gateway_messages_sent_total",
            &[("channel", channel)],
        ) as u64
    }

    /// Its `gateway.toml` as written at start (with its port).
    pub fn settings_file(&self) -> PathBuf {
        self.config.dir.path().join("gateway.toml")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.process.log_text()
    }
}

/// Gateways on one database, formed: each has seen all the others' heartbeats.
pub struct Fleet {
    pub database: String,
    pub members: Vec<Member>,
    /// Holds the SMS file every gateway appends to.
    shared: tempfile::TempDir,
}

impl Fleet {
    /// Starts `n` gateways on a fresh database with the `[email]` section `email`, the
    /// `file` SMS module writing to one shared file, and `storage.dead_after` of
    /// [`DEAD_AFTER`]; returns once every one lists the others as its peers.
    pub async fn start(n: usize, email: &str) -> Fleet {
        let mut fleet = Fleet {
            database: e2e::postgres::database(),
            members: Vec::new(),
            shared: tempfile::tempdir().expect("a temporary directory"),
        };
        let blob = json!({ "path": fleet.sms_file() }).to_string();
        for _ in 0..n {
            let config = TestConfig::new("file", Some(&blob), "", email)
                .with_storage_url(&fleet.database)
                .with_storage_lines(&format!("dead_after = \"{}s\"", DEAD_AFTER.as_secs()));
            let process = GatewayProcess::start(&config).await;
            let api = Api::new(&process.url);
            fleet.members.push(Member {
                config,
                process,
                api,
                id: String::new(),
            });
        }
        fleet.wait_formed().await;
        for member in &mut fleet.members {
            member.id = member.settings().await["fleet"]["gateway"]
                .as_str()
                .expect("a gateway on PostgreSQL shows its fleet id")
                .to_owned();
        }
        fleet
    }

    /// Waits until every member lists every other as a peer; panics with their logs
    /// after 10 heartbeats.
    async fn wait_formed(&self) {
        let started = Instant::now();
        loop {
            let mut formed = true;
            for member in &self.members {
                formed &= member.peers().await.len() == self.members.len() - 1;
            }
            if formed {
                return;
            }
            assert!(
                started.elapsed() < HEARTBEAT * 10,
                "the fleet never formed; the logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The SMS file every member's `file` module appends to.
    pub fn sms_file(&self) -> PathBuf {
        self.shared.path().join("sms.jsonl")
    }

    /// The first member's API.
    pub fn api(&self) -> &Api {
        &self.members[0].api
    }

    /// Every member's log, headed by its id.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|member| format!("--- {} ({})\n{}", member.id, member.process.url, member.log()))
            .collect()
    }
}

/// The sum of the samples of `name` with these labels in a Prometheus text scrape.
pub fn metric(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = scrape.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("/metrics is Prometheus text");
    e2e::metric_value(&scrape, name, labels)
}

/// POSTs a mailing to `recipients` on `api`; returns its id.
pub async fn post_mailing(api: &Api, recipients: &[String]) -> String {
    let (status, body) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({ "subject": "News", "text": "Hello", "recipients": recipients }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().expect("a mailing id").to_owned()
}

/// `n` distinct recipients, `user0@example.org` on.
pub fn recipients(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i}@example.org")).collect()
}

/// Rewrites `path` with `from` replaced by `to` (once; it must be there).
pub fn rewrite(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
