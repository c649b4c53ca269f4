//! Secrets stay secret: with every secret set to a unique marker, a whole run's log
//! (debug level, JSON) and every answer of the API and the command line are searched
//! for the markers.

use std::process::Command;

use e2e::{gateway_bin, Api, GatewayProcess, TestConfig};
use serde_json::json;

const SEND_MARKER: &str = "send-token-MARKER-a1b2c3d4e5";
const ADMIN_MARKER: &str = "admin-token-MARKER-f6g7h8i9j0";
const PASSWORD_MARKER: &str = "smtp-password-MARKER-k1l2m3";
const BLOB_MARKER: &str = "blob-secret-MARKER-n4o5p6";

#[tokio::test]
async fn no_secret_reaches_the_log_or_an_answer() {
    let port = e2e::free_port();
    let mut config = TestConfig::new("file", None, "", "");
    let blob = json!({ "path": config.sms_file(), "callback_token": BLOB_MARKER }).to_string();
    config.toml = config
        .toml
        .replace("send-token-0123456789abcdef", SEND_MARKER)
        .replace("admin-token-0123456789abcdef", ADMIN_MARKER)
        .replace(&format!("plugin_config = '{}'", json!({ "path": config.sms_file() })), &format!("plugin_config = '{blob}'"))
        + &format!(
            "[email]\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"user\"\npassword = \"{PASSWORD_MARKER}\"\n\
             default_from = \"shop@example.com\"\ncheck_address = \"c@example.org\"\n[log]\nlevel = \"debug\"\nformat = \"json\"\n"
        );
    assert!(config.toml.contains(BLOB_MARKER) && config.toml.contains(SEND_MARKER));
    let gateway = GatewayProcess::start(&config).await;
    let api = Api::new(&gateway.url);
    let mut answers = Vec::new();

    // Traffic: an SMS, an e-mail (its SMTP server is closed), the admin views, a
    // connection check, callbacks with a right and a wrong secret, a wrong token, and
    // reloads, one of them refused because the new blob is bad.
    let (_, sms) = api
        .post(
            "/v1/sms",
            SEND_MARKER,
            &json!({ "to": "+447911123456", "text": "hi" }),
        )
        .await;
    let id = sms["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        let (_, message) = api.get(&format!("/v1/messages/{id}"), SEND_MARKER).await;
        if message["status"] == "sent" {
            answers.push(message);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(answers.len(), 1, "the SMS was sent");
    answers.push(
        api.post(
            "/v1/email",
            SEND_MARKER,
            &json!({ "to": ["a@example.org"], "subject": "s", "text": "t" }),
        )
        .await
        .1,
    );
    answers.push(api.get("/v1/admin/settings", ADMIN_MARKER).await.1);
    answers.push(
        api.post("/v1/admin/email/check", ADMIN_MARKER, &json!({}))
            .await
            .1,
    );
    answers.push(
        api.post(
            "/v1/admin/sms/test",
            ADMIN_MARKER,
            &json!({ "to": "+447911123456", "text": "t" }),
        )
        .await
        .1,
    );
    answers.push(api.get("/v1/admin/settings", SEND_MARKER).await.1);
    answers.push(api.get("/v1/messages/x", "not-a-token-but-long-enough").await.1);
    for token in [BLOB_MARKER, "wrong"] {
        let response = api
            .client
            .post(format!("{}/v1/providers/file/callback", gateway.url))
            .header("X-Callback-Token", token)
            .body(
                json!({ "type": "inbound", "from": "+447911123456", "to": "+447700900000", "text": "x" })
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        answers.push(json!(response.text().await.unwrap()));
    }
    answers.push(api.post("/v1/admin/reload", ADMIN_MARKER, &json!({})).await.1);
    let path = config.dir.path().join("gateway.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        good.replace(&blob, &format!("{{\"path\": 5, \"x\": \"{BLOB_MARKER}\"}}")),
    )
    .unwrap();
    let (status, refused) = api.post("/v1/admin/reload", ADMIN_MARKER, &json!({})).await;
    assert_eq!(status, 422, "{refused}");
    answers.push(refused);
    std::fs::write(&path, good.replace(PASSWORD_MARKER, "another-password-MARKER-q7")).unwrap();
    answers.push(api.post("/v1/admin/reload", ADMIN_MARKER, &json!({})).await.1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let metrics = api
        .client
        .get(format!("{}/metrics", gateway.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    gateway.signal(libc::SIGTERM);
    let log_path = gateway.log.clone();
    assert!(gateway.wait().success());

    let config_out = Command::new(gateway_bin())
        .arg("--config")
        .arg(&path)
        .arg("config")
        .output()
        .unwrap();
    let check_out = Command::new(gateway_bin())
        .arg("--config")
        .arg(&path)
        .args(["modules", "check"])
        .output()
        .unwrap();

    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.lines().count() > 10, "a real log was written:\n{log}");
    let everything = format!(
        "{log}\n{}\n{metrics}\n{}{}{}{}",
        answers
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&config_out.stdout),
        String::from_utf8_lossy(&config_out.stderr),
        String::from_utf8_lossy(&check_out.stdout),
        String::from_utf8_lossy(&check_out.stderr),
    );
    for marker in [
        SEND_MARKER,
        ADMIN_MARKER,
        PASSWORD_MARKER,
        BLOB_MARKER,
        "another-password-MARKER-q7",
    ] {
        let leaks: Vec<&str> = everything
            .lines()
            .filter(|l| l.contains(marker))
            .take(3)
            .collect();
        assert!(leaks.is_empty(), "{marker} leaked:\n{}", leaks.join("\n"));
    }
    assert!(everything.contains("\"changed\""), "the reloads answered");
}
