//! The suppression list (issue 14, part 2) against a real SMTP server (aiosmtpd): an
//! address an admin adds, or that a server refused for good at RCPT, receives nothing
//! from the next mailing, which counts it as suppressed; `/v1/email` skips it unless
//! transactional; the CLI imports and exports the list as CSV.

use std::{process::Command, time::Duration};

use e2e::{gateway_bin, smtp::SmtpServer, Api, InProcess, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::{json, Value};

/// Posts a mailing to `recipients` and waits until nothing of it is queued or sending.
async fn mailing(api: &Api, recipients: &[&str]) -> Value {
    let (status, body) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({ "subject": "News", "text": "Hello", "recipients": recipients }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap();
    api.wait_mailing(id, Duration::from_secs(20)).await
}

/// Every RCPT address the server saw: accepted (in a message) or refused.
fn rcpts(server: &SmtpServer) -> Vec<String> {
    server
        .events()
        .iter()
        .flat_map(|e| match e["event"].as_str() {
            Some("message") => e["rcpt_tos"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
            Some("rcpt_rejected") => vec![e["address"].as_str().unwrap().to_string()],
            _ => Vec::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_bounce_and_an_admin_entry_receive_nothing_from_the_next_mailing() {
    let server = SmtpServer::builder().reject_rcpt("nobody").start();
    let (_gateway, api) = InProcess::sending_to(&server, "").await;

    let first = mailing(&api, &["nobody@example.org", "ann@example.org"]).await;
    assert_eq!(
        (first["sent"].as_u64(), first["failed"].as_u64()),
        (Some(1), Some(1)),
        "{first}"
    );
    let (status, added) = api
        .post(
            "/v1/admin/suppressions",
            ADMIN_TOKEN,
            &json!({ "addresses": ["Bob <bob@EXAMPLE.org>"], "detail": "asked by phone" }),
        )
        .await;
    assert_eq!((status, added["added"].as_u64()), (200, Some(1)), "{added}");
    let (status, list) = api.get("/v1/admin/suppressions", ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{list}");
    let entries: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["address"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [("bob@example.org", "admin"), ("nobody@example.org", "bounce")],
        "the domain kept in lower case; the bounce recorded by itself"
    );
    assert!(
        list["items"][1]["detail"].as_str().unwrap().contains("550"),
        "{list}"
    );

    server.wait_sessions_closed(1);
    let before = rcpts(&server).len();
    let second = mailing(
        &api,
        &[
            "nobody@example.org",
            "bob@example.org",
            "ann@example.org",
            "cy@example.org",
        ],
    )
    .await;
    assert_eq!(
        (
            second["total"].as_u64(),
            second["suppressed"].as_u64(),
            second["sent"].as_u64()
        ),
        (Some(4), Some(2), Some(2)),
        "{second}"
    );
    server.wait_sessions_closed(2);
    let seen = rcpts(&server)[before..].to_vec();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|a| a.starts_with("nobody") || a.starts_with("bob")),
        "{seen:?}"
    );

    // Removed, the address gets the mailing after.
    let (status, _) = api
        .delete("/v1/admin/suppressions/bob@example.org", ADMIN_TOKEN)
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .delete("/v1/admin/suppressions/bob@example.org", ADMIN_TOKEN)
        .await;
    assert_eq!(status, 404);
    let third = mailing(&api, &["bob@example.org"]).await;
    assert_eq!(third["sent"], 1, "{third}");

    let (status, _) = api.get("/v1/admin/suppressions", SEND_TOKEN).await;
    assert_eq!(status, 403, "the list is the admin's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_email_skips_suppressed_addresses_unless_transactional() {
    let server = SmtpServer::builder().start();
    let (_gateway, api) = InProcess::sending_to(&server, "").await;
    let (status, _) = api
        .post(
            "/v1/admin/suppressions",
            ADMIN_TOKEN,
            &json!({ "addresses": ["gone@example.org"] }),
        )
        .await;
    assert_eq!(status, 200);
    let email = |body: Value| {
        let api = &api;
        async move { api.post("/v1/email", SEND_TOKEN, &body).await }
    };
    let (status, problem) = email(json!({ "to": "gone@example.org", "subject": "Hi", "text": "x" })).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("to")),
        "{problem}"
    );

    let (status, body) = email(json!({
        "to": ["ann@example.org"], "bcc": ["gone@example.org"], "subject": "Hi", "text": "x"
    }))
    .await;
    assert_eq!(status, 202, "{body}");
    api.wait_status(body["id"].as_str().unwrap(), &["sent"]).await;
    let (status, body) = email(json!({
        "to": "gone@example.org", "subject": "Your receipt", "text": "x", "transactional": true
    }))
    .await;
    assert_eq!(status, 202, "{body}");
    api.wait_status(body["id"].as_str().unwrap(), &["sent"]).await;
    server.wait_sessions_closed(2);
    let messages = server.messages();
    assert_eq!(
        messages[0]["rcpt_tos"],
        json!(["ann@example.org"]),
        "the bcc was skipped"
    );
    assert_eq!(
        messages[1]["rcpt_tos"],
        json!(["gone@example.org"]),
        "transactional goes through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_imports_and_exports_the_list_as_csv() {
    let server = SmtpServer::builder().start();
    let (gateway, api) = InProcess::sending_to(&server, "").await;
    let csv = gateway.config.dir.path().join("unsubscribed.csv");
    std::fs::write(
        &csv,
        "name,email\nAnn,ann@example.org\nPlus,a+b@EXAMPLE.org\nAnn again,ann@example.org\n",
    )
    .unwrap();
    let url = gateway.url.clone();
    let run = move |args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let output = Command::new(gateway_bin())
                .args(&args)
                .env("GATEWAY_URL", &url)
                .env("GATEWAY_TOKEN", ADMIN_TOKEN)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        })
    };
    let imported = run(vec![
        "suppressions".into(),
        "import".into(),
        csv.to_str().unwrap().into(),
        "--detail".into(),
        "from the CRM".into(),
    ])
    .await
    .unwrap();
    assert!(imported.contains("3 addresses read, 2 added"), "{imported}");
    let exported = run(vec!["suppressions".into(), "export".into()]).await.unwrap();
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines[0], "address,reason,detail,created_at");
    assert!(
        lines[1].starts_with("a+b@example.org,admin,from the CRM,20"),
        "{exported}"
    );
    assert!(
        lines[2].starts_with("ann@example.org,admin,from the CRM,"),
        "{exported}"
    );
    assert_eq!(lines.len(), 3);
    let counts = mailing(&api, &["ann@example.org", "a+b@example.org", "cy@example.org"]).await;
    assert_eq!(counts["suppressed"], 2, "{counts}");
}
