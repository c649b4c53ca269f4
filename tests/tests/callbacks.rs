//! Provider callbacks through the real API: inbound SMS and delivery reports parsed by
//! the loaded module (the `file` module plays the provider), and inbound forwarding to
//! a real local webhook.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use e2e::{Api, InProcess, TestConfig, SEND_TOKEN};
use serde_json::json;

async fn callback(api: &Api, module: &str, body: serde_json::Value) -> (u16, String) {
    let response = api
        .client
        .post(format!("{}/v1/providers/{module}/callback", api.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn an_inbound_sms_is_stored_with_its_sender_in_e164_and_listed_newest_first() {
    let gateway = InProcess::start(TestConfig::new("file", None, "", "")).await;
    let api = Api::new(&gateway.url);
    for text in ["first", "second"] {
        let (status, body) = callback(
            &api,
            "file",
            json!({ "type": "inbound", "from": "07911 123456", "to": "+447700900000", "text": text }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, page) = api.get("/v1/inbound", SEND_TOKEN).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["text"], "second");
    assert_eq!(items[0]["sender"], "+447911123456");
    assert_eq!(items[0]["module"], "file");
    let (_, older) = api
        .get(
            &format!("/v1/inbound?limit=1&before={}", items[0]["id"].as_str().unwrap()),
            SEND_TOKEN,
        )
        .await;
    assert_eq!(older["items"][0]["text"], "first");
    let (status, _) = api.get("/v1/inbound", "wrong-token-0123456789").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_delivery_report_moves_a_sent_sms_to_delivered_or_undelivered() {
    let gateway = InProcess::start(TestConfig::new("file", None, "", "")).await;
    let api = Api::new(&gateway.url);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (_, body) = api
            .post(
                "/v1/sms",
                SEND_TOKEN,
                &json!({ "to": "+447911123456", "text": "hi" }),
            )
            .await;
        let id = body["id"].as_str().unwrap().to_string();
        api.wait_status(&id, &["sent"]).await;
        ids.push(id);
    }
    let (status, _) = callback(
        &api,
        "file",
        json!({ "type": "report", "provider_id": format!("file-{}", ids[0]), "status": "delivered" }),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = callback(
        &api,
        "file",
        json!({ "type": "report", "provider_id": format!("file-{}", ids[1]), "status": "undelivered", "detail": "absent subscriber" }),
    )
    .await;
    assert_eq!(status, 200);
    let (_, first) = api.get(&format!("/v1/messages/{}", ids[0]), SEND_TOKEN).await;
    assert_eq!(first["status"], "delivered", "{first}");
    let (_, second) = api.get(&format!("/v1/messages/{}", ids[1]), SEND_TOKEN).await;
    assert_eq!(second["status"], "undelivered", "{second}");
    assert_eq!(second["error"], "absent subscriber");
}

#[tokio::test]
async fn a_callback_for_another_module_or_one_the_module_refuses_changes_nothing() {
    let gateway = InProcess::start(TestConfig::new("file", None, "", "")).await;
    let api = Api::new(&gateway.url);
    let inbound = json!({ "type": "inbound", "from": "+447911123456", "to": "+447700900000", "text": "x" });
    let (status, body) = callback(&api, "twilio", inbound.clone()).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = callback(&api, "file", json!({ "type": "gossip" })).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("the module refused the callback"), "{body}");
    let (_, page) = api.get("/v1/inbound", SEND_TOKEN).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn inbound_sms_reach_the_webhook_even_when_it_fails_at_first() {
    // A real HTTP server as the app's webhook: answers 500 twice, then 200.
    let calls = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let app = {
        let (calls, received) = (calls.clone(), received.clone());
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (calls, received) = (calls.clone(), received.clone());
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    received
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    axum::http::StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = TestConfig::new(
        "file",
        None,
        &format!("inbound_webhook = \"{hook}\"\nretry_base_ms = 20\nretry_max_ms = 50"),
        "",
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let (status, _) = callback(
        &api,
        "file",
        json!({ "type": "inbound", "from": "07911 123456", "to": "+447700900000", "text": "STOP" }),
    )
    .await;
    assert_eq!(status, 200);
    for _ in 0..200 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "forwarded once it worked, and only once");
    assert_eq!(received[0]["from"], "+447911123456");
    assert_eq!(received[0]["text"], "STOP");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The webhook has the SMS; the gateway records that a moment after it hears 2xx.
    let mut page = serde_json::Value::Null;
    for _ in 0..200 {
        page = api.get("/v1/inbound", SEND_TOKEN).await.1;
        if page["items"][0]["forward_status"] == "forwarded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(page["items"][0]["forward_status"], "forwarded", "{page}");
}
