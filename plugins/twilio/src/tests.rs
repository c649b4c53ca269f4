//! What a provider author checks: the exact request Twilio receives, how each of
//! Twilio's answers is classified, the callbacks understood and verified, and the
//! blobs refused.

use plugin_api::{
    CallbackEvent, CallbackReply, CallbackRequest, DeliveryStatus, ErrorKind, Host, HttpRequest,
    HttpResponse, ModuleError, OutboundSms, SmsModule, Step,
};
use serde_json::json;

use crate::TwilioModule;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "9f4b2c1d0e8a7b6c5d4e3f2a1b0c9d8e";
const PUBLIC_URL: &str = "https://sms.example.com/v1/providers/twilio/callback";

fn sms(text: &str) -> OutboundSms {
    OutboundSms {
        id: "01J9ZQ3MSG".into(),
        to: "+447700900123".into(),
        sender: "ACME".into(),
        text: text.into(),
        attempt: 1,
    }
}

fn blob(extra: serde_json::Value) -> String {
    let mut blob = json!({"account_sid": ACCOUNT, "auth_token": TOKEN});
    for (key, value) in extra.as_object().unwrap() {
        if value.is_null() {
            blob.as_object_mut().unwrap().remove(key);
        } else {
            blob[key] = value.clone();
        }
    }
    blob.to_string()
}

fn module(extra: serde_json::Value) -> TwilioModule {
    TwilioModule::new(&blob(extra), Host::discard()).unwrap_or_else(|e| panic!("blob refused: {e}"))
}

fn http(step: Step) -> HttpRequest {
    step.as_http()
        .unwrap_or_else(|| panic!("expected a request, got {step:?}"))
        .clone()
}

fn headers(request: &HttpRequest) -> Vec<(&str, &str)> {
    request
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect()
}

fn answer(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(status, body).with_header("Content-Type", "application/json")
}

fn sent(module: &TwilioModule, response: &HttpResponse) -> Result<String, ModuleError> {
    let step = module.send_response(&sms("hi"), response)?;
    Ok(step
        .as_done()
        .unwrap_or_else(|| panic!("expected the sid, got {step:?}"))
        .to_string())
}

fn callback(query: &str, signature: Option<&str>, body: &str) -> CallbackRequest {
    let mut request = CallbackRequest::post(body)
        .with_query(query)
        .with_header("Content-Type", "application/x-www-form-urlencoded");
    request.path = "/v1/providers/twilio/callback".into();
    match signature {
        Some(signature) => request.with_header("X-Twilio-Signature", signature),
        None => request,
    }
}

fn events(reply: &CallbackReply) -> Vec<CallbackEvent> {
    reply.clone().into_events()
}

fn refusal(blob: &str) -> String {
    let err = TwilioModule::check_config(blob).expect_err("the blob should be refused");
    assert_eq!(err.kind, ErrorKind::CONFIGURATION, "{err}");
    err.message.to_string()
}

// ---- Sending ---------------------------------------------------------------------------

