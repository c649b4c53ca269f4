//! An admin lowers *SMTP threads* from 5 to 2 during a mailing, reloading the fleet one
//! gateway at a time: the mail server never sees more than the old limit, no new
//! connection opens beyond the new one once the first gateway has told the fleet, and
//! never more than two are open once every gateway has reloaded.

use std::time::{Duration, Instant};

use e2e::{smtp::SmtpServer, ADMIN_TOKEN};
use serde_json::json;

use crate::record::{copies, most_open_between, now, opened_beyond, session_span, time};
use crate::setup::{email_section, one_at_a_time, post_mailing, recipients, rewrite, Fleet};

const RECIPIENTS: usize = 2000;

/// Waits until the fleet's table shows `gateway` advertising `connections` (its
/// heartbeat after the reload), as a peer taking a slot reads it; returns when.
async fn advertised(database: &str, gateway: &str, connections: u32) -> f64 {
    let started = Instant::now();
    let sql = format!("SELECT smtp_connections FROM gateways WHERE id = '{gateway}'");
    loop {
        let shown = e2e::postgres::psql(database, &sql).expect("read the fleet's table");
        if shown == connections.to_string() {
            return now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{gateway} still advertises {shown} connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_smtp_threads_gateway_by_gateway_never_exceeds_the_old_or_the_new_limit() {
    let _turn = one_at_a_time().await;
    let server = SmtpServer::builder().pipelining().start();
    let fleet = Fleet::start(3, &email_section(server.port, 5)).await;
    let id = post_mailing(fleet.api(), &recipients(RECIPIENTS)).await;
    while e2e::smtp::messages(&server.events()).len() < RECIPIENTS / 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut last_reload = 0.0;
    let mut lowered_at = None;
    for member in &fleet.members {
        rewrite(&member.settings_file(), "smtp_threads = 5", "smtp_threads = 2");
        let (status, report) = member.api.post("/v1/admin/reload", ADMIN_TOKEN, &json!({})).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["changed"], json!(["email.smtp_threads"]), "{report}");
        last_reload = now();
        if lowered_at.is_none() {
            lowered_at = Some((last_reload, advertised(&fleet.database, &member.id, 2).await));
        }
        // The fleet runs with the two limits side by side for a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (first_reload, lowered_at) = lowered_at.expect("a gateway reloaded");
    let counts = fleet.api().wait_mailing(&id, Duration::from_secs(120)).await;
    assert_eq!(counts["sent"], RECIPIENTS, "{counts}");
    let events = server.wait_sessions_closed(1);
    let copies = copies(&events);
    assert_eq!(copies.len(), RECIPIENTS, "the server saw every recipient");
    assert!(copies.values().all(|n| *n == 1), "each once");

    let at_once = e2e::smtp::max_concurrent_sessions(&events);
    assert!(
        at_once <= 5,
        "{at_once} sessions at once while the limit went from 5 to 2"
    );
    // Once the first gateway's new limit is in the fleet's table, the connections open
    // under the old one may finish their batch, but no new one opens until fewer than
    // two are open (a slot being taken as the table changed may still connect: 100 ms).
    let beyond = opened_beyond(&events, lowered_at + 0.1, 2);
    assert!(
        beyond.is_empty(),
        "sessions opened beyond the new limit of 2 after it reached the fleet \
         (session, time, open then): {beyond:?}"
    );
    // The sessions opened before the last gateway reloaded may carry on with their
    // batch (at most 20 e-mails); once they have all closed, the new limit holds.
    let old_closed_at = events
        .iter()
        .filter(|e| e["event"] == "connect" && time(e) <= last_reload)
        .map(|e| {
            session_span(&events, e["session"].as_u64().unwrap())
                .1
                .expect("closed")
        })
        .fold(last_reload, f64::max);
    let new_sessions = events
        .iter()
        .filter(|e| e["event"] == "connect" && time(e) > old_closed_at)
        .count();
    assert!(
        new_sessions >= 5,
        "the mailing went on under the new limit: {new_sessions} sessions"
    );
    let after = most_open_between(&events, old_closed_at, f64::MAX);
    assert!(
        after <= 2,
        "{after} sessions at once after every gateway reloaded to 2"
    );
    // At 100 / 2 a connection carries up to 50.
    assert!(e2e::smtp::max_messages_per_session(&events) <= 100 / 2);
    eprintln!(
        "{at_once} sessions at most at once before; the new limit in the fleet's table \
         {:.2} s after the first reload answered; {after} at most once the last old session \
         closed ({:.1} s after the last reload; {new_sessions} sessions since)",
        lowered_at - first_reload,
        old_closed_at - last_reload
    );
}
