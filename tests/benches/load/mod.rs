//! What the SMS benchmarks share (`sms_throughput`, `smpp_throughput`): the load
//! (ApacheBench, `ab -k`, the client `../shared/bench/kannel-peer.sh` uses too), its
//! figures, Kannel measured by that script, and the printed table.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use e2e::SEND_TOKEN;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The concurrency levels to measure: `C` (for example `C=64` or `C=20,64`), else both.
pub fn concurrencies() -> Vec<usize> {
    std::env::var("C")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .filter(|levels: &Vec<usize>| !levels.is_empty())
        .unwrap_or_else(|| vec![20, 64])
}

/// What one `ab` run reported.
#[derive(Debug, Clone, Default)]
pub struct AbRun {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed: u64,
    pub non_2xx: u64,
}

pub fn ensure_ab() {
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

/// `n` POSTs of the JSON in `body` to `url`, `c` at a time, on keep-alive connections.
pub fn run_ab(url: &str, body: &Path, n: usize, c: usize) -> AbRun {
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

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The most memory process `pid` has held (VmHWM), in kB.
pub fn peak_rss_kb(pid: u32) -> u64 {
    e2e::proc_status_kb(pid, "VmHWM:")
}

/// Polls `count` until it reaches `target`, within `limit`; when it did, or `None`.
pub fn wait_count(mut count: impl FnMut() -> u64, target: u64, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if count() >= target {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One line of the table.
pub struct Row {
    pub name: String,
    pub accepted: f64,
    pub delivered: Option<f64>,
    pub p50: f64,
    pub p99: f64,
    pub rss_mb: Option<f64>,
}

/// Kannel 1.4.5 measured by `script` (`../shared/bench/kannel-peer.sh`) with `env`
/// (`STORE`, `SMSC`, ...) on free loopback ports; `None` when the script is missing or
/// printed no figures.
pub fn kannel(
    script: &Path,
    name: String,
    env: &[(&str, String)],
    n: usize,
    c: usize,
    reps: usize,
) -> Option<Row> {
    if !script.exists() {
        eprintln!("no {}: Kannel skipped", script.display());
        return None;
    }
    let mut command = Command::new("bash");
    command
        .arg(script)
        .env("N", n.to_string())
        .env("C", c.to_string())
        .env("REPS", reps.to_string())
        .env("WRK_SECS", "0");
    for port in ["ADMIN_PORT", "BOX_PORT", "SENDSMS_PORT", "SMSC_PORT"] {
        command.env(port, e2e::free_port().to_string());
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run kannel-peer.sh");
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(line) = text.lines().find(|l| l.starts_with("MEDIAN ab:")) else {
        eprintln!(
            "{name}: no figures from {}:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    };
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
        name,
        accepted: number_after("accepted "),
        delivered: Some(number_after("delivered ")),
        p50: number_after("p50 "),
        p99: number_after("p99 "),
        rss_mb: peak.map(|kb| kb / 1024.0),
    })
}

/// Prints `rows` under `title`.
pub fn print_rows(title: &str, rows: &[Row]) {
    println!();
    println!("{title}");
    println!(
        "{:<48} {:>12} {:>13} {:>8} {:>8} {:>9}",
        "case", "accepted/s", "delivered/s", "p50 ms", "p99 ms", "peak RSS"
    );
    for row in rows {
        println!(
            "{:<48} {:>12.0} {:>13} {:>8.0} {:>8.0} {:>9}",
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
}

/// `ours / theirs` for every figure, on one line.
pub fn print_ratio(label: &str, ours: &Row, theirs: &Row) {
    println!(
        "{label}: accepted {:.2}x, delivered {:.2}x, p99 {:.0} vs {:.0} ms, RSS {:.1} vs {:.1} MB",
        ours.accepted / theirs.accepted,
        ours.delivered.unwrap_or(0.0) / theirs.delivered.unwrap_or(f64::NAN),
        ours.p99,
        theirs.p99,
        ours.rss_mb.unwrap_or(0.0),
        theirs.rss_mb.unwrap_or(f64::NAN)
    );
}
