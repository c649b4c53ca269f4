//! The SMTP test server (aiosmtpd behind `tests/smtp/server.py`) and its harness
//! (`e2e::smtp`), checked with clients someone else wrote: Python's smtplib for exact
//! replies, and lettre (the gateway's own SMTP client) for TLS and AUTH.

use std::process::Command;

use e2e::smtp::{self, SmtpServer, TestCa, TlsMode};
use lettre::{
    message::header::{HeaderName, HeaderValue},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, CertificateStore, Tls, TlsParameters},
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use serde_json::{json, Value};

/// Helpers every smtplib client script starts with: the server's port is `argv[1]`.
const PRELUDE: &str = r#"
import json, smtplib, socket, sys
port = int(sys.argv[1])

def message(i, gateway_id=None):
    text = (f"From: gateway@example.com\r\nTo: someone@example.com\r\n"
            f"Subject: test {i}\r\nMessage-ID: <m{i}@example.com>\r\n")
    if gateway_id is not None:
        text += f"X-Gateway-Id: {gateway_id}\r\n"
    return text + "\r\nHello.\r\n"

def connect():
    return smtplib.SMTP("127.0.0.1", port, timeout=10)
"#;

/// Runs a Python smtplib client against `server`; the script prints one JSON value.
fn smtplib_client(server: &SmtpServer, script: &str) -> Value {
    let output = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .arg(server.port.to_string())
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "the client script failed:\n{}\nthe server's stderr:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.stderr()
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the client script printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn lettre_message(gateway_id: &str) -> Message {
    Message::builder()
        .from("Gateway <gateway@example.com>".parse().unwrap())
        .to("someone@example.com".parse().unwrap())
        .subject("over TLS")
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Gateway-Id"),
            gateway_id.to_string(),
        ))
        .body("Hello.".to_string())
        .unwrap()
}

/// TLS parameters trusting the test CA only, for the server name `domain`.
fn trusting(ca: &TestCa, domain: &str) -> TlsParameters {
    let pem = std::fs::read(&ca.ca_pem).unwrap();
    TlsParameters::builder(domain.to_string())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(&pem).unwrap())
        .build_rustls()
        .unwrap()
}

fn lettre_client(
    server: &SmtpServer,
    tls: Tls,
    user: &str,
    password: &str,
) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port)
        .tls(tls)
        .credentials(Credentials::new(user.to_string(), password.to_string()))
        .build()
}

#[test]
fn a_plain_session_with_three_messages_is_one_session_of_three() {
    let server = SmtpServer::builder().start();
    smtplib_client(
        &server,
        r#"
s = connect()
for i in range(3):
    s.sendmail("gateway@example.com", ["someone@example.com"], message(i, f"gw-{i}"))
s.quit()
print(json.dumps("ok"))
"#,
    );
    let events = server.wait_sessions_closed(1);

    assert_eq!(server.sessions(), 1);
    assert_eq!(server.messages().len(), 3);
    assert_eq!(server.max_messages_per_session(), 3);
    assert_eq!(server.max_concurrent_sessions(), 1);
    assert_eq!(server.gateway_ids(), ["gw-0", "gw-1", "gw-2"]);
    let first = &server.messages()[0];
    assert_eq!(first["mail_from"], "gateway@example.com");
    assert_eq!(first["rcpt_tos"], json!(["someone@example.com"]));
    assert_eq!(first["message_id"], "<m0@example.com>");
    assert_eq!(first["subject"], "test 0");
    assert_eq!(first["tls"], false);
    assert_eq!(first["auth_user"], Value::Null);
    let close = events.iter().find(|e| e["event"] == "close").unwrap();
    assert_eq!(
        (close["messages"].clone(), close["quit"].clone()),
        (json!(3), json!(true))
    );
}

#[test]
fn two_sessions_open_together_count_as_two_concurrent() {
    let server = SmtpServer::builder().start();
    smtplib_client(
        &server,
        r#"
a, b = connect(), connect()
a.sendmail("gateway@example.com", ["one@example.com"], message(1, "a"))
b.sendmail("gateway@example.com", ["two@example.com"], message(2, "b"))
a.quit(); b.quit()
print(json.dumps("ok"))
"#,
    );
    server.wait_sessions_closed(2);
    assert_eq!(server.sessions(), 2);
    assert_eq!(server.max_concurrent_sessions(), 2);
    assert_eq!(server.max_messages_per_session(), 1);
    assert_eq!(server.gateway_ids(), ["a", "b"]);
}

