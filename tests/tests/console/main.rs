//! The admin console (issue 11) driven in a real headless Chromium, against a real
//! `gateway serve` with aiosmtpd and the `file` module: what an admin does from
//! signing in to rolling back a bad change, checked where the admin would check it
//! (the page, the SMTP server's record, the file module's output).
//!
//! Screenshots of each tab go to `target/artefacts/console/` (beside the build
//! directory the tests run from), for a person to look at.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test installs them).

mod browser;
mod sessions;

use std::{path::PathBuf, time::Duration};

use browser::Browser;
use e2e::{sms_lines, smtp::SmtpServer, Api, GatewayProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::{json, Value};

/// Where the screenshots are written.
fn artefacts() -> PathBuf {
    e2e::build_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("artefacts/console")
}

/// A gateway with SMTP limits of 20 per connection for 2 threads, aiosmtpd behind it,
/// a modules directory holding `file`, `echo` and a library that cannot load, and
/// `sms.sender` set by the environment.
async fn gateway(smtp: &SmtpServer, modules: &std::path::Path) -> (GatewayProcess, TestConfig) {
    let email = format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {}\ndefault_from = \"gateway@example.com\"\n\
         check_address = \"postmaster@example.com\"\nmax_per_connection = 20\nsmtp_threads = 2\n",
        smtp.port
    );
    let mut config = TestConfig::new("file", None, "", &email);
    let dir = format!("modules_dir = {:?}", e2e::build_dir());
    assert!(config.toml.contains(&dir));
    config.toml = config
        .toml
        .replacen(&dir, &format!("modules_dir = {modules:?}"), 1);
    // The environment sets the sender: the console shows it read-only, naming the variable.
    let process = GatewayProcess::start_with(&config, |command| {
        command.env("GATEWAY_SMS__SENDER", "ENVCO");
    })
    .await;
    (process, config)
}

