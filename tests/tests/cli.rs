//! The operator commands against a running gateway: send-sms, send-email and
//! mailing send (with its progress until the mailing completes).

use std::process::Command;

use e2e::{gateway_bin, sms_lines, smtp::SmtpServer, InProcess, TestConfig, SEND_TOKEN};

fn run(url: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(gateway_bin())
        .args(args)
        .env("GATEWAY_URL", url)
        .env("GATEWAY_TOKEN", SEND_TOKEN)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_sms_send_email_and_a_mailing_from_a_csv_file() {
    let server = SmtpServer::builder().start();
    let email = format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {}\ndefault_from = \"shop@example.com\"\nretry_base_ms = 20\n",
        server.port
    );
    let gateway = InProcess::start(TestConfig::new("file", None, "", &email)).await;
    let url = gateway.url.clone();
    let sms_file = gateway.config.sms_file();
    let dir = gateway.config.dir.path().to_path_buf();

    let (url2, dir2) = (url.clone(), dir.clone());
    let results = tokio::task::spawn_blocking(move || {
        let sms = run(
            &url2,
            &[
                "send-sms",
                "--to",
                "07911 123456",
                "--text",
                "from the CLI",
                "--wait",
            ],
        );
        let email = run(
            &url2,
            &[
                "send-email",
                "--to",
                "ann@example.org",
                "--subject",
                "Hi",
                "--text",
                "from the CLI",
                "--wait",
            ],
        );
        let csv = dir2.join("recipients.csv");
        let mut rows = String::from("name,email,city\n");
        for i in 0..30 {
            rows.push_str(&format!("User {i},user{i}@example.org,Town {i}\n"));
        }
        // Listed twice, the domain in capitals: one e-mail.
        rows.push_str("User 0 again,user0@EXAMPLE.org,Elsewhere\n");
        std::fs::write(&csv, rows).unwrap();
        let mailing = run(
            &url2,
            &[
                "mailing",
                "send",
                "--recipients",
                csv.to_str().unwrap(),
                "--subject",
                "News",
                "--text",
                "Hello {{ name }} from {{ fields.city }}",
                "--on-missing",
                "fail",
            ],
        );
        let refused = run(&url2, &["send-sms", "--to", "12345", "--text", "x"]);
        (sms, email, mailing, refused)
    })
    .await
    .unwrap();
    let (sms, email, mailing, refused) = results;

    assert!(sms.0, "{}", sms.1);
    assert!(sms.1.contains(" sent"), "{}", sms.1);
    assert_eq!(sms_lines(&sms_file)[0]["to"], "+447911123456");
    assert!(email.0 && email.1.contains(" sent"), "{}", email.1);
    assert!(mailing.0, "{}", mailing.1);
    assert!(
        mailing.1.contains("30 recipients queued") && mailing.1.contains("sent 30 failed 0"),
        "{}",
        mailing.1
    );
    server.wait_sessions_closed(1);
    let messages = server.messages();
    assert_eq!(messages.len(), 31);
    let user7 = messages
        .iter()
        .find(|m| m["rcpt_tos"][0] == "user7@example.org")
        .expect("user7's e-mail");
    assert_eq!(
        user7["text"].as_str().unwrap().trim_end(),
        "Hello User 7 from Town 7",
        "CSV columns are merge fields"
    );
    assert_eq!(user7["to"], "User 7 <user7@example.org>");
    assert!(!refused.0);
    assert!(
        refused.1.contains("422") && refused.1.contains("to:"),
        "{}",
        refused.1
    );
}
