//! `POST /v1/sms` under load: accepted per second (202s) and delivered per second
//! (lines in the `file` module's output), p50/p99 latency and the gateway's peak RSS,
//! with 20 and 64 concurrent keep-alive clients, for one gateway on its durable SQLite
//! store, one on PostgreSQL, and three sharing one PostgreSQL (the load split evenly,
//! one ab per gateway); printed beside two references measured in the same run:
//!
//! - a bare HTTP handler (axum on hyper, in this process) that answers 202 without
//!   storing anything: the ceiling of the HTTP layer with this client on this machine;
//! - Kannel 1.4.5's sendsms with its durable spool store, and without a store, through
//!   `../shared/bench/kannel-peer.sh` (which installs and measures it).
//!
//! All load comes from ApacheBench (`ab -k`), the client the Kannel script uses.
//!
//! `cargo bench -p e2e --bench sms_throughput`
//! Environment: `N` (requests a run, default 10000), `REPS` (default 3),
//! `KANNEL=0` to skip Kannel, `SHARED` (default `../shared` beside the repository).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use e2e::{GatewayProcess, TestConfig, SEND_TOKEN};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one `ab` run reported.
#[derive(Debug, Clone, Default)]
struct AbRun {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
    non_2xx: u64,
}

fn ensure_ab() {
    if Command::new("ab").arg("-V").output().is_ok() {
        return;
    }
    eprintln!("installing apache2-utils for ab ...");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "apache2-utils"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("apt-get");
    assert!(status.success(), "cannot install apache2-utils (ab)");
}

