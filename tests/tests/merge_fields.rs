//! Merge fields (issue 14, part 1): subject, text and HTML rendered per recipient, as a
//! real SMTP server (aiosmtpd) receives them; duplicates sent once; templates that do
//! not compile or fields that are missing, as the request says.

use std::time::Duration;

use e2e::{smtp::SmtpServer, InProcess, SEND_TOKEN};
use serde_json::{json, Value};

fn message_to<'a>(messages: &'a [Value], address: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["rcpt_tos"][0] == address)
        .unwrap_or_else(|| panic!("no e-mail to {address}: {messages:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_recipient_gets_their_own_fields_escaped_in_html_and_duplicates_get_one() {
    let server = SmtpServer::builder().start();
    let (_gateway, api) = InProcess::sending_to(&server, "").await;
    let (status, body) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({
                "subject": "Hello {{ name }}",
                "text": "Dear {{ name }}, your order {{ fields.order }} ships to {{ fields.city }}.",
                "html": "<p>Dear {{ name }}, your order {{ fields.order }} ships to {{ fields.city }}.</p>",
                "recipients": [
                    { "email": "ann@example.org", "name": "Ann", "fields": { "order": 1017, "city": "Köln" } },
                    { "email": "bob@example.org", "name": "Bob <Boss> & Co", "fields": { "order": "A-2", "city": "<script>x</script>" } },
                    "Cy <cy@example.org>",
                    { "email": "ann@EXAMPLE.ORG", "name": "Ann again" },
                    "BOB@Example.Org",
                ],
            }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let counts = api
        .wait_mailing(body["id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(
        counts["total"], 4,
        "ann twice is one e-mail; BOB@ is another mailbox: {counts}"
    );
    assert_eq!(counts["sent"], 4, "{counts}");
    server.wait_sessions_closed(1);
    let messages = server.messages();
    assert_eq!(messages.len(), 4);

    let ann = message_to(&messages, "ann@example.org");
    assert_eq!(ann["subject"], "Hello Ann");
    assert_eq!(ann["to"], "Ann <ann@example.org>");
    assert!(
        ann["text"]
            .as_str()
            .unwrap()
            .starts_with("Dear Ann, your order 1017 ships to Köln."),
        "{ann}"
    );
    let bob = message_to(&messages, "bob@example.org");
    assert_eq!(
        bob["subject"], "Hello Bob <Boss> & Co",
        "the subject is not escaped"
    );
    assert!(
        bob["text"]
            .as_str()
            .unwrap()
            .starts_with("Dear Bob <Boss> & Co, your order A-2 ships to <script>x</script>."),
        "the text is not escaped: {bob}"
    );
    assert!(
        bob["html"].as_str().unwrap().starts_with(
            "<p>Dear Bob &lt;Boss&gt; &amp; Co, your order A-2 ships to &lt;script&gt;x&lt;&#x2f;script&gt;.</p>"
        ),
        "the HTML is escaped: {bob}"
    );
    let cy = message_to(&messages, "cy@example.org");
    assert_eq!(
        cy["subject"], "Hello Cy",
        "a plain mailbox's display name is its name"
    );
    assert!(
        cy["text"].as_str().unwrap().contains("your order  ships to ."),
        "missing fields render empty by default: {cy}"
    );
    message_to(&messages, "BOB@Example.Org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_missing_fail_only_the_recipient_without_the_field_fails() {
    let server = SmtpServer::builder().start();
    let (_gateway, api) = InProcess::sending_to(&server, "").await;
    let (status, body) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({
                "subject": "Your code",
                "text": "{% if name %}Dear {{ name }}{% endif %}\nYour code: {{ fields.code }}",
                "on_missing": "fail",
                "recipients": [
                    { "email": "ann@example.org", "fields": { "code": "X1" } },
                    { "email": "bob@example.org", "name": "Bob" },
                ],
            }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let counts = api.wait_mailing(&id, Duration::from_secs(20)).await;
    assert_eq!(
        (counts["sent"].as_u64(), counts["failed"].as_u64()),
        (Some(1), Some(1)),
        "{counts}"
    );
    server.wait_sessions_closed(1);
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "bob's e-mail never reached the server");
    assert_eq!(messages[0]["rcpt_tos"][0], "ann@example.org");
    let text = messages[0]["text"].as_str().unwrap().replace("\r\n", "\n");
    assert!(text.starts_with("\nYour code: X1"), "{}", messages[0]);
}

#[tokio::test]
async fn a_template_that_does_not_compile_is_a_422_naming_the_part_and_line() {
    let server = SmtpServer::builder().start();
    let (_gateway, api) = InProcess::sending_to(&server, "").await;
    for (path, body, field, line) in [
        (
            "/v1/mailings",
            json!({ "subject": "Hi", "text": "ok", "html": "<p>\n{{ name </p>", "recipients": ["a@example.org"] }),
            "html",
            Some("line 2"),
        ),
        (
            "/v1/mailings",
            json!({ "subject": "Hi {% if %}", "text": "ok", "recipients": ["a@example.org"] }),
            "subject",
            Some("line 1"),
        ),
        (
            "/v1/email",
            json!({ "to": "a@example.org", "subject": "Hi", "text": "one\ntwo\n{% for %}" }),
            "text",
            Some("line 3"),
        ),
        (
            "/v1/email",
            json!({ "to": "a@example.org", "subject": "Hi", "text": "{{ fields.code }}", "on_missing": "fail" }),
            "text",
            Some("line 1"),
        ),
        (
            "/v1/mailings",
            json!({ "subject": "Hi", "text": "x", "recipients": [{ "email": "a@example.org", "name": "A\r\nBcc: b@example.org" }] }),
            "recipients[0].name",
            None,
        ),
        (
            "/v1/mailings",
            json!({ "subject": "Hi", "text": "x", "recipients": ["a@example.org", { "email": "nope" }] }),
            "recipients[1].email",
            None,
        ),
        (
            "/v1/mailings",
            json!({ "subject": "Hi", "text": "x", "recipients": [{ "email": "a@example.org", "nam": "A" }] }),
            // The unknown key itself, as for a misspelt key at the top level.
            "recipients[0].nam",
            None,
        ),
        (
            "/v1/mailings",
            json!({ "subject": "Hi", "text": "x", "on_missing": "sometimes", "recipients": ["a@example.org"] }),
            "on_missing",
            None,
        ),
    ] {
        let (status, problem) = api.post(path, SEND_TOKEN, &body).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{body}: {problem}");
        if let Some(line) = line {
            assert!(problem["detail"].as_str().unwrap().contains(line), "{problem}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_email_is_rendered_for_its_first_recipient_and_sent_once_per_address() {
    let server = SmtpServer::builder().start();
    let (_gateway, api) = InProcess::sending_to(&server, "").await;
    let (status, body) = api
        .post(
            "/v1/email",
            SEND_TOKEN,
            &json!({
                "to": [{ "email": "ann@example.org", "name": "Ann", "fields": { "code": "<42>" } }],
                "bcc": ["ann@Example.ORG", "audit@example.com"],
                "subject": "Code for {{ name }}",
                "text": "{{ fields.code }} for {{ email }}, ref {{ fields.ref }}",
                "html": "<b>{{ fields.code }}</b>",
                "fields": { "code": "overridden", "ref": "R-9" },
            }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let message = api
        .wait_status(body["id"].as_str().unwrap(), &["sent", "failed"])
        .await;
    assert_eq!(message["status"], "sent", "{message}");
    let messages = server.wait_until(|events| !e2e::smtp::messages(events).is_empty());
    let sent = &e2e::smtp::messages(&messages)[0];
    assert_eq!(sent["rcpt_tos"], json!(["ann@example.org", "audit@example.com"]));
    assert_eq!(sent["subject"], "Code for Ann");
    assert!(
        sent["text"]
            .as_str()
            .unwrap()
            .starts_with("<42> for ann@example.org, ref R-9"),
        "{sent}"
    );
    assert!(
        sent["html"].as_str().unwrap().starts_with("<b>&lt;42&gt;</b>"),
        "{sent}"
    );
}
