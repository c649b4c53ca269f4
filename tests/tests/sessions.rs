//! The gateway's session driver (plugin-api 1.2) through a whole gateway: the `lines`
//! test module against a real TCP peer on loopback (tests/src/line_peer.rs).

use std::{collections::HashMap, sync::atomic::Ordering, time::Duration};

use e2e::{line_peer::LinePeer, metric_value, Api, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::json;

fn config(peer: &LinePeer, sessions: u32, window: u32, password: &str) -> TestConfig {
    let blob = json!({
        "port": peer.port,
        "sessions": sessions,
        "window": window,
        "password": password,
        "keepalive_ms": 200,
    });
    // Quick retries: a test waits for every SMS to go.
    TestConfig::new(
        "lines",
        Some(&blob.to_string()),
        "retry_base_ms = 50\nretry_max_ms = 400\nmax_attempts = 50",
        "",
    )
}

async fn post_sms(api: &Api, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (status, body) = api
            .post(
                "/v1/sms",
                SEND_TOKEN,
                &json!({"to": "+447911123456", "text": format!("message {i}")}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

/// Every text the peer received, with how many times.
fn texts(peer: &LinePeer) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for (_, _, text) in peer.submits() {
        *seen.entry(text).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_go_over_two_sessions_once_each_never_past_the_window() {
    let peer = LinePeer::start("s3cret").await;
    let gateway = InProcess::start(config(&peer, 2, 4, "s3cret")).await;
    let api = Api::new(&gateway.url);
    let ids = post_sms(&api, 200).await;
    for id in &ids {
        let message = api.wait_status(id, &["sent", "failed"]).await;
        assert_eq!(message["status"], "sent", "{message}");
        assert!(
            message["provider_id"].as_str().unwrap().starts_with("peer-"),
            "{message}"
        );
    }
    let seen = texts(&peer);
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|&n| n == 1), "an SMS went twice");
    let max = peer.state.max_outstanding.lock().unwrap().clone();
    assert_eq!(max.len(), 2, "both sessions carried SMS: {max:?}");
    assert!(
        max.values().all(|&m| m <= 4),
        "more than the window outstanding: {max:?}"
    );
    assert!(max.values().any(|&m| m > 1), "the window was never used: {max:?}");

    let scrape =
        prometheus_parse::Scrape::parse(api.metrics().await.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert_eq!(
        metric_value(&scrape, "gateway_sms_sessions_ready", &[("module", "lines")]),
        2.0
    );
    assert_eq!(
        metric_value(
            &scrape,
            "gateway_sms_session_sends_pending",
            &[("module", "lines")]
        ),
        0.0
    );

    gateway.stop().await.unwrap();
    assert_eq!(
        peer.state.logouts.load(Ordering::SeqCst),
        2,
        "both sessions logged out at stop"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_and_an_inbound_sms_pushed_on_a_session_reach_the_app() {
    let peer = LinePeer::start("s3cret").await;
    let gateway = InProcess::start(config(&peer, 1, 2, "s3cret")).await;
    let api = Api::new(&gateway.url);
    let id = post_sms(&api, 1).await.remove(0);
    let message = api.wait_status(&id, &["sent"]).await;
    let provider_id = message["provider_id"].as_str().unwrap().to_string();

    peer.push(&format!("DLR {provider_id} DELIVRD"));
    let message = api.wait_status(&id, &["delivered"]).await;
    assert_eq!(message["provider_id"], provider_id.as_str());

    peer.push("MO 07911123456 +447700900000 hello from a phone");
    let mut items = Vec::new();
    for _ in 0..200 {
        let (status, page) = api.get("/v1/inbound", SEND_TOKEN).await;
        assert_eq!(status, 200, "{page}");
        items = page["items"].as_array().unwrap().clone();
        if !items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["sender"], "+447911123456");
    assert_eq!(items[0]["text"], "hello from a phone");
    assert_eq!(items[0]["module"], "lines");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_killed_mid_run_loses_nothing_and_repeats_at_most_the_windows() {
    let mut peer = LinePeer::start("s3cret").await;
    let gateway = InProcess::start(config(&peer, 2, 3, "s3cret")).await;
    let api = Api::new(&gateway.url);
    let ids = post_sms(&api, 150).await;
    let state = peer.state.clone();
    wait_until("a third of the SMS reached the peer", || {
        state.submits.lock().unwrap().len() >= 50
    })
    .await;
    peer.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    peer.restart().await;
    for id in &ids {
        let message = api.wait_status(id, &["sent", "failed"]).await;
        assert_eq!(message["status"], "sent", "{message}");
    }
    let seen = texts(&peer);
    assert_eq!(seen.len(), 150, "every SMS reached the peer");
    let repeated: usize = seen.values().map(|n| n - 1).sum();
    assert!(repeated <= 2 * 3, "{repeated} repeats, more than the two windows");
    assert!(
        peer.state.logins.load(Ordering::SeqCst) >= 3,
        "the sessions logged in again"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_peer_slows_the_session_and_every_sms_still_goes() {
    let peer = LinePeer::start("s3cret").await;
    peer.state.busy.store(5, Ordering::SeqCst);
    let gateway = InProcess::start(config(&peer, 1, 2, "s3cret")).await;
    let api = Api::new(&gateway.url);
    let ids = post_sms(&api, 10).await;
    for id in &ids {
        let message = api.wait_status(id, &["sent", "failed"]).await;
        assert_eq!(message["status"], "sent", "{message}");
    }
    assert_eq!(peer.submits().len(), 15, "5 busy answers, then each SMS once");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_is_the_self_checks_and_the_send_tests_answer() {
    let peer = LinePeer::start("s3cret").await;
    let gateway = InProcess::start(config(&peer, 1, 2, "wrong")).await;
    let api = Api::new(&gateway.url);
    let (status, check) = api.post("/v1/admin/sms/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(
        check["error"], "module `lines`: login refused: wrong password",
        "{check}"
    );
    assert_eq!(check["steps"][0]["method"], "SESSION");
    assert_eq!(
        check["steps"][0]["url"],
        format!("tcp://127.0.0.1:{}", peer.port).as_str()
    );

    // The pool's own session has been refused too by now (and is trying again).
    for _ in 0..200 {
        let scrape =
            prometheus_parse::Scrape::parse(api.metrics().await.lines().map(|l| Ok(l.to_string()))).unwrap();
        if metric_value(
            &scrape,
            "gateway_sms_session_reconnects_total",
            &[("module", "lines")],
        ) >= 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, sent) = api
        .post(
            "/v1/admin/sms/test",
            ADMIN_TOKEN,
            &json!({"to": "+447911123456", "text": "test"}),
        )
        .await;
    assert_eq!(status, 502, "{sent}");
    assert!(
        sent["detail"]
            .as_str()
            .unwrap()
            .contains("login refused: wrong password"),
        "{sent}"
    );
    gateway.stop().await.unwrap();

    let good = InProcess::start(config(&peer, 1, 2, "s3cret")).await;
    let api = Api::new(&good.url);
    let (_, check) = api.post("/v1/admin/sms/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(check["ok"], true, "{check}");
    let (status, sent) = api
        .post(
            "/v1/admin/sms/test",
            ADMIN_TOKEN,
            &json!({"to": "+447911123456", "text": "test"}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert!(
        sent["provider_id"].as_str().unwrap().starts_with("peer-"),
        "{sent}"
    );
    good.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_to_another_module_logs_the_old_sessions_out() {
    let peer = LinePeer::start("s3cret").await;
    let gateway = InProcess::start_from_file(config(&peer, 2, 2, "s3cret")).await;
    let api = Api::new(&gateway.url);
    let id = post_sms(&api, 1).await.remove(0);
    api.wait_status(&id, &["sent"]).await;

    let sms_file = gateway.config.sms_file();
    let toml = gateway
        .config
        .toml
        .replace("module = \"lines\"", "module = \"file\"");
    let blob_line = toml
        .lines()
        .find(|l| l.starts_with("plugin_config = "))
        .unwrap()
        .to_string();
    let toml = toml.replace(
        &blob_line,
        &format!("plugin_config = '{}'", json!({ "path": sms_file })),
    );
    std::fs::write(gateway.config.dir.path().join("gateway.toml"), toml).unwrap();
    let (status, report) = api.post("/v1/admin/reload", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["module_switched"], true, "{report}");
    let state = peer.state.clone();
    wait_until("both old sessions logged out", || {
        state.logouts.load(Ordering::SeqCst) == 2
    })
    .await;

    let id = post_sms(&api, 1).await.remove(0);
    api.wait_status(&id, &["sent"]).await;
    assert_eq!(peer.submits().len(), 1, "the new module took the second SMS");
    gateway.stop().await.unwrap();
}
