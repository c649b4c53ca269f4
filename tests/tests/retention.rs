//! `storage.retention` on a running gateway: finished messages are purged, and what is
//! still to be delivered is kept however old it is.

use e2e::{free_port, Api, InProcess, TestConfig, SEND_TOKEN};
use serde_json::json;

/// Defect 6: nothing was ever purged.
#[tokio::test]
async fn finished_messages_are_purged_after_the_retention() {
    // E-mail goes to a port nothing listens on: it fails transiently and waits, queued,
    // for a retry ten minutes away.
    let email = format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {}\ndefault_from = \"app@example.com\"\n\
         retry_base_ms = 600000\nretry_max_ms = 600000\n",
        free_port()
    );
    let mut config = TestConfig::new("file", None, "", &email);
    config.toml = config
        .toml
        .replace("[storage]\n", "[storage]\nretention = \"1s\"\n");
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);

    let (status, sms) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": "hi" }),
        )
        .await;
    assert_eq!(status, 202, "{sms}");
    let sms = sms["id"].as_str().unwrap().to_string();
    let (status, mail) = api
        .post(
            "/v1/email",
            SEND_TOKEN,
            &json!({ "to": ["a@example.com"], "subject": "hi", "text": "hi" }),
        )
        .await;
    assert_eq!(status, 202, "{mail}");
    let mail = mail["id"].as_str().unwrap().to_string();
    api.wait_status(&sms, &["sent"]).await;

    let mut purged = false;
    for _ in 0..100 {
        let (status, _) = api.get(&format!("/v1/messages/{sms}"), SEND_TOKEN).await;
        if status == 404 {
            purged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        purged,
        "the sent SMS is still there 10 s after a retention of 1 s"
    );

    let (status, kept) = api.get(&format!("/v1/messages/{mail}"), SEND_TOKEN).await;
    assert_eq!(status, 200, "{kept}");
    assert!(
        kept["status"] == "queued" || kept["status"] == "sending",
        "{kept}"
    );

    let metrics = api.metrics().await;
    assert!(
        metrics.contains(r#"gateway_purged_total{kind="messages"} 1"#),
        "{metrics}"
    );
}
