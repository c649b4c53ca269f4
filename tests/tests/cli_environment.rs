//! Every command of the `gateway` binary, run as an operator runs it: in a shell where
//! the API client's `GATEWAY_URL` and `GATEWAY_TOKEN` are set, as the README tells CLI
//! users to set them.

use std::process::Command;

use e2e::{build_dir, gateway_bin, sms_lines, smtp::SmtpServer, GatewayProcess, TestConfig, SEND_TOKEN};

/// A `GATEWAY_` variable that is no setting (the section is misspelled).
const STRAY: (&str, &str) = ("GATEWAY_EMIAL__HOST", "typo.example");

/// Runs `gateway ARGS` with the client's variables and [`STRAY`] set; returns whether
/// it succeeded and everything it printed.
fn run(url: &str, args: &[String]) -> (bool, String) {
    let output = Command::new(gateway_bin())
        .args(args)
        .env("GATEWAY_URL", url)
        .env("GATEWAY_TOKEN", SEND_TOKEN)
        .env(STRAY.0, STRAY.1)
        .env_remove("RUST_LOG")
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
async fn gateway_token_in_the_environment_broke_the_server_commands() {
    let smtp = SmtpServer::builder().start();
    let email = format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {}\ndefault_from = \"shop@example.com\"\n\
         check_address = \"postmaster@example.org\"\nretry_base_ms = 20\n",
        smtp.port
    );
    let config = TestConfig::new("file", None, "", &email);
    // `serve` itself starts with the variables set: this waits for its /healthz.
    let gateway = GatewayProcess::start_with(&config, |command| {
        command
            .env("GATEWAY_URL", "http://127.0.0.1:9")
            .env("GATEWAY_TOKEN", SEND_TOKEN)
            .env(STRAY.0, STRAY.1);
    })
    .await;
    let url = gateway.url.clone();
    let file = config.dir.path().join("gateway.toml").display().to_string();
    let dir = config.dir.path().to_path_buf();
    let csv = dir.join("recipients.csv");
    std::fs::write(&csv, "email\nann@example.org\nbob@example.org\n").unwrap();
    let library = build_dir().join("libfile.so").display().to_string();
    let blob = serde_json::json!({ "path": dir.join("conformance.jsonl") }).to_string();
    let csv = csv.display().to_string();
    let database = e2e::postgres::database();

    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("config", vec!["--config", &file, "config"]),
        ("config --json", vec!["--config", &file, "config", "--json"]),
        ("check-smtp", vec!["--config", &file, "check-smtp"]),
        ("modules list", vec!["--config", &file, "modules", "list"]),
        ("modules check", vec!["--config", &file, "modules", "check"]),
        (
            "store migrate",
            vec!["--config", &file, "store", "migrate", "--to", &database],
        ),
        (
            "modules conformance",
            vec!["modules", "conformance", &library, "--blob", &blob],
        ),
        (
            "send-sms",
            vec![
                "send-sms",
                "--to",
                "+447911123456",
                "--text",
                "from a shell",
                "--wait",
            ],
        ),
        (
            "send-email",
            vec![
                "send-email",
                "--to",
                "ann@example.org",
                "--subject",
                "Hi",
                "--text",
                "x",
                "--wait",
            ],
        ),
        (
            "mailing send",
            vec![
                "mailing",
                "send",
                "--recipients",
                &csv,
                "--subject",
                "News",
                "--text",
                "x",
            ],
        ),
    ];
    let commands: Vec<(String, Vec<String>)> = commands
        .into_iter()
        .map(|(name, args)| (name.to_string(), args.into_iter().map(String::from).collect()))
        .collect();
    let results = tokio::task::spawn_blocking(move || {
        commands
            .into_iter()
            .map(|(name, args)| (name, run(&url, &args)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();

    for (command, (ok, text)) in &results {
        assert!(*ok, "gateway {command} failed:\n{text}");
        assert!(
            !text.contains("unknown field") && !text.contains("settings refused"),
            "gateway {command}:\n{text}"
        );
    }
    let output = |name: &str| {
        &results
            .iter()
            .find(|(command, _)| command == name)
            .expect("ran")
            .1
             .1
    };
    assert!(output("config").contains("sms.module"), "{}", output("config"));
    assert!(output("check-smtp").contains("ok"), "{}", output("check-smtp"));
    assert!(
        output("store migrate").contains("copied"),
        "{}",
        output("store migrate")
    );
    assert!(output("send-sms").contains(" sent"), "{}", output("send-sms"));
    assert!(
        output("mailing send").contains("sent 2 failed 0"),
        "{}",
        output("mailing send")
    );
    assert_eq!(sms_lines(&config.sms_file())[0]["text"], "from a shell");

    // The stray variable is no setting: named with the rule, where the command speaks
    // (stderr, or the log of those that log), and left out.
    let warning = "GATEWAY_EMIAL__HOST is not a setting (settings are GATEWAY_<SECTION>__<KEY>";
    for command in ["config", "modules list"] {
        assert!(
            output(command).contains(&format!("warning: {warning}")),
            "{}",
            output(command)
        );
    }
    assert!(output("check-smtp").contains(warning), "{}", output("check-smtp"));
    assert!(gateway.log_text().contains(warning), "{}", gateway.log_text());
    assert!(!output("config").contains("typo.example"), "{}", output("config"));
}
