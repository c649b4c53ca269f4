//! `gateway modules conformance FILE`, the check provider authors run on their module
//! library: it passes for the shipped modules (loaded from disk, as the gateway loads
//! them), checks a real callback of the provider, prints what it tried, lists what it
//! could not run as skipped, and reports what is wrong with broken modules without
//! crashing.

use std::process::{Command, Output};

use e2e::{build_dir, gateway_bin};
use gateway::modules::conformance::CHECKS;

fn conformance(module: &str, args: &[&str]) -> (Output, String) {
    let file = build_dir().join(format!("lib{module}.so"));
    let output = Command::new(gateway_bin())
        .args(["modules", "conformance"])
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// The line of check `name`, which every report has.
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.get(7..)
                .is_some_and(|rest| rest.starts_with(&format!("{name}: ")))
        })
        .unwrap_or_else(|| panic!("no line for `{name}` in\n{text}"))
}

const HTTP_BLOB: &str = r#"{"url": "{{server}}/sms/json", "body": {"type": "form", "fields": {"to": "{{to}}", "text": "{{text}}"}},
    "message_id_pointer": "/messages/0/message-id",
    "callbacks": {"format": "form", "delivery_report": {"id": "messageId", "status": "status",
        "delivered_values": ["delivered"], "undelivered_values": ["failed", "expired"], "message_id": "client-ref"}}}"#;

const TWILIO_BLOB: &str = r#"{"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "9f4b2c1d0e8a7b6c", "base_url": "{{server}}"}"#;

#[test]
fn the_shipped_modules_pass_with_a_callback_of_their_provider() {
    let answer = r#"{"messages": [{"message-id": "m-1"}]}"#;
    let (output, text) = conformance(
        "http",
        &[
            "--blob",
            HTTP_BLOB,
            "--answer",
            answer,
            "--callback",
            "messageId=m-1&status=delivered&client-ref=01J9ZQ3MSG",
            "--expect",
            "delivered",
        ],
    );
    assert!(output.status.success(), "{text}");
    assert!(
        line(&text, "sends one SMS")
            .contains("ok   sends one SMS: provider id \"m-1\" after 1 HTTP request(s)"),
        "{text}"
    );
    assert!(
        line(&text, "parses the provider's callback").contains(
            "ok   parses the provider's callback: delivery report: delivered, provider id \"m-1\", \
             message id \"01J9ZQ3MSG\""
        ),
        "{text}"
    );
    // The 500 is answered with an error body of the stand-in's own, which the module
    // quotes; the success given with --answer is not reused.
    let five_hundred = line(&text, "a 500 is transient");
    assert!(
        five_hundred.starts_with("  ok   ") && five_hundred.contains("failed on purpose"),
        "{text}"
    );
    assert!(!five_hundred.contains("m-1"), "{text}");
    // The bad blobs it tried are printed, each with the module's refusal.
    assert!(
        line(&text, "refuses bad blobs with a message")
            .contains("ok   refuses bad blobs with a message: all 3 refused"),
        "{text}"
    );
    for blob in [
        "\"{ this is not a valid blob\" refused: ",
        "\"null\" refused: ",
        "\"42\" refused: ",
    ] {
        assert!(text.contains(&format!("         {blob}")), "{blob} in {text}");
    }

    let (output, text) = conformance(
        "twilio",
        &[
            "--blob",
            TWILIO_BLOB,
            "--status",
            "201",
            "--answer",
            r#"{"sid": "SM1"}"#,
            "--callback",
            "MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003",
            "--callback-header",
            "Content-Type: application/x-www-form-urlencoded",
            "--callback-query",
            "message_id=01J9ZQ3MSG",
            "--expect",
            "undelivered",
        ],
    );
    assert!(output.status.success(), "{text}");
    assert!(
        line(&text, "parses the provider's callback").contains(
            "delivery report: undelivered, provider id \"SM1\", message id \"01J9ZQ3MSG\", \
             detail \"undelivered (error 30003)\""
        ),
        "{text}"
    );

    let (output, text) = conformance(
        "template",
        &[
            "--blob",
            r#"{"api_key": "ex_live_8f7e6d5c4b3a", "base_url": "{{server}}", "callback_token": "cb-token-1234"}"#,
            "--status",
            "201",
            "--answer",
            r#"{"id": "msg_42"}"#,
            "--callback",
            r#"{"event": "message.received", "id": "in_7", "from": "+447700900001", "to": "+447700900000", "text": "STOP"}"#,
            "--callback-header",
            "X-Example-Token:cb-token-1234",
            "--expect",
            "inbound",
        ],
    );
    assert!(output.status.success(), "{text}");
    assert!(
        line(&text, "parses the provider's callback")
            .contains("ok   parses the provider's callback: inbound SMS from \"+447700900001\""),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (output, text) = conformance(
        "file",
        &[
            "--blob",
            &serde_json::json!({ "path": dir.path().join("c.jsonl") }).to_string(),
            "--callback",
            r#"{"type": "report", "provider_id": "file-conformance-1", "status": "delivered"}"#,
            "--expect",
            "delivered",
        ],
    );
    assert!(output.status.success(), "{text}");
    assert!(
        line(&text, "a 500 is transient")
            .contains("skip a 500 is transient: the module made no HTTP request"),
        "{text}"
    );
}

#[test]
fn a_callback_that_becomes_another_event_or_is_refused_fails_saying_so() {
    let common = [
        "--blob",
        TWILIO_BLOB,
        "--status",
        "201",
        "--answer",
        r#"{"sid": "SM1"}"#,
    ];
    let (output, text) = conformance(
        "twilio",
        &[
            &common[..],
            &[
                "--callback",
                "MessageSid=SM1&MessageStatus=sent",
                "--expect",
                "delivered",
            ],
        ]
        .concat(),
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "parses the provider's callback").contains(
            "FAIL parses the provider's callback: a delivery report saying delivered was expected, \
             but the module made delivery report: in progress"
        ),
        "{text}"
    );

    let (output, text) = conformance(
        "template",
        &[
            "--blob",
            r#"{"api_key": "k-123456", "base_url": "{{server}}", "callback_token": "cb-token-1234"}"#,
            "--status",
            "201",
            "--answer",
            r#"{"id": "msg_42"}"#,
            "--callback",
            r#"{"event": "message.status", "id": "msg_42", "status": "delivered"}"#,
            "--expect",
            "delivered",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "parses the provider's callback").contains(
            "the module refused it (permanent error: callback refused: missing or wrong X-Example-Token)"
        ),
        "{text}"
    );
}

