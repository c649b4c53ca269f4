//! What a provider author checks: the exact request for an SMS and a blob, how each
//! answer is classified, the id read from it, the callbacks understood, and the blobs
//! refused. The two documented examples are tested as written in `blobs/`.

use plugin_api::{
    CallbackEvent, CallbackRequest, DeliveryStatus, ErrorKind, Host, HttpRequest, HttpResponse, ModuleError,
    OutboundSms, SmsModule,
};
use serde_json::json;

use crate::HttpModule;

const VONAGE: &str = include_str!("../blobs/vonage.json");
const PLIVO: &str = include_str!("../blobs/plivo.json");

fn sms(text: &str) -> OutboundSms {
    OutboundSms {
        id: "01J9ZQ3MSG".into(),
        to: "+447700900123".into(),
        sender: "ACME".into(),
        text: text.into(),
        attempt: 1,
    }
}

fn module(blob: &str) -> HttpModule {
    HttpModule::new(blob, Host::discard()).unwrap_or_else(|e| panic!("blob refused: {e}"))
}

fn request(module: &HttpModule, sms: &OutboundSms) -> HttpRequest {
    let step = module.send(sms).unwrap();
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

fn sent(module: &HttpModule, response: &HttpResponse) -> Result<String, ModuleError> {
    let step = module.send_response(&sms("hi"), response)?;
    Ok(step
        .as_done()
        .unwrap_or_else(|| panic!("expected the id, got {step:?}"))
        .to_string())
}

fn callback(query: &str, headers: &[(&str, &str)], body: &str) -> CallbackRequest {
    let mut request = CallbackRequest::post(body).with_query(query);
    request.path = "/v1/providers/http/callback".into();
    headers
        .iter()
        .fold(request, |request, (name, value)| request.with_header(name, value))
}

fn events(module: &HttpModule, request: &CallbackRequest) -> Result<Vec<CallbackEvent>, ModuleError> {
    let reply = module.parse_callback(request)?;
    assert_eq!(reply.status, 200);
    Ok(reply.into_events())
}

fn report(
    provider_id: &str,
    message_id: Option<&str>,
    status: DeliveryStatus,
    detail: &str,
) -> CallbackEvent {
    CallbackEvent::delivery_report(provider_id, message_id, status, detail)
}

fn inbound(from: &str, to: &str, text: &str, provider_id: &str) -> CallbackEvent {
    CallbackEvent::Inbound {
        from: from.into(),
        to: to.into(),
        text: text.into(),
        provider_id: provider_id.into(),
    }
}

fn refusal(blob: &str) -> String {
    let err = HttpModule::check_config(blob).expect_err("the blob should be refused");
    assert_eq!(err.kind, ErrorKind::CONFIGURATION, "{err}");
    err.message.to_string()
}

// ---- The Vonage example ----------------------------------------------------------------

#[test]
fn vonage_example_builds_vonages_form_request() {
    let module = module(VONAGE);
    let request = request(&module, &sms("Hello & welcome, 100% sûr"));
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://rest.nexmo.com/sms/json");
    assert_eq!(
        headers(&request),
        [("Content-Type", "application/x-www-form-urlencoded")]
    );
    assert_eq!(
        String::from_utf8(request.body.to_vec()).unwrap(),
        "api_key=a1b2c3d4&api_secret=YOUR-VONAGE-API-SECRET&from=ACME&to=447700900123\
         &text=Hello+%26+welcome%2C+100%25+s%C3%BBr&type=unicode&client-ref=01J9ZQ3MSG"
    );
}

#[test]
fn vonage_example_reads_vonages_answers() {
    let module = module(VONAGE);
    let accepted = r#"{"message-count":"1","messages":[{"to":"447700900123","message-id":"0A0000000123ABCD1",
        "status":"0","remaining-balance":"3.14159265","message-price":"0.03330000","network":"23410"}]}"#;
    assert_eq!(
        sent(&module, &answer(200, accepted)).unwrap(),
        "0A0000000123ABCD1"
    );

    let refused =
        r#"{"message-count":"1","messages":[{"status":"29","error-text":"Non-Whitelisted Destination"}]}"#;
    let err = sent(&module, &answer(200, refused)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert_eq!(
        err.message,
        "provider refused the SMS with status `29`: Non-Whitelisted Destination"
    );

    let throttled =
        r#"{"message-count":"1","messages":[{"status":"1","error-text":"Throughput Rate Exceeded"}]}"#;
    let err = sent(&module, &answer(200, throttled)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TRANSIENT, "{err}");

    let no_id = r#"{"message-count":"1","messages":[{"status":"0"}]}"#;
    let err = sent(&module, &answer(200, no_id)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert!(
        err.message.contains("no message id at `/messages/0/message-id`"),
        "{err}"
    );

    let err = sent(&module, &answer(503, "<html>Service Unavailable</html>")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TRANSIENT);
    assert_eq!(
        err.message,
        "provider answered HTTP 503: <html>Service Unavailable</html>"
    );
}

#[test]
fn vonage_example_reads_delivery_receipts_and_inbound_sms() {
    let module = module(VONAGE);
    let token = "token=A-LONG-RANDOM-CALLBACK-TOKEN";
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let delivered =
        "msisdn=447700900123&to=ACME&network-code=23410&messageId=0A0000000123ABCD1&price=0.03330000\
                     &status=delivered&scts=2001011400&err-code=0&client-ref=01J9ZQ3MSG\
                     &message-timestamp=2020-01-01+12%3A00%3A00";
    assert_eq!(
        events(&module, &callback(token, &form, delivered)).unwrap(),
        [report(
            "0A0000000123ABCD1",
            Some("01J9ZQ3MSG"),
            DeliveryStatus::DELIVERED,
            "delivered: 0"
        )]
    );
    let rejected = "msisdn=447700900123&messageId=0A0000000123ABCD2&status=rejected&err-code=6";
    assert_eq!(
        events(&module, &callback(token, &form, rejected)).unwrap(),
        [report(
            "0A0000000123ABCD2",
            None,
            DeliveryStatus::UNDELIVERED,
            "rejected: 6"
        )]
    );
    let buffered = "messageId=0A0000000123ABCD3&status=buffered&err-code=0";
    assert_eq!(
        events(&module, &callback(token, &form, buffered)).unwrap(),
        [report(
            "0A0000000123ABCD3",
            None,
            DeliveryStatus::IN_PROGRESS,
            "buffered: 0"
        )]
    );
    let sms_in = "msisdn=447700900001&to=447700900000&messageId=0A0000001234567B&text=Hello+there%21\
                  &type=text&keyword=HELLO&message-timestamp=2020-01-01+12%3A00%3A00";
    assert_eq!(
        events(&module, &callback(token, &form, sms_in)).unwrap(),
        [inbound(
            "+447700900001",
            "+447700900000",
            "Hello there!",
            "0A0000001234567B"
        )]
    );
}

// ---- The Plivo example -----------------------------------------------------------------

#[test]
fn plivo_example_builds_plivos_json_request() {
    let module = module(PLIVO);
    let text = "He said \"hi\"\nthen {{id}} \\ bye ☺";
    let request = request(&module, &sms(text));
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://api.plivo.com/v1/Account/MAXXXXXXXXXXXXXXXXXX/Message/"
    );
    // base64("MAXXXXXXXXXXXXXXXXXX:YOUR-PLIVO-AUTH-TOKEN"), computed with `base64` (coreutils).
    assert_eq!(
        headers(&request),
        [
            (
                "Authorization",
                "Basic TUFYWFhYWFhYWFhYWFhYWFhYWFg6WU9VUi1QTElWTy1BVVRILVRPS0VO"
            ),
            ("Content-Type", "application/json"),
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "src": "ACME",
            "dst": "+447700900123",
            "text": text,
            "url": "https://sms.example.com/v1/providers/http/callback?token=A-LONG-RANDOM-CALLBACK-TOKEN",
            "method": "POST",
        })
    );
}

