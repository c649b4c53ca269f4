//! SMS sent by a fleet: POSTed round-robin to three gateways (as a load balancer
//! spreads them), one gateway killed in the middle of the burst.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use e2e::{json_body, sms_lines, SEND_TOKEN};

use crate::setup::{one_at_a_time, Fleet};

/// Clients posting at once.
const CLIENTS: usize = 12;
/// SMS accepted (202) in the whole burst.
const BURST: usize = 3000;
/// Accepted SMS after which one gateway is killed.
const KILL_AFTER: usize = 1000;
/// The most SMS one gateway's worker has in flight (`delivery::sms::IN_FLIGHT`): only
/// the dead one's can reach the module twice.
const IN_FLIGHT: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sms_posted_round_robin_to_three_gateways_one_killed_are_each_delivered_once() {
    let _turn = one_at_a_time().await;
    let mut fleet = Fleet::start(3, "").await;
    let urls: Vec<String> = fleet.members.iter().map(|m| m.process.url.clone()).collect();

    // (the gateway that answered 202, the id), in the order accepted.
    let accepted = Arc::new(Mutex::new(Vec::<(usize, String)>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (accepted, next, done, urls) = (accepted.clone(), next.clone(), done.clone(), urls.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !done.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let gateway = n % urls.len();
                let body = serde_json::json!({ "to": "+447911123456", "text": format!("burst {n}") });
                let answer = http
                    .post(format!("{}/v1/sms", urls[gateway]))
                    .bearer_auth(SEND_TOKEN)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status() == 202 => {
                        let id = json_body(response).await["id"].as_str().unwrap().to_owned();
                        let mut accepted = accepted.lock().unwrap();
                        accepted.push((gateway, id));
                        if accepted.len() >= BURST {
                            done.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok(response) => panic!("gateway {gateway} answered {}", response.status()),
                    // The killed gateway: a balancer would send it no more; here its
                    // turns are simply lost.
                    Err(_) => {}
                }
            }
        }));
    }
    while accepted.lock().unwrap().len() < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = fleet.members.remove(2);
    victim.process.signal(libc::SIGKILL);
    // Lines written by then (and a few by the survivors since): a first copy by the
    // dead one is among them.
    let written_at_kill = sms_lines(&fleet.sms_file()).len();
    for client in clients {
        client.await.unwrap();
    }
    assert!(!victim.process.wait().success());
    let accepted = accepted.lock().unwrap().clone();
    let by_victim = accepted.iter().filter(|(gateway, _)| *gateway == 2).count();

    // Every 202 delivered, whichever gateway answered it: the dead one's leases are
    // taken over once the survivors bury it.
    let started = Instant::now();
    let lines = loop {
        let mut copies: HashMap<String, Vec<(usize, serde_json::Value)>> = HashMap::new();
        for (index, line) in sms_lines(&fleet.sms_file()).into_iter().enumerate() {
            let id = line["id"].as_str().unwrap().to_owned();
            copies.entry(id).or_default().push((index, line));
        }
        let missing = accepted.iter().filter(|(_, id)| !copies.contains_key(id)).count();
        if missing == 0 {
            break copies;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{missing} of {} accepted SMS never delivered; the logs:\n{}",
            accepted.len(),
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let delivered_after = started.elapsed();

    // Twice only what the dead one had in flight: a first copy written before it died,
    // a second by a survivor under a new lease.
    let twice: Vec<&Vec<(usize, serde_json::Value)>> = accepted
        .iter()
        .map(|(_, id)| &lines[id])
        .filter(|copies| copies.len() > 1)
        .collect();
    assert!(
        twice.len() <= IN_FLIGHT,
        "{} SMS were delivered more than once; at most the dead one's {IN_FLIGHT} in flight may be",
        twice.len()
    );
    for copies in &twice {
        let attempts: Vec<u64> = copies
            .iter()
            .map(|(_, c)| c["attempt"].as_u64().unwrap())
            .collect();
        assert_eq!(
            attempts,
            [1, 2],
            "a repeated SMS is the dead one's first attempt and a retake: {copies:?}"
        );
        assert!(
            copies[0].0 < written_at_kill,
            "first written before the kill: {copies:?}"
        );
    }

    // What the app reads back agrees, asked of a survivor.
    for (_, id) in accepted.iter().filter(|(gateway, _)| *gateway == 2) {
        let message = fleet.api().wait_status(id, &["sent"]).await;
        assert_eq!(message["status"], "sent", "{message}");
    }
    eprintln!(
        "{} SMS accepted ({by_victim} by the gateway killed after {KILL_AFTER}); all delivered \
         {delivered_after:?} after the burst; {} delivered twice",
        accepted.len(),
        twice.len()
    );
}
