//! The settings a fleet must share (issue 10, item 4): every gateway shows a digest of
//! them, and one whose shared settings differ from a peer's says which keys differ,
//! in the settings API and in its log, never their values.

use std::time::{Duration, Instant};

use e2e::{Api, GatewayProcess, TestConfig, ADMIN_TOKEN};

/// A gateway on the shared database `url`, sending to the SMTP port `smtp` with
/// `smtp_threads`, with a blob holding `secret`, beating every second (dead_after 3s).
fn config(url: &str, smtp: u16, smtp_threads: u32, secret: &str) -> TestConfig {
    let blob = serde_json::json!({ "path": "/dev/null", "callback_token": secret }).to_string();
    TestConfig::new(
        "file",
        Some(&blob),
        "",
        &format!(
            "[email]\nhost = \"127.0.0.1\"\nport = {smtp}\nsmtp_threads = {smtp_threads}\n\
             max_per_connection = 100\n"
        ),
    )
    .with_storage_url(url)
    .with_storage_lines("dead_after = \"3s\"")
}

/// `GET /v1/admin/settings`'s `fleet` once it lists `peers` peers.
async fn fleet_with_peers(api: &Api, peers: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        if body["fleet"]["peers"]
            .as_array()
            .is_some_and(|p| p.len() == peers)
        {
            return body["fleet"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the fleet never showed {peers} peers: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_other_limits_and_blob_is_named_by_key_and_never_by_value() {
    let (url, smtp) = (e2e::postgres::database(), e2e::free_port());
    // The configurations hold the gateways' directories (and logs): kept to the end.
    let configs = [
        config(&url, smtp, 5, "first-secret-value"),
        config(&url, smtp, 2, "second-secret-value"),
        config(&url, smtp, 5, "first-secret-value"),
    ];
    let a = GatewayProcess::start(&configs[0]).await;
    let b = GatewayProcess::start(&configs[1]).await;
    let c = GatewayProcess::start(&configs[2]).await;

    let seen_by_a = fleet_with_peers(&Api::new(&a.url), 2).await;
    let peers = seen_by_a["peers"].as_array().unwrap();
    let differing: Vec<&serde_json::Value> = peers
        .iter()
        .filter(|peer| !peer["differing_keys"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(differing.len(), 1, "only b differs: {seen_by_a}");
    assert_eq!(
        differing[0]["differing_keys"],
        serde_json::json!(["email.smtp_threads", "sms.plugin_config"]),
        "{seen_by_a}"
    );
    let agreeing = peers
        .iter()
        .find(|peer| peer["differing_keys"] == serde_json::json!([]))
        .unwrap();
    assert_eq!(
        agreeing["fingerprint"], seen_by_a["fingerprint"],
        "c agrees with a: same digest"
    );
    assert_ne!(differing[0]["fingerprint"], seen_by_a["fingerprint"]);

    // The same digest in /metrics, and how many gateways are alive.
    let metrics = Api::new(&a.url).metrics().await;
    let fingerprint = seen_by_a["fingerprint"].as_str().unwrap();
    assert!(
        metrics.contains(&format!(
            "gateway_settings_fingerprint{{fingerprint=\"{fingerprint}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_fleet_gateways 3"), "{metrics}");

    // a's log names the keys it disagrees with b on, and no value of either.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.log_text().contains("shared settings differ") {
        assert!(
            Instant::now() < deadline,
            "no warning in a's log:\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for gateway in [&a, &b, &c] {
        let log = gateway.log_text();
        assert!(!log.contains("secret-value"), "a blob's value was logged:\n{log}");
    }
    let warning = a
        .log_text()
        .lines()
        .find(|l| l.contains("shared settings differ"))
        .unwrap()
        .to_owned();
    assert!(
        warning.contains("email.smtp_threads") && warning.contains("sms.plugin_config"),
        "{warning}"
    );
    assert!(!warning.contains("email.host"), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_alone_on_sqlite_shows_no_fleet() {
    let config = TestConfig::new("file", None, "", "");
    let gateway = GatewayProcess::start(&config).await;
    let (status, body) = Api::new(&gateway.url)
        .get("/v1/admin/settings", ADMIN_TOKEN)
        .await;
    assert_eq!(status, 200);
    assert!(body.get("fleet").is_none(), "{body}");
}
