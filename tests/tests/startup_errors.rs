//! What an admin reads when the gateway cannot start, or a reload cannot switch its SMS
//! module: each cause said once, "new" only for a module a reload switched to, and a
//! refused blob written as a TOML table named by its key, not by a position in the JSON
//! the gateway made from it.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use e2e::{gateway_bin, Api, InProcess, TestConfig, ADMIN_TOKEN};
use serde_json::json;

/// Runs `gateway --config FILE ARGS` (which must end on its own); returns its exit
/// code and stderr.
fn gateway(config: &TestConfig, args: &[&str]) -> (Option<i32>, String) {
    let file = config.write();
    let mut child = Command::new(gateway_bin())
        .arg("--config")
        .arg(&file)
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("gateway {args:?} did not stop on its own");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `error: …` line of a failed command.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in\n{stderr}"))
}

/// A configuration of module `module` whose blob is the TOML table `table`.
fn with_table_blob(module: &str, table: &str) -> TestConfig {
    let mut config = TestConfig::new(module, Some("TABLE"), "", table);
    config.toml = config.toml.replace("plugin_config = 'TABLE'\n", "");
    config
}

#[test]
fn a_missing_module_at_start_is_said_once_and_is_not_new() {
    let config = TestConfig::new("nosuch", Some("{}"), "", "");
    let (code, stderr) = gateway(&config, &["serve"]);
    assert_eq!(code, Some(1), "{stderr}");
    let error = error_line(&stderr);
    assert!(
        error.starts_with("error: the SMS module was refused: ")
            && error.ends_with(
                "libnosuch.so: no such file (module `nosuch` is looked up in sms.modules_dir only)"
            ),
        "{error}"
    );
    assert_eq!(error.matches("no such file").count(), 1, "{error}");
    assert!(!error.contains("new"), "{error}");
}

#[test]
fn a_table_blob_the_module_refuses_is_named_by_its_key() {
    let cases = [
        ("[sms.plugin_config]\nurl = 7\n", "`url`: invalid type: integer `7`, expected a string at sms.plugin_config.url"),
        (
            "[sms.plugin_config]\nurl = \"https://api.example/sms\"\n\n[sms.plugin_config.callbacks]\nformat = \"xml\"\n",
            "unknown variant `xml`, expected `json` or `form` at sms.plugin_config.callbacks.format",
        ),
    ];
    for (table, expected) in cases {
        let config = with_table_blob("http", table);
        for args in [&["serve"][..], &["modules", "check"]] {
            let (code, stderr) = gateway(&config, args);
            assert_eq!(code, Some(1), "{args:?}: {stderr}");
            let error = error_line(&stderr);
            assert!(error.ends_with(expected), "{args:?}: {error}");
            assert!(
                error.contains("refused its configuration (sms.plugin_config)"),
                "{error}"
            );
            assert!(!error.contains("column"), "{args:?}: {error}");
            assert_eq!(error.matches(expected).count(), 1, "{error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_switches_to_a_missing_module_calls_it_new_and_says_why_once() {
    let gateway = InProcess::start_from_file(TestConfig::new("file", None, "", "")).await;
    let path = gateway.config.dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("module = \"file\"", "module = \"nosuch\"")).unwrap();
    let (status, problem) = Api::new(&gateway.url)
        .post("/v1/admin/reload", ADMIN_TOKEN, &json!({}))
        .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("settings: the new SMS module was refused: "),
        "{detail}"
    );
    assert_eq!(detail.matches("no such file").count(), 1, "{detail}");
}