fn run_ab(url: &str, body: &Path, n: usize, c: usize) -> AbRun {
    let output = Command::new("ab")
        .args(["-q", "-k", "-n", &n.to_string(), "-c", &c.to_string()])
        .args(["-T", "application/json", "-p"])
        .arg(body)
        .args(["-H", &format!("Authorization: Bearer {SEND_TOKEN}")])
        .arg(url)
        .output()
        .expect("run ab");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ab failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let percentile = |p: &str| -> f64 {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    AbRun {
        rps: field("Requests per second").unwrap_or(0.0),
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
        failed: field("Failed requests").unwrap_or(0.0) as u64,
        non_2xx: field("Non-2xx responses").unwrap_or(0.0) as u64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn line_count(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Row {
    name: String,
    accepted: f64,
    delivered: Option<f64>,
    p50: f64,
    p99: f64,
    rss_mb: Option<f64>,
}

/// Where the gateways under measure keep their queue.
#[derive(Debug, Clone, Copy)]
enum Fleet {
    /// One gateway on its embedded SQLite file.
    Sqlite,
    /// `n` gateways sharing one PostgreSQL database, the load spread evenly over them.
    Postgres(usize),
}

impl Fleet {
    fn gateways(self) -> usize {
        match self {
            Fleet::Sqlite => 1,
            Fleet::Postgres(n) => n,
        }
    }

    fn name(self) -> String {
        match self {
            Fleet::Sqlite => "gateway, SQLite durable".into(),
            Fleet::Postgres(1) => "gateway, PostgreSQL durable".into(),
            Fleet::Postgres(n) => format!("{n} gateways, one PostgreSQL"),
        }
    }
}

fn measure_gateway(
    runtime: &tokio::runtime::Runtime,
    fleet: Fleet,
    body: &Path,
    n: usize,
    c: usize,
    reps: usize,
) -> Row {
    let mut accepted = Vec::new();
    let mut delivered = Vec::new();
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut rss = 0;
    let per_gateway = n / fleet.gateways();
    for _ in 0..reps {
        let database = matches!(fleet, Fleet::Postgres(_)).then(e2e::postgres::database);
        let on_store = |config: TestConfig| match &database {
            Some(url) => config.with_storage_url(url),
            None => config,
        };
        let first = on_store(TestConfig::new("file", None, "", "[log]\nlevel = \"warn\""));
        let sms_file = first.sms_file();
        // Every gateway of a fleet appends to the first one's output file.
        let blob = serde_json::json!({ "path": sms_file }).to_string();
        let mut configs = vec![first];
        configs.extend((1..fleet.gateways()).map(|_| {
            on_store(TestConfig::new(
                "file",
                Some(&blob),
                "",
                "[log]\nlevel = \"warn\"",
            ))
        }));
        let gateways: Vec<GatewayProcess> = configs
            .iter()
            .map(|config| runtime.block_on(GatewayProcess::start(config)))
            .collect();
        let started = Instant::now();
        // One ab per gateway, at once, each with its share of the clients.
        let runs: Vec<AbRun> = std::thread::scope(|scope| {
            let handles: Vec<_> = gateways
                .iter()
                .map(|gateway| {
                    let url = format!("{}/v1/sms", gateway.url);
                    scope.spawn(move || run_ab(&url, body, per_gateway, (c / fleet.gateways()).max(1)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("ab thread"))
                .collect()
        });
        for run in &runs {
            assert_eq!(
                run.failed + run.non_2xx,
                0,
                "gateway: failed or non-2xx answers: {run:?}"
            );
        }
        let total = per_gateway * fleet.gateways();
        let deadline = Instant::now() + Duration::from_secs(120);
        while line_count(&sms_file) < total {
            assert!(
                Instant::now() < deadline,
                "only {} of {total} delivered",
                line_count(&sms_file)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let delivered_in = started.elapsed();
        for gateway in &gateways {
            rss = rss.max(peak_rss_kb(gateway.child.id()));
        }
        accepted.push(runs.iter().map(|r| r.rps).sum());
        delivered.push(total as f64 / delivered_in.as_secs_f64());
        p50.push(median(runs.iter().map(|r| r.p50_ms).collect()));
        p99.push(runs.iter().map(|r| r.p99_ms).fold(0.0, f64::max));
    }
    Row {
        name: format!("{} (c={c})", fleet.name()),
        accepted: median(accepted),
        delivered: Some(median(delivered)),
        p50: median(p50),
        p99: median(p99),
        rss_mb: Some(rss as f64 / 1024.0),
    }
}

fn measure_bare(runtime: &tokio::runtime::Runtime, body: &Path, n: usize, c: usize, reps: usize) -> Row {
    use axum::{routing::post, Router};
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/v1/sms", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/v1/sms",
        post(|_body: axum::body::Bytes| async { (axum::http::StatusCode::ACCEPTED, "{\"id\":\"x\"}") }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await });
    let runs: Vec<AbRun> = (0..reps).map(|_| run_ab(&url, body, n, c)).collect();
    Row {
        name: format!("bare 202 handler, no store (c={c})"),
        accepted: median(runs.iter().map(|r| r.rps).collect()),
        delivered: None,
        p50: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99: median(runs.iter().map(|r| r.p99_ms).collect()),
        rss_mb: None,
    }
}

fn measure_kannel(shared: &Path, store: &str, n: usize, c: usize, reps: usize) -> Option<Row> {
    let script = shared.join("bench/kannel-peer.sh");
    if !script.exists() {
        eprintln!("no {}: Kannel skipped", script.display());
        return None;
    }
    let output = Command::new("bash")
        .arg(&script)
        .env("N", n.to_string())
        .env("C", c.to_string())
        .env("REPS", reps.to_string())
        .env("STORE", store)
        .env("WRK_SECS", "0")
        .output()
        .expect("run kannel-peer.sh");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("MEDIAN ab:"))?;
    // MEDIAN ab: accepted X req/s, delivered Y msg/s, p50 A ms, p99 B ms
    let number_after = |word: &str| -> f64 {
        line.split(word)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.trim_end_matches(',').parse().ok())
            .unwrap_or(f64::NAN)
    };
    let rss_line = text.lines().find(|l| l.starts_with("RSS kB:"));
    let peak = rss_line
        .and_then(|l| l.rsplit('=').next())
        .and_then(|v| v.trim().parse::<f64>().ok());
    Some(Row {
        name: format!("Kannel 1.4.5 sendsms, store={store} (c={c})"),
        accepted: number_after("accepted "),
        delivered: Some(number_after("delivered ")),
        p50: number_after("p50 "),
        p99: number_after("p99 "),
        rss_mb: peak.map(|kb| kb / 1024.0),
    })
}

fn main() {
    let n = env_usize("N", 10_000);
    let reps = env_usize("REPS", 3);
    let shared = std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let kannel = std::env::var("KANNEL").map(|v| v != "0").unwrap_or(true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = e2e::build_dir();
    // PostgreSQL as production runs it: every commit flushed to disk, as SQLite's are.
    std::env::set_var("E2E_POSTGRES_FSYNC", "on");

    let mut rows = Vec::new();
    for c in [20, 64] {
        if kannel {
            // Runs first: the script installs ab (apache2-utils) with Kannel.
            rows.extend(measure_kannel(&shared, "spool", n, c, reps));
            rows.extend(measure_kannel(&shared, "none", n, c, reps));
        }
        ensure_ab();
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("sms.json");
        std::fs::write(
            &body,
            r#"{"to": "+447911123456", "text": "Your code is 123456", "sender": "ACME"}"#,
        )
        .unwrap();
        rows.push(measure_bare(&runtime, &body, n, c, reps));
        for fleet in [Fleet::Sqlite, Fleet::Postgres(1), Fleet::Postgres(3)] {
            rows.push(measure_gateway(&runtime, fleet, &body, n, c, reps));
        }
    }

    println!();
    println!("POST /v1/sms, N={n} a run, median of {reps} runs, ab -k; every figure from this run");
    println!(
        "{:<44} {:>12} {:>13} {:>8} {:>8} {:>9}",
        "case", "accepted/s", "delivered/s", "p50 ms", "p99 ms", "peak RSS"
    );
    for row in &rows {
        println!(
            "{:<44} {:>12.0} {:>13} {:>8.0} {:>8.0} {:>9}",
            row.name,
            row.accepted,
            row.delivered
                .map(|d| format!("{d:.0}"))
                .unwrap_or_else(|| "-".into()),
            row.p50,
            row.p99,
            row.rss_mb
                .map(|m| format!("{m:.1} MB"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    for c in [20, 64] {
        let find = |prefix: &str| {
            rows.iter()
                .find(|r| r.name.starts_with(prefix) && r.name.ends_with(&format!("(c={c})")))
        };
        if let (Some(ours), Some(kannel)) =
            (find("gateway, SQLite"), find("Kannel 1.4.5 sendsms, store=spool"))
        {
            println!(
                "c={c}: gateway / Kannel(spool): accepted {:.2}x, delivered {:.2}x, p99 {:.0} vs {:.0} ms, RSS {:.1} vs {:.1} MB",
                ours.accepted / kannel.accepted,
                ours.delivered.unwrap_or(0.0) / kannel.delivered.unwrap_or(f64::NAN),
                ours.p99,
                kannel.p99,
                ours.rss_mb.unwrap_or(0.0),
                kannel.rss_mb.unwrap_or(f64::NAN)
            );
        }
    }
}
