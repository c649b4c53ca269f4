//! The e-mail endpoints' checks, through the real API (no SMTP server needed: what is
//! refused never reaches the queue).

use e2e::{Api, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::json;

async fn gateway() -> (InProcess, Api) {
    let config = TestConfig::new(
        "file",
        None,
        "",
        "[email]\nhost = \"127.0.0.1\"\nport = 1\ndefault_from = \"Shop <shop@example.com>\"\n",
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    (gateway, api)
}

#[tokio::test]
async fn an_email_is_accepted_and_queued() {
    let (_gateway, api) = gateway().await;
    let (status, body) = api
        .post(
            "/v1/email",
            SEND_TOKEN,
            &json!({ "to": ["Ann <ann@example.org>"], "cc": ["bob@example.org"], "subject": "Hi", "text": "Hello" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, message) = api
        .get(
            &format!("/v1/messages/{}", body["id"].as_str().unwrap()),
            SEND_TOKEN,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(message["channel"], "email");
    assert!(
        ["queued", "sending"].contains(&message["status"].as_str().unwrap()),
        "{message}"
    );
}

#[tokio::test]
async fn header_injection_and_bad_addresses_are_422s_naming_the_field() {
    let (_gateway, api) = gateway().await;
    let base = json!({ "to": ["ann@example.org"], "subject": "Hi", "text": "Hello" });
    let with = |key: &str, value: serde_json::Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("subject", json!("Hi\r\nBcc: victim@example.com")), "subject"),
        (with("subject", json!("Hi\nX-Evil: 1")), "subject"),
        (
            with("to", json!(["ann@example.org\r\nBcc: victim@example.com"])),
            "to[0]",
        ),
        (with("to", json!(["ann@example.org", "not an address"])), "to[1]"),
        (with("cc", json!(["Evil\n <e@example.com>"])), "cc[0]"),
        (with("bcc", json!(["@nope"])), "bcc[0]"),
        (with("from", json!("Shop\r\n <shop@example.com>")), "from"),
        (with("to", json!([])), "to"),
        (json!({ "to": ["ann@example.org"], "subject": "no body" }), "text"),
        (
            json!({ "to": ["ann@example.org"], "text": "no subject" }),
            "subject",
        ),
    ] {
        let (status, problem) = api.post("/v1/email", SEND_TOKEN, &body).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
}

#[tokio::test]
async fn a_name_too_long_for_a_header_line_is_a_422_naming_the_field() {
    let (_gateway, api) = gateway().await;
    let long_name = format!("{} <ann@example.org>", "n".repeat(1_000));
    let (status, problem) = api
        .post(
            "/v1/email",
            SEND_TOKEN,
            &json!({ "to": ["bob@example.org"], "cc": [long_name], "subject": "Hi", "text": "x" }),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "cc[0]", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("998"), "{problem}");
    let (status, problem) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({ "from": long_name, "subject": "Hi", "text": "x", "recipients": ["bob@example.org"] }),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "from", "{problem}");
}

#[tokio::test]
async fn without_a_default_from_the_sender_is_required() {
    let gateway = InProcess::start(TestConfig::new("file", None, "", "")).await;
    let api = Api::new(&gateway.url);
    let (status, problem) = api
        .post(
            "/v1/email",
            SEND_TOKEN,
            &json!({ "to": ["ann@example.org"], "subject": "Hi", "text": "x" }),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["field"], "from");
}

#[tokio::test]
async fn a_mailing_of_100000_recipients_is_accepted_in_one_request() {
    let (_gateway, api) = gateway().await;
    let recipients: Vec<String> = (0..100_000).map(|i| format!("user{i}@example.org")).collect();
    let started = std::time::Instant::now();
    let (status, body) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({ "subject": "News", "text": "Hello", "recipients": recipients }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    eprintln!("100,000-recipient mailing accepted in {:?}", started.elapsed());
    let (status, counts) = api
        .get(
            &format!("/v1/mailings/{}", body["id"].as_str().unwrap()),
            SEND_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(counts["total"], 100_000);
    let in_queue = counts["queued"].as_u64().unwrap() + counts["sending"].as_u64().unwrap();
    assert_eq!(in_queue + counts["failed"].as_u64().unwrap(), 100_000, "{counts}");

    let (status, problem) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({ "subject": "News", "text": "x", "recipients": ["ok@example.org", "bad address"] }),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["field"], "recipients[1]");
    let (status, _) = api.get("/v1/mailings/nope", SEND_TOKEN).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_smtp_check_against_a_closed_port_fails_at_connect() {
    let (_gateway, api) = gateway().await;
    let (status, report) = api.post("/v1/admin/email/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed_step"], "connect");
    assert!(
        report["steps"][0]["reply"].as_str().unwrap().len() > 5,
        "{report}"
    );
    let (status, _) = api.post("/v1/admin/email/check", SEND_TOKEN, &json!({})).await;
    assert_eq!(status, 403);
}
