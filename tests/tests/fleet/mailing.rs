//! A mailing sent by a fleet: the limits of contract section 2 held by the three
//! gateways together, and one of them killed in the middle of it.

use std::time::{Duration, Instant};

use e2e::smtp::SmtpServer;

use crate::record::{copies, cut_sessions, most_open_between, now, open_sessions, time};
use crate::setup::{
    email_section, metric, one_at_a_time, post_mailing, recipients, Fleet, BATCH, DEAD_AFTER, HEARTBEAT,
};

/// The mailing the issue asks for.
const RECIPIENTS: usize = 10_000;

/// The longest a mailing may take here (a debug build, on two shared cores).
const MAILING_WITHIN: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_send_a_mailing_within_the_fleets_limits_each_recipient_once() {
    let _turn = one_at_a_time().await;
    let server = SmtpServer::builder().pipelining().start();
    let fleet = Fleet::start(3, &email_section(server.port, 5)).await;

    // The three agree on the settings they must share, and each counts the others.
    let mut fingerprints = Vec::new();
    for member in &fleet.members {
        let settings = member.settings().await;
        for peer in settings["fleet"]["peers"].as_array().unwrap() {
            assert_eq!(peer["differing_keys"], serde_json::json!([]), "{settings}");
        }
        let scrape = member.api.metrics().await;
        assert_eq!(metric(&scrape, "gateway_fleet_gateways", &[]), 3.0, "{scrape}");
        let fingerprint = settings["fleet"]["fingerprint"].as_str().unwrap().to_owned();
        let labels = [("fingerprint", fingerprint.as_str())];
        assert_eq!(
            metric(&scrape, "gateway_settings_fingerprint", &labels),
            1.0,
            "{scrape}"
        );
        fingerprints.push(fingerprint);
    }
    assert!(
        fingerprints.iter().all(|f| *f == fingerprints[0]),
        "{fingerprints:?}"
    );

    let started = Instant::now();
    let id = post_mailing(fleet.api(), &recipients(RECIPIENTS)).await;
    let counts = fleet.api().wait_mailing(&id, MAILING_WITHIN).await;
    let took = started.elapsed();
    assert_eq!(counts["sent"], RECIPIENTS, "{counts}");

    let events = server.wait_sessions_closed(1);
    let copies = copies(&events);
    assert_eq!(copies.len(), RECIPIENTS, "the server saw every recipient");
    let repeated: Vec<_> = copies.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "recipients not seen exactly once: {repeated:?}"
    );
    let at_once = e2e::smtp::max_concurrent_sessions(&events);
    assert!(
        at_once <= 5,
        "{at_once} sessions were open at once from the fleet of three"
    );
    let per_session = e2e::smtp::max_messages_per_session(&events);
    assert!(per_session <= BATCH, "a session carried {per_session} e-mails");

    let mut carried = Vec::new();
    for member in &fleet.members {
        carried.push(member.sent("email").await);
    }
    assert_eq!(carried.iter().sum::<u64>(), RECIPIENTS as u64, "{carried:?}");
    assert!(
        carried.iter().all(|n| *n > 0),
        "every gateway carried some of the mailing: {carried:?}"
    );
    eprintln!(
        "{RECIPIENTS} recipients in {took:?} over {} sessions ({at_once} at most at once, \
         {per_session} e-mails at most in one); carried by the three: {carried:?}",
        e2e::smtp::sessions(&events)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_mailing_loses_nothing_and_its_slots_come_back() {
    let _turn = one_at_a_time().await;
    let server = SmtpServer::builder().pipelining().start();
    let mut fleet = Fleet::start(3, &email_section(server.port, 5)).await;
    let id = post_mailing(fleet.api(), &recipients(RECIPIENTS)).await;

    // Killed in the middle of the mailing, while it has connections open (holding slots).
    let victim = fleet.members.remove(2);
    let killed_at = loop {
        let sent = e2e::smtp::messages(&server.events()).len();
        let open = metric(&victim.api.metrics().await, "gateway_smtp_connections_open", &[]);
        if sent >= RECIPIENTS / 4 && open >= 1.0 {
            let killed_at = now();
            victim.process.signal(libc::SIGKILL);
            break killed_at;
        }
        assert!(sent < RECIPIENTS / 2, "the victim never had a connection open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let victim_id = victim.id.clone();
    let status = victim.process.wait();
    assert!(!status.success(), "the gateway was killed: {status}");

    // The survivors notice: the dead one leaves their peers within dead_after and a
    // heartbeat (its last beat was at most a heartbeat before the kill; theirs, which
    // shows it, at most one after), with a heartbeat to spare for a busy machine.
    let buried_after = loop {
        let mut listed = false;
        for member in &fleet.members {
            listed |= member.peers().await.contains(&victim_id);
        }
        let after = now() - killed_at;
        if !listed {
            break after;
        }
        assert!(
            after < (DEAD_AFTER + HEARTBEAT * 2).as_secs_f64(),
            "{victim_id} still listed as a peer {after:.1} s after it was killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The other two finish the mailing.
    let counts = fleet.api().wait_mailing(&id, MAILING_WITHIN).await;
    assert_eq!(counts["sent"], RECIPIENTS, "{counts}");
    let events = server.wait_sessions_closed(1);

    // Nothing lost; sent twice only what the dead one had on the wire when it died.
    let copies = copies(&events);
    assert_eq!(copies.len(), RECIPIENTS, "the server saw every recipient");
    let twice: Vec<(&String, &usize)> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= BATCH && twice.iter().all(|(_, n)| **n == 2),
        "more than one batch sent again: {twice:?}"
    );
    let at_once = e2e::smtp::max_concurrent_sessions(&events);
    assert!(at_once <= 5, "{at_once} sessions were open at once");
    assert!(e2e::smtp::max_messages_per_session(&events) <= BATCH);

    // The dead one's connections were cut (no QUIT) as it died; the slots they held
    // stay taken until a survivor buries it, then the survivors use all five again.
    let cut: Vec<&serde_json::Value> = cut_sessions(&events);
    assert!(!cut.is_empty(), "the victim had a connection open when killed");
    assert!(
        cut.iter().all(|close| (time(close) - killed_at).abs() < 1.0),
        "only the victim's connections were cut, as it died: {cut:?}"
    );
    // Counted once the server has seen the cut sessions close: those open then are
    // the survivors' own.
    let cut_closed_at = cut.iter().map(|close| time(close)).fold(killed_at, f64::max);
    let held_until = killed_at + (DEAD_AFTER - HEARTBEAT).as_secs_f64();
    let while_held = most_open_between(&events, cut_closed_at, held_until - 0.1);
    assert!(
        while_held <= 5 - cut.len(),
        "{while_held} sessions at once while the dead one still held {} slots",
        cut.len()
    );
    let recovered_at = open_sessions(&events)
        .into_iter()
        .find(|(t, open)| *t > cut_closed_at && *open == 5)
        .map(|(t, _)| t)
        .expect("the survivors used five connections again");
    let recovered_after = recovered_at - killed_at;
    // The same bound: a survivor buries the dead at the heartbeat after it was seen dead.
    assert!(
        recovered_after <= (DEAD_AFTER + HEARTBEAT * 2).as_secs_f64(),
        "the dead one's slots came back only {recovered_after:.1} s after the kill"
    );
    eprintln!(
        "killed {victim_id} with {} connections open; gone from its peers after {buried_after:.1} s, \
         five connections again after {recovered_after:.1} s ({while_held} at most while its slots were held); \
         {} recipients received twice",
        cut.len(),
        twice.len()
    );
}
