//! `/openapi.json` is valid OpenAPI 3.1 and lists exactly the routes the router serves.

use std::collections::BTreeSet;

use e2e::{InProcess, TestConfig};

/// (method, path) pairs the router serves; `any` stands for GET and POST, the methods
/// providers use for callbacks.
fn served() -> BTreeSet<(String, String)> {
    gateway::api::ROUTES
        .iter()
        .flat_map(|(method, path)| {
            let methods: Vec<&str> = if *method == "any" {
                vec!["get", "post"]
            } else {
                vec![*method]
            };
            methods
                .into_iter()
                .map(move |m| (m.to_string(), path.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn the_document_lists_every_route_and_each_route_is_served() {
    // A closed SMTP port, so that the connection check answers at once.
    let email = format!("[email]\nhost = \"127.0.0.1\"\nport = {}\n", e2e::free_port());
    let gateway = InProcess::start(TestConfig::new("file", None, "", &email)).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/openapi.json", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_eq!(text, gateway::api::OPENAPI);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    assert_eq!(documented, served(), "openapi.json and the router disagree");

    // Each route is really served: never the router's "no such endpoint" or 405.
    for (method, path) in served() {
        let url = format!(
            "{}{}",
            gateway.url,
            path.replace("{id}", "x").replace("{module}", "file")
        );
        let request = match method.as_str() {
            "get" => client.get(&url),
            other => client
                .request(other.to_uppercase().parse().unwrap(), &url)
                .header("content-type", "application/json")
                .body("{}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}");
        assert!(!body.contains("no such endpoint"), "{method} {path}: {body}");
    }
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/openapi.json");
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  validate(json.load(open(sys.argv[1])))\n";
    let run = || {
        std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .expect("python3")
    };
    let mut output = run();
    if String::from_utf8_lossy(&output.stderr).contains("No module named") {
        e2e::pip_install("openapi-spec-validator==0.7.2");
        output = run();
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