#[test]
fn send_posts_twilios_messages_request() {
    let module = module(json!({"status_callback": PUBLIC_URL}));
    let request = http(module.send(&sms("Hi & bye, 100% sûr")).unwrap());
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    // base64("AC0123456789abcdef0123456789abcdef:9f4b2c1d0e8a7b6c5d4e3f2a1b0c9d8e"), from coreutils.
    assert_eq!(
        headers(&request),
        [
            (
                "Authorization",
                "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjo5ZjRiMmMxZDBlOGE3YjZjNWQ0ZTNmMmExYjBjOWQ4ZQ=="
            ),
            ("Accept", "application/json"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ]
    );
    assert_eq!(
        String::from_utf8(request.body.to_vec()).unwrap(),
        "To=%2B447700900123&From=ACME&Body=Hi+%26+bye%2C+100%25+s%C3%BBr&StatusCallback=\
         https%3A%2F%2Fsms.example.com%2Fv1%2Fproviders%2Ftwilio%2Fcallback%3Fmessage_id%3D01J9ZQ3MSG"
    );
}

#[test]
fn a_messaging_service_replaces_from_and_an_api_key_replaces_the_token() {
    let module = module(json!({
        "auth_token": null,
        "api_key_sid": "SKfedcba9876543210fedcba9876543210",
        "api_key_secret": "key-secret",
        "messaging_service_sid": "MG00000000000000000000000000000001",
        "base_url": "http://127.0.0.1:8099/",
    }));
    let request = http(module.send(&sms("hello")).unwrap());
    assert_eq!(
        request.url,
        format!("http://127.0.0.1:8099/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    // base64("SKfedcba9876543210fedcba9876543210:key-secret")
    assert_eq!(
        headers(&request)[0],
        (
            "Authorization",
            "Basic U0tmZWRjYmE5ODc2NTQzMjEwZmVkY2JhOTg3NjU0MzIxMDprZXktc2VjcmV0"
        )
    );
    assert_eq!(
        request.body.as_slice(),
        b"To=%2B447700900123&MessagingServiceSid=MG00000000000000000000000000000001&Body=hello"
    );
}

#[test]
fn an_sms_without_a_sender_needs_a_messaging_service() {
    let mut no_sender = sms("hi");
    no_sender.sender = "".into();
    let err = module(json!({})).send(&no_sender).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CONFIGURATION);
    assert!(err.message.contains("messaging_service_sid"), "{err}");
}

#[test]
fn the_sid_of_twilios_answer_is_the_provider_id() {
    let module = module(json!({}));
    let created = r#"{"account_sid": "AC0123456789abcdef0123456789abcdef", "api_version": "2010-04-01",
        "body": "hi", "direction": "outbound-api", "error_code": null, "from": "ACME", "num_segments": "1",
        "sid": "SM1f2e3d4c5b6a79880f1e2d3c4b5a6978", "status": "queued", "to": "+447700900123"}"#;
    assert_eq!(
        sent(&module, &answer(201, created)).unwrap(),
        "SM1f2e3d4c5b6a79880f1e2d3c4b5a6978"
    );
    let err = sent(&module, &answer(201, r#"{"status": "queued"}"#)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert_eq!(
        err.message,
        r#"Twilio answered HTTP 201 without the message's `sid`: {"status": "queued"}"#
    );
}

#[test]
fn twilios_errors_are_quoted_and_classified() {
    let module = module(json!({}));
    let cases = [
        (
            400,
            r#"{"code": 21211, "message": "The 'To' number +4477 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
            ErrorKind::PERMANENT,
            "Twilio refused the SMS (HTTP 400): error 21211: The 'To' number +4477 is not a valid phone number. \
             (https://www.twilio.com/docs/errors/21211)",
        ),
        (
            401,
            r#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401}"#,
            ErrorKind::CONFIGURATION,
            "Twilio refused the SMS (HTTP 401): error 20003: Authenticate (https://www.twilio.com/docs/errors/20003)",
        ),
        (
            403,
            "Forbidden",
            ErrorKind::CONFIGURATION,
            "Twilio refused the SMS (HTTP 403): Forbidden",
        ),
        (
            429,
            r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
            ErrorKind::TRANSIENT,
            "Twilio refused the SMS (HTTP 429): error 20429: Too Many Requests",
        ),
        (
            503,
            r#"{"code": 20503, "message": "Service unavailable", "status": 503}"#,
            ErrorKind::TRANSIENT,
            "Twilio refused the SMS (HTTP 503): error 20503: Service unavailable",
        ),
        (
            502,
            "<html><body>Bad Gateway</body></html>",
            ErrorKind::TRANSIENT,
            "Twilio refused the SMS (HTTP 502): <html><body>Bad Gateway</body></html>",
        ),
        (
            404,
            "",
            ErrorKind::PERMANENT,
            "Twilio refused the SMS (HTTP 404): (empty body)",
        ),
    ];
    for (status, body, kind, message) in cases {
        let err = sent(&module, &answer(status, body)).unwrap_err();
        assert_eq!((err.kind, err.message.as_str()), (kind, message), "{status}");
    }
    let long = json!({"code": 30001, "message": "x".repeat(500)}).to_string();
    let err = sent(&module, &answer(400, &long)).unwrap_err();
    assert!(
        err.message.ends_with('…') && err.message.chars().count() < 260,
        "{err}"
    );
}

// ---- Callbacks -------------------------------------------------------------------------

/// A status callback as Twilio posts it, signed with [`TOKEN`] for
/// `{PUBLIC_URL}?message_id=01J9ZQ3MSG`. The signature was computed outside Rust:
/// `printf '%s' "$url$sorted_params" | openssl dgst -sha1 -hmac "$TOKEN" -binary | base64`.
const STATUS_BODY: &str = "SmsSid=SM1f2e3d4c5b6a79880f1e2d3c4b5a6978&SmsStatus=undelivered\
    &MessageStatus=undelivered&To=%2B447700900123&MessageSid=SM1f2e3d4c5b6a79880f1e2d3c4b5a6978\
    &AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B15005550006&ApiVersion=2010-04-01&ErrorCode=30003";
const STATUS_SIGNATURE: &str = "wBLVMuwJR4ZoaZOJKacW8zmWSEA=";

/// An inbound SMS as Twilio posts it, signed the same way for [`PUBLIC_URL`].
const INBOUND_BODY: &str =
    "MessageSid=SMaaaabbbbccccddddeeeeffff00001111&AccountSid=AC0123456789abcdef0123456789abcdef\
    &From=%2B447700900001&To=%2B15005550006&Body=Hello+%C3%A9+%26+goodbye&NumMedia=0&SmsStatus=received\
    &ApiVersion=2010-04-01";
const INBOUND_SIGNATURE: &str = "B4c5DPAYuQfFweKJF2fN+9A88GQ=";

#[test]
fn signed_status_callbacks_become_delivery_reports() {
    let module = module(json!({"public_url": PUBLIC_URL}));
    let request = callback("message_id=01J9ZQ3MSG", Some(STATUS_SIGNATURE), STATUS_BODY);
    let reply = module.parse_callback(&request).unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    assert_eq!(
        events(&reply),
        [CallbackEvent::delivery_report(
            "SM1f2e3d4c5b6a79880f1e2d3c4b5a6978",
            Some("01J9ZQ3MSG"),
            DeliveryStatus::UNDELIVERED,
            "undelivered (error 30003)"
        )]
    );
}

#[test]
fn signed_inbound_sms_are_answered_with_empty_twiml() {
    let module = module(json!({"public_url": PUBLIC_URL}));
    let reply = module
        .parse_callback(&callback("", Some(INBOUND_SIGNATURE), INBOUND_BODY))
        .unwrap();
    assert_eq!(
        (reply.status, reply.content_type.as_str(), reply.body.as_str()),
        (200, "text/xml", "<Response></Response>")
    );
    assert_eq!(
        events(&reply),
        [CallbackEvent::Inbound {
            from: "+447700900001".into(),
            to: "+15005550006".into(),
            text: "Hello é & goodbye".into(),
            provider_id: "SMaaaabbbbccccddddeeeeffff00001111".into(),
        }]
    );
}

#[test]
fn a_bad_or_missing_signature_is_refused() {
    let module = module(json!({"public_url": PUBLIC_URL}));
    let cases = [
        callback("message_id=01J9ZQ3MSG", None, STATUS_BODY),
        callback("message_id=01J9ZQ3MSG", Some(INBOUND_SIGNATURE), STATUS_BODY),
        // The same body and signature, reached through another URL.
        callback("message_id=OTHER", Some(STATUS_SIGNATURE), STATUS_BODY),
        // A tampered field.
        callback(
            "message_id=01J9ZQ3MSG",
            Some(STATUS_SIGNATURE),
            &STATUS_BODY.replace("MessageStatus=undelivered", "MessageStatus=delivered"),
        ),
    ];
    for request in &cases {
        let err = module.parse_callback(request).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PERMANENT);
        assert!(err.message.starts_with("Twilio callback refused: "), "{err}");
        assert!(err.message.contains("X-Twilio-Signature"), "{err}");
    }
    // Another auth token gives other signatures.
    let other = self::module(json!({"public_url": PUBLIC_URL, "auth_token": "0".repeat(32)}));
    assert!(other
        .parse_callback(&callback("", Some(INBOUND_SIGNATURE), INBOUND_BODY))
        .is_err());
}

#[test]
fn without_public_url_callbacks_are_read_unverified_but_for_this_account_only() {
    let module = module(json!({}));
    assert!(module.parse_callback(&callback("", None, INBOUND_BODY)).is_ok());
    let other_account = INBOUND_BODY.replace(ACCOUNT, "AC99999999999999999999999999999999");
    let err = module
        .parse_callback(&callback("", None, &other_account))
        .unwrap_err();
    assert_eq!(
        err.message,
        "Twilio callback refused: it is for another Twilio account"
    );
}

#[test]
fn message_status_values_map_to_delivery_statuses() {
    let module = module(json!({}));
    let cases = [
        ("delivered", "", DeliveryStatus::DELIVERED, "delivered"),
        ("read", "", DeliveryStatus::DELIVERED, "read"),
        (
            "undelivered",
            "30005",
            DeliveryStatus::UNDELIVERED,
            "undelivered (error 30005)",
        ),
        (
            "failed",
            "30008",
            DeliveryStatus::UNDELIVERED,
            "failed (error 30008)",
        ),
        ("canceled", "", DeliveryStatus::UNDELIVERED, "canceled"),
        ("queued", "", DeliveryStatus::IN_PROGRESS, "queued"),
        ("accepted", "", DeliveryStatus::IN_PROGRESS, "accepted"),
        ("sending", "", DeliveryStatus::IN_PROGRESS, "sending"),
        ("sent", "", DeliveryStatus::IN_PROGRESS, "sent"),
        ("scheduled", "", DeliveryStatus::IN_PROGRESS, "scheduled"),
    ];
    for (status, code, expected, detail) in cases {
        let body = format!("MessageSid=SM1&MessageStatus={status}&ErrorCode={code}");
        let reply = module.parse_callback(&callback("", None, &body)).unwrap();
        assert_eq!(
            events(&reply),
            [CallbackEvent::delivery_report("SM1", None, expected, detail)],
            "{status}"
        );
    }
}

#[test]
fn callbacks_missing_what_their_kind_needs_are_refused() {
    let module = module(json!({}));
    let cases = [
        ("MessageStatus=sent", "a status callback without `MessageSid`"),
        (
            "Body=hi&From=%2B447700900001&MessageSid=SM1",
            "an inbound SMS without `To`",
        ),
        (
            "From=%2B447700900001&To=%2B15005550006",
            "it is neither a status callback",
        ),
    ];
    for (body, reason) in cases {
        let err = module.parse_callback(&callback("", None, body)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PERMANENT);
        assert!(err.message.contains(reason), "{body}: {err}");
    }
}

// ---- Self-check ------------------------------------------------------------------------

#[test]
fn the_self_check_fetches_the_account() {
    let module = module(json!({}));
    let request = http(module.self_check().unwrap());
    assert_eq!(request.method, "GET");
    assert_eq!(
        request.url,
        format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}.json")
    );
    assert_eq!(headers(&request)[0].0, "Authorization");
    assert!(request.body.is_empty());

    let active = r#"{"sid": "AC0123456789abcdef0123456789abcdef", "friendly_name": "Acme", "status": "active",
        "type": "Full"}"#;
    assert_eq!(
        module.self_check_response(&answer(200, active)).unwrap(),
        Step::done(format!(
            "Twilio accepted the credentials; account {ACCOUNT} is active (Full)"
        ))
    );
    let suspended = r#"{"status": "suspended", "type": "Trial"}"#;
    let err = module.self_check_response(&answer(200, suspended)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CONFIGURATION);
    assert!(err.message.contains("is suspended (Trial)"), "{err}");
    let err = module
        .self_check_response(&answer(401, r#"{"code": 20003, "message": "Authenticate"}"#))
        .unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (
            ErrorKind::CONFIGURATION,
            "Twilio refused the self-check (HTTP 401): error 20003: Authenticate"
        )
    );
    assert!(module
        .self_check_response(&answer(503, ""))
        .unwrap_err()
        .is_transient());
}

