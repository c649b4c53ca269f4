//! E-mails per second delivered end to end (API → queue → SMTP engine → server) into
//! Postfix's `smtp-sink`, for a mailing of 10,000 at max 100 / 5 threads (5 connections
//! of 20 e-mails), beside Postfix's own load generator `smtp-source` sending the same
//! count with 5 sessions and 20 messages a session into the same kind of sink, in the
//! same run (`../shared/bench/smtp-peer.sh` installs Postfix's tools and measures it).
//! Three cases: one gateway on SQLite, one on PostgreSQL, and three gateways sharing one
//! PostgreSQL, which hold the 5 x 20 limits for the fleet (the mailing is posted to the
//! first; all three deliver it). PostgreSQL runs with fsync on, as in production.
//!
//! Then plain-text mailings of 2 KB and 50 KB on SQLite, beside smtp-source sending
//! payloads of the same size (`SIZE`, its `-l`) in the same shape.
//!
//! Then mailings of 2 KB HTML on SQLite (issue 14): plain (the same body for all), with
//! merge fields (`{{ name }}` and fields in the subject and the body, recipients as
//! objects), and plain DKIM-signed (RSA 2048); the merge case's rate beside the plain
//! one's is the cost of rendering (the aim: at most 15 % off).
//!
//! Every gateway case prints its peak RSS (VmHWM; the largest of a fleet's).
//!
//! `cargo bench -p e2e --bench smtp_throughput`
//! Environment: `N` (default 10000), `REPS` (default 3), `SHARED` (default `../shared`),
//! `ONLY` (run only the cases whose name contains it, such as `2 KB`; `|` between
//! alternatives, such as `the same for all|merge fields`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use e2e::{Api, GatewayProcess, TestConfig, SEND_TOKEN};
use serde_json::{json, Value};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median msg/s of one case in smtp-peer.sh's table (`batched` or `ref`).
fn peer_median(table: &str, case: &str) -> Option<f64> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(case))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|v| v.parse().ok())
}