/// The console's version in force, as a script sees it.
async fn console_version(api: &Api) -> u64 {
    let (status, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{view}");
    view["console"]["version"].as_u64().unwrap()
}

/// Posts an SMS with the send token and waits until it is sent.
async fn send_sms(api: &Api, text: &str) -> Value {
    let (status, body) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": text }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    api.wait_status(body["id"].as_str().unwrap(), &["sent"]).await
}

/// Signs in through the form with `token`.
async fn sign_in(browser: &Browser, url: &str, token: &str) {
    browser.goto(&format!("{url}/console/")).await;
    browser.type_into("token", token).await;
    browser.click("sign-in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_up_checks_tests_watches_and_rolls_back_in_the_browser() {
    let smtp = SmtpServer::builder().pipelining().start();
    let modules = e2e::modules_dir_with(&["file", "echo", "wrongabi"]);
    let (gateway, config) = gateway(&smtp, modules.path()).await;
    let url = gateway.url.clone();
    let api = Api::new(&url);
    let browser = Browser::start(&artefacts()).await;

    // A send token cannot sign in, and says why.
    sign_in(&browser, &url, SEND_TOKEN).await;
    let refused = browser.text("sign-in-error").await;
    assert!(
        refused.contains("send token") && refused.contains("admin role"),
        "{refused}"
    );
    browser.screenshot("0-sign-in-refused").await;

    // An admin token opens the console, which holds a session cookie, not the token.
    sign_in(&browser, &url, ADMIN_TOKEN).await;
    browser
        .wait_text("version-line", |t| t.contains("Nothing saved in the console yet"))
        .await;
    let cookie = browser
        .client
        .get_named_cookie("gateway_console")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert!(!cookie.value().contains(ADMIN_TOKEN));
    let storage = browser
        .client
        .execute(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie \
             + document.documentElement.outerHTML",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        !storage.as_str().unwrap().contains(ADMIN_TOKEN),
        "the token is nowhere in the page"
    );
    let session = format!("gateway_console={}", cookie.value());

    // A cross-site request riding on the session is refused, and saves nothing.
    let forged = api
        .client
        .put(format!("{url}/v1/admin/settings"))
        .header("cookie", &session)
        .header("origin", "http://evil.example")
        .header("content-type", "application/json")
        .body(json!({ "base_version": 0, "set": { "email.smtp_threads": 1 } }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(forged.headers()["content-type"], "application/problem+json");
    assert_eq!(console_version(&api).await, 0, "nothing was saved");
    let forged_sign_in = api
        .client
        .post(format!("{url}/console/sign-in"))
        .header("origin", "http://evil.example")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged_sign_in.status(), 403);
    assert!(forged_sign_in.headers().get("set-cookie").is_none());

    // E-mail: the limits' consequence is shown beside them and follows the typing.
    let hint = browser.text("limits-hint").await;
    assert_eq!(hint, "2 connections at a time, 10 e-mails each");
    browser.type_into("email-smtp_threads", "4").await;
    browser
        .wait_text("limits-hint", |t| t == "4 connections at a time, 5 e-mails each")
        .await;
    browser.click("email-save").await;
    browser
        .wait_text("email-saved", |t| t.contains("Saved as version 1"))
        .await;
    browser.screenshot("1-email").await;
    let (_, history) = api.get("/v1/admin/settings/history", ADMIN_TOKEN).await;
    let saved_by = history["versions"][0]["saved_by"].as_str().unwrap().to_string();
    assert!(
        saved_by.starts_with("admin token #2") && saved_by.ends_with("in the console"),
        "{saved_by}"
    );
    assert!(!saved_by.contains(ADMIN_TOKEN));

    // A mailing after the save is sent 5 e-mails per connection, as counted by aiosmtpd.
    let recipients: Vec<String> = (0..20).map(|i| format!("reader{i}@example.org")).collect();
    let (status, mailing) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({ "subject": "Console news", "text": "Hello", "recipients": recipients }),
        )
        .await;
    assert_eq!(status, 202, "{mailing}");
    let mailing_id = mailing["id"].as_str().unwrap().to_string();
    smtp.wait_until(|events| e2e::smtp::messages(events).len() >= 20);
    smtp.wait_sessions_closed(4);
    assert_eq!(smtp.max_messages_per_session(), 5);

    // Check SMTP connection: each step with the server's reply.
    browser.click("smtp-check").await;
    browser
        .wait_text("smtp-check-verdict", |t| t.contains("works"))
        .await;
    let steps = browser.wait_all("#smtp-check-result li.passed", |n| n >= 4).await;
    let mut shown = Vec::new();
    for step in &steps {
        shown.push(step.text().await.unwrap());
    }
    assert!(shown[0].contains("Connect"), "{shown:?}");
    assert!(
        shown.iter().any(|s| s.contains("RCPT TO") && s.contains("250")),
        "the server's replies are shown: {shown:?}"
    );

    // Send a test e-mail: it reaches aiosmtpd, and the page follows it to `sent`.
    browser.type_into("email-test-to", "admin@example.org").await;
    browser.click("email-test").await;
    let status = browser
        .wait_text("email-test-status", |t| t.ends_with("sent"))
        .await;
    assert!(status.contains("queued"), "{status}");
    let test_mail = smtp.wait_until(|events| {
        e2e::smtp::messages(events)
            .iter()
            .any(|m| m["rcpt_tos"][0] == "admin@example.org")
    });
    let test_mail = e2e::smtp::messages(&test_mail)
        .into_iter()
        .find(|m| m["rcpt_tos"][0] == "admin@example.org")
        .unwrap();
    assert_eq!(test_mail["subject"], "Test e-mail from the gateway");
    browser.screenshot("1-email-checked").await;

    // SMS: the list box shows the modules installed, the broken one greyed with why.
    browser.click("tab-sms").await;
    let options = browser.wait_all("#sms-module option", |n| n == 3).await;
    let mut labels = Vec::new();
    for option in &options {
        labels.push((
            option.text().await.unwrap(),
            option.attr("disabled").await.unwrap().is_some(),
        ));
    }
    assert!(
        labels.iter().any(|(l, off)| l.starts_with("file ") && !off),
        "{labels:?}"
    );
    assert!(
        labels.iter().any(|(l, off)| l.starts_with("echo ") && !off),
        "{labels:?}"
    );
    assert!(
        labels.iter().any(|(l, off)| l.contains("cannot load") && *off),
        "{labels:?}"
    );
    browser.screenshot("2-sms").await;
    let sender = browser.id("sms-sender").await;
    assert!(
        !sender.is_enabled().await.unwrap(),
        "a key the environment sets is read-only"
    );
    assert_eq!(sender.prop("value").await.unwrap().as_deref(), Some("ENVCO"));
    let note = browser.wait_all("#sms-form .env-note", |n| n == 1).await;
    assert!(note[0].text().await.unwrap().contains("GATEWAY_SMS__SENDER"));

    // Send test: one line in the file module's output, the number as normalised.
    browser.type_into("sms-test-to", "07911 123456").await;
    browser.type_into("sms-test-text", "hello from the console").await;
    browser.click("sms-test").await;
    let sent = browser
        .wait_text("sms-test-result", |t| t.contains("provider id"))
        .await;
    assert!(sent.contains("+447911123456") && sent.contains("file"), "{sent}");
    let lines = sms_lines(&config.sms_file());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["to"], "+447911123456");
    assert_eq!(lines[0]["text"], "hello from the console");

    // Check module: the file module's self-check.
    browser.click("sms-check").await;
    browser
        .wait_text("sms-check-verdict", |t| t.starts_with("file"))
        .await;

    // Another module with a blob it refuses: its message beside the field, nothing saved.
    browser
        .id("sms-module")
        .await
        .select_by_value("echo")
        .await
        .unwrap();
    browser.type_into("sms-plugin_config", "{not json").await;
    browser.click("sms-save").await;
    let refusal = browser
        .wait_text("error-sms-plugin_config", |t| !t.is_empty())
        .await;
    assert!(refusal.contains("bad echo blob"), "{refusal}");
    assert_eq!(console_version(&api).await, 1, "nothing was saved");
    assert!(!send_sms(&api, "still file").await["provider_id"]
        .as_str()
        .unwrap_or_default()
        .starts_with("echo-"));
    browser.screenshot("2-sms-refused-blob").await;

    // A good blob: saved, and the next SMS goes through the echo module.
    browser
        .type_into("sms-plugin_config", "{\"log\": \"from the console\"}")
        .await;
    browser.click("sms-save").await;
    browser
        .wait_text("sms-saved", |t| t.contains("Saved as version 2"))
        .await;
    let blob_state = browser.text("blob-state").await;
    assert!(
        blob_state.contains("configured") && blob_state.contains("version 2"),
        "{blob_state}"
    );
    let through_echo = send_sms(&api, "through echo").await;
    assert!(
        through_echo["provider_id"].as_str().unwrap().starts_with("echo-"),
        "{through_echo}"
    );

    // Mailings and messages: the mailing's progress, a message looked up, the queue.
    browser.click("tab-activity").await;
    let row = format!("#mailings tr[data-id=\"{mailing_id}\"]");
    browser.wait_all(&row, |n| n == 1).await;
    let progress = browser
        .wait_text("mailings", |t| t.contains("Console news") && t.contains("20/20"))
        .await;
    assert!(progress.contains("Console news"), "{progress}");
    browser
        .wait_text("queue-depth", |t| t.starts_with("Waiting to be sent: 0 e-mails"))
        .await;
    browser
        .type_into("lookup-id", through_echo["id"].as_str().unwrap())
        .await;
    browser.click("lookup").await;
    let found = browser.wait_text("lookup-result", |t| t.contains("Status")).await;
    assert!(found.contains("sent") && found.contains("echo-"), "{found}");
    browser.screenshot("3-mailings-and-messages").await;

    // History: roll back to the first version; the file module sends again.
    browser.click("tab-history").await;
    browser
        .wait_all("#history tbody tr[data-version]", |n| n == 2)
        .await;
    browser.screenshot("4-history").await;
    browser.click("rollback-1").await;
    browser
        .wait_text("history-status", |t| t.contains("saved as version 3"))
        .await;
    browser
        .wait_all("#history tbody tr[data-version]", |n| n == 3)
        .await;
    let before = sms_lines(&config.sms_file()).len();
    let back = send_sms(&api, "file again").await;
    assert!(
        !back["provider_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("echo-"),
        "{back}"
    );
    let lines = sms_lines(&config.sms_file());
    assert_eq!(lines.len(), before + 1);
    assert_eq!(lines.last().unwrap()["text"], "file again");

    // Check SMTP connection against a stopped server: the failing step.
    drop(smtp);
    browser.click("tab-email").await;
    browser.click("smtp-check").await;
    let verdict = browser
        .wait_text("smtp-check-verdict", |t| t.starts_with("Failed at"))
        .await;
    browser.wait_all("#smtp-check-result li.failed", |n| n == 1).await;
    assert!(verdict.contains("Connect"), "{verdict}");

    // Someone else saves meanwhile: the console's save is refused as stale, saves
    // nothing, and a reload shows the newer version.
    let (status, other) = api
        .put(
            "/v1/admin/settings",
            ADMIN_TOKEN,
            &json!({ "base_version": 3, "set": { "email.check_address": "ops@example.com" } }),
        )
        .await;
    assert_eq!(status, 200, "{other}");
    browser.type_into("email-smtp_threads", "3").await;
    browser.click("email-save").await;
    browser.wait_all("#stale:not([hidden])", |n| n == 1).await;
    assert_eq!(console_version(&api).await, 4, "the stale save saved nothing");
    browser.click("reload").await;
    browser
        .wait_text("version-line", |t| t.contains("version 4"))
        .await;
    let check_address = browser
        .id("email-check_address")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(check_address.as_deref(), Some("ops@example.com"));

    // On a phone's screen the same page reflows to one column.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.screenshot("5-phone-email").await;

    // Sign out: the session is over, also for a request that still presents it.
    browser.click("sign-out").await;
    browser.id("token").await;
    let after = api
        .client
        .get(format!("{url}/v1/admin/settings"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    browser.close().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}