// ---- Blobs -----------------------------------------------------------------------------

#[test]
fn bad_blobs_are_refused_naming_the_key() {
    let sk = "SKfedcba9876543210fedcba9876543210";
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "the blob is not valid"),
        ("{}".into(), "missing field `account_sid`"),
        (
            blob(json!({"account_sid": "AC123"})),
            "`account_sid`: must be `AC` followed by 32 hex digits",
        ),
        (
            blob(json!({"auth_token": null})),
            "no credentials: give `auth_token`, or `api_key_sid` and `api_key_secret`",
        ),
        (blob(json!({"auth_token": ""})), "`auth_token`: is empty"),
        (blob(json!({"auth_token": 42})), "`auth_token`: expected a string"),
        (
            blob(json!({"api_key_sid": sk})),
            "`api_key_secret`: is required with `api_key_sid`",
        ),
        (
            blob(json!({"api_key_secret": "s"})),
            "`api_key_sid`: is required with `api_key_secret`",
        ),
        (
            blob(json!({"api_key_sid": "AK1", "api_key_secret": "s"})),
            "`api_key_sid`: must be `SK` followed by 32 hex digits",
        ),
        (
            blob(json!({"messaging_service_sid": "MG1"})),
            "`messaging_service_sid`: must be `MG`",
        ),
        (
            blob(json!({"status_callback": "ftp://x"})),
            "`status_callback`: must start with `https://`",
        ),
        (
            blob(json!({"public_url": "https://x.example/cb?a=1"})),
            "`public_url`: give it without a query",
        ),
        (
            blob(json!({"public_url": "https://x.example/cb#top"})),
            "`public_url`: may not have a `#fragment`",
        ),
        (
            blob(
                json!({"auth_token": null, "api_key_sid": sk, "api_key_secret": "s", "public_url": PUBLIC_URL}),
            ),
            "`public_url`: checking Twilio's signature needs `auth_token`",
        ),
        (
            blob(json!({"public_url": PUBLIC_URL, "status_callback": "https://other.example/cb"})),
            "`status_callback`: Twilio signs the URL it calls",
        ),
        (
            blob(json!({"base_url": "api.twilio.com"})),
            "`base_url`: must start with `https://` or `http://`",
        ),
        (blob(json!({"from": "+15005550006"})), "unknown field `from`"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .map(|(blob, expected)| (blob, expected, refusal(blob)))
        .filter(|(_, expected, message)| !message.contains(*expected))
        .map(|(blob, expected, message)| format!("blob {blob}\n  gave: {message}\n  expected: {expected}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    assert!(TwilioModule::check_config(&blob(
        json!({"status_callback": format!("{PUBLIC_URL}?kind=status"),
                                                     "public_url": PUBLIC_URL})
    ))
    .is_ok());
}