/// The sink's message counter (smtp-sink -c writes `mesg=N` updates to its file).
///
/// Only the file's tail is read: the file grows by some 35 bytes a message, and reading
/// it whole every few milliseconds would take a core from the gateway being measured.
fn sink_count(counts: &Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let mut tail = Vec::new();
    if let Ok(mut file) = std::fs::File::open(counts) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(256)));
        let _ = file.read_to_end(&mut tail);
    }
    let text = String::from_utf8_lossy(&tail);
    text.rfind("mesg=")
        .map(|i| {
            text[i + 5..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

/// What a case's mailing carries.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// "Hello": the engine's own cost.
    Hello,
    /// Plain text of this many bytes (lines of 76 ASCII characters), the same for every
    /// recipient: beside smtp-source's `-l` payload of the same size.
    Text(usize),
    /// 2 KB of HTML, the same for every recipient.
    Html2k,
    /// 2 KB of HTML with merge fields, recipients as objects with a name and fields.
    Merge2k,
}

/// About 2 KB of HTML: a newsletter paragraph repeated, with merge fields when `merge`.
/// Both render to the same kind of text (an order number and a city with an umlaut, so
/// both bodies need a transfer encoding): the merge case's extra cost is the rendering.
fn html_2k(merge: bool) -> String {
    let greeting = if merge {
        "<p>Dear {{ name }},</p>"
    } else {
        "<p>Dear customer,</p>"
    };
    let line = if merge {
        "<p>Your order {{ fields.order }} ships to {{ fields.city }} this week; thanks for shopping with us.</p>\n"
    } else {
        "<p>Your order 100123 ships to Köln this week; thanks for shopping with us.</p>\n"
    };
    let mut html = format!("<html><body>{greeting}\n");
    while html.len() < 2048 {
        html.push_str(line);
    }
    html.push_str("</body></html>");
    html
}

impl Body {
    /// The payload size of the smtp-source run it is measured beside (0: its own body).
    fn peer_size(self) -> usize {
        match self {
            Body::Text(size) => size,
            _ => 0,
        }
    }
}

/// The mailing of `n` recipients a case posts.
fn mailing(body: Body, n: usize) -> Value {
    match body {
        Body::Hello => {
            let recipients: Vec<String> = (0..n).map(|i| format!("user{i}@example.org")).collect();
            json!({ "subject": "Bench", "text": "Hello", "recipients": recipients })
        }
        Body::Text(size) => {
            let recipients: Vec<String> = (0..n).map(|i| format!("user{i}@example.org")).collect();
            let line = format!("{}\n", "x".repeat(76));
            let text: String = line.chars().cycle().take(size).collect();
            json!({ "subject": "Bench", "text": text, "recipients": recipients })
        }
        Body::Html2k => {
            let recipients: Vec<String> = (0..n).map(|i| format!("user{i}@example.org")).collect();
            json!({ "subject": "Your weekly news", "html": html_2k(false), "recipients": recipients })
        }
        Body::Merge2k => {
            let recipients: Vec<Value> = (0..n)
                .map(|i| {
                    json!({
                        "email": format!("user{i}@example.org"),
                        "name": format!("User {i}"),
                        "fields": { "order": 100_000 + i, "city": "Köln" },
                    })
                })
                .collect();
            json!({
                "subject": "{{ name }}, your weekly news",
                "html": html_2k(true),
                "recipients": recipients,
            })
        }
    }
}

/// smtp-source into smtp-sink, 5 sessions of 20 messages, measured by smtp-peer.sh.
struct Peer {
    /// Its `-l` payload size; 0 for its own 4-line body.
    size: usize,
    table: String,
    /// msg/s, median: 5 x 20 then a new connection, as the gateway sends.
    batched: f64,
    /// msg/s, median: one run without reconnects.
    reference: f64,
}

impl Peer {
    fn measure(script: &Path, n: usize, reps: usize, size: usize) -> Peer {
        let peer = Command::new("bash")
            .arg(script)
            .env("N", n.to_string())
            .env("SESSIONS", "5")
            .env("PER_CONN", "20")
            .env("REPS", reps.to_string())
            .env("SIZE", size.to_string())
            .output()
            .expect("run smtp-peer.sh");
        let table = String::from_utf8_lossy(&peer.stdout).to_string();
        assert!(
            peer.status.success(),
            "smtp-peer.sh failed:\n{table}\n{}",
            String::from_utf8_lossy(&peer.stderr)
        );
        Peer {
            size,
            batched: peer_median(&table, "batched").expect("a batched row"),
            reference: peer_median(&table, "ref").expect("a ref row"),
            table,
        }
    }
}

fn main() {
    let n = env_usize("N", 10_000);
    let reps = env_usize("REPS", 3);
    let shared = std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let script = shared.join("bench/smtp-peer.sh");
    assert!(script.exists(), "{} is needed (set SHARED)", script.display());
    let _ = e2e::build_dir();
    std::env::set_var("E2E_POSTGRES_FSYNC", "on");

    // The gateway into a fresh sink.
    let port = e2e::free_port();
    let sink = Command::new("bash")
        .arg(&script)
        .env("SINK_ONLY", "1")
        .env("PORT", port.to_string())
        .output()
        .expect("start smtp-sink");
    let vars = String::from_utf8_lossy(&sink.stdout).to_string();
    let var = |name: &str| {
        vars.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches(['\'', '"']).to_string())
            .unwrap_or_else(|| panic!("smtp-peer.sh SINK_ONLY=1 printed no {name}:\n{vars}"))
    };
    let (sink_pid, sink_counts, sink_work) = (
        var("SINK_PID"),
        PathBuf::from(var("SINK_COUNTS")),
        var("SINK_WORK"),
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let email = format!(
        "[log]\nlevel = \"warn\"\n[email]\nhost = \"127.0.0.1\"\nport = {port}\nmax_per_connection = 100\n\
         smtp_threads = 5\ndefault_from = \"bench@example.com\"\n"
    );
    let signed = format!(
        "{email}[email.dkim]\ndomain = \"example.com\"\nselector = \"s2048\"\nprivate_key_file = {:?}\n",
        e2e::dkim::key_file("rsa2048.pem").display().to_string()
    );
    // (case, gateways, on PostgreSQL, body, signed): a fleet holds the 5 x 20 limits together.
    let cases = [
        (
            "gateway: POST /v1/mailings -> SQLite -> SMTP engine -> sink",
            1,
            false,
            Body::Hello,
            false,
        ),
        ("gateway: the same on PostgreSQL", 1, true, Body::Hello, false),
        (
            "3 gateways on one PostgreSQL, 5 x 20 for the fleet",
            3,
            true,
            Body::Hello,
            false,
        ),
        (TEXT_2K, 1, false, Body::Text(2048), false),
        (TEXT_50K, 1, false, Body::Text(51200), false),
        (PLAIN_2K, 1, false, Body::Html2k, false),
        (MERGE_2K, 1, false, Body::Merge2k, false),
        (SIGNED_2K, 1, false, Body::Html2k, true),
    ];
    let only = std::env::var("ONLY").unwrap_or_default();
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(case, ..)| only.split('|').any(|part| case.contains(part)))
        .collect();

    // The references: smtp-source into smtp-sink, 5 sessions of 20 messages, with its
    // own body and with each payload size a case sends.
    let mut sizes = vec![0];
    sizes.extend(
        cases
            .iter()
            .map(|case| case.3.peer_size())
            .filter(|&size| size > 0),
    );
    let peers: Vec<Peer> = sizes
        .iter()
        .map(|&size| Peer::measure(&script, n, reps, size))
        .collect();
    let peer_for = |body: Body| {
        peers
            .iter()
            .find(|p| p.size == body.peer_size())
            .expect("a peer run of each size")
    };

    let mut measured = Vec::new();
    for (case, gateways, postgres, body, dkim) in cases {
        let request = mailing(body, n);
        let mut rates = Vec::new();
        let mut rss_kb = 0;
        for _ in 0..reps {
            let database = postgres.then(e2e::postgres::database);
            let configs: Vec<TestConfig> = (0..gateways)
                .map(|_| {
                    let config = TestConfig::new("file", None, "", if dkim { &signed } else { &email });
                    match &database {
                        Some(url) => config.with_storage_url(url),
                        None => config,
                    }
                })
                .collect();
            let rate = runtime.block_on(async {
                let mut fleet = Vec::new();
                for config in &configs {
                    fleet.push(GatewayProcess::start(config).await);
                }
                let api = Api::new(&fleet[0].url);
                let before = sink_count(&sink_counts);
                let started = Instant::now();
                let (status, body) = api.post("/v1/mailings", SEND_TOKEN, &request).await;
                assert_eq!(status, 202, "{body}");
                let deadline = Instant::now() + Duration::from_secs(300);
                while sink_count(&sink_counts) < before + n as u64 {
                    assert!(
                        Instant::now() < deadline,
                        "the sink got {} of {n}",
                        sink_count(&sink_counts) - before
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let took = started.elapsed();
                let (_, counts) = api
                    .get(
                        &format!("/v1/mailings/{}", body["id"].as_str().unwrap()),
                        SEND_TOKEN,
                    )
                    .await;
                eprintln!("{case}: {n} e-mails in {took:?}; mailing {counts}");
                for gateway in &fleet {
                    rss_kb = rss_kb.max(e2e::proc_status_kb(gateway.child.id(), "VmHWM:"));
                }
                n as f64 / took.as_secs_f64()
            });
            rates.push(rate);
        }
        measured.push((case, median(rates.clone()), rates, rss_kb, peer_for(body)));
    }
    let _ = Command::new("kill").arg(&sink_pid).status();
    let _ = std::fs::remove_dir_all(&sink_work);
    println!();
    for peer in &peers {
        println!("smtp-peer.sh, SIZE={}:\n{}", peer.size, peer.table);
    }
    println!("{n} e-mails, 5 connections at once, 20 e-mails a connection, median of {reps}; same run, same machine");
    println!("{:<72} {:>10} {:>10}", "case", "msg/s", "peak RSS");
    for peer in &peers {
        let payload = match peer.size {
            0 => "its own 4-line body".to_string(),
            size => format!("-l {size}"),
        };
        println!(
            "{:<72} {:>10.0}",
            format!("smtp-source -> smtp-sink, batched 5 x 20, {payload} (reference)"),
            peer.batched
        );
        println!(
            "{:<72} {:>10.0}",
            format!("smtp-source -> smtp-sink, one run, no reconnects, {payload}"),
            peer.reference
        );
    }
    for (case, rate, rates, rss_kb, _) in &measured {
        let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        let rss = format!("{:.1} MB", *rss_kb as f64 / 1024.0);
        println!("{case:<72} {rate:>10.0} {rss:>10}   runs: {}", runs.join(", "));
    }
    for (case, rate, _, _, peer) in &measured {
        println!(
            "ratio to smtp-source batched (SIZE={}): {:.2}  {case}",
            peer.size,
            rate / peer.batched
        );
    }
    let rate_of = |name: &str| measured.iter().find(|(case, ..)| *case == name).map(|m| m.1);
    if let Some(plain) = rate_of(PLAIN_2K) {
        for name in [MERGE_2K, SIGNED_2K] {
            if let Some(rate) = rate_of(name) {
                println!(
                    "ratio to the plain 2 KB mailing: {:.2} ({:+.0} %)  {name}",
                    rate / plain,
                    (rate / plain - 1.0) * 100.0
                );
            }
        }
    }
}

const TEXT_2K: &str = "mailing of 2 KB text, the same for all (SQLite)";
const TEXT_50K: &str = "mailing of 50 KB text, the same for all (SQLite)";
const PLAIN_2K: &str = "mailing of 2 KB HTML, the same for all (SQLite)";
const MERGE_2K: &str = "mailing of 2 KB HTML with merge fields (SQLite)";
const SIGNED_2K: &str = "mailing of 2 KB HTML, DKIM-signed RSA 2048 (SQLite)";
