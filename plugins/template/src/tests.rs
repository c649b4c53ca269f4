//! The tests every module should have, against the example API. FILL IN: the same
//! checks with your provider's documented requests and answers.

use plugin_api::{
    CallbackEvent, CallbackRequest, DeliveryStatus, ErrorKind, Host, HttpRequest, HttpResponse, ModuleError,
    OutboundSms, SmsModule, Step,
};
use serde_json::json;

use crate::TemplateModule;

const BLOB: &str = r#"{"api_key": "ex_live_8f7e6d5c4b3a", "callback_token": "cb-token-1234"}"#;

fn sms(text: &str) -> OutboundSms {
    OutboundSms {
        id: "01J9ZQ3MSG".into(),
        to: "+447700900123".into(),
        sender: "ACME".into(),
        text: text.into(),
        attempt: 1,
    }
}

fn module(blob: &str) -> TemplateModule {
    TemplateModule::new(blob, Host::discard()).unwrap_or_else(|e| panic!("blob refused: {e}"))
}

fn http(step: Step) -> HttpRequest {
    step.as_http()
        .unwrap_or_else(|| panic!("expected a request, got {step:?}"))
        .clone()
}

fn answer(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(status, body).with_header("Content-Type", "application/json")
}

fn sent(module: &TemplateModule, response: &HttpResponse) -> Result<String, ModuleError> {
    let step = module.send_response(&sms("hi"), response)?;
    Ok(step
        .as_done()
        .unwrap_or_else(|| panic!("expected the id, got {step:?}"))
        .to_string())
}

fn callback(token: Option<&str>, body: &str) -> CallbackRequest {
    let request = CallbackRequest::post(body);
    match token {
        Some(token) => request.with_header("X-Example-Token", token),
        None => request,
    }
}

fn events(module: &TemplateModule, request: &CallbackRequest) -> Result<Vec<CallbackEvent>, ModuleError> {
    Ok(module.parse_callback(request)?.into_events())
}

#[test]
fn send_builds_the_exact_request() {
    let text = "He said \"hi\"\nthen left ☺";
    let request = http(module(BLOB).send(&sms(text)).unwrap());
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://api.example-sms.invalid/v1/messages");
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("Authorization", "Bearer ex_live_8f7e6d5c4b3a"),
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"to": "+447700900123", "from": "ACME", "text": text, "reference": "01J9ZQ3MSG"})
    );
}

