//! Unsubscribe links (issue 14, part 3): every mailing e-mail carries its recipient's
//! own `List-Unsubscribe` link with one-click (RFC 8058), as a real SMTP server
//! (aiosmtpd) receives it; the link works once, a forged one is refused, and the next
//! mailing skips the address. Without `email.public_url`, no header, and the gateway
//! says so.

use std::time::Duration;

use e2e::{
    smtp::{email_section, SmtpServer},
    Api, GatewayProcess, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN,
};
use serde_json::{json, Value};

const PUBLIC_URL: &str = "https://mail.example.com/gateway";

async fn mailing(api: &Api, body: Value) -> Value {
    let (status, answer) = api.post("/v1/mailings", SEND_TOKEN, &body).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap();
    api.wait_mailing(id, Duration::from_secs(20)).await
}

/// The link of a `List-Unsubscribe: <URL>` header, as the gateway's own path (`/u/…`).
fn link_path(header: &Value) -> String {
    let header = header.as_str().expect("a List-Unsubscribe header");
    let url = header
        .strip_prefix('<')
        .and_then(|h| h.strip_suffix('>'))
        .unwrap_or_else(|| panic!("not <URL>: {header}"));
    url.strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("not under email.public_url: {url}"))
        .to_string()
}

async fn form_post(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_click_unsubscribe_works_once_and_the_next_mailing_skips_the_address() {
    let server = SmtpServer::builder().start();
    let config = TestConfig::new(
        "file",
        None,
        "",
        &email_section(server.port, &format!("public_url = \"{PUBLIC_URL}/\"")),
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);

    let counts = mailing(
        &api,
        json!({
            "subject": "News", "text": "Hello\nUnsubscribe: {{ unsubscribe_url }}",
            "recipients": ["ann@example.org", "Bob <bob@example.org>"],
        }),
    )
    .await;
    assert_eq!(
        (counts["sent"].as_u64(), counts["list_unsubscribe"].as_bool()),
        (Some(2), Some(true)),
        "{counts}"
    );
    assert!(counts.get("warnings").is_none(), "{counts}");
    server.wait_sessions_closed(1);
    let messages = server.messages();
    let ann = messages
        .iter()
        .find(|m| m["rcpt_tos"][0] == "ann@example.org")
        .unwrap();
    let bob = messages
        .iter()
        .find(|m| m["rcpt_tos"][0] == "bob@example.org")
        .unwrap();
    for message in [ann, bob] {
        assert_eq!(
            message["list_unsubscribe_post"], "List-Unsubscribe=One-Click",
            "{message}"
        );
        let path = link_path(&message["list_unsubscribe"]);
        assert!(path.starts_with("/u/"), "{path}");
        assert!(
            !path.contains("example.org") && !path.contains("ann") && !path.contains("bob"),
            "{path}"
        );
        assert!(
            message["text"]
                .as_str()
                .unwrap()
                .contains(&format!("{PUBLIC_URL}{path}")),
            "{{{{ unsubscribe_url }}}} is the header's link: {message}"
        );
    }
    let (ann_path, bob_path) = (
        link_path(&ann["list_unsubscribe"]),
        link_path(&bob["list_unsubscribe"]),
    );
    assert_ne!(ann_path, bob_path, "a link per recipient");

    // A visit shows a button and unsubscribes no one (link scanners visit links).
    let page = reqwest::get(format!("{}{ann_path}", gateway.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = page.text().await.unwrap();
    assert!(
        page.contains("ann@example.org") && page.contains("<form method=\"post\">"),
        "{page}"
    );
    let (_, list) = api.get("/v1/admin/suppressions", ADMIN_TOKEN).await;
    assert_eq!(list["items"], json!([]), "a visit changes nothing");

    // The one-click POST records it; again, it changes nothing more.
    for _ in 0..2 {
        let (status, page) = form_post(&format!("{}{ann_path}", gateway.url)).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("will receive no more mailings"), "{page}");
    }
    let (_, list) = api.get("/v1/admin/suppressions", ADMIN_TOKEN).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(
        (items[0]["address"].as_str(), items[0]["reason"].as_str()),
        (Some("ann@example.org"), Some("unsubscribe"))
    );

    // Forged links: altered, cut, made up. None unsubscribes anyone.
    let token = ann_path.trim_start_matches("/u/").to_string();
    let mut altered = token.clone().into_bytes();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for forged in [
        altered.as_str(),
        &token[..token.len() - 2],
        "bob@example.org",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (status, _) = form_post(&format!("{}/u/{forged}", gateway.url)).await;
        assert_eq!(status, 404, "{forged}");
        let status = reqwest::get(format!("{}/u/{forged}", gateway.url))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{forged}");
    }
    let (_, list) = api.get("/v1/admin/suppressions", ADMIN_TOKEN).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    let before = server.messages().len();
    let counts = mailing(
        &api,
        json!({ "subject": "More news", "text": "Hi", "recipients": ["ann@example.org", "bob@example.org"] }),
    )
    .await;
    assert_eq!(
        (counts["sent"].as_u64(), counts["suppressed"].as_u64()),
        (Some(1), Some(1)),
        "{counts}"
    );
    server.wait_sessions_closed(2);
    let later: Vec<Value> = server.messages()[before..].to_vec();
    assert_eq!(later.len(), 1);
    assert_eq!(
        later[0]["rcpt_tos"],
        json!(["bob@example.org"]),
        "ann unsubscribed"
    );

    // A single e-mail is transactional in kind: no unsubscribe link.
    let (status, body) = api
        .post(
            "/v1/email",
            SEND_TOKEN,
            &json!({ "to": "cy@example.org", "subject": "Receipt", "text": "x" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    api.wait_status(body["id"].as_str().unwrap(), &["sent"]).await;
    server.wait_sessions_closed(3);
    let receipt = server
        .messages()
        .into_iter()
        .find(|m| m["rcpt_tos"][0] == "cy@example.org")
        .unwrap();
    assert!(receipt["list_unsubscribe"].is_null(), "{receipt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_no_header_and_the_log_settings_and_mailing_say_so() {
    let server = SmtpServer::builder().start();
    let config = TestConfig::new("file", None, "", &email_section(server.port, ""));
    let gateway = GatewayProcess::start(&config).await;
    let api = Api::new(&gateway.url);
    let counts = mailing(
        &api,
        json!({ "subject": "News", "text": "Hi", "recipients": ["ann@example.org"] }),
    )
    .await;
    assert_eq!(counts["list_unsubscribe"], false, "{counts}");
    assert!(
        counts["warnings"][0]
            .as_str()
            .unwrap()
            .contains("email.public_url is not set"),
        "{counts}"
    );
    server.wait_sessions_closed(1);
    assert!(server.messages()[0]["list_unsubscribe"].is_null());
    let (_, settings) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    let shown = &settings["settings"]["email.public_url"];
    assert!(
        shown["value"].is_null() && shown["source"].as_str().unwrap().starts_with("not set"),
        "{shown}"
    );
    assert!(
        gateway.log_text().contains("email.public_url is not set"),
        "{}",
        gateway.log_text()
    );
}