#[test]
fn sessions_one_after_the_other_count_as_one_concurrent() {
    let server = SmtpServer::builder().start();
    smtplib_client(
        &server,
        r#"
for i in range(3):
    s = connect()
    s.sendmail("gateway@example.com", ["someone@example.com"], message(i))
    s.quit()
print(json.dumps("ok"))
"#,
    );
    server.wait_sessions_closed(3);
    assert_eq!(server.sessions(), 3);
    assert_eq!(server.max_concurrent_sessions(), 1);
    assert_eq!(
        server.gateway_ids(),
        Vec::<String>::new(),
        "no X-Gateway-Id was sent"
    );
}

#[test]
fn concurrency_is_read_from_the_order_of_connects_and_closes() {
    let event = |kind: &str, session: u64| json!({"event": kind, "session": session});
    let events = [
        event("connect", 1),
        event("connect", 2),
        event("close", 1),
        event("connect", 3),
        event("connect", 4),
        event("close", 2),
        event("close", 3),
        event("close", 4),
    ];
    assert_eq!(smtp::max_concurrent_sessions(&events), 3);
    assert_eq!(smtp::sessions(&events), 4);
    assert_eq!(smtp::max_messages_per_session(&events), 0);
}

#[tokio::test]
async fn starttls_and_auth_with_the_test_ca() {
    let ca = TestCa::new();
    let server = SmtpServer::builder()
        .tls(TlsMode::StartTlsRequired, &ca)
        .auth("user", "secret")
        .start();

    // In plain text the server takes nothing but STARTTLS.
    let plain = smtplib_client(
        &server,
        r#"
s = connect()
s.ehlo()
features = sorted(s.esmtp_features)
code, _ = s.mail("gateway@example.com")
s.quit()
print(json.dumps({"features": features, "mail": code}))
"#,
    );
    assert_eq!(plain["mail"], 530, "{plain}");
    assert!(
        plain["features"].as_array().unwrap().contains(&json!("starttls")),
        "{plain}"
    );

    let client = lettre_client(
        &server,
        Tls::Required(trusting(&ca, "localhost")),
        "user",
        "secret",
    );
    client
        .send(lettre_message("tls-1"))
        .await
        .expect("send over STARTTLS");

    server.wait_sessions_closed(2);
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["gateway_id"], "tls-1");
    assert_eq!(messages[0]["tls"], true);
    assert_eq!(messages[0]["auth_user"], "user");
}

#[tokio::test]
async fn implicit_tls_with_auth_and_an_ip_address_name() {
    let ca = TestCa::new();
    let server = SmtpServer::builder()
        .tls(TlsMode::Implicit, &ca)
        .auth("user", "secret")
        .start();

    // A client that does not trust the test CA gets no further than the handshake.
    let untrusted = TlsParameters::builder("127.0.0.1".to_string())
        .certificate_store(CertificateStore::None)
        .build_rustls()
        .unwrap();
    let error = lettre_client(&server, Tls::Wrapper(untrusted), "user", "secret")
        .send(lettre_message("never"))
        .await
        .expect_err("an untrusted certificate");
    assert!(
        error.is_tls() || error.to_string().contains("certificate"),
        "{error:?}"
    );

    let client = lettre_client(
        &server,
        Tls::Wrapper(trusting(&ca, "127.0.0.1")),
        "user",
        "secret",
    );
    client
        .send(lettre_message("smtps-1"))
        .await
        .expect("send over implicit TLS");

    server.wait_until(|events| !smtp::messages(events).is_empty());
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["gateway_id"], "smtps-1");
    assert_eq!(messages[0]["tls"], true);
    assert_eq!(messages[0]["auth_user"], "user");
}

#[tokio::test]
async fn a_wrong_password_gets_535_and_sends_nothing() {
    let server = SmtpServer::builder().auth("user", "secret").start();
    let error = lettre_client(&server, Tls::None, "user", "wrong")
        .send(lettre_message("never"))
        .await
        .expect_err("wrong credentials");
    assert_eq!(error.status().map(u16::from), Some(535), "{error:?}");
    assert!(error.is_permanent(), "{error:?}");

    let events = server.wait_sessions_closed(1);
    assert!(server.messages().is_empty());
    let auth = events
        .iter()
        .find(|e| e["event"] == "auth")
        .expect("an auth event");
    assert_eq!(auth["success"], false);

    // Without AUTH at all, MAIL is refused.
    let reply = smtplib_client(
        &server,
        r#"
s = connect()
s.ehlo()
code, text = s.mail("gateway@example.com")
s.quit()
print(json.dumps([code, text.decode()]))
"#,
    );
    assert_eq!(reply[0], 530, "{reply}");
}