#[test]
fn base_url_points_the_module_elsewhere() {
    let module = module(r#"{"api_key": "k", "base_url": "http://127.0.0.1:8099/"}"#);
    assert_eq!(
        http(module.send(&sms("x")).unwrap()).url,
        "http://127.0.0.1:8099/v1/messages"
    );
}

#[test]
fn answers_give_the_id_or_say_whether_a_retry_helps() {
    let module = module(BLOB);
    assert_eq!(
        sent(&module, &answer(201, r#"{"id": "msg_42", "status": "accepted"}"#)).unwrap(),
        "msg_42"
    );
    let invalid = r#"{"error": {"code": "invalid_number", "message": "+4477 is not a phone number"}}"#;
    let cases = [
        (
            201,
            "{}",
            ErrorKind::PERMANENT,
            "provider answered HTTP 201 without a message id: {}",
        ),
        (
            400,
            invalid,
            ErrorKind::PERMANENT,
            "provider answered HTTP 400: invalid_number: +4477 is not a phone number",
        ),
        (
            401,
            "",
            ErrorKind::CONFIGURATION,
            "provider answered HTTP 401: (empty body)",
        ),
        (
            429,
            "slow down",
            ErrorKind::TRANSIENT,
            "provider answered HTTP 429: slow down",
        ),
        (
            503,
            "",
            ErrorKind::TRANSIENT,
            "provider answered HTTP 503: (empty body)",
        ),
    ];
    for (status, body, kind, message) in cases {
        let err = sent(&module, &answer(status, body)).unwrap_err();
        assert_eq!((err.kind, err.message.as_str()), (kind, message), "{status}");
    }
}

#[test]
fn callbacks_become_reports_and_inbound_sms() {
    let module = module(BLOB);
    let token = Some("cb-token-1234");
    let report = r#"{"event": "message.status", "id": "msg_42", "reference": "01J9ZQ3MSG", "status": "failed",
                     "reason": "unknown subscriber"}"#;
    assert_eq!(
        events(&module, &callback(token, report)).unwrap(),
        [CallbackEvent::delivery_report(
            "msg_42",
            Some("01J9ZQ3MSG"),
            DeliveryStatus::UNDELIVERED,
            "failed: unknown subscriber"
        )]
    );
    for (status, expected) in [
        ("delivered", DeliveryStatus::DELIVERED),
        ("sent", DeliveryStatus::IN_PROGRESS),
    ] {
        let body = json!({"event": "message.status", "id": "m", "status": status}).to_string();
        let got = events(&module, &callback(token, &body)).unwrap();
        assert!(matches!(&got[0], CallbackEvent::DeliveryReport { status, .. } if *status == expected));
    }
    let received = r#"{"event": "message.received", "id": "in_7", "from": "+447700900001", "to": "+447700900000",
                       "text": "STOP"}"#;
    assert_eq!(
        events(&module, &callback(token, received)).unwrap(),
        [CallbackEvent::Inbound {
            from: "+447700900001".into(),
            to: "+447700900000".into(),
            text: "STOP".into(),
            provider_id: "in_7".into(),
        }]
    );
}

#[test]
fn callbacks_without_the_token_or_of_unknown_kinds_are_refused() {
    let module = module(BLOB);
    let body = r#"{"event": "message.status", "id": "m", "status": "delivered"}"#;
    for token in [None, Some("wrong")] {
        let err = events(&module, &callback(token, body)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PERMANENT);
        assert_eq!(err.message, "callback refused: missing or wrong X-Example-Token");
    }
    let err = events(
        &module,
        &callback(Some("cb-token-1234"), r#"{"event": "account.updated"}"#),
    )
    .unwrap_err();
    assert!(err.message.contains("unknown variant `account.updated`"), "{err}");
}

#[test]
fn the_self_check_reads_the_account() {
    let module = module(BLOB);
    let request = http(module.self_check().unwrap());
    assert_eq!(
        (request.method.as_str(), request.url.as_str()),
        ("GET", "https://api.example-sms.invalid/v1/account")
    );
    assert!(matches!(
        module.self_check_response(&answer(200, "{}")).unwrap(),
        Step::Done { .. }
    ));
    assert_eq!(
        module.self_check_response(&answer(401, "")).unwrap_err().kind,
        ErrorKind::CONFIGURATION
    );
}

#[test]
fn bad_blobs_are_refused_naming_the_key() {
    let cases = [
        ("", "the blob is not valid"),
        ("{}", "missing field `api_key`"),
        (r#"{"api_key": " "}"#, "`api_key`: is empty"),
        (
            r#"{"api_key": "k", "base_url": "ftp://x"}"#,
            "`base_url`: must start with",
        ),
        (
            r#"{"api_key": "k", "base_url": 7}"#,
            "`base_url`: invalid type: integer `7`, expected a string",
        ),
        (
            r#"{"api_key": "k", "callback_token": ""}"#,
            "`callback_token`: is empty",
        ),
        (r#"{"api_key": "k", "apikey": "k"}"#, "unknown field `apikey`"),
    ];
    for (blob, expected) in cases {
        let err = TemplateModule::check_config(blob).unwrap_err();
        assert_eq!(err.kind, ErrorKind::CONFIGURATION);
        assert!(err.message.contains(expected), "{blob}: {err}");
    }
}

#[test]
fn secrets_never_appear_in_errors() {
    let module = module(BLOB);
    let echo = "rejected request with key ex_live_8f7e6d5c4b3a and token cb-token-1234";
    let messages = [
        sent(&module, &answer(400, echo)).unwrap_err().message,
        sent(
            &module,
            &answer(
                401,
                &json!({"error": {"code": "bad_key", "message": echo}}).to_string(),
            ),
        )
        .unwrap_err()
        .message,
        events(&module, &callback(Some("cb-token-123"), "{}"))
            .unwrap_err()
            .message,
        TemplateModule::check_config(r#"{"api_key": 123456789}"#)
            .unwrap_err()
            .message,
    ];
    for message in &messages {
        for secret in ["ex_live_8f7e6d5c4b3a", "cb-token-1234", "123456789"] {
            assert!(!message.contains(secret), "`{secret}` leaked in: {message}");
        }
    }
    assert!(messages[0].contains("[redacted]"));
}

#[test]
fn the_exported_root_module_is_named_template() {
    assert_eq!(
        plugin_api::__export_root::<TemplateModule>().name().as_str(),
        "template"
    );
}
