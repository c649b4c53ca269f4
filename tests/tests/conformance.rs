//! `gateway modules conformance FILE`, the check provider authors run on their module
//! library: it passes for the shipped modules and reports, without crashing, what is
//! wrong with broken ones.

use std::process::{Command, Output};

use e2e::{build_dir, gateway_bin};

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

#[test]
fn the_shipped_modules_pass() {
    let blob = r#"{"url": "{{server}}/sms/json", "body": {"type": "form", "fields": {"to": "{{to}}", "text": "{{text}}"}},
                   "message_id_pointer": "/messages/0/message-id"}"#;
    let (output, text) = conformance(
        "http",
        &[
            "--blob",
            blob,
            "--answer",
            r#"{"messages": [{"message-id": "m-1"}]}"#,
        ],
    );
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("ok   sends one SMS: provider id \"m-1\" after 1 HTTP request(s)"),
        "{text}"
    );
    assert!(text.contains("ok   a 500 is transient"), "{text}");
    assert!(text.contains("ok   refuses a bad blob with a message"), "{text}");

    let blob = r#"{"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "t", "base_url": "{{server}}"}"#;
    let (output, text) = conformance(
        "twilio",
        &["--blob", blob, "--status", "201", "--answer", r#"{"sid": "SM1"}"#],
    );
    assert!(output.status.success(), "{text}");

    let (output, text) = conformance(
        "file",
        &[
            "--blob",
            &format!(
                r#"{{"path": "{}/c.jsonl"}}"#,
                tempfile::tempdir().unwrap().keep().display()
            ),
        ],
    );
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("skip a 500 is transient: the module made no HTTP request"),
        "{text}"
    );
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
        text.contains("FAIL refuses a bad blob with a message: the blob"),
        "{text}"
    );
    assert!(
        text.contains("ok   sends one SMS"),
        "the checks go on after a panic: {text}"
    );
}

#[test]
fn a_library_of_another_plugin_api_fails_to_load_with_the_reason() {
    let (output, text) = conformance("wrongabi", &[]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL loads") && text.contains("plugin-api 2.0.0"),
        "{text}"
    );
}
