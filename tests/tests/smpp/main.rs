//! The `smpp` module through whole gateways, against a real SMSC someone else wrote:
//! smpp34's server (tests/smpp/simulator.py, tests/src/smpp.rs). This file: traffic,
//! long texts, receipts and MO, a lost SMSC, throttling, a wrong password; `binds.rs`:
//! TLS, transmitter and receiver binds, the rate cap, receipts naming a later part.

mod binds;

use std::{
    collections::HashMap,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use e2e::{gateway_bin, smpp::Simulator, Api, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::{json, Value};

fn config(simulator: &Simulator, binds: u32, window: u32, password: &str) -> TestConfig {
    config_with(simulator, binds, window, password, json!({}))
}

/// The blob of [`config`] with the keys of `more` added (or replaced).
fn config_with(simulator: &Simulator, binds: u32, window: u32, password: &str, more: Value) -> TestConfig {
    let mut blob = json!({
        "host": "127.0.0.1",
        "port": simulator.port,
        "system_id": "gateway",
        "password": password,
        "binds": binds,
        "window": window,
        "enquire_link_ms": 1000,
    });
    for (key, value) in more.as_object().expect("an object of blob keys") {
        blob[key] = value.clone();
    }
    // Quick retries: a test waits for every SMS to go.
    TestConfig::new(
        "smpp",
        Some(&blob.to_string()),
        "retry_base_ms = 50\nretry_max_ms = 400\nmax_attempts = 50",
        "",
    )
}

async fn post_sms(api: &Api, texts: impl IntoIterator<Item = String>, sender: Option<&str>) -> Vec<String> {
    let mut ids = Vec::new();
    for text in texts {
        let mut body = json!({"to": "+447911123456", "text": text});
        if let Some(sender) = sender {
            body["sender"] = sender.into();
        }
        let (status, answer) = api.post("/v1/sms", SEND_TOKEN, &body).await;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_string());
    }
    ids
}

async fn all_sent(api: &Api, ids: &[String]) -> Vec<Value> {
    let mut messages = Vec::new();
    for id in ids {
        let message = api.wait_status(id, &["sent", "failed"]).await;
        assert_eq!(message["status"], "sent", "{message}");
        messages.push(message);
    }
    messages
}

/// Asserts that a self-check's answer is what `gateway/openapi.json` documents for
/// `POST /v1/admin/sms/check` (`ModuleCheck`, with its SESSION step), checked by the
/// JSON Schema validator that openapi-spec-validator brings (jsonschema).
fn documented_check(check: &Value) {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/openapi.json");
    let script = "import json, sys\n\
                  from jsonschema import Draft202012Validator\n\
                  doc = json.load(open(sys.argv[1]))\n\
                  schema = {'$ref': '#/components/schemas/ModuleCheck', 'components': doc['components']}\n\
                  Draft202012Validator(schema).validate(json.loads(sys.argv[2]))\n";
    let run = || {
        Command::new("python3")
            .args(["-c", script])
            .arg(&spec)
            .arg(check.to_string())
            .output()
            .expect("python3")
    };
    let mut output = run();
    if String::from_utf8_lossy(&output.stderr).contains("No module named") {
        e2e::pip_install("openapi-spec-validator==0.7.2");
        output = run();
    }
    assert!(
        output.status.success(),
        "the check's answer is not the documented ModuleCheck: {check}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The short message of a submit, as bytes.
fn short_message(submit: &Value) -> Vec<u8> {
    let hex = submit["sm"].as_str().unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// How many times each text reached the SMSC (single-part GSM texts).
fn texts(simulator: &Simulator) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for submit in simulator.submits() {
        let text = String::from_utf8_lossy(&short_message(&submit)).to_string();
        *seen.entry(text).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_sms_over_two_binds_are_each_acknowledged_once_within_the_window() {
    let mut simulator = Simulator::start("s3cret");
    let gateway = InProcess::start(config(&simulator, 2, 10, "s3cret")).await;
    let api = Api::new(&gateway.url);
    let ids = post_sms(&api, (0..1000).map(|i| format!("sms number {i}")), Some("ACME")).await;
    let messages = all_sent(&api, &ids).await;
    assert!(messages
        .iter()
        .all(|m| m["provider_id"].as_str().unwrap().starts_with("sim-")));

    let seen = texts(&simulator);
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|&n| n == 1), "an SMS was submitted twice");
    let stats = simulator.stats();
    assert_eq!(stats["binds"], 2, "{stats}");
    let max: Vec<u64> = stats["max_outstanding"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(max.len(), 2, "{stats}");
    assert!(
        max.iter().all(|&m| m <= 10),
        "more than the window outstanding: {stats}"
    );
    assert!(max.iter().any(|&m| m > 1), "the window was never used: {stats}");

    let submit = &simulator.submits()[0];
    assert_eq!(
        (submit["source"].as_str(), submit["source_ton"].as_u64()),
        (Some("ACME"), Some(5))
    );
    assert_eq!(
        (
            submit["dest"].as_str(),
            submit["dest_ton"].as_u64(),
            submit["dest_npi"].as_u64()
        ),
        (Some("447911123456"), Some(1), Some(1))
    );
    assert_eq!(submit["registered_delivery"], 1);
    assert_eq!(simulator.unbound(), 0);
    gateway.stop().await.unwrap();
    // A graceful stop unbinds both binds.
    for _ in 0..100 {
        if simulator.unbound() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(simulator.unbound(), 2, "both binds unbound at stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_300_character_ucs2_text_arrives_in_parts_that_reassemble_exactly() {
    let simulator = Simulator::start("s3cret");
    let gateway = InProcess::start(config(&simulator, 1, 10, "s3cret")).await;
    let api = Api::new(&gateway.url);
    let text: String = "Привет, мир! ".chars().cycle().take(300).collect();
    let ids = post_sms(&api, [text.clone()], Some("+447700900111")).await;
    let message = all_sent(&api, &ids).await.remove(0);

    let parts = simulator.submits();
    assert_eq!(parts.len(), 5, "300 UCS-2 characters are 5 parts of 67");
    let mut numbered: Vec<(u8, Vec<u8>, String)> = parts
        .iter()
        .map(|part| {
            assert_eq!(part["data_coding"], 8, "{part}");
            assert_eq!(
                part["esm_class"].as_u64().unwrap() & 0x40,
                0x40,
                "UDHI set: {part}"
            );
            assert_eq!(
                (part["source"].as_str(), part["source_ton"].as_u64()),
                (Some("447700900111"), Some(1))
            );
            let bytes = short_message(part);
            let udh_length = usize::from(bytes[0]) + 1;
            // The concatenation element: IEI 0, length 3, reference, total, number.
            assert_eq!(&bytes[1..3], &[0, 3]);
            assert_eq!(bytes[4], 5);
            (
                bytes[5],
                bytes[udh_length..].to_vec(),
                part["message_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    numbered.sort_by_key(|(n, _, _)| *n);
    let units: Vec<u16> = numbered
        .iter()
        .flat_map(|(_, payload, _)| payload.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])))
        .collect();
    assert_eq!(String::from_utf16(&units).unwrap(), text);
    assert_eq!(
        message["provider_id"],
        numbered[0].2.as_str(),
        "the first part's id"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_delivers_the_message_and_an_mo_reaches_the_webhook() {
    // The app's webhook: a real HTTP server keeping what it is sent.
    let received = Arc::new(Mutex::new(Vec::<Value>::new()));
    let app = {
        let received = received.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    received
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    axum::http::StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut simulator = Simulator::start("s3cret");
    let mut config = config(&simulator, 1, 10, "s3cret");
    config.toml = config.toml.replacen(
        "retry_base_ms = 50",
        &format!("inbound_webhook = \"{hook}\"\nretry_base_ms = 50"),
        1,
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let ids = post_sms(&api, ["report me".to_string()], None).await;
    let message = all_sent(&api, &ids).await.remove(0);
    let provider_id = message["provider_id"].as_str().unwrap();

    let receipt = format!(
        "id:{provider_id} sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:report me"
    );
    simulator.command(
        json!({"cmd": "deliver", "receipt": true, "source": "447911123456", "dest": "ACME", "text": receipt}),
    );
    api.wait_status(&ids[0], &["delivered"]).await;

    simulator.command(json!({"cmd": "deliver", "source": "447911123456", "dest": "447700900000", "text": "hello from a phone"}));
    let mut items = Vec::new();
    for _ in 0..200 {
        let (_, page) = api.get("/v1/inbound", SEND_TOKEN).await;
        items = page["items"].as_array().unwrap().clone();
        if !items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["sender"], "+447911123456");
    assert_eq!(items[0]["text"], "hello from a phone");
    assert_eq!(items[0]["module"], "smpp");
    for _ in 0..200 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let forwarded = received.lock().unwrap().clone();
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert_eq!(forwarded[0]["from"], "+447911123456");
    assert_eq!(forwarded[0]["text"], "hello from a phone");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smsc_killed_and_restarted_mid_run_loses_nothing_and_repeats_at_most_the_windows() {
    let mut simulator = Simulator::start("s3cret");
    let gateway = InProcess::start(config(&simulator, 2, 10, "s3cret")).await;
    let api = Api::new(&gateway.url);
    let ids = post_sms(&api, (0..300).map(|i| format!("survivor {i}")), None).await;
    for _ in 0..400 {
        if simulator.submits().len() >= 80 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    simulator.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    simulator.restart();
    all_sent(&api, &ids).await;
    let seen = texts(&simulator);
    assert_eq!(seen.len(), 300, "every SMS reached the SMSC");
    let repeated: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        repeated <= 2 * 10,
        "{repeated} submitted twice, more than the two windows"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_answers_slow_the_binds_and_every_sms_still_goes() {
    let mut simulator = Simulator::start("s3cret");
    let gateway = InProcess::start(config(&simulator, 1, 5, "s3cret")).await;
    simulator.command(json!({"cmd": "throttle", "count": 10}));
    let api = Api::new(&gateway.url);
    let started = std::time::Instant::now();
    let ids = post_sms(&api, (0..40).map(|i| format!("patient {i}")), None).await;
    all_sent(&api, &ids).await;
    // Each ESME_RTHROTTLED pauses the bind for a second.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let seen = texts(&simulator);
    assert_eq!(seen.len(), 40);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_shows_the_bind_failure_with_the_status_name() {
    let simulator = Simulator::start("s3cret");
    let config = config(&simulator, 1, 10, "wrong");
    let path = config.write();
    let output = Command::new(gateway_bin())
        .args(["--config"])
        .arg(&path)
        .args(["modules", "check", "smpp"])
        .current_dir(config.dir.path())
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("bind refused: ESME_RINVPASWD"), "{printed}");
    assert!(
        !printed.contains("wrong"),
        "the password is never shown: {printed}"
    );

    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let (_, check) = api.post("/v1/admin/sms/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(
        check["error"], "module `smpp`: bind refused: ESME_RINVPASWD",
        "{check}"
    );
    assert_eq!(check["steps"][0]["method"], "SESSION", "{check}");
    documented_check(&check);
    let mut sent = Value::Null;
    for _ in 0..100 {
        let (status, answer) = api
            .post(
                "/v1/admin/sms/test",
                ADMIN_TOKEN,
                &json!({"to": "+447911123456", "text": "test"}),
            )
            .await;
        assert_eq!(status, 502, "{answer}");
        sent = answer;
        if sent["detail"].as_str().unwrap().contains("ESME_RINVPASWD") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sent["detail"]
            .as_str()
            .unwrap()
            .contains("bind refused: ESME_RINVPASWD"),
        "{sent}"
    );
    gateway.stop().await.unwrap();
}