#[test]
fn plivo_example_reads_plivos_answers() {
    let module = module(PLIVO);
    let queued = r#"{"api_id":"db342550-7f1d-11e1-8ea7-1231380bc196","message":"message(s) queued",
        "message_uuid":["db3ce55a-7f1d-11e1-8ea7-1231380bc196"]}"#;
    assert_eq!(
        sent(&module, &answer(202, queued)).unwrap(),
        "db3ce55a-7f1d-11e1-8ea7-1231380bc196"
    );
    let invalid = r#"{"api_id":"db342550","error":"invalid 'dst' parameter"}"#;
    let err = sent(&module, &answer(400, invalid)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert_eq!(err.message, format!("provider answered HTTP 400: {invalid}"));
    for (status, kind) in [
        (401, ErrorKind::PERMANENT),
        (404, ErrorKind::PERMANENT),
        (302, ErrorKind::PERMANENT),
        (408, ErrorKind::TRANSIENT),
        (429, ErrorKind::TRANSIENT),
        (500, ErrorKind::TRANSIENT),
        (504, ErrorKind::TRANSIENT),
    ] {
        let err = sent(&module, &answer(status, "")).unwrap_err();
        assert_eq!(err.kind, kind, "{status}");
        assert_eq!(
            err.message,
            format!("provider answered HTTP {status}: (empty body)")
        );
    }
}

