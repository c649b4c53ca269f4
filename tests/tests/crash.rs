//! Delivery guarantee (contract, section 5): 202 means on disk. A gateway killed with
//! SIGKILL while thousands of SMS arrive delivers, once restarted on the same
//! database, every SMS that got a 202.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use e2e::{json_body, sms_lines, GatewayProcess, TestConfig, SEND_TOKEN};

/// Clients sending at once.
const CLIENTS: usize = 16;
/// Accepted SMS after which the gateway is killed.
const KILL_AFTER: usize = 2500;
/// The most SMS the delivery worker has in flight (delivery::sms::IN_FLIGHT): only
/// those can reach the module twice.
const IN_FLIGHT: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_sms_is_delivered_after_a_sigkill() {
    let config = TestConfig::new("file", None, "", "");
    let gateway = GatewayProcess::start(&config).await;
    let url = gateway.url.clone();

    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client_no in 0..CLIENTS {
        let (accepted, count, stop, url) = (accepted.clone(), count.clone(), stop.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = serde_json::json!({ "to": "+447911123456", "text": format!("client {client_no} sms {n}") });
                let sent = http
                    .post(format!("{url}/v1/sms"))
                    .bearer_auth(SEND_TOKEN)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 202 => {
                        let body = json_body(response).await;
                        accepted.lock().unwrap().push(body["id"].as_str().unwrap().to_string());
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => panic!("unexpected answer {}", response.status()),
                    Err(_) => break, // the gateway is gone
                }
            }
        }));
    }
    while count.load(Ordering::Relaxed) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gateway.signal(libc::SIGKILL);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let status = gateway.wait();
    assert!(!status.success(), "the gateway was killed, not stopped: {status}");
    let accepted: Vec<String> = accepted.lock().unwrap().clone();
    let before_restart = sms_lines(&config.sms_file()).len();
    assert!(accepted.len() >= KILL_AFTER);

    let restarted = GatewayProcess::start(&config).await;
    let wanted: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    let mut delivered = HashMap::<String, usize>::new();
    for _ in 0..600 {
        delivered.clear();
        for line in sms_lines(&config.sms_file()) {
            *delivered
                .entry(line["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        if wanted.iter().all(|id| delivered.contains_key(*id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<&&str> = wanted.iter().filter(|id| !delivered.contains_key(**id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} accepted SMS never delivered, e.g. {:?}; log:\n{}",
        missing.len(),
        accepted.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        restarted.log_text()
    );
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= IN_FLIGHT,
        "{} SMS were delivered twice; only those in flight at the kill (at most {IN_FLIGHT}) may be",
        twice.len()
    );
    eprintln!(
        "accepted {} before the kill ({} lines written by then); all delivered after restart; {} delivered twice",
        accepted.len(),
        before_restart,
        twice.len()
    );
}

#[tokio::test]
async fn sigterm_stops_the_gateway_cleanly_and_nothing_is_left_sending() {
    let config = TestConfig::new("echo", Some(r#"{"sleep_ms": 200}"#), "", "");
    let gateway = GatewayProcess::start(&config).await;
    let api = e2e::Api::new(&gateway.url);
    let mut ids = Vec::new();
    for n in 0..20 {
        let (status, body) = api
            .post(
                "/v1/sms",
                SEND_TOKEN,
                &serde_json::json!({ "to": "+447911123456", "text": format!("sms {n}") }),
            )
            .await;
        assert_eq!(status, 202);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    gateway.signal(libc::SIGTERM);
    let log_path = gateway.log.clone();
    let started = std::time::Instant::now();
    let status = gateway.wait();
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("stopped"), "{log}");

    // Started again, every SMS ends sent: none was left stuck in `sending`.
    let restarted = GatewayProcess::start(&config).await;
    let api = e2e::Api::new(&restarted.url);
    for id in &ids {
        let message = api.wait_status(id, &["sent"]).await;
        assert_eq!(
            message["attempts"], 1,
            "a released lease does not count an attempt: {message}"
        );
    }
}
