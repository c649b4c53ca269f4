//! `Idempotency-Key` through the real API: one key stands for one request, as the IETF
//! Idempotency-Key draft describes.

use e2e::{json_body, sms_lines, Api, InProcess, TestConfig, SEND_TOKEN};
use serde_json::json;

/// POSTs `body` (sent as it is, whitespace and all) with an idempotency key.
async fn post(api: &Api, path: &str, key: &str, body: &str) -> (u16, serde_json::Value) {
    let response = api
        .client
        .post(format!("{}{path}", api.url))
        .bearer_auth(SEND_TOKEN)
        .header("Idempotency-Key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, json_body(response).await)
}

async fn file_gateway() -> (InProcess, Api) {
    let gateway = InProcess::start(TestConfig::new("file", None, "", "")).await;
    let api = Api::new(&gateway.url);
    (gateway, api)
}

fn assert_refused_naming_the_key(status: u16, body: &serde_json::Value) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "Idempotency-Key", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("used for another request"), "{detail}");
}

#[tokio::test]
async fn the_same_request_with_the_same_key_returns_the_same_id() {
    let (gateway, api) = file_gateway().await;
    let (status, first) = post(
        &api,
        "/v1/sms",
        "order-7",
        r#"{"to": "+447911123456", "text": "once"}"#,
    )
    .await;
    assert_eq!(status, 202, "{first}");
    // The same request, its keys in another order and other whitespace.
    let (status, again) = post(
        &api,
        "/v1/sms",
        "order-7",
        "{ \"text\":\"once\",\n  \"to\":\"+447911123456\" }",
    )
    .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(first["id"], again["id"]);

    api.wait_status(first["id"].as_str().unwrap(), &["sent"]).await;
    assert_eq!(sms_lines(&gateway.config.sms_file()).len(), 1, "sent once");
}

/// Defect 5: the second request was answered 202 with the first one's id, and its SMS
/// was never sent.
#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_refused() {
    let (gateway, api) = file_gateway().await;
    let (status, first) = post(
        &api,
        "/v1/sms",
        "order-8",
        r#"{"to": "+447911123456", "text": "first"}"#,
    )
    .await;
    assert_eq!(status, 202, "{first}");
    let (status, body) = post(
        &api,
        "/v1/sms",
        "order-8",
        r#"{"to": "+447911123456", "text": "second"}"#,
    )
    .await;
    assert_refused_naming_the_key(status, &body);

    api.wait_status(first["id"].as_str().unwrap(), &["sent"]).await;
    let lines = sms_lines(&gateway.config.sms_file());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["text"], "first");
}

/// Defect 5: a key first used for an SMS returned that SMS's id from `POST /v1/email`
/// with a 202, and the e-mail was never sent.
#[tokio::test]
async fn an_idempotency_key_reused_on_another_endpoint_is_refused() {
    let (_gateway, api) = file_gateway().await;
    let (status, first) = post(
        &api,
        "/v1/sms",
        "order-9",
        r#"{"to": "+447911123456", "text": "hi"}"#,
    )
    .await;
    assert_eq!(status, 202, "{first}");

    let email = json!({ "to": ["a@example.com"], "from": "app@example.com", "subject": "hi", "text": "hi" });
    let (status, body) = post(&api, "/v1/email", "order-9", &email.to_string()).await;
    assert_refused_naming_the_key(status, &body);
    let mailing =
        json!({ "from": "app@example.com", "subject": "hi", "text": "hi", "recipients": ["a@example.com"] });
    let (status, body) = post(&api, "/v1/mailings", "order-9", &mailing.to_string()).await;
    assert_refused_naming_the_key(status, &body);

    // The key still answers its own request, and a fresh key sends the e-mail.
    let (status, again) = post(
        &api,
        "/v1/sms",
        "order-9",
        r#"{"to": "+447911123456", "text": "hi"}"#,
    )
    .await;
    assert_eq!((status, &again["id"]), (202, &first["id"]));
    let (status, body) = post(&api, "/v1/email", "order-10", &email.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_ne!(body["id"], first["id"]);
}