#[test]
fn secrets_never_appear_in_errors() {
    let key_secret = "API-KEY-SECRET-VALUE";
    let module = module(
        json!({"api_key_sid": "SKfedcba9876543210fedcba9876543210", "api_key_secret": key_secret,
                               "public_url": PUBLIC_URL}),
    );
    let echo = format!("invalid credentials {TOKEN} / {key_secret}");
    let mut messages = vec![
        sent(&module, &answer(401, &echo))
            .unwrap_err()
            .message
            .to_string(),
        sent(
            &module,
            &answer(400, &json!({"code": 20003, "message": echo}).to_string()),
        )
        .unwrap_err()
        .message
        .to_string(),
        sent(&module, &answer(201, &echo))
            .unwrap_err()
            .message
            .to_string(),
        module
            .self_check_response(&answer(500, &echo))
            .unwrap_err()
            .message
            .to_string(),
        module
            .parse_callback(&callback("", Some("bad"), INBOUND_BODY))
            .unwrap_err()
            .message
            .to_string(),
    ];
    for bad in [
        json!({"account_sid": "AC1", "auth_token": TOKEN}),
        json!({"account_sid": ACCOUNT, "auth_token": 31415926}),
        json!({"account_sid": ACCOUNT, "api_key_sid": "SKfedcba9876543210fedcba9876543210", "api_key_secret": 27182818}),
        json!({"account_sid": ACCOUNT, "api_key_sid": "x", "api_key_secret": key_secret}),
    ] {
        messages.push(refusal(&bad.to_string()));
    }
    for message in &messages {
        for secret in [TOKEN, key_secret, "31415926", "27182818"] {
            assert!(!message.contains(secret), "`{secret}` leaked in: {message}");
        }
    }
    assert!(messages[0].contains("[redacted]"), "{}", messages[0]);
}

#[test]
fn the_exported_root_module_is_named_twilio() {
    let root = plugin_api::__export_root::<TwilioModule>();
    assert_eq!(root.name().as_str(), "twilio");
}