#[test]
fn plivo_example_reads_status_callbacks_and_inbound_sms() {
    let module = module(PLIVO);
    let token = "token=A-LONG-RANDOM-CALLBACK-TOKEN";
    let status = "From=ACME&MessageUUID=db3ce55a-7f1d-11e1-8ea7-1231380bc196&Status=undelivered\
                  &To=447700900123&ErrorCode=200&Units=1&TotalRate=0.0035";
    assert_eq!(
        events(&module, &callback(token, &[], status)).unwrap(),
        [report(
            "db3ce55a-7f1d-11e1-8ea7-1231380bc196",
            None,
            DeliveryStatus::UNDELIVERED,
            "undelivered: 200"
        )]
    );
    let sent_status = "MessageUUID=db3ce55a&Status=sent&ErrorCode=";
    assert_eq!(
        events(&module, &callback(token, &[], sent_status)).unwrap(),
        [report("db3ce55a", None, DeliveryStatus::IN_PROGRESS, "sent")]
    );
    let sms_in = "From=14155551234&To=14155556789&Text=Stop&Type=sms&MessageUUID=abc-123";
    assert_eq!(
        events(&module, &callback(token, &[], sms_in)).unwrap(),
        [inbound("+14155551234", "+14155556789", "Stop", "abc-123")]
    );
}

// ---- Requests --------------------------------------------------------------------------

#[test]
fn url_placeholders_are_percent_encoded_for_a_get_api() {
    let module = module(
        r#"{"url": "https://sms.example/send?to={{to}}&msg={{text}}&key={{secrets.key}}&ref={{ id }}",
            "method": "GET", "secrets": {"key": "a b&c"}}"#,
    );
    let request = request(&module, &sms("50% off & more/é"));
    assert_eq!(request.method, "GET");
    assert_eq!(
        request.url,
        "https://sms.example/send?to=%2B447700900123&msg=50%25%20off%20%26%20more%2F%C3%A9&key=a%20b%26c&ref=01J9ZQ3MSG"
    );
    assert!(request.headers.is_empty());
    assert!(request.body.is_empty());
}

#[test]
fn headers_are_sent_in_order_and_content_type_can_be_overridden() {
    let module = module(
        r#"{"url": "https://api.example/sms", "method": "PUT",
            "headers": {"X-Api-Key": "k-123456", "Idempotency-Key": "{{id}}",
                        "Content-Type": "application/json; charset=utf-8"},
            "body": {"type": "json", "template": {"to": "{{to}}", "n": 1}}}"#,
    );
    let request = request(&module, &sms("x"));
    assert_eq!(request.method, "PUT");
    assert_eq!(
        headers(&request),
        [
            ("X-Api-Key", "k-123456"),
            ("Idempotency-Key", "01J9ZQ3MSG"),
            ("Content-Type", "application/json; charset=utf-8"),
        ]
    );
    assert_eq!(request.body.as_slice(), br#"{"n":1,"to":"+447700900123"}"#);
}

