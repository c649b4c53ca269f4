//! DKIM signing (issue 14, part 5): every e-mail the gateway sends, from a mailing or
//! from `/v1/email`, carries a signature that an independent verifier (dkimpy) accepts
//! against the published key, as a real SMTP server (aiosmtpd) received it; a message
//! changed after signing fails. The connection check says whether the key matches the
//! published record; a bad key is refused at start, at reload and by the settings API,
//! naming the key, the file and the reason.

use std::time::Duration;

use e2e::{
    dkim::{key_file, key_text, verify},
    smtp::SmtpServer,
    Api, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN,
};
use serde_json::{json, Value};

const DNS_NAME: &str = "s2048._domainkey.example.com";

/// `[email]` sending to `server`, with `dkim` as its `[email.dkim]` section.
fn email_section(server: &SmtpServer, dkim: &str) -> String {
    e2e::smtp::email_section(
        server.port,
        &format!(
            "check_address = \"postmaster@example.com\"\npublic_url = \"https://mail.example.com\"\n\
             [email.dkim]\n{dkim}"
        ),
    )
}

/// Signing with the RSA test key `file` for `example.com` under selector `s2048`.
fn key_from(file: &str) -> String {
    format!(
        "domain = \"example.com\"\nselector = \"s2048\"\nprivate_key_file = {:?}\n",
        key_file(file).display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_email_is_signed_and_dkimpy_verifies_it_until_it_is_altered() {
    let server = SmtpServer::builder().keep_raw().start();
    let gateway = InProcess::start(TestConfig::new(
        "file",
        None,
        "",
        &email_section(&server, &key_from("rsa2048.pem")),
    ))
    .await;
    let api = Api::new(&gateway.url);

    let (status, answer) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({
                "subject": "Hello {{ name }}",
                "text": "Dear {{ name }},   your order {{ fields.order }} ships.  \n\n\n",
                "html": "<p>Dear {{ name }}, your order {{ fields.order }} ships.</p>",
                "recipients": [
                    { "email": "ann@example.org", "name": "Ann", "fields": { "order": 1017 } },
                    { "email": "bob@example.org", "name": "Bøb Ünïcode", "fields": { "order": "A-2" } },
                    "cy@example.org",
                ],
            }),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let counts = api
        .wait_mailing(answer["id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(counts["sent"], 3, "{counts}");
    let (status, answer) = api
        .post(
            "/v1/email",
            SEND_TOKEN,
            &json!({
                "to": ["dee@example.org"],
                "cc": ["Eve <eve@example.org>"],
                "subject": format!("A receipt {}", "with a long subject ".repeat(8)),
                "text": "x".repeat(3000),
            }),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    api.wait_status(answer["id"].as_str().unwrap(), &["sent"]).await;

    let raw = server.raw_messages();
    assert_eq!(raw.len(), 4);
    let record = key_text("rsa2048.txt");
    for (message, verdict) in raw.iter().zip(verify(DNS_NAME, &record, &raw)) {
        let text = String::from_utf8_lossy(message);
        assert!(verdict.ok, "dkimpy refused:\n{}\n{text}", verdict.log);
        assert_eq!(
            (verdict.domain.as_str(), verdict.selector.as_str()),
            ("example.com", "s2048")
        );
    }
    let mailing = String::from_utf8_lossy(&raw[0]).to_lowercase();
    let signature = mailing
        .split("dkim-signature:")
        .nth(1)
        .and_then(|rest| rest.split("\r\n\r\n").next())
        .expect("a DKIM-Signature header");
    assert!(
        signature.contains("list-unsubscribe:list-unsubscribe-post"),
        "RFC 8058 wants the unsubscribe headers signed: {signature}"
    );

    // A receiver that finds another key, or a message changed on its way, fails it.
    let other = key_text("other-rsa2048.txt");
    assert!(verify(DNS_NAME, &other, &raw[..1]).iter().all(|v| !v.ok));
    let text = String::from_utf8_lossy(&raw[0]).into_owned();
    let altered_body = text.replacen("1017", "9017", 1);
    let altered_subject = text.replacen("Subject: Hello", "Subject: Hallo", 1);
    let other_unsubscribe = text.replacen(
        "List-Unsubscribe: <https://mail.example.com/",
        "List-Unsubscribe: <https://evil.example.com/",
        1,
    );
    for altered in [&altered_body, &altered_subject, &other_unsubscribe] {
        assert_ne!(altered, &text, "the alteration must change something");
    }
    let verdicts = verify(
        DNS_NAME,
        &record,
        &[
            altered_body.into_bytes(),
            altered_subject.into_bytes(),
            other_unsubscribe.into_bytes(),
        ],
    );
    for verdict in verdicts {
        assert!(!verdict.ok, "an altered message verified: {verdict:?}");
    }
}

fn check_steps(report: &Value) -> Vec<&str> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_check_says_whether_the_key_matches_the_published_one() {
    let server = SmtpServer::builder().start();
    let dkim = format!(
        "{}public_key = {:?}",
        key_from("rsa2048.pem"),
        key_text("rsa2048.txt")
    );
    let section = email_section(&server, &dkim);
    let gateway = InProcess::start(TestConfig::new("file", None, "", &section)).await;
    let api = Api::new(&gateway.url);

    let (status, report) = api.post("/v1/admin/email/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        check_steps(&report),
        ["connect", "mail_from", "rcpt_to", "rset", "quit", "dkim"]
    );
    let dkim = &report["steps"][5];
    assert!(dkim["reply"].as_str().unwrap().contains("matches"), "{dkim}");

    // The admin publishes another key (here: saves it in the console).
    let (_, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    let (status, saved) = api
        .put(
            "/v1/admin/settings",
            ADMIN_TOKEN,
            &json!({
                "base_version": view["console"]["version"],
                "set": { "email.dkim.public_key": key_text("other-rsa2048.txt") },
            }),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let (_, report) = api.post("/v1/admin/email/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["failed_step"], "dkim", "{report}");
    let reply = report["steps"][5]["reply"].as_str().unwrap();
    assert!(reply.contains("does not match"), "{reply}");
    assert!(
        reply.contains(DNS_NAME) && reply.contains(&key_text("rsa2048.txt")),
        "says which record to publish where: {reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_is_refused_at_start_at_reload_and_by_the_settings_api() {
    let server = SmtpServer::builder().start();
    let short = key_file("rsa512.pem").display().to_string();
    let good = key_file("rsa2048.pem").display().to_string();
    let bad_section = email_section(&server, &key_from("rsa512.pem"));

    // At start: the command says the key, the file and the reason, and stops.
    let config = TestConfig::new("file", None, "", &bad_section);
    let file = config.write();
    let output = std::process::Command::new(e2e::gateway_bin())
        .arg("--config")
        .arg(&file)
        .arg("config")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needed in ["email.dkim.private_key_file", short.as_str(), "512 bits"] {
        assert!(stderr.contains(needed), "{needed} in {stderr}");
    }

    // At reload: refused, and the gateway goes on signing with the key it had.
    let gateway = InProcess::start_from_file(TestConfig::new(
        "file",
        None,
        "",
        &email_section(&server, &key_from("rsa2048.pem")),
    ))
    .await;
    let api = Api::new(&gateway.url);
    let path = gateway.config.write();
    let good_toml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good_toml.replace(&good, &short)).unwrap();
    let (status, problem) = api.post("/v1/admin/reload", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    for needed in ["email.dkim.private_key_file", short.as_str(), "512 bits"] {
        assert!(detail.contains(needed), "{needed} in {detail}");
    }
    let missing = key_file("no-such-key.pem").display().to_string();
    std::fs::write(&path, good_toml.replace(&good, &missing)).unwrap();
    let (status, problem) = api.post("/v1/admin/reload", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&missing) && detail.contains("cannot read"),
        "{detail}"
    );
    std::fs::write(&path, &good_toml).unwrap();

    // From the console: a file, then the key itself as a secret, each a 422 naming
    // its key; the secret is never echoed.
    let (_, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    let base = view["console"]["version"].clone();
    let (status, problem) = api
        .put(
            "/v1/admin/settings",
            ADMIN_TOKEN,
            &json!({ "base_version": base, "set": { "email.dkim.private_key_file": short } }),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("email.dkim.private_key_file") && detail.contains("512 bits"),
        "{detail}"
    );
    let not_a_key = "-----BEGIN RSA PRIVATE KEY-----\nmarker-not-a-key\n-----END RSA PRIVATE KEY-----";
    let (status, problem) = api
        .put(
            "/v1/admin/settings",
            ADMIN_TOKEN,
            &json!({
                "base_version": base,
                "set": { "email.dkim.private_key": not_a_key },
                "unset": [],
            }),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem.to_string();
    assert!(detail.contains("email.dkim.private_key"), "{detail}");
    assert!(!detail.contains("marker"), "the secret is echoed: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_saved_in_the_console_is_a_secret_and_signs() {
    let server = SmtpServer::builder().keep_raw().start();
    // No DKIM in the file: the console sets it, the key as a secret.
    let section = email_section(&server, "");
    let gateway = InProcess::start(TestConfig::new("file", None, "", &section)).await;
    let api = Api::new(&gateway.url);
    let key = key_text("rsa2048.pem");
    let (_, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    let (status, saved) = api
        .put(
            "/v1/admin/settings",
            ADMIN_TOKEN,
            &json!({
                "base_version": view["console"]["version"],
                "set": {
                    "email.dkim.domain": "example.com",
                    "email.dkim.selector": "s2048",
                    "email.dkim.private_key": key,
                },
            }),
        )
        .await;
    assert_eq!(status, 200, "{saved}");

    let (_, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    let (_, history) = api.get("/v1/admin/settings/history", ADMIN_TOKEN).await;
    let key_line = key.lines().nth(1).unwrap();
    for answer in [&view, &history, &saved] {
        assert!(
            !answer.to_string().contains(key_line),
            "the key is shown: {answer}"
        );
    }
    assert_eq!(view["settings"]["email.dkim.private_key"]["value"], "[redacted]");
    assert_eq!(
        view["console"]["keys"]["email.dkim.private_key"]["set"], true,
        "{view}"
    );
    assert_eq!(view["settings"]["email.dkim.domain"]["value"], "example.com");
    assert!(
        history["versions"][0]["keys"]
            .as_array()
            .unwrap()
            .contains(&json!("email.dkim.private_key")),
        "{history}"
    );

    let (status, answer) = api
        .post(
            "/v1/email",
            SEND_TOKEN,
            &json!({ "to": ["ann@example.org"], "subject": "Signed", "text": "Hi" }),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    api.wait_status(answer["id"].as_str().unwrap(), &["sent"]).await;
    let raw = server.raw_messages();
    let verdicts = verify(DNS_NAME, &key_text("rsa2048.txt"), &raw);
    assert!(verdicts[0].ok, "{}", verdicts[0].log);
}