#[test]
fn without_a_callback_that_check_is_listed_as_skipped_and_expect_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let blob = serde_json::json!({ "path": dir.path().join("c.jsonl") }).to_string();
    let (output, text) = conformance("file", &["--blob", &blob]);
    assert!(output.status.success(), "{text}");
    assert!(
        line(&text, "parses the provider's callback")
            .contains("skip parses the provider's callback: no --callback given"),
        "{text}"
    );
    let (output, text) = conformance("file", &["--blob", &blob, "--expect", "delivered"]);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--callback <BODY>"), "{text}");
}

#[test]
fn checks_that_cannot_run_after_a_refused_blob_are_listed_as_skipped() {
    let (output, text) = conformance("file", &["--blob", r#"{"path": 5}"#]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "accepts the blob").contains("FAIL accepts the blob: ")
            && text.contains("invalid type: integer `5`"),
        "{text}"
    );
    let after: Vec<&str> = CHECKS
        .iter()
        .skip_while(|c| **c != "accepts the blob")
        .skip(1)
        .copied()
        .collect();
    assert_eq!(after.len(), 6);
    for name in after {
        assert!(
            line(&text, name).contains(&format!(
                "skip {name}: not run: the blob was refused, so there is no provider to check"
            )),
            "{text}"
        );
    }
}

#[test]
fn a_module_that_panics_is_reported_and_the_check_survives() {
    let (output, text) = conformance("panicky", &[]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL survives broken callbacks"), "{text}");
    assert!(
        text.contains("module `panicky` panicked in parse_callback"),
        "{text}"
    );
    assert!(
        line(&text, "refuses bad blobs with a message").contains("FAIL refuses bad blobs with a message: "),
        "{text}"
    );
    assert!(text.contains("\"null\" accepted"), "{text}");
    assert!(
        text.contains("ok   sends one SMS"),
        "the checks go on after a panic: {text}"
    );
}

#[test]
fn a_library_of_another_plugin_api_fails_to_load_and_lists_every_other_check_as_skipped() {
    let (output, text) = conformance("wrongabi", &[]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL loads") && text.contains("plugin-api 2.0.0"),
        "{text}"
    );
    for name in &CHECKS[1..] {
        assert!(
            line(&text, name).contains("skip")
                && line(&text, name).contains("not run: the library did not load"),
            "{text}"
        );
    }
}