#[test]
fn reply_421_after_k_messages_then_the_server_hangs_up() {
    let server = SmtpServer::builder().reply_421_after(2).start();
    let result = smtplib_client(
        &server,
        r#"
s = connect()
for i in range(2):
    s.sendmail("gateway@example.com", ["someone@example.com"], message(i, f"first-{i}"))
code, text = s.mail("gateway@example.com")
eof = s.sock.recv(1) == b""
s.close()
# The limit is per session: a new one takes two more.
t = connect()
for i in range(2):
    t.sendmail("gateway@example.com", ["someone@example.com"], message(i, f"second-{i}"))
t.quit()
print(json.dumps({"code": code, "text": text.decode(), "eof": eof}))
"#,
    );
    assert_eq!(
        result,
        json!({"code": 421, "text": "4.7.0 maximum message count per session reached", "eof": true})
    );
    let events = server.wait_sessions_closed(2);
    assert_eq!(server.sessions(), 2);
    assert_eq!(server.max_messages_per_session(), 2);
    assert_eq!(
        server.gateway_ids(),
        ["first-0", "first-1", "second-0", "second-1"]
    );
    assert_eq!(events.iter().filter(|e| e["event"] == "reply_421").count(), 1);
}

#[test]
fn drop_after_k_messages_cuts_the_connection_without_a_reply() {
    let server = SmtpServer::builder().drop_after(1).start();
    let result = smtplib_client(
        &server,
        r#"
s = connect()
s.sendmail("gateway@example.com", ["someone@example.com"], message(0, "kept"))
try:
    reply = s.mail("gateway@example.com")
    outcome = f"reply {reply}"
except (smtplib.SMTPServerDisconnected, ConnectionError) as error:
    outcome = type(error).__name__
print(json.dumps(outcome))
"#,
    );
    assert!(
        result == "SMTPServerDisconnected" || result == "ConnectionResetError",
        "the client saw {result}"
    );
    let events = server.wait_sessions_closed(1);
    assert_eq!(server.gateway_ids(), ["kept"]);
    let close = events.iter().find(|e| e["event"] == "close").unwrap();
    assert_eq!(
        (close["messages"].clone(), close["quit"].clone()),
        (json!(1), json!(false))
    );
    assert!(events.iter().any(|e| e["event"] == "drop"));
}

#[test]
fn a_rejected_recipient_gets_550_and_the_others_get_the_message() {
    let server = SmtpServer::builder().reject_rcpt("unknown").start();
    let result = smtplib_client(
        &server,
        r#"
s = connect()
refused = s.sendmail("gateway@example.com",
                     ["someone@example.com", "unknown@example.com"], message(0, "partly"))
try:
    s.sendmail("gateway@example.com", ["unknown@example.com"], message(1, "never"))
    alone = None
except smtplib.SMTPRecipientsRefused as error:
    alone = {k: [v[0], v[1].decode()] for k, v in error.recipients.items()}
s.quit()
partly = {k: [v[0], v[1].decode()] for k, v in refused.items()}
print(json.dumps({"partly": partly, "alone": alone}))
"#,
    );
    let rejected = json!([
        550,
        "5.1.1 <unknown@example.com>: Recipient address rejected: User unknown"
    ]);
    assert_eq!(result["partly"]["unknown@example.com"], rejected, "{result}");
    assert_eq!(result["alone"]["unknown@example.com"], rejected, "{result}");

    server.wait_sessions_closed(1);
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["rcpt_tos"], json!(["someone@example.com"]));
    assert_eq!(server.gateway_ids(), ["partly"]);
}

#[test]
fn a_client_vanishing_mid_data_is_closed_and_the_server_goes_on() {
    let server = SmtpServer::builder().start();
    smtplib_client(
        &server,
        r#"
s = connect()
s.ehlo(); s.mail("gateway@example.com"); s.rcpt("someone@example.com")
s.putcmd("data"); s.getreply()
s.send(b"Subject: cut short\r\n")
s.close()
t = connect()
t.sendmail("gateway@example.com", ["someone@example.com"], message(1, "after"))
t.quit()
print(json.dumps("ok"))
"#,
    );
    let events = server.wait_sessions_closed(2);
    assert_eq!(server.gateway_ids(), ["after"]);
    let first_close = events
        .iter()
        .find(|e| e["event"] == "close" && e["session"] == 1)
        .unwrap();
    assert_eq!(first_close["messages"], 0);
}

#[test]
#[should_panic(expected = "the SMTP server did not come up")]
fn a_server_that_cannot_start_says_why() {
    let ca = TestCa::new();
    std::fs::remove_file(&ca.cert_pem).unwrap();
    SmtpServer::builder().tls(TlsMode::Implicit, &ca).start();
}
