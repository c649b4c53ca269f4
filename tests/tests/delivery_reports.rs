//! Delivery reports through the `http` module (Vonage's blob) against a real local HTTP
//! server standing in for the provider: reports that name the gateway's own message id,
//! and reports that overtake the answer to the send.

use std::sync::{Arc, Mutex};

use axum::{body::Bytes, http::StatusCode, response::IntoResponse};
use e2e::{Api, InProcess, TestConfig, SEND_TOKEN};
use serde_json::json;

const CALLBACK_TOKEN: &str = "A-LONG-RANDOM-CALLBACK-TOKEN";

/// The Vonage blob, sending to `url`.
fn vonage_blob(url: &str) -> String {
    include_str!("../../plugins/http/blobs/vonage.json")
        .replace("https://rest.nexmo.com", url)
        .replace('\n', " ")
}

/// A form field of a request body.
fn field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// Vonage's answer to a send: its id for the SMS is `VON-` and the gateway's id.
fn accepted(message_id: &str) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let body = json!({ "message-count": "1", "messages": [{ "status": "0", "message-id": format!("VON-{message_id}") }] });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
}

/// Starts a provider that answers every send with `answer(client-ref)`; returns its URL.
async fn provider<F, Fut>(answer: F) -> String
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = axum::response::Response> + Send,
{
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let answer = answer.clone();
        async move { answer(field(&body, "client-ref").unwrap_or_default()).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Posts a Vonage delivery report to the gateway; returns its status and body.
async fn report(gateway: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let response = reqwest::Client::new()
        .post(format!(
            "{gateway}/v1/providers/http/callback?token={CALLBACK_TOKEN}"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn post_sms(api: &Api) -> String {
    let (status, body) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &json!({ "to": "+447911123456", "text": "hello" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Defect 4: the provider reports before it answers the send. The report used to match
/// no message (no provider id recorded yet) and was dropped; the SMS stayed `sent`.
#[tokio::test]
async fn a_report_sent_before_the_send_is_answered_ends_delivered() {
    let gateway_url: Arc<Mutex<Option<String>>> = Arc::default();
    let report_answers: Arc<Mutex<Vec<u16>>> = Arc::default();
    let provider_url = {
        let (gateway_url, report_answers) = (gateway_url.clone(), report_answers.clone());
        provider(move |message_id: String| {
            let (gateway_url, report_answers) = (gateway_url.clone(), report_answers.clone());
            async move {
                // Report first, by the provider's own id only, and wait for the answer...
                let gateway = gateway_url.lock().unwrap().clone().expect("the gateway is up");
                let provider_id = format!("VON-{message_id}");
                let (status, body) =
                    report(&gateway, &[("messageId", &provider_id), ("status", "delivered")]).await;
                assert_eq!(status, 200, "{body}");
                report_answers.lock().unwrap().push(status);
                // ...and only then answer the send.
                accepted(&message_id).into_response()
            }
        })
        .await
    };
    let config = TestConfig::new("http", Some(&vonage_blob(&provider_url)), "", "");
    let gateway = InProcess::start(config).await;
    *gateway_url.lock().unwrap() = Some(gateway.url.clone());
    let api = Api::new(&gateway.url);

    let id = post_sms(&api).await;

    // The report is applied with the send's outcome: the SMS is never seen `sent`.
    let message = api.wait_status(&id, &["sent", "delivered", "failed"]).await;
    assert_eq!(message["status"], "delivered", "{message}");
    assert_eq!(message["provider_id"], format!("VON-{id}"));
    assert_eq!(*report_answers.lock().unwrap(), [200]);
    let metrics = api.metrics().await;
    assert!(
        metrics.contains(r#"gateway_delivery_reports_held_total{module="http",status="delivered"} 1"#),
        "{metrics}"
    );
}

/// Defect 4: a report carrying the gateway's message id (Vonage's `client-ref`) was
/// matched only by provider id, and dropped when that id was one the gateway never stored.
#[tokio::test]
async fn a_report_naming_the_gateways_message_id_is_matched() {
    let provider_url =
        provider(|message_id: String| async move { accepted(&message_id).into_response() }).await;
    let config = TestConfig::new("http", Some(&vonage_blob(&provider_url)), "", "");
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let id = post_sms(&api).await;
    api.wait_status(&id, &["sent"]).await;

    let (status, body) = report(
        &gateway.url,
        &[
            ("messageId", "AN-ID-THE-GATEWAY-NEVER-STORED"),
            ("status", "failed"),
            ("err-code", "absent subscriber"),
            ("client-ref", &id),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, message) = api.get(&format!("/v1/messages/{id}"), SEND_TOKEN).await;
    assert_eq!(message["status"], "undelivered", "{message}");
    assert_eq!(message["provider_id"], format!("VON-{id}"), "{message}");
}