#[test]
fn a_text_with_a_line_break_cannot_split_a_header() {
    let module = module(r#"{"url": "https://api.example/sms", "headers": {"X-Text": "{{text}}"}}"#);
    assert!(module.send(&sms("one line")).is_ok());
    let err = module.send(&sms("evil\r\nX-Injected: 1")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert!(err.message.contains("header `X-Text`"), "{err}");
    assert!(!err.message.contains("evil"), "{err}");
}

// ---- Answers ---------------------------------------------------------------------------

#[test]
fn status_lists_decide_success_transient_and_permanent() {
    let module = module(
        r#"{"url": "https://api.example/sms", "success_status": ["200-201"], "transient_status": [503, "1xx"]}"#,
    );
    let cases = [
        (200, None),
        (201, None),
        (202, Some(ErrorKind::PERMANENT)),
        (500, Some(ErrorKind::PERMANENT)),
        (503, Some(ErrorKind::TRANSIENT)),
        (102, Some(ErrorKind::TRANSIENT)),
        (429, Some(ErrorKind::PERMANENT)),
    ];
    for (status, expected) in cases {
        let outcome = sent(&module, &answer(status, "{}"));
        assert_eq!(
            outcome.as_ref().err().map(|e| e.kind),
            expected,
            "{status}: {outcome:?}"
        );
    }
}

#[test]
fn the_message_id_comes_from_a_pointer_a_header_or_the_gateway() {
    let by_pointer = module(r#"{"url": "https://api.example/sms", "message_id_pointer": "/data/0/id"}"#);
    assert_eq!(
        sent(&by_pointer, &answer(201, r#"{"data": [{"id": 4711}]}"#)).unwrap(),
        "4711"
    );
    let err = sent(&by_pointer, &answer(201, r#"{"data": []}"#)).unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (
            ErrorKind::PERMANENT,
            r#"provider answered HTTP 201 but its answer has no message id at `/data/0/id`: {"data": []}"#
        )
    );
    let err = sent(&by_pointer, &answer(200, "OK 4711")).unwrap_err();
    assert_eq!(
        err.message,
        "provider answered HTTP 200 with a body that is not JSON: OK 4711"
    );
    let escaped = module(r#"{"url": "https://api.example/sms", "message_id_pointer": "/a~1b/m~0n"}"#);
    assert_eq!(
        sent(&escaped, &answer(200, r#"{"a/b": {"m~n": "x1"}}"#)).unwrap(),
        "x1"
    );

    let by_header = module(r#"{"url": "https://api.example/sms", "message_id_header": "X-Message-Id"}"#);
    let response = answer(202, "").with_header("x-message-id", " m-77 ");
    assert_eq!(sent(&by_header, &response).unwrap(), "m-77");
    let err = sent(&by_header, &answer(202, "")).unwrap_err();
    assert!(err.message.contains("without a `X-Message-Id` header"), "{err}");

    let none = module(r#"{"url": "https://api.example/sms"}"#);
    assert_eq!(sent(&none, &answer(200, "OK")).unwrap(), "01J9ZQ3MSG");
}

#[test]
fn errors_quote_at_most_200_characters_of_the_answer() {
    let module = module(r#"{"url": "https://api.example/sms"}"#);
    let long = format!("{{\"error\": \"{}\"}}", "é".repeat(400));
    let err = sent(&module, &answer(400, &long)).unwrap_err();
    let quoted = err.message.strip_prefix("provider answered HTTP 400: ").unwrap();
    assert_eq!(quoted.chars().count(), 200);
    assert!(quoted.starts_with("{\"error\": \"éé"));
}

// ---- Callbacks -------------------------------------------------------------------------

const JSON_CALLBACKS: &str = r#"{"url": "https://api.example/sms", "callbacks": {
    "format": "json", "shared_secret": "cb-s3cret-t0ken", "secret_header": "X-Hook-Secret",
    "inbound": {"from": "/message/originator", "to": "/message/recipient", "text": "/message/body"},
    "delivery_report": {"id": "/id", "status": "/status/code", "delivered_values": ["DELIVERED", 0],
        "undelivered_values": ["EXPIRED", 5], "detail": "/status/reason", "message_id": "/reference"}}}"#;

#[test]
fn json_callbacks_are_read_with_pointers_and_classified_by_their_fields() {
    let module = module(JSON_CALLBACKS);
    let secret = [("x-hook-secret", "cb-s3cret-t0ken")];
    let delivered = r#"{"id": "m1", "reference": "01J9ZQ3MSG", "status": {"code": "delivered"}}"#;
    assert_eq!(
        events(&module, &callback("", &secret, delivered)).unwrap(),
        [report(
            "m1",
            Some("01J9ZQ3MSG"),
            DeliveryStatus::DELIVERED,
            "delivered"
        )]
    );
    let numeric = r#"{"id": 17, "reference": null, "status": {"code": 5, "reason": "expired after 48h"}}"#;
    assert_eq!(
        events(&module, &callback("", &secret, numeric)).unwrap(),
        [report(
            "17",
            None,
            DeliveryStatus::UNDELIVERED,
            "5: expired after 48h"
        )]
    );
    let sms_in = r#"{"message": {"originator": "+447700900001", "recipient": "+447700900000", "body": ""}}"#;
    assert_eq!(
        events(&module, &callback("", &secret, sms_in)).unwrap(),
        [inbound("+447700900001", "+447700900000", "", "")]
    );

    let neither = r#"{"message": {"originator": "+447700900001"}, "status": {"code": null}}"#;
    let err = events(&module, &callback("", &secret, neither)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert_eq!(
        err.message,
        "callback refused: it is neither of the kinds configured (a delivery report has `/status/code`; \
         an inbound SMS has `/message/body`)"
    );
    let report_without_id = r#"{"status": {"code": "DELIVERED"}}"#;
    let err = events(&module, &callback("", &secret, report_without_id)).unwrap_err();
    assert_eq!(err.message, "callback refused: a delivery report without `/id`");
    let inbound_without_to = r#"{"message": {"originator": "+447700900001", "body": "hi"}}"#;
    let err = events(&module, &callback("", &secret, inbound_without_to)).unwrap_err();
    assert_eq!(
        err.message,
        "callback refused: an inbound SMS without `/message/recipient`"
    );
    let err = events(&module, &callback("", &secret, "id=1&status=x")).unwrap_err();
    assert!(
        err.message.starts_with("callback refused: the body is not JSON"),
        "{err}"
    );
}

#[test]
fn callbacks_need_the_shared_secret_in_the_header_or_the_query() {
    let module = module(JSON_CALLBACKS);
    let body = r#"{"id": "m1", "status": {"code": "DELIVERED"}}"#;
    assert!(events(
        &module,
        &callback("", &[("X-Hook-Secret", "cb-s3cret-t0ken")], body)
    )
    .is_ok());
    assert!(events(&module, &callback("a=1&token=cb-s3cret-t0ken", &[], body)).is_ok());

    let err = events(&module, &callback("", &[("X-Hook-Secret", "guess")], body)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PERMANENT);
    assert_eq!(
        err.message,
        "callback refused: the shared secret in `X-Hook-Secret` or `?token=` is wrong"
    );
    let err = events(&module, &callback("token=guess", &[], body)).unwrap_err();
    assert!(err.message.contains("is wrong"), "{err}");
    // The default header is not the configured one.
    let err = events(
        &module,
        &callback("", &[("X-Callback-Token", "cb-s3cret-t0ken")], body),
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "callback refused: it carries no shared secret (expected in header `X-Hook-Secret` or query parameter `token`)"
    );
}

#[test]
fn form_callbacks_fall_back_to_the_query_string() {
    let module = module(
        r#"{"url": "https://api.example/sms", "callbacks": {"format": "form", "shared_secret": "t0ken-t0ken",
            "delivery_report": {"id": "id", "status": "status", "delivered_values": ["delivered"],
                                "undelivered_values": []}}}"#,
    );
    let request = callback("id=abc&status=Delivered&token=t0ken-t0ken", &[], "");
    assert_eq!(
        events(&module, &request).unwrap(),
        [report("abc", None, DeliveryStatus::DELIVERED, "Delivered")]
    );
    assert!(events(
        &module,
        &callback(
            "id=abc&status=delivered",
            &[("X-Callback-Token", "t0ken-t0ken")],
            ""
        )
    )
    .is_ok());
    let err = events(&module, &callback("id=abc&status=delivered", &[], "")).unwrap_err();
    assert!(err.message.contains("no shared secret"), "{err}");
}

#[test]
fn callbacks_without_configuration_are_unsupported() {
    let module = module(r#"{"url": "https://api.example/sms"}"#);
    let err = module.parse_callback(&callback("", &[], "{}")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNSUPPORTED);
}

// ---- Blobs -----------------------------------------------------------------------------

#[test]
fn bad_blobs_are_refused_naming_the_key() {
    let cases: &[(&str, &str)] = &[
        ("", "the blob is empty"),
        ("{}", "missing field `url`"),
        ("[1]", "the blob is not valid"),
        (
            r#"{"url": "ftp://x"}"#,
            "`url`: must start with `http://` or `https://`",
        ),
        (r#"{"url": "https://"}"#, "`url`: has no host"),
        (
            r#"{"url": "https://u:p@api.example/"}"#,
            "`url`: holds credentials",
        ),
        (
            r#"{"url": "https://{{to}}.example/"}"#,
            "`url`: the host cannot hold a placeholder",
        ),
        (
            r#"{"url": "https://a.example/?x={{txt}}"}"#,
            "`url`: unknown placeholder `{{txt}}`",
        ),
        (r#"{"url": "https://a.example/ x"}"#, "`url`: holds a space"),
        (
            r#"{"url": "https://a.example/", "methd": "GET"}"#,
            "unknown field `methd`",
        ),
        (
            r#"{"url": "https://a.example/", "method": "post"}"#,
            "`method`: must be an HTTP method",
        ),
        (
            r#"{"url": "https://a.example/", "headers": {"Bad Name": "x"}}"#,
            "`headers.Bad Name`: `Bad Name` is not a valid header name",
        ),
        (
            r#"{"url": "https://a.example/", "headers": {"A": "1", "a": "2"}}"#,
            "`headers.a`: appears twice",
        ),
        (
            r#"{"url": "https://a.example/", "headers": {"A": "1", "A": "2"}}"#,
            "`headers`: the key `A` appears twice",
        ),
        (
            r#"{"url": "https://a.example/", "headers": {"Content-Length": "1"}}"#,
            "`headers.Content-Length`: is set by the gateway",
        ),
        (
            r#"{"url": "https://a.example/", "headers": {"X": 5}}"#,
            "`headers.X`: expected a string",
        ),
        (
            r#"{"url": "https://a.example/", "basic_auth": {"user": "a:b", "password": "p"}}"#,
            "`basic_auth.user`: may not contain `:`",
        ),
        (
            r#"{"url": "https://a.example/", "basic_auth": {"user": "a"}}"#,
            "`basic_auth`: missing field `password`",
        ),
        (
            r#"{"url": "https://a.example/", "basic_auth": {"user": "a", "password": "p"}, "headers": {"authorization": "x"}}"#,
            "`basic_auth`: `headers` already sets Authorization",
        ),
        (
            r#"{"url": "https://a.example/", "secrets": {"a b": "x"}}"#,
            "`secrets`: the name `a b`",
        ),
        (
            r#"{"url": "https://a.example/", "body": {"type": "xml"}}"#,
            "`body.type`: unknown variant `xml`, expected `json` or `form`",
        ),
        (
            r#"{"url": "https://a.example/", "body": {"type": "form", "field": {}}}"#,
            "`body`: unknown field `field`",
        ),
        (
            r#"{"url": "https://a.example/", "body": {"type": "form", "fields": {"To": "{{too}}"}}}"#,
            "`body.fields.To`: unknown placeholder `{{too}}`",
        ),
        (
            r#"{"url": "https://a.example/", "body": {"type": "json", "template": {"a": ["{{secrets.k}}"]}}}"#,
            "`body.template.a[0]`: `{{secrets.k}}` names no entry of `secrets`",
        ),
        (
            r#"{"url": "https://a.example/", "method": "GET", "body": {"type": "json", "template": {}}}"#,
            "`body`: a GET request has no body",
        ),
        (
            r#"{"url": "https://a.example/", "success_status": []}"#,
            "`success_status`: is empty",
        ),
        (
            r#"{"url": "https://a.example/", "success_status": ["2xx", "6xx"]}"#,
            "`success_status[1]`: \"6xx\" is not a status code",
        ),
        (
            r#"{"url": "https://a.example/", "transient_status": "5xx"}"#,
            "`transient_status`: invalid type: string \"5xx\", expected a sequence",
        ),
        (
            r#"{"url": "https://a.example/", "message_id_pointer": "messages/0/id"}"#,
            "`message_id_pointer`: `messages/0/id` is not a JSON pointer",
        ),
        (
            r#"{"url": "https://a.example/", "message_id_pointer": "/a~2"}"#,
            "`message_id_pointer`: `/a~2` is not a JSON pointer",
        ),
        (
            r#"{"url": "https://a.example/", "message_id_pointer": "/id", "message_id_header": "X-Id"}"#,
            "`message_id_header`: give `message_id_pointer` or `message_id_header`, not both",
        ),
        (
            r#"{"url": "https://a.example/", "answer_status": {"pointer": "/s", "success_values": []}}"#,
            "`answer_status.success_values`: is empty",
        ),
        (
            r#"{"url": "https://a.example/", "answer_status": {"pointer": "/s", "success_values": [[0]]}}"#,
            "`answer_status.success_values[0]`: must be a string or a number",
        ),
        (
            r#"{"url": "https://a.example/", "callbacks": {"format": "json"}}"#,
            "`callbacks`: give `inbound`, `delivery_report` or both",
        ),
        (
            r#"{"url": "https://a.example/", "callbacks": {"format": "xml", "inbound": {"from": "a", "text": "b"}}}"#,
            "`callbacks.format`: unknown variant `xml`",
        ),
        (
            r#"{"url": "https://a.example/", "callbacks": {"format": "json", "inbound": {"from": "from", "text": "/t"}}}"#,
            "`callbacks.inbound.from`: `from` is not a JSON pointer",
        ),
        (
            r#"{"url": "https://a.example/", "callbacks": {"format": "form", "inbound": {"from": "", "text": "t"}}}"#,
            "`callbacks.inbound.from`: is empty",
        ),
        (
            r#"{"url": "https://a.example/", "callbacks": {"format": "form", "inbound": {"from": "f", "txt": "t"}}}"#,
            "`callbacks.inbound.txt`: unknown field `txt`",
        ),
        (
            r#"{"url": "https://a.example/", "callbacks": {"format": "form", "secret_header": "X-T", "inbound": {"from": "f", "text": "t"}}}"#,
            "`callbacks.secret_header`: has no use without `callbacks.shared_secret`",
        ),
        (
            r#"{"url": "https://a.example/", "callbacks": {"format": "form", "delivery_report": {"id": "i", "status": "s", "delivered_values": [], "undelivered_values": []}}}"#,
            "`callbacks.delivery_report.delivered_values`: is empty",
        ),
        (
            r#"{"url": "https://a.example/", "callbacks": {"format": "form", "delivery_report": {"id": "i", "status": "s", "delivered_values": ["d"]}}}"#,
            "`callbacks.delivery_report`: missing field `undelivered_values`",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .map(|(blob, expected)| (blob, expected, refusal(blob)))
        .filter(|(_, expected, message)| !message.contains(*expected))
        .map(|(blob, expected, message)| format!("blob {blob}\n  gave: {message}\n  expected: {expected}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_documented_examples_are_accepted() {
    assert!(HttpModule::check_config(VONAGE).is_ok());
    assert!(HttpModule::check_config(PLIVO).is_ok());
}

#[test]
fn secrets_never_appear_in_errors() {
    let secrets = [
        "HDR-SECRET-VALUE",
        "BASIC-PASSWORD-9",
        "NAMED-SECRET-77",
        "CALLBACK-TOKEN-5",
    ];
    let blob = json!({
        "url": "https://api.example/sms?key={{secrets.key}}",
        "headers": {"X-Api-Key": secrets[0]},
        "basic_auth": {"user": "acme", "password": secrets[1]},
        "secrets": {"key": secrets[2]},
        "body": {"type": "form", "fields": {"key": "{{secrets.key}}", "to": "{{to}}"}},
        "message_id_pointer": "/id",
        "callbacks": {"format": "json", "shared_secret": secrets[3],
                      "inbound": {"from": "/from", "text": "/text"}},
    });
    let module = module(&blob.to_string());
    let mut messages = Vec::new();

    // The provider echoes the whole request back while refusing it.
    let echo = format!(
        "bad request: {} / {} / {} / {}",
        secrets[0], secrets[1], secrets[2], secrets[3]
    );
    for status in [400, 503, 200] {
        messages.push(
            sent(&module, &answer(status, &echo))
                .unwrap_err()
                .message
                .to_string(),
        );
    }
    let echoed_json = json!({"status": "refused", "why": echo}).to_string();
    let with_check = {
        let mut blob = blob.clone();
        blob["answer_status"] =
            json!({"pointer": "/status", "success_values": ["ok"], "detail_pointer": "/why"});
        self::module(&blob.to_string())
    };
    messages.push(
        sent(&with_check, &answer(200, &echoed_json))
            .unwrap_err()
            .message
            .to_string(),
    );
    messages.push(
        sent(&module, &answer(200, &echoed_json))
            .unwrap_err()
            .message
            .to_string(),
    );
    assert!(messages[0].contains("[redacted]"), "{messages:?}");

    // Callbacks with a wrong or a missing token.
    for request in [
        callback("token=CALLBACK-TOKEN-4", &[], "{}"),
        callback("", &[("X-Callback-Token", "nope")], "{}"),
        callback("", &[], "{}"),
    ] {
        messages.push(module.parse_callback(&request).unwrap_err().message.to_string());
    }

    // Blobs that are wrong where the secrets are.
    for bad in [
        json!({"url": "https://a.example/", "headers": {"X-Key": 12345678}}),
        json!({"url": "https://a.example/", "basic_auth": {"user": "u", "password": 87654321}}),
        json!({"url": "https://a.example/", "secrets": {"k": 11223344}}),
        json!({"url": "https://a.example/", "headers": {"Authorization": "Bearer {{HDR-SECRET-VALUE}}"}}),
        json!({"url": "https://a.example/", "headers": {"X-Key": "HDR-SECRET-VALUE\n"}}),
        json!({"url": "https://a.example/", "callbacks": {"format": "json", "shared_secret": 99887766,
                                                          "inbound": {"from": "/f", "text": "/t"}}}),
    ] {
        messages.push(refusal(&bad.to_string()));
    }
    messages.push(
        module
            .self_check()
            .map(|step| format!("{step:?}"))
            .unwrap_or_else(|e| e.to_string()),
    );

    for message in &messages {
        for secret in secrets
            .iter()
            .chain(&["12345678", "87654321", "11223344", "99887766"])
        {
            assert!(!message.contains(secret), "`{secret}` leaked in: {message}");
        }
    }
}

#[test]
fn self_check_names_the_endpoint_without_making_a_request() {
    let module = module(r#"{"url": "https://api.example:8443/v1/sms?key=abc", "method": "PUT"}"#);
    assert_eq!(
        module.self_check().unwrap().as_done(),
        Some("configuration accepted; SMS will be sent with PUT https://api.example:8443 (no request made)")
    );
}

#[test]
fn the_exported_root_module_is_named_http() {
    let root = plugin_api::__export_root::<HttpModule>();
    assert_eq!(root.name().as_str(), "http");
    assert_eq!(root.version().as_str(), env!("CARGO_PKG_VERSION"));
}
