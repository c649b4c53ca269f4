//! How the module binds, checked at the simulator: TLS with a private CA, transmitter
//! plus receiver binds (and a receipt naming a later part of a long text, pushed on
//! the receiver), and the per-bind rate cap.

use e2e::{smpp::Simulator, smtp::TestCa, Api, GatewayProcess, InProcess, ADMIN_TOKEN};
use serde_json::json;

use super::{all_sent, config_with, documented_check, post_sms, short_message, texts};

/// What one bound connection carried, as the simulator saw it.
struct Carried {
    bind: String,
    /// When each `submit_sm` arrived, in seconds.
    submits: Vec<f64>,
    delivers: u64,
}

fn connections(simulator: &mut Simulator) -> Vec<Carried> {
    let stats = simulator.stats();
    stats["connections"]
        .as_object()
        .unwrap_or_else(|| panic!("no connections in {stats}"))
        .values()
        .map(|c| Carried {
            bind: c["bind"].as_str().unwrap().to_string(),
            submits: c["submits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_f64().unwrap())
                .collect(),
            delivers: c["delivers"].as_u64().unwrap(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_sessions_bind_only_to_an_smsc_whose_ca_the_gateway_trusts() {
    let ca = TestCa::new();
    let mut simulator = Simulator::start_tls("s3cret", &ca);
    let config = || {
        config_with(
            &simulator,
            1,
            10,
            "s3cret",
            json!({"host": "localhost", "tls": true}),
        )
    };
    let address = format!("tls://localhost:{}", simulator.port);
    let (untrusting_config, trusting_config) = (config(), config());

    // The system's roots do not hold the test CA: the check says the certificate is
    // not trusted.
    let untrusting = InProcess::start(untrusting_config).await;
    let (_, check) = Api::new(&untrusting.url)
        .post("/v1/admin/sms/check", ADMIN_TOKEN, &json!({}))
        .await;
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(check["steps"][0]["url"], address.as_str(), "{check}");
    let error = check["error"].as_str().unwrap();
    assert!(
        error.contains("TLS with localhost") && error.contains("UnknownIssuer"),
        "{check}"
    );
    documented_check(&check);
    untrusting.stop().await.unwrap();
    assert_eq!(
        simulator.stats()["binds"],
        0,
        "no bind came through a refused handshake"
    );

    // Told to trust it (SSL_CERT_FILE, which replaces the system's roots), the gateway
    // binds over TLS and sends.
    let gateway = GatewayProcess::start_with(&trusting_config, |command| {
        command.env("SSL_CERT_FILE", &ca.ca_pem);
    })
    .await;
    let api = Api::new(&gateway.url);
    let (_, check) = api.post("/v1/admin/sms/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["steps"][0]["method"], "SESSION", "{check}");
    assert_eq!(check["steps"][0]["url"], address.as_str(), "{check}");
    documented_check(&check);
    let ids = post_sms(&api, (0..20).map(|i| format!("over tls {i}")), None).await;
    all_sent(&api, &ids).await;
    let seen = texts(&simulator);
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn transmitter_receiver_binds_submit_on_one_and_a_receipt_on_the_other_delivers_even_for_a_later_part()
{
    let mut simulator = Simulator::start("s3cret");
    let config = config_with(
        &simulator,
        1,
        10,
        "s3cret",
        json!({"bind": "transmitter_receiver"}),
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    // A short text, and one of 400 GSM characters: 3 parts of at most 153.
    let long: String = "All parts of this text travel together. "
        .chars()
        .cycle()
        .take(400)
        .collect();
    let ids = post_sms(&api, ["report me".to_string(), long], None).await;
    let messages = all_sent(&api, &ids).await;

    let binds = connections(&mut simulator);
    let kind = |name: &str| binds.iter().filter(|c| c.bind == name).count();
    assert_eq!(
        (binds.len(), kind("transmitter"), kind("receiver")),
        (2, 1, 1),
        "one transmitter and one receiver"
    );
    let transmitted: usize = binds
        .iter()
        .filter(|c| c.bind == "transmitter")
        .map(|c| c.submits.len())
        .sum();
    assert_eq!(transmitted, 4, "every submit (1 + 3 parts) on the transmitter");

    // The long text's parts in order (by the UDH's part number), with their ids.
    let mut parts: Vec<(u8, String)> = simulator
        .submits()
        .iter()
        .filter(|s| s["esm_class"].as_u64().unwrap() & 0x40 == 0x40)
        .map(|s| (short_message(s)[5], s["message_id"].as_str().unwrap().to_string()))
        .collect();
    parts.sort();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(
        messages[1]["provider_id"],
        parts[0].1.as_str(),
        "the first part's id"
    );

    let receipt = |id: &str| {
        json!({"cmd": "deliver", "receipt": true, "source": "447911123456", "dest": "ACME",
               "text": format!("id:{id} sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:")})
    };
    let short_id = messages[0]["provider_id"].as_str().unwrap();
    simulator.command(receipt(short_id));
    api.wait_status(&ids[0], &["delivered"]).await;
    // The receipt names the last part only: it still finds the long text.
    simulator.command(receipt(&parts[2].1));
    let message = api.wait_status(&ids[1], &["delivered"]).await;
    assert_eq!(message["provider_id"], parts[0].1.as_str());

    let binds = connections(&mut simulator);
    let delivered_to =
        |name: &str| -> u64 { binds.iter().filter(|c| c.bind == name).map(|c| c.delivers).sum() };
    assert_eq!(
        (delivered_to("receiver"), delivered_to("transmitter")),
        (2, 0),
        "receipts came on the receiver"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_cap_holds_each_bind_to_its_submits_a_second() {
    const CAP: usize = 4;
    let mut simulator = Simulator::start("s3cret");
    let config = config_with(&simulator, 2, 10, "s3cret", json!({"rate_per_second": CAP}));
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let ids = post_sms(&api, (0..16).map(|i| format!("paced {i}")), None).await;
    all_sent(&api, &ids).await;

    let binds = connections(&mut simulator);
    let submits: usize = binds.iter().map(|c| c.submits.len()).sum();
    assert_eq!(submits, 16);
    for bind in &binds {
        // CAP + 1 submits in a row on one bind never arrive within a second. 100 ms
        // are allowed for the loopback and the simulator's own scheduling: arrivals
        // are stamped when the simulator reads them, not when they were written.
        for window in bind.submits.windows(CAP + 1) {
            let span = window[CAP] - window[0];
            assert!(
                span >= 0.9,
                "{} submits within {span:.3} s on one bind (cap {CAP}/s): {:?}",
                CAP + 1,
                bind.submits
            );
        }
    }
    assert!(
        binds.iter().filter(|c| !c.submits.is_empty()).count() == 2,
        "both binds carried submits"
    );
    gateway.stop().await.unwrap();
}
