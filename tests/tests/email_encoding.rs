//! E-mails that can always be sent (issue 9, defect 11): long subjects and body lines,
//! domains in Unicode, and local parts that need SMTPUTF8, delivered to a real SMTP
//! server (aiosmtpd), which refuses a line over 998 bytes with `500 Line too long` as
//! the servers that found the bug did. What is asserted is what the server received
//! and decoded.

use e2e::{smtp::SmtpServer, Api, InProcess, TestConfig, SEND_TOKEN};
use serde_json::{json, Value};

async fn gateway(server: &SmtpServer) -> (InProcess, Api) {
    let email = format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {}\ndefault_from = \"Shop <shop@example.com>\"\n\
         retry_base_ms = 20\nretry_max_ms = 100\ncommand_timeout_ms = 5000\n",
        server.port
    );
    let gateway = InProcess::start(TestConfig::new("file", None, "", &email)).await;
    let api = Api::new(&gateway.url);
    (gateway, api)
}

/// Posts `email`, waits until it is sent or failed, and returns its status.
async fn deliver(api: &Api, email: Value) -> Value {
    let (status, body) = api.post("/v1/email", SEND_TOKEN, &email).await;
    assert_eq!(status, 202, "{body}");
    api.wait_status(body["id"].as_str().unwrap(), &["sent", "failed"])
        .await
}

/// The one message the server received.
fn received(server: &SmtpServer) -> Value {
    server.wait_sessions_closed(1);
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:?}\n{}", server.stderr());
    messages.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_10000_character_subject_is_folded_and_delivered() {
    let server = SmtpServer::builder().start();
    let (_gateway, api) = gateway(&server).await;
    let subject = "x".repeat(10_000);
    let message = deliver(
        &api,
        json!({ "to": ["ann@example.org"], "subject": subject, "text": "Hello" }),
    )
    .await;
    assert_eq!(message["status"], "sent", "{message}");
    let received = received(&server);
    assert!(
        received["max_line"].as_u64().unwrap() <= 998,
        "{}",
        received["max_line"]
    );
    assert_eq!(
        received["subject"],
        subject.as_str(),
        "the subject decodes to the original"
    );
}

#[tokio::test]
async fn a_body_line_longer_than_998_bytes_is_delivered_intact() {
    let server = SmtpServer::builder().start();
    let (_gateway, api) = gateway(&server).await;
    let text = format!(
        "{}\nand a second line: {}",
        "0123456789".repeat(300),
        "é".repeat(1_500)
    );
    let html = format!("<p>{}</p>", "word".repeat(1_000));
    let message = deliver(
        &api,
        json!({ "to": ["ann@example.org"], "subject": "Long lines", "text": text, "html": html }),
    )
    .await;
    assert_eq!(message["status"], "sent", "{message}");
    let received = received(&server);
    assert!(
        received["max_line"].as_u64().unwrap() <= 998,
        "{}",
        received["max_line"]
    );
    let got = received["text"].as_str().unwrap();
    assert_eq!(
        got.replace("\r\n", "\n").trim_end(),
        text,
        "the text decodes to the original"
    );
}

#[tokio::test]
async fn an_idn_domain_is_sent_as_punycode() {
    // The server does not offer SMTPUTF8: a domain in punycode does not need it.
    let server = SmtpServer::builder().start();
    let (_gateway, api) = gateway(&server).await;
    let message = deliver(
        &api,
        json!({ "to": ["Ann <ann@bücher.example>"], "subject": "Hi", "text": "Hello" }),
    )
    .await;
    assert_eq!(message["status"], "sent", "{message}");
    let received = received(&server);
    assert_eq!(received["rcpt_tos"], json!(["ann@xn--bcher-kva.example"]));
    assert_eq!(received["to"], "Ann <ann@xn--bcher-kva.example>");
    assert_eq!(received["mail_options"], json!([]));
}

#[tokio::test]
async fn a_non_ascii_local_part_uses_smtputf8_when_offered() {
    let server = SmtpServer::builder().smtputf8().start();
    let (_gateway, api) = gateway(&server).await;
    let message = deliver(
        &api,
        json!({ "to": ["jürgen@example.org"], "subject": "Grüße", "text": "Hallo" }),
    )
    .await;
    assert_eq!(message["status"], "sent", "{message}");
    let received = received(&server);
    assert_eq!(received["rcpt_tos"], json!(["jürgen@example.org"]));
    assert!(
        received["mail_options"]
            .as_array()
            .unwrap()
            .contains(&json!("SMTPUTF8")),
        "MAIL FROM carries SMTPUTF8: {received}"
    );
    assert_eq!(received["subject"], "Grüße");
}

#[tokio::test]
async fn a_non_ascii_local_part_fails_clearly_without_smtputf8() {
    let server = SmtpServer::builder().pipelining().start();
    let (_gateway, api) = gateway(&server).await;
    let message = deliver(
        &api,
        json!({ "to": ["jürgen@example.org"], "subject": "Hi", "text": "Hallo" }),
    )
    .await;
    assert_eq!(message["status"], "failed", "{message}");
    let error = message["error"].as_str().unwrap();
    assert!(
        error.contains("the server does not offer SMTPUTF8, needed for the address jürgen@example.org"),
        "{error}"
    );
    server.wait_sessions_closed(1);
    assert!(server.messages().is_empty(), "nothing was delivered");
}

#[tokio::test]
async fn a_hundred_recipients_are_delivered_with_the_to_header_folded() {
    let server = SmtpServer::builder().pipelining().start();
    let (_gateway, api) = gateway(&server).await;
    let to: Vec<String> = (0..100).map(|i| format!("recipient{i}@example.org")).collect();
    let message = deliver(&api, json!({ "to": to, "subject": "Hi", "text": "Hello" })).await;
    assert_eq!(message["status"], "sent", "{message}");
    let received = received(&server);
    assert!(
        received["max_line"].as_u64().unwrap() <= 998,
        "{}",
        received["max_line"]
    );
    assert_eq!(received["rcpt_tos"], json!(to));
    assert_eq!(
        received["to"],
        to.join(", "),
        "the To header unfolds to every address"
    );
}
