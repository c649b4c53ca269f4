//! Switching modules without a restart: `POST /v1/admin/reload` reads the settings
//! file again; a good new module takes over, a bad one is refused and the old one
//! keeps sending.

use e2e::{sms_lines, Api, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::json;

async fn send(api: &Api) -> serde_json::Value {
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

#[tokio::test]
async fn reload_switches_to_a_good_module_and_refuses_a_bad_one() {
    let config = TestConfig::new("file", None, "", "");
    let sms_file = config.sms_file();
    let dir = config.dir.path().to_path_buf();
    let original = config.toml.clone();
    let gateway = InProcess::start_from_file(config).await;
    let api = Api::new(&gateway.url);
    let path = dir.join("gateway.toml");

    let first = send(&api).await;
    assert!(first["provider_id"].as_str().unwrap().starts_with("file-"));

    // Switch to the echo module.
    std::fs::write(
        &path,
        original
            .replace("module = \"file\"", "module = \"echo\"")
            .replace(
                &format!("plugin_config = '{}'", json!({ "path": sms_file })),
                "plugin_config = ''",
            ),
    )
    .unwrap();
    let (status, report) = api.post("/v1/admin/reload", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["module_switched"], true, "{report}");
    assert_eq!(report["module"]["name"], "echo");
    let changed: Vec<&str> = report["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        changed.contains(&"sms.module") && changed.contains(&"sms.plugin_config"),
        "{report}"
    );
    assert!(
        !report.to_string().contains("sms.jsonl"),
        "the blob must not be shown: {report}"
    );
    let second = send(&api).await;
    assert!(
        second["provider_id"].as_str().unwrap().starts_with("echo-"),
        "{second}"
    );

    // A module that does not exist, then a blob the module refuses: both refused.
    for broken in [
        original.replace("module = \"file\"", "module = \"nosuch\""),
        original.replace(
            &format!("plugin_config = '{}'", json!({ "path": sms_file })),
            "plugin_config = '{\"path\": 5}'",
        ),
        original.replace("[sms]", "[sms]\nnot_a_key = 1"),
    ] {
        std::fs::write(&path, broken).unwrap();
        let (status, problem) = api.post("/v1/admin/reload", ADMIN_TOKEN, &json!({})).await;
        assert_eq!(status, 422, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("stay as they were"),
            "{problem}"
        );
        let third = send(&api).await;
        assert!(
            third["provider_id"].as_str().unwrap().starts_with("echo-"),
            "the old module keeps sending: {third}"
        );
    }
    assert_eq!(
        sms_lines(&sms_file).len(),
        1,
        "only the first SMS went to the file module"
    );

    let (status, _) = api.post("/v1/admin/reload", SEND_TOKEN, &json!({})).await;
    assert_eq!(status, 403);
}
