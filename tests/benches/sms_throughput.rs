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
//! Environment: `N` (requests a run, default 10000), `REPS` (default 3), `C`
//! (concurrency levels, default `20,64`), `KANNEL=0` to skip Kannel, `SHARED` (default
//! `../shared` beside the repository).

mod load;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use e2e::{GatewayProcess, TestConfig};
use load::{ensure_ab, env_usize, median, peak_rss_kb, run_ab, wait_count, AbRun, Row};

fn line_count(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
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
        let done = wait_count(|| line_count(&sms_file), total as u64, Duration::from_secs(120));
        assert!(
            done.is_some(),
            "only {} of {total} delivered",
            line_count(&sms_file)
        );
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
    load::kannel(
        &shared.join("bench/kannel-peer.sh"),
        format!("Kannel 1.4.5 sendsms, store={store} (c={c})"),
        &[("STORE", store.to_string())],
        n,
        c,
        reps,
    )
}

fn main() {
    let n = env_usize("N", 10_000);
    let reps = env_usize("REPS", 3);
    let shared = std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let levels = load::concurrencies();
    let kannel = std::env::var("KANNEL").map(|v| v != "0").unwrap_or(true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = e2e::build_dir();
    // PostgreSQL as production runs it: every commit flushed to disk, as SQLite's are.
    std::env::set_var("E2E_POSTGRES_FSYNC", "on");

    let mut rows = Vec::new();
    for &c in &levels {
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

    load::print_rows(
        &format!("POST /v1/sms, N={n} a run, median of {reps} runs, ab -k; every figure from this run"),
        &rows,
    );
    for &c in &levels {
        let find = |prefix: &str| {
            rows.iter()
                .find(|r| r.name.starts_with(prefix) && r.name.ends_with(&format!("(c={c})")))
        };
        if let (Some(ours), Some(kannel)) =
            (find("gateway, SQLite"), find("Kannel 1.4.5 sendsms, store=spool"))
        {
            load::print_ratio(&format!("c={c}: gateway / Kannel(spool)"), ours, kannel);
        }
    }
}
