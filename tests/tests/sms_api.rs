//! SMS through the real HTTP API, the real SQLite file and real module libraries.

use e2e::{json_body, sms_lines, Api, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::json;

async fn file_gateway() -> (InProcess, Api) {
    let gateway = InProcess::start(TestConfig::new("file", None, "", "")).await;
    let api = Api::new(&gateway.url);
    (gateway, api)
}

#[tokio::test]
async fn national_and_international_numbers_reach_the_module_in_e164() {
    let (gateway, api) = file_gateway().await;
    let mut ids = Vec::new();
    for to in ["+44 7911 123456", "0044 7911 123456", "07911 123456"] {
        let (status, body) = api
            .post("/v1/sms", SEND_TOKEN, &json!({ "to": to, "text": "hi" }))
            .await;
        assert_eq!(status, 202, "{to}: {body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let message = api.wait_status(id, &["sent"]).await;
        assert_eq!(message["channel"], "sms");
        assert_eq!(message["provider_id"], format!("file-{id}"));
        assert_eq!(message["attempts"], 1);
    }
    let lines = sms_lines(&gateway.config.sms_file());
    for id in &ids {
        let line = lines
            .iter()
            .find(|l| l["id"] == *id.as_str())
            .expect("a line for each id");
        assert_eq!(line["to"], "+447911123456");
        assert_eq!(line["sender"], "ACME");
    }
    for bad in ["12345", "not-a-number"] {
        let (status, body) = api
            .post("/v1/sms", SEND_TOKEN, &json!({ "to": bad, "text": "hi" }))
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["field"], "to", "{body}");
        assert!(body["detail"].as_str().unwrap().contains(bad), "{body}");
    }
    assert_eq!(
        sms_lines(&gateway.config.sms_file()).len(),
        3,
        "refused numbers were not sent"
    );
}

#[tokio::test]
async fn bad_requests_get_the_right_problem() {
    let (_gateway, api) = file_gateway().await;
    let client = &api.client;
    let url = |p: &str| format!("{}{p}", api.url);
    let sms = json!({ "to": "+447911123456", "text": "hi" });

    let r = client
        .post(url("/v1/sms"))
        .bearer_auth("wrong-token-0123456789")
        .header("content-type", "application/json")
        .body(sms.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = client
        .post(url("/v1/sms"))
        .header("content-type", "application/json")
        .body(sms.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (status, body) = api.get("/v1/admin/settings", SEND_TOKEN).await;
    assert_eq!(status, 403, "{body}");

    let huge = "x".repeat(2 * 1024 * 1024);
    let r = client
        .post(url("/v1/sms"))
        .bearer_auth(SEND_TOKEN)
        .header("content-type", "application/json")
        .body(format!("{{\"to\": \"+447911123456\", \"text\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let r = client
        .post(url("/v1/sms"))
        .bearer_auth(SEND_TOKEN)
        .header("content-type", "application/json")
        .body("{\"to\": \"+447911123456\", \"text\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = json_body(r).await;
    assert!(
        body["detail"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

    for (request, field) in [
        (json!({ "to": "+447911123456" }), "text"),
        (json!({ "to": "+447911123456", "text": "" }), "text"),
        (json!({ "to": "+447911123456", "text": 5 }), "text"),
        (
            json!({ "to": "+447911123456", "text": "hi", "colour": "red" }),
            "colour",
        ),
        (
            json!({ "to": "+447911123456", "text": "hi", "sender": "FAR TOO LONG SENDER" }),
            "sender",
        ),
        (json!({ "to": "+447911123456", "text": "y".repeat(1601) }), "text"),
    ] {
        let (status, body) = api.post("/v1/sms", SEND_TOKEN, &request).await;
        assert_eq!(status, 422, "{request}: {body}");
        assert_eq!(body["field"], field, "{request}: {body}");
    }

    let (status, body) = api.get("/v1/messages/no-such-id", SEND_TOKEN).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = api.get("/v1/nothing-here", SEND_TOKEN).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_same_idempotency_key_twice_gives_one_message() {
    let (gateway, api) = file_gateway().await;
    let send = |key: &'static str| {
        api.client
            .post(format!("{}/v1/sms", api.url))
            .bearer_auth(SEND_TOKEN)
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(json!({ "to": "+447911123456", "text": "once" }).to_string())
            .send()
    };
    let first = json_body(send("order-42").await.unwrap()).await;
    let second = send("order-42").await.unwrap();
    assert_eq!(second.status(), 202);
    let second = json_body(second).await;
    assert_eq!(first["id"], second["id"]);
    let other = json_body(send("order-43").await.unwrap()).await;
    assert_ne!(first["id"], other["id"]);
    api.wait_status(first["id"].as_str().unwrap(), &["sent"]).await;
    api.wait_status(other["id"].as_str().unwrap(), &["sent"]).await;
    let lines = sms_lines(&gateway.config.sms_file());
    assert_eq!(lines.iter().filter(|l| l["id"] == first["id"]).count(), 1);
    assert_eq!(lines.len(), 2);
}

#[tokio::test]
async fn a_transient_error_is_retried_and_a_permanent_one_fails_with_the_reason() {
    let config = TestConfig::new(
        "echo",
        Some(r#"{"transient_before_attempt": 3, "permanent_if_text_contains": "REJECT"}"#),
        "retry_base_ms = 20\nretry_max_ms = 100",
        "",
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let (_, ok) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": "hi" }),
        )
        .await;
    let id = ok["id"].as_str().unwrap();
    let message = api.wait_status(id, &["sent", "failed"]).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["attempts"], 3, "{message}");
    assert_eq!(message["provider_id"], format!("echo-{id}"));

    let (_, bad) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": "REJECT me" }),
        )
        .await;
    let message = api
        .wait_status(bad["id"].as_str().unwrap(), &["sent", "failed"])
        .await;
    assert_eq!(message["status"], "failed", "{message}");
    let error = message["error"].as_str().unwrap();
    assert!(
        error.contains("provider rejected the text") && error.contains("module `echo`"),
        "{error}"
    );
}

#[tokio::test]
async fn transient_errors_stop_at_max_attempts() {
    let config = TestConfig::new(
        "echo",
        Some(r#"{"transient_before_attempt": 100}"#),
        "retry_base_ms = 5\nretry_max_ms = 20\nmax_attempts = 4",
        "",
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let (_, body) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": "hi" }),
        )
        .await;
    let message = api
        .wait_status(body["id"].as_str().unwrap(), &["sent", "failed"])
        .await;
    assert_eq!(message["status"], "failed", "{message}");
    assert_eq!(message["attempts"], 4, "{message}");
    assert!(
        message["error"].as_str().unwrap().contains("provider busy"),
        "{message}"
    );
}

#[tokio::test]
async fn send_test_goes_out_at_once_and_reports_the_modules_answer() {
    let (gateway, api) = file_gateway().await;
    let (status, body) = api
        .post(
            "/v1/admin/sms/test",
            ADMIN_TOKEN,
            &json!({ "to": "07911 123456", "text": "test" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["module"], "file");
    let id = body["id"].as_str().unwrap();
    assert_eq!(body["provider_id"], format!("file-{id}"));
    let lines = sms_lines(&gateway.config.sms_file());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["to"], "+447911123456");

    let (status, _) = api
        .post(
            "/v1/admin/sms/test",
            SEND_TOKEN,
            &json!({ "to": "07911 123456", "text": "t" }),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn send_test_reports_a_panicking_module_and_the_gateway_goes_on() {
    let gateway = InProcess::start(TestConfig::new("panicky", Some(""), "", "")).await;
    let api = Api::new(&gateway.url);
    let (status, body) = api
        .post(
            "/v1/admin/sms/test",
            ADMIN_TOKEN,
            &json!({ "to": "+447911123456", "text": "please panic" }),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("module `panicky` panicked in send"),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/v1/admin/sms/test",
            ADMIN_TOKEN,
            &json!({ "to": "+447911123456", "text": "calm" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn admin_settings_show_values_and_sources_without_secrets() {
    let (_gateway, api) = file_gateway().await;
    let (status, body) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["sms.module"]["value"], "file");
    assert_eq!(body["settings"]["sms.plugin_config"]["value"], "[redacted]");
    assert_eq!(body["sms_module"]["name"], "file");
    let text = body.to_string();
    assert!(
        !text.contains(SEND_TOKEN) && !text.contains(ADMIN_TOKEN),
        "{text}"
    );
    assert!(!text.contains("sms.jsonl"), "the blob leaked: {text}");
}

/// Defect 14: the gateway's numbering data (libphonenumber 9.0.33) is frozen while
/// ranges keep being allocated. 07610 is a UK block it knows in none of +44's regions,
/// standing in for a range opened since: refused by default, sent with
/// `sms.number_check = "possible"`, by `POST /v1/sms` and by *Send test* alike.
#[tokio::test]
async fn a_number_in_a_range_newer_than_the_metadata_is_accepted_with_possible() {
    let newer = json!({ "to": "07610 123456", "text": "hello from a new range" });

    let (strict, api) = file_gateway().await;
    for path in ["/v1/sms", "/v1/admin/sms/test"] {
        let (status, body) = api.post(path, ADMIN_TOKEN, &newer).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["field"], "to", "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("sms.number_check"),
            "the refusal says how to accept such numbers: {body}"
        );
    }
    assert!(sms_lines(&strict.config.sms_file()).is_empty());

    let lenient = InProcess::start(TestConfig::new("file", None, "number_check = \"possible\"", "")).await;
    let api = Api::new(&lenient.url);
    let (status, body) = api.post("/v1/sms", SEND_TOKEN, &newer).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap();
    api.wait_status(id, &["sent"]).await;
    let (status, test) = api.post("/v1/admin/sms/test", ADMIN_TOKEN, &newer).await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["to"], "+447610123456");

    let lines = sms_lines(&lenient.config.sms_file());
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["to"], "+447610123456", "{line}");
    }
    assert!(lines.iter().any(|l| l["id"] == id));

    // A length no +44 number has is still refused.
    let (status, body) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "07610 1234", "text": "hi" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "to", "{body}");
}
