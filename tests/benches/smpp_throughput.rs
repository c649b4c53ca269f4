//! `POST /v1/sms` through the `smpp` module to an SMSC, beside Kannel 1.4.5 with
//! `smsc = smpp` to the same SMSC: accepted per second (ab's 202s), delivered per
//! second (submits counted at the SMSC, from ab's start to the last one), p50/p99
//! latency and peak RSS, with 20 and 64 concurrent keep-alive clients, median of
//! `REPS` runs; printed with the ratios.
//!
//! The SMSC is `tests/smpp/smsc-sim`: a counting SMPP 3.4 server on the smpp34 crate's
//! engine (a copy of `../shared/bench/smsc-sim`, so that a clean clone builds it),
//! built here with cargo. Both sides bind once, as a transceiver, with a window of 10
//! pending submits, and nobody asks for receipts:
//!
//! - the gateway on its durable SQLite store, the `smpp` module with `binds = 1`,
//!   `window = 10`;
//! - Kannel through `../shared/bench/kannel-peer.sh` with `SMSC=smpp` (`WINDOW=10`,
//!   `transceiver-mode`), run beside a symbolic link to this repository's SMSC, so
//!   that it builds and binds to the same program; its message store `spool`, then
//!   `none`;
//! - the SMSC alone, with a bare client in this process that binds and keeps 10
//!   submits pending (then 100): how fast the SMSC itself goes, to tell whether it is
//!   what limits both.
//!
//! `cargo bench -p e2e --bench smpp_throughput`
//! Environment: `N` (requests a run, default 10000), `REPS` (default 3), `C`
//! (concurrency levels, default `20,64`), `KANNEL=0` to skip Kannel, `SHARED` (default
//! `../shared` beside the repository).

mod load;

