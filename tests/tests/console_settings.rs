//! Settings saved from the admin console (issue 11): `PUT /v1/admin/settings` checks a
//! change as a reload does, saves it as a version in the store and puts it in force;
//! the history says who changed which keys; a rollback is a new version; a key the
//! environment sets stays the environment's; a fleet applies a save within seconds.

use std::time::{Duration, Instant};

use e2e::{sms_lines, smtp::SmtpServer, Api, GatewayProcess, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::{json, Value};

/// The console's version in force, as `GET /v1/admin/settings` shows it.
async fn console_version(api: &Api) -> u64 {
    let (status, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{view}");
    view["console"]["version"].as_u64().unwrap()
}

async fn save(api: &Api, base_version: u64, set: Value) -> (u16, Value) {
    api.put(
        "/v1/admin/settings",
        ADMIN_TOKEN,
        &json!({ "base_version": base_version, "set": set }),
    )
    .await
}

/// Sends an SMS and waits for it to be sent; returns the message.
async fn send_sms(api: &Api) -> Value {
    let (status, body) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": "hi" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    api.wait_status(body["id"].as_str().unwrap(), &["sent"]).await
}

/// Posts a mailing to `n` recipients and waits until all of it is sent.
async fn mailing(api: &Api, n: usize) {
    let recipients: Vec<String> = (0..n).map(|i| format!("user{i}@example.org")).collect();
    let (status, body) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({ "subject": "News", "text": "Hello", "recipients": recipients }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap();
    for _ in 0..1200 {
        let (_, counts) = api.get(&format!("/v1/mailings/{id}"), SEND_TOKEN).await;
        if counts["sent"] == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mailing {id} never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_of_smtp_threads_is_in_force_for_the_next_mailing_and_shown_with_its_version() {
    let server = SmtpServer::builder().pipelining().start();
    let email = format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {}\ndefault_from = \"news@example.com\"\nmax_per_connection = 20\nsmtp_threads = 2\n",
        server.port
    );
    let gateway = InProcess::start_from_file(TestConfig::new("file", None, "", &email)).await;
    let api = Api::new(&gateway.url);
    assert_eq!(console_version(&api).await, 0);

    // 20 per connection for all 2 threads: 10 e-mails a connection.
    mailing(&api, 40).await;
    server.wait_sessions_closed(1);
    assert_eq!(server.max_messages_per_session(), 10);

    let (status, saved) = save(&api, 0, json!({ "email.smtp_threads": 5 })).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["keys"], json!(["email.smtp_threads"]));
    let (_, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    assert_eq!(view["settings"]["email.smtp_threads"]["value"], 5);
    assert_eq!(
        view["settings"]["email.smtp_threads"]["source"],
        "console (version 1)"
    );
    assert_eq!(view["console"]["version"], 1);

    // Now 20 / 5 = 4 e-mails a connection, counted at the server.
    let sessions_before = server.sessions();
    mailing(&api, 40).await;
    server.wait_sessions_closed(sessions_before + 1);
    let events = server.events();
    let later =
        e2e::smtp::max_messages_per_session(&events[first_event_of_session(&events, sessions_before)..]);
    assert_eq!(later, 4, "the new limit: 20 per connection over 5 threads");
}

/// The index of the first event of session number `n` (0-based) in `events`.
fn first_event_of_session(events: &[Value], n: usize) -> usize {
    let mut seen = 0;
    for (index, event) in events.iter().enumerate() {
        if event["event"] == "connect" {
            if seen == n {
                return index;
            }
            seen += 1;
        }
    }
    events.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_saves_change_nothing_and_name_the_key() {
    let config = TestConfig::new("file", None, "", "");
    let sms_file = config.sms_file();
    let gateway = InProcess::start_from_file(config).await;
    let api = Api::new(&gateway.url);

    // A blob the module refuses: the module's own message, and nothing saved.
    let (status, problem) = save(&api, 0, json!({ "sms.plugin_config": "{\"path\": 5}" })).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "sms.plugin_config", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("refused its configuration") && detail.contains("nothing was saved"),
        "{detail}"
    );
    // A module that does not exist, a value out of range, keys the console may not set.
    for (set, field) in [
        (json!({ "sms.module": "nosuch" }), "sms.module"),
        (json!({ "email.smtp_threads": 0 }), "email.smtp_threads"),
        (json!({ "email.smtp_threads": "five" }), "email.smtp_threads"),
        (json!({ "server.listen": "0.0.0.0:80" }), "server.listen"),
        (json!({ "storage.url": "sqlite:///tmp/x.db" }), "storage.url"),
        (json!({ "auth.tokens": [] }), "auth.tokens"),
        (json!({ "email.smtp_thread": 3 }), "email.smtp_thread"),
    ] {
        let (status, problem) = save(&api, 0, set.clone()).await;
        assert_eq!(status, 422, "{set}: {problem}");
        assert_eq!(problem["field"], field, "{set}: {problem}");
    }
    assert_eq!(console_version(&api).await, 0, "nothing was saved");
    let (_, history) = api.get("/v1/admin/settings/history", ADMIN_TOKEN).await;
    assert_eq!(history["versions"], json!([]));
    assert!(send_sms(&api).await["provider_id"]
        .as_str()
        .unwrap()
        .starts_with("file-"));
    assert_eq!(sms_lines(&sms_file).len(), 1, "the file module still sends");

    // Two admins on version 1: the second is told, and saves nothing.
    assert_eq!(save(&api, 0, json!({ "sms.sender": "FIRST" })).await.0, 200);
    let (status, problem) = save(&api, 0, json!({ "sms.sender": "SECOND" })).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("version 1 is the latest"),
        "{problem}"
    );
    let (_, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    assert_eq!(view["settings"]["sms.sender"]["value"], "FIRST");

    // A send token may do none of it.
    let (status, _) = save(&api, 1, json!({ "sms.sender": "SEND" })).await;
    assert_eq!(status, 200, "the admin can");
    for (method, path) in [
        ("put", "/v1/admin/settings"),
        ("get", "/v1/admin/settings"),
        ("get", "/v1/admin/settings/history"),
        ("post", "/v1/admin/settings/rollback"),
    ] {
        let body = json!({ "base_version": 2, "version": 1, "set": { "sms.sender": "X" } });
        let status = match method {
            "put" => api.put(path, SEND_TOKEN, &body).await.0,
            "post" => api.post(path, SEND_TOKEN, &body).await.0,
            _ => api.get(path, SEND_TOKEN).await.0,
        };
        assert_eq!(status, 403, "{method} {path}");
    }
    assert_eq!(console_version(&api).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_restores_the_old_module_as_a_new_version_and_history_names_who_but_no_secret() {
    let config = TestConfig::new("file", None, "", "");
    let sms_file = config.sms_file();
    let blob = json!({ "path": sms_file }).to_string();
    let gateway = GatewayProcess::start(&config).await;
    let api = Api::new(&gateway.url);

    // Version 1: the file module with a blob of its own (a secret).
    let (status, saved) = save(
        &api,
        0,
        json!({ "sms.plugin_config": blob, "email.username": "mailer", "email.password": "pw-secret-4711" }),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    // Version 2: the echo module.
    let (status, saved) = save(&api, 1, json!({ "sms.module": "echo", "sms.plugin_config": "" })).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["applied"]["module_switched"], true, "{saved}");
    assert!(send_sms(&api).await["provider_id"]
        .as_str()
        .unwrap()
        .starts_with("echo-"));

    // Back to version 1: saved as version 3, and the file module sends again.
    let (status, rolled) = api
        .post(
            "/v1/admin/settings/rollback",
            ADMIN_TOKEN,
            &json!({ "version": 1 }),
        )
        .await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["version"], 3);
    assert_eq!(rolled["applied"]["module"]["name"], "file");
    let sent = send_sms(&api).await;
    assert!(
        sent["provider_id"].as_str().unwrap().starts_with("file-"),
        "{sent}"
    );
    assert_eq!(sms_lines(&sms_file).len(), 1);

    let (status, history) = api.get("/v1/admin/settings/history", ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{history}");
    let versions = history["versions"].as_array().unwrap();
    let numbers: Vec<u64> = versions.iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(versions[0]["rollback_of"], 1);
    assert_eq!(versions[0]["keys"], json!(["sms.module", "sms.plugin_config"]));
    assert_eq!(
        versions[2]["keys"],
        json!(["email.password", "email.username", "sms.plugin_config"])
    );
    let who = versions[0]["saved_by"].as_str().unwrap();
    assert!(who.starts_with("admin token #2 (sha256 "), "{who}");
    assert!(!who.contains(ADMIN_TOKEN));

    // Secrets: set or not, the blob's size, never a value.
    let (_, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    let keys = &view["console"]["keys"];
    assert_eq!(keys["email.password"]["set"], true, "{view}");
    assert_eq!(keys["sms.plugin_config"]["bytes"], blob.len());
    assert_eq!(keys["sms.plugin_config"]["changed_in_version"], 3);
    assert_eq!(view["settings"]["email.password"]["value"], "[redacted]");
    assert_eq!(
        view["settings"]["sms.plugin_config"]["source"],
        "console (version 3)"
    );
    // Version 1 never set the module: the file's is in force again.
    assert!(view["settings"]["sms.module"]["source"]
        .as_str()
        .unwrap()
        .starts_with("file "));
    // `gateway config` shows the version too, as a gateway starting now would have it.
    let config_path = config.dir.path().join("gateway.toml");
    let output = std::process::Command::new(e2e::gateway_bin())
        .arg("--config")
        .arg(&config_path)
        .arg("config")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    let blob_line = shown
        .lines()
        .find(|l| l.starts_with("sms.plugin_config"))
        .unwrap();
    assert!(blob_line.contains("(console (version 3))"), "{shown}");
    assert!(
        !shown.contains("sms.jsonl") && !shown.contains("pw-secret-4711"),
        "{shown}"
    );

    let answers = format!("{view}{history}{rolled}{saved}");
    assert!(!answers.contains("sms.jsonl"), "the blob is shown: {answers}");
    // (The file module itself logs the file it appends to, so the blob's path may be in
    // the log; the password and the token may not.)
    let everything = format!("{answers}{}", gateway.log_text());
    for secret in ["pw-secret-4711", ADMIN_TOKEN] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_environment_sets_stays_the_environments() {
    let config = TestConfig::new("file", None, "", "[email]\nsmtp_threads = 2\n");
    let gateway = GatewayProcess::start_with(&config, |command| {
        command.env("GATEWAY_EMAIL__SMTP_THREADS", "3");
    })
    .await;
    let api = Api::new(&gateway.url);

    let (status, problem) = save(&api, 0, json!({ "email.smtp_threads": 7 })).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "email.smtp_threads");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("GATEWAY_EMAIL__SMTP_THREADS"),
        "{problem}"
    );
    // Other keys save, and the environment's value stays.
    assert_eq!(
        save(&api, 0, json!({ "email.max_per_connection": 30 })).await.0,
        200
    );
    let (_, view) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    assert_eq!(view["settings"]["email.smtp_threads"]["value"], 3);
    assert_eq!(
        view["settings"]["email.smtp_threads"]["source"],
        "environment variable GATEWAY_EMAIL__SMTP_THREADS"
    );
    assert_eq!(view["console"]["keys"]["email.smtp_threads"]["editable"], false);
    assert_eq!(
        view["console"]["keys"]["email.smtp_threads"]["environment_variable"],
        "GATEWAY_EMAIL__SMTP_THREADS"
    );
    assert_eq!(
        view["console"]["keys"]["email.max_per_connection"]["editable"],
        true
    );
    assert_eq!(
        view["settings"]["email.max_per_connection"]["source"],
        "console (version 1)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_on_one_gateway_is_applied_by_its_fleet_within_seconds() {
    let url = e2e::postgres::database();
    let configs = [
        TestConfig::new("file", None, "", "").with_storage_url(&url),
        TestConfig::new("file", None, "", "").with_storage_url(&url),
    ];
    let a = GatewayProcess::start(&configs[0]).await;
    let b = GatewayProcess::start(&configs[1]).await;
    let (a, b) = (Api::new(&a.url), Api::new(&b.url));

    let (status, saved) = save(&a, 0, json!({ "sms.sender": "FLEET" })).await;
    assert_eq!(status, 200, "{saved}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, view) = b.get("/v1/admin/settings", ADMIN_TOKEN).await;
        if view["settings"]["sms.sender"]["value"] == "FLEET" {
            assert_eq!(view["settings"]["sms.sender"]["source"], "console (version 1)");
            assert_eq!(view["console"]["version"], 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the peer never applied version 1: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The peer saves on version 1 in its turn; the first follows.
    assert_eq!(save(&b, 1, json!({ "sms.sender": "AGAIN" })).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while console_version(&a).await != 2 {
        assert!(
            Instant::now() < deadline,
            "the first gateway never applied version 2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_module_gone_from_the_machine_starts_the_gateway_on_its_file_to_roll_back() {
    let modules = e2e::modules_dir_with(&["file", "echo"]);
    let mut config = TestConfig::new("file", None, "", "");
    config.toml = config.toml.replace(
        &format!("modules_dir = {:?}", e2e::build_dir()),
        &format!("modules_dir = {:?}", modules.path()),
    );
    let first = GatewayProcess::start(&config).await;
    let api = Api::new(&first.url);
    let (status, saved) = save(&api, 0, json!({ "sms.module": "echo", "sms.plugin_config": "" })).await;
    assert_eq!(status, 200, "{saved}");
    first.signal(libc::SIGTERM);
    assert!(first.wait().success());

    // The echo library is removed: version 1 cannot be put in force any more.
    let echo = format!(
        "{}echo{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    std::fs::remove_file(modules.path().join(echo)).unwrap();
    let second = GatewayProcess::start(&config).await;
    let api = Api::new(&second.url);
    assert!(send_sms(&api).await["provider_id"]
        .as_str()
        .unwrap()
        .starts_with("file-"));
    assert!(
        second.log_text().contains("cannot be put in force"),
        "{}",
        second.log_text()
    );
    // The admin sees version 0 in force and the latest is 1: a rollback on version 1
    // that removes the module (an unset) puts the file's settings in the history.
    let (status, saved) = api
        .put(
            "/v1/admin/settings",
            ADMIN_TOKEN,
            &json!({ "base_version": 1, "unset": ["sms.module", "sms.plugin_config"] }),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 2);
    assert_eq!(console_version(&api).await, 2);
}
