//! Memory while accepting one big mailing: `POST /v1/mailings` with 200,000 recipients,
//! as plain addresses and as objects with a name and merge fields. Prints the body's
//! size, the gateway's RSS before, its peak (VmHWM) while accepting, and its RSS once
//! the answer is in and again a few seconds later (whether the memory is given back),
//! beside the reference measured in the same run: the same gateway accepting one
//! small mailing.
//!
//! Nothing is delivered: the SMTP server named is a port where nothing listens, so the
//! figures are those of the intake alone.
//!
//! `cargo bench -p e2e --bench mailing_memory`
//! Environment: `RECIPIENTS` (default 200000).

use std::time::{Duration, Instant};

use e2e::{free_port, proc_status_kb as status_kb, GatewayProcess, TestConfig, SEND_TOKEN};
use serde_json::json;

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

struct Row {
    name: String,
    body_mb: f64,
    before: u64,
    peak: u64,
    after: u64,
    settled: u64,
    took: Duration,
}

fn body(recipients: usize, objects: bool) -> Vec<u8> {
    let list: Vec<serde_json::Value> = (0..recipients)
        .map(|n| {
            let email = format!("customer.{n:06}@example.org");
            if objects {
                json!({ "email": email, "name": format!("Customer {n}"), "fields": { "order": n, "city": "Lyon" } })
            } else {
                json!(email)
            }
        })
        .collect();
    serde_json::to_vec(&json!({
        "subject": "Your order {{ order }}",
        "text": "Hello {{ name }}, your order {{ order }} ships from {{ city }}.",
        "recipients": list,
    }))
    .unwrap()
}

async fn measure(name: &str, recipients: usize, objects: bool) -> Row {
    let config = TestConfig::new(
        "file",
        None,
        "",
        &format!(
            "[log]\nlevel = \"warn\"\n\n[email]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ndefault_from = \"news@example.org\"\n",
            free_port()
        ),
    );
    let gateway = GatewayProcess::start(&config).await;
    let pid = gateway.child.id();
    let body = body(recipients, objects);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = status_kb(pid, "VmRSS:");
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/mailings", gateway.url))
        .bearer_auth(SEND_TOKEN)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 202, "{text}");
    let took = started.elapsed();
    let after = status_kb(pid, "VmRSS:");
    tokio::time::sleep(Duration::from_secs(5)).await;
    Row {
        name: name.to_string(),
        body_mb: body.len() as f64 / 1e6,
        before,
        peak: status_kb(pid, "VmHWM:"),
        after,
        settled: status_kb(pid, "VmRSS:"),
        took,
    }
}

fn main() {
    let recipients: usize = std::env::var("RECIPIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = e2e::build_dir();
    let rows = runtime.block_on(async {
        vec![
            measure("reference: 10 recipients", 10, false).await,
            measure(&format!("{recipients} addresses"), recipients, false).await,
            measure(&format!("{recipients} objects with fields"), recipients, true).await,
        ]
    });
    println!();
    println!("POST /v1/mailings, one request, SQLite store; RSS of the gateway process");
    println!(
        "{:<36} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "case", "body MB", "before", "peak", "answered", "+5 s", "took s"
    );
    for row in &rows {
        println!(
            "{:<36} {:>8.1} {:>6.1} MB {:>6.1} MB {:>6.1} MB {:>6.1} MB {:>8.2}",
            row.name,
            row.body_mb,
            mb(row.before),
            mb(row.peak),
            mb(row.after),
            mb(row.settled),
            row.took.as_secs_f64()
        );
    }
    let reference = rows[0].peak;
    for row in &rows[1..] {
        println!(
            "{}: peak {:.1} MB ({:+.1} MB over the small mailing's); aim: at most 64 MB",
            row.name,
            mb(row.peak),
            mb(row.peak) - mb(reference)
        );
    }
}