use std::{
    io::{BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use e2e::{GatewayProcess, TestConfig};
use load::{ensure_ab, env_usize, median, peak_rss_kb, run_ab, wait_count, Row};

/// Pending submits per bind, on both sides.
const WINDOW: usize = 10;

/// The SMSC's source, in this repository.
fn smsc_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("smpp/smsc-sim")
}

/// Where the SMSC is built: beside the benchmark's own build.
fn smsc_target() -> PathBuf {
    e2e::build_dir()
        .parent()
        .expect("target/<profile>")
        .join("smsc-sim")
}

/// Builds the SMSC (once; cargo keeps it) and returns its binary.
fn build_smsc() -> PathBuf {
    let status = e2e::cargo()
        .args(["build", "--release", "--locked", "--quiet", "--manifest-path"])
        .arg(smsc_source().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", smsc_target())
        .status()
        .expect("run cargo build for smsc-sim");
    assert!(status.success(), "cannot build tests/smpp/smsc-sim");
    smsc_target().join("release/smsc-sim")
}

/// A running SMSC and the count of submits it has accepted.
struct Smsc {
    child: Child,
    port: u16,
    count_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Smsc {
    fn start(binary: &Path) -> Smsc {
        let dir = tempfile::tempdir().unwrap();
        let port = e2e::free_port();
        let count_file = dir.path().join("smsc.count");
        let child = Command::new(binary)
            .arg(port.to_string())
            .arg(&count_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smsc-sim");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "smsc-sim never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Smsc {
            child,
            port,
            count_file,
            _dir: dir,
        }
    }

    /// Submits accepted so far (the SMSC writes it every 50 ms).
    fn count(&self) -> u64 {
        std::fs::read_to_string(&self.count_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn measure_gateway(
    runtime: &tokio::runtime::Runtime,
    smsc_binary: &Path,
    body: &Path,
    n: usize,
    c: usize,
    reps: usize,
) -> Row {
    let (mut accepted, mut delivered, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rss = 0;
    for _ in 0..reps {
        let smsc = Smsc::start(smsc_binary);
        let blob = serde_json::json!({
            "host": "127.0.0.1", "port": smsc.port, "system_id": "gateway", "password": "bench",
            "bind": "transceiver", "binds": 1, "window": WINDOW, "delivery_reports": false,
        });
        let config = TestConfig::new("smpp", Some(&blob.to_string()), "", "[log]\nlevel = \"warn\"");
        let gateway = runtime.block_on(GatewayProcess::start(&config));
        let url = format!("{}/v1/sms", gateway.url);
        // As kannel-peer.sh does: 500 first, delivered, before the measured run.
        run_ab(&url, body, 500, 10);
        let warm = wait_count(|| smsc.count(), 500, Duration::from_secs(60));
        assert!(
            warm.is_some(),
            "warm-up: only {} of 500 reached the SMSC",
            smsc.count()
        );
        let before = smsc.count();
        let started = Instant::now();
        let run = run_ab(&url, body, n, c);
        assert_eq!(run.failed + run.non_2xx, 0, "failed or non-2xx answers: {run:?}");
        let done = wait_count(|| smsc.count(), before + n as u64, Duration::from_secs(120));
        let Some(done) = done else {
            panic!("only {} of {n} reached the SMSC", smsc.count() - before);
        };
        rss = rss.max(peak_rss_kb(gateway.child.id()));
        accepted.push(run.rps);
        delivered.push(n as f64 / done.duration_since(started).as_secs_f64());
        p50.push(run.p50_ms);
        p99.push(run.p99_ms);
    }
    Row {
        name: format!("gateway, SQLite durable, smpp (c={c})"),
        accepted: median(accepted),
        delivered: Some(median(delivered)),
        p50: median(p50),
        p99: median(p99),
        rss_mb: Some(rss as f64 / 1024.0),
    }
}

/// Kannel with `smsc = smpp` bound to this repository's SMSC: the shared script is run
/// from a directory where `smsc-sim` is a link to `tests/smpp/smsc-sim`.
fn measure_kannel(shared: &Path, store: &str, n: usize, c: usize, reps: usize) -> Option<Row> {
    let script = shared.join("bench/kannel-peer.sh");
    let beside = tempfile::tempdir().unwrap();
    let linked = beside.path().join("kannel-peer.sh");
    std::os::unix::fs::symlink(&script, &linked).unwrap();
    std::os::unix::fs::symlink(smsc_source(), beside.path().join("smsc-sim")).unwrap();
    load::kannel(
        if script.exists() { &linked } else { &script },
        format!("Kannel 1.4.5 smpp, store={store} (c={c})"),
        &[
            ("SMSC", "smpp".to_string()),
            ("STORE", store.to_string()),
            ("WINDOW", WINDOW.to_string()),
            ("SMSC_SIM_TARGET", smsc_target().display().to_string()),
        ],
        n,
        c,
        reps,
    )
}

/// The SMSC alone: a bare client binds as a transceiver and keeps `window` submits
/// pending until `n` are answered. Submits a second, median of `reps`.
fn measure_smsc_alone(smsc_binary: &Path, n: usize, window: usize, reps: usize) -> Row {
    let rates = (0..reps)
        .map(|_| {
            let smsc = Smsc::start(smsc_binary);
            bare_client(smsc.port, n, window)
        })
        .collect();
    Row {
        name: format!("smsc-sim alone, bare client, window {window}"),
        accepted: f64::NAN,
        delivered: Some(median(rates)),
        p50: f64::NAN,
        p99: f64::NAN,
        rss_mb: None,
    }
}

/// One SMPP PDU: its header (length, command id, status 0, sequence) and `body`.
fn pdu(command: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + body.len());
    bytes.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&command.to_be_bytes());
    bytes.extend_from_slice(&0u32.to_be_bytes());
    bytes.extend_from_slice(&sequence.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Reads one PDU: (command id, sequence).
fn read_pdu(reader: &mut impl Read) -> (u32, u32) {
    let mut header = [0u8; 16];
    reader.read_exact(&mut header).expect("a PDU from the SMSC");
    let length = u32::from_be_bytes(header[0..4].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; length - 16];
    reader.read_exact(&mut rest).expect("a PDU's body");
    (
        u32::from_be_bytes(header[4..8].try_into().unwrap()),
        u32::from_be_bytes(header[12..16].try_into().unwrap()),
    )
}

/// Submits a second that `n` submits, `window` pending at most, took to be answered.
fn bare_client(port: u16, n: usize, window: usize) -> f64 {
    const BIND_TRANSCEIVER: u32 = 0x09;
    const SUBMIT_SM: u32 = 0x04;
    const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    const ENQUIRE_LINK: u32 = 0x15;
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // system_id, password, system_type, interface_version 0x34, TON, NPI, address_range
    writer
        .write_all(&pdu(BIND_TRANSCEIVER, 1, b"bare\0bench\0\0\x34\0\0\0"))
        .unwrap();
    let (answer, _) = read_pdu(&mut reader);
    assert_eq!(answer, 0x8000_0009, "bind_transceiver_resp");
    // service_type, source (TON 5, NPI 0), destination (TON 1, NPI 1), esm_class,
    // protocol_id, priority, schedule, validity, registered_delivery, replace,
    // data_coding, sm_default_msg_id, sm_length, the text: what the module sends.
    let text = b"Your code is 123456";
    let mut submit = b"\0\x05\0ACME\0\x01\x01447911123456\0\0\0\0\0\0\0\0\0\0".to_vec();
    submit.push(text.len() as u8);
    submit.extend_from_slice(text);
    let started = Instant::now();
    let (mut sent, mut answered, mut sequence) = (0usize, 0usize, 2u32);
    while answered < n {
        while sent < n && sent - answered < window {
            writer.write_all(&pdu(SUBMIT_SM, sequence, &submit)).unwrap();
            sequence += 1;
            sent += 1;
        }
        match read_pdu(&mut reader) {
            (SUBMIT_SM_RESP, _) => answered += 1,
            (ENQUIRE_LINK, seq) => writer.write_all(&pdu(0x8000_0015, seq, b"")).unwrap(),
            _ => {}
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
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
    let smsc = build_smsc();

    let mut rows = vec![
        measure_smsc_alone(&smsc, n, WINDOW, reps),
        measure_smsc_alone(&smsc, n, 100, reps),
    ];
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
        rows.push(measure_gateway(&runtime, &smsc, &body, n, c, reps));
    }

    load::print_rows(
        &format!(
            "POST /v1/sms -> SMPP (1 transceiver bind, window {WINDOW}) -> smsc-sim, N={n} a run, median of {reps} runs, ab -k; every figure from this run"
        ),
        &rows,
    );
    for &c in &levels {
        let find = |prefix: &str| {
            rows.iter()
                .find(|r| r.name.starts_with(prefix) && r.name.ends_with(&format!("(c={c})")))
        };
        let ours = find("gateway");
        for store in ["spool", "none"] {
            if let (Some(ours), Some(kannel)) = (ours, find(&format!("Kannel 1.4.5 smpp, store={store}"))) {
                load::print_ratio(&format!("c={c}: gateway / Kannel(smpp, {store})"), ours, kannel);
            }
        }
    }
}
