//! The step driver: the HTTP exchanges a module asks for, for sending and for its
//! self-check, performed against real local HTTP servers by a gateway that loads the
//! module libraries from disk.

use std::{
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use axum::{
    http::{HeaderMap, StatusCode, Uri},
    response::IntoResponse,
};
use e2e::{gateway_bin, Api, InProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::json;

/// A local server for the `steps` module: counts the requests and answers each with
/// the step number it was sent (`X-Step`).
async fn counting_server() -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            let step = headers
                .get("x-step")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (StatusCode::OK, step)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, requests)
}

/// A gateway whose `steps` module needs `exchanges` HTTP exchanges per SMS against
/// `url`, which carries a key in its query as some providers' URLs do.
async fn steps_gateway(url: &str, exchanges: u32) -> InProcess {
    let blob = json!({ "url": format!("{url}/send?api_key=KEY-MARKER-9f2"), "exchanges": exchanges });
    InProcess::start(TestConfig::new("steps", Some(&blob.to_string()), "", "")).await
}

async fn send(api: &Api) -> serde_json::Value {
    let (status, body) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": "hello" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    api.wait_status(body["id"].as_str().unwrap(), &["sent", "failed"])
        .await
}

#[tokio::test]
async fn a_module_needing_exactly_the_allowed_exchanges_is_sent() {
    let (url, requests) = counting_server().await;
    let gateway = steps_gateway(&url, 4).await;
    let api = Api::new(&gateway.url);

    let message = send(&api).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(
        message["provider_id"],
        format!("steps-{}-4", message["id"].as_str().unwrap())
    );
    assert_eq!(requests.load(Ordering::SeqCst), 4);

    // Send test shows the same four exchanges, without the key in the URL's query.
    let (status, test) = api
        .post(
            "/v1/admin/sms/test",
            ADMIN_TOKEN,
            &json!({ "to": "+447911123456", "text": "test" }),
        )
        .await;
    assert_eq!(status, 200, "{test}");
    let steps = test["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "{test}");
    for step in steps {
        assert_eq!(step["method"], "POST", "{step}");
        assert_eq!(step["url"], format!("{url}/send"), "{step}");
        assert_eq!(step["status"], 200, "{step}");
    }
    assert!(!test.to_string().contains("KEY-MARKER"), "{test}");
}

#[tokio::test]
async fn a_module_asking_for_one_exchange_too_many_fails_without_sending_it() {
    // Regression: the send loop ran MAX_HTTP_STEPS + 1 times, so the provider got a
    // fifth request and the SMS then failed as "too many steps" all the same.
    let (url, requests) = counting_server().await;
    let gateway = steps_gateway(&url, 5).await;
    let api = Api::new(&gateway.url);

    let message = send(&api).await;
    assert_eq!(message["status"], "failed", "{message}");
    assert_eq!(message["attempts"], 1, "a retry would ask for as many: {message}");
    let error = message["error"].as_str().unwrap();
    assert!(
        error.contains("module `steps`") && error.contains("more than 4 HTTP requests"),
        "{error}"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        4,
        "the fifth request must never reach the provider"
    );
}

const RIGHT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const WRONG_SID: &str = "AC99999999999999999999999999999999";
const AUTH_TOKEN: &str = "twilio-auth-token-MARKER-x1";

/// Stands in for Twilio's Accounts resource, as Twilio answers it: 401 (error 20003)
/// when the Basic credentials are not the account's, 404 (20404) for another account's
/// URL, and the active account otherwise.
async fn twilio() -> String {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{RIGHT_SID}:{AUTH_TOKEN}"));
    let expected_auth = format!("Basic {basic}");
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let expected_auth = expected_auth.clone();
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            let (status, body) = if auth != Some(expected_auth.as_str()) {
                (
                    StatusCode::UNAUTHORIZED,
                    json!({ "code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401 }),
                )
            } else if uri.path() != format!("/2010-04-01/Accounts/{RIGHT_SID}.json") {
                (
                    StatusCode::NOT_FOUND,
                    json!({ "code": 20404, "message": "The requested resource was not found", "status": 404 }),
                )
            } else {
                (
                    StatusCode::OK,
                    json!({ "sid": RIGHT_SID, "status": "active", "type": "Full", "friendly_name": "ACME" }),
                )
            };
            (status, [("content-type", "application/json")], body.to_string()).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// `gateway modules check` with `config`: whether it succeeded, and what it printed.
async fn modules_check(config: &TestConfig) -> (bool, String) {
    let path = config.write();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(gateway_bin())
            .arg("--config")
            .arg(&path)
            .args(["modules", "check"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn twilio_config(url: &str, sid: &str) -> TestConfig {
    let blob = json!({ "account_sid": sid, "auth_token": AUTH_TOKEN, "base_url": url });
    TestConfig::new("twilio", Some(&blob.to_string()), "", "")
}

#[tokio::test]
async fn twilio_self_check_with_a_wrong_account_sid_fails() {
    // Regression: nothing ran a self-check's HTTP steps, so the account was never
    // fetched and a wrong account SID looked healthy.
    let url = twilio().await;

    let config = twilio_config(&url, WRONG_SID);
    let (ok, text) = modules_check(&config).await;
    assert!(!ok, "a wrong SID must fail the check:\n{text}");
    assert!(
        text.contains(&format!(
            "step 1   GET {url}/2010-04-01/Accounts/{WRONG_SID}.json: HTTP 401 in "
        )),
        "{text}"
    );
    assert!(
        text.contains("check    FAILED") && text.contains("error 20003: Authenticate"),
        "{text}"
    );
    assert!(!text.contains(AUTH_TOKEN), "{text}");

    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let (status, _) = api.post("/v1/admin/sms/check", SEND_TOKEN, &json!({})).await;
    assert_eq!(status, 403, "the check is for admins");
    let (status, check) = api.post("/v1/admin/sms/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(check["module"], "twilio");
    assert_eq!(check["steps"].as_array().unwrap().len(), 1, "{check}");
    assert_eq!(check["steps"][0]["method"], "GET");
    assert_eq!(
        check["steps"][0]["url"],
        format!("{url}/2010-04-01/Accounts/{WRONG_SID}.json")
    );
    assert_eq!(check["steps"][0]["status"], 401);
    assert!(check["error"].as_str().unwrap().contains("HTTP 401"), "{check}");
    assert!(!check.to_string().contains(AUTH_TOKEN), "{check}");
    drop(gateway);

    let config = twilio_config(&url, RIGHT_SID);
    let (ok, text) = modules_check(&config).await;
    assert!(ok, "the right SID passes:\n{text}");
    assert!(
        text.contains(&format!(
            "step 1   GET {url}/2010-04-01/Accounts/{RIGHT_SID}.json: HTTP 200 in "
        )),
        "{text}"
    );
    assert!(
        text.contains("check    ok: Twilio accepted the credentials"),
        "{text}"
    );

    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let (status, check) = api.post("/v1/admin/sms/check", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["steps"][0]["status"], 200, "{check}");
    assert!(check["result"].as_str().unwrap().contains("is active"), "{check}");
    assert!(check.get("error").is_none(), "{check}");
}
