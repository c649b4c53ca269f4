//! The `http` and `twilio` modules, loaded from disk by a running gateway, sending to a
//! real local HTTP server that answers as the provider's published API does, and
//! reading the provider's callbacks.

use std::sync::{Arc, Mutex};

use axum::{
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::IntoResponse,
};
use e2e::{Api, InProcess, TestConfig, SEND_TOKEN};
use serde_json::json;

/// One request the fake provider received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A local HTTP server that records every request and answers with `answer(seen, n)`,
/// where `n` counts the requests whose `Body`/`text` field was the same so far.
async fn provider(
    answer: impl Fn(&Seen, usize) -> (StatusCode, String) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let answer = Arc::new(answer);
    let log = seen.clone();
    let app =
        axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (log, answer) = (log.clone(), answer.clone());
            async move {
                let request = Seen {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    authorization: headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    content_type: headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    form: form_urlencoded(&body),
                };
                let text = request
                    .field("Body")
                    .or(request.field("text"))
                    .unwrap_or("")
                    .to_string();
                let mut log = log.lock().unwrap();
                let repeats = log
                    .iter()
                    .filter(|r| r.field("Body").or(r.field("text")) == Some(text.as_str()))
                    .count();
                log.push(request.clone());
                drop(log);
                let (status, body) = answer(&request, repeats);
                (status, [("content-type", "application/json")], body).into_response()
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

async fn send(api: &Api, text: &str) -> serde_json::Value {
    let (status, body) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": text }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    api.wait_status(body["id"].as_str().unwrap(), &["sent", "failed"])
        .await
}

async fn callback_form(api: &Api, module: &str, query: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let response = api
        .client
        .post(format!("{}/v1/providers/{module}/callback{query}", api.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A Vonage-style provider: form POST to /sms/json, `messages[0]` in the answer.
fn vonage_answer(seen: &Seen, repeats: usize) -> (StatusCode, String) {
    match seen.field("text") {
        Some("boom") if repeats < 2 => (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\": \"try later\"}".into()),
        Some("bad") => (StatusCode::BAD_REQUEST, "{\"error-text\": \"Invalid To number\"}".into()),
        _ => (
            StatusCode::OK,
            json!({ "message-count": "1", "messages": [{ "status": "0", "message-id": format!("VON-{}", seen.field("client-ref").unwrap_or("")) }] })
                .to_string(),
        ),
    }
}

#[tokio::test]
async fn the_http_module_sends_like_vonage_retries_a_500_and_fails_on_a_400() {
    let (url, seen) = provider(vonage_answer).await;
    let blob = include_str!("../../plugins/http/blobs/vonage.json")
        .replace("https://rest.nexmo.com", &url)
        .replace('\n', " ");
    let config = TestConfig::new("http", Some(&blob), "retry_base_ms = 20\nretry_max_ms = 50", "");
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);

    let ok = send(&api, "hello").await;
    assert_eq!(ok["status"], "sent", "{ok}");
    assert_eq!(ok["provider_id"], format!("VON-{}", ok["id"].as_str().unwrap()));
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/sms/json")
    );
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.field("api_key"), Some("a1b2c3d4"));
    assert_eq!(request.field("api_secret"), Some("YOUR-VONAGE-API-SECRET"));
    assert_eq!(request.field("to"), Some("447911123456"));
    assert_eq!(request.field("from"), Some("ACME"));
    assert_eq!(request.field("text"), Some("hello"));

    let retried = send(&api, "boom").await;
    assert_eq!(
        (retried["status"].as_str(), retried["attempts"].as_u64()),
        (Some("sent"), Some(3)),
        "{retried}"
    );

    let refused = send(&api, "bad").await;
    assert_eq!(refused["status"], "failed", "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("400") && error.contains("Invalid To number"),
        "{error}"
    );
    assert!(!error.contains("YOUR-VONAGE-API-SECRET"), "{error}");
}

#[tokio::test]
async fn the_http_module_reads_vonage_delivery_reports_and_inbound_sms() {
    let (url, _seen) = provider(vonage_answer).await;
    let blob = include_str!("../../plugins/http/blobs/vonage.json")
        .replace("https://rest.nexmo.com", &url)
        .replace('\n', " ");
    let gateway = InProcess::start(TestConfig::new("http", Some(&blob), "", "")).await;
    let api = Api::new(&gateway.url);
    let sent = send(&api, "hello").await;
    let provider_id = sent["provider_id"].as_str().unwrap();

    let token = "?token=A-LONG-RANDOM-CALLBACK-TOKEN";
    let (status, body) = callback_form(
        &api,
        "http",
        token,
        &[("messageId", provider_id), ("status", "delivered")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, message) = api
        .get(
            &format!("/v1/messages/{}", sent["id"].as_str().unwrap()),
            SEND_TOKEN,
        )
        .await;
    assert_eq!(message["status"], "delivered", "{message}");

    let (status, body) = callback_form(
        &api,
        "http",
        token,
        &[
            ("msisdn", "07911 123456"),
            ("to", "447700900000"),
            ("text", "STOP"),
            ("messageId", "in-1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, page) = api.get("/v1/inbound", SEND_TOKEN).await;
    assert_eq!(page["items"][0]["sender"], "+447911123456", "{page}");
    assert_eq!(page["items"][0]["text"], "STOP");

    let (status, _) = callback_form(
        &api,
        "http",
        "?token=wrong",
        &[("messageId", provider_id), ("status", "failed")],
    )
    .await;
    assert_eq!(status, 400, "a callback without the secret is refused");
    let (_, message) = api
        .get(
            &format!("/v1/messages/{}", sent["id"].as_str().unwrap()),
            SEND_TOKEN,
        )
        .await;
    assert_eq!(message["status"], "delivered", "and changes nothing");
}

/// Answers as Twilio's Messages API documents: 201 with the message's `sid`; errors
/// with `code`, `message` and `more_info`.
fn twilio_answer(seen: &Seen, repeats: usize) -> (StatusCode, String) {
    match seen.field("Body") {
        Some("boom") if repeats < 2 => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "code": 20503, "message": "Service unavailable", "status": 503 }).to_string(),
        ),
        Some("bad") => (
            StatusCode::BAD_REQUEST,
            json!({ "code": 21211, "message": "The 'To' number +447911123456 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400 }).to_string(),
        ),
        text => (
            StatusCode::CREATED,
            json!({ "sid": format!("SM-{}", text.unwrap_or_default()), "status": "queued" }).to_string(),
        ),
    }
}

#[tokio::test]
async fn the_twilio_module_speaks_twilios_messages_api() {
    let (url, seen) = provider(twilio_answer).await;
    let sid = "AC0123456789abcdef0123456789abcdef";
    let blob =
        json!({ "account_sid": sid, "auth_token": "twilio-auth-token-xyz", "base_url": url }).to_string();
    let config = TestConfig::new("twilio", Some(&blob), "retry_base_ms = 20\nretry_max_ms = 50", "");
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);

    let ok = send(&api, "hello").await;
    assert_eq!(ok["status"], "sent", "{ok}");
    assert_eq!(ok["provider_id"], "SM-hello");
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/2010-04-01/Accounts/{sid}/Messages.json"));
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:twilio-auth-token-xyz"));
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(request.field("To"), Some("+447911123456"));
    assert_eq!(request.field("From"), Some("ACME"));
    assert_eq!(request.field("Body"), Some("hello"));

    let retried = send(&api, "boom").await;
    assert_eq!(
        (retried["status"].as_str(), retried["attempts"].as_u64()),
        (Some("sent"), Some(3)),
        "{retried}"
    );
    let refused = send(&api, "bad").await;
    assert_eq!(refused["status"], "failed", "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("21211") && error.contains("not a valid phone number"),
        "{error}"
    );
    assert!(!error.contains("twilio-auth-token-xyz"), "{error}");

    // A status callback, and an inbound SMS answered with empty TwiML.
    let (status, _) = callback_form(
        &api,
        "twilio",
        "",
        &[
            ("MessageSid", "SM-hello"),
            ("MessageStatus", "delivered"),
            ("AccountSid", sid),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let (_, message) = api
        .get(
            &format!("/v1/messages/{}", ok["id"].as_str().unwrap()),
            SEND_TOKEN,
        )
        .await;
    assert_eq!(message["status"], "delivered", "{message}");
    let (status, body) = callback_form(
        &api,
        "twilio",
        "",
        &[
            ("From", "07911 123456"),
            ("To", "+447700900000"),
            ("Body", "hi back"),
            ("MessageSid", "SMin1"),
            ("AccountSid", sid),
        ],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "<Response></Response>"));
    let (_, page) = api.get("/v1/inbound", SEND_TOKEN).await;
    assert_eq!(page["items"][0]["sender"], "+447911123456", "{page}");
}
