//! `/metrics` read by a Prometheus text-format parser after real traffic: the counters
//! match what was accepted, sent and failed.

use e2e::{Api, InProcess, TestConfig, SEND_TOKEN};
use serde_json::json;

use e2e::metric_value as value;

#[tokio::test]
async fn counters_match_the_messages_sent_and_failed() {
    let config = TestConfig::new(
        "echo",
        Some(r#"{"permanent_if_text_contains": "REJECT"}"#),
        "",
        "",
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let mut ids = Vec::new();
    for text in ["a", "b", "REJECT c", "d", "REJECT e", "f", "g"] {
        let (status, body) = api
            .post(
                "/v1/sms",
                SEND_TOKEN,
                &json!({ "to": "+447911123456", "text": text }),
            )
            .await;
        assert_eq!(status, 202);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        api.wait_status(id, &["sent", "failed"]).await;
    }
    let (status, _) = api
        .post("/v1/sms", SEND_TOKEN, &json!({ "to": "12345", "text": "x" }))
        .await;
    assert_eq!(status, 422);

    let response = api
        .client
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();

    assert_eq!(
        value(&scrape, "gateway_messages_accepted_total", &[("channel", "sms")]),
        7.0,
        "{text}"
    );
    assert_eq!(
        value(
            &scrape,
            "gateway_messages_sent_total",
            &[("channel", "sms"), ("module", "echo")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &scrape,
            "gateway_messages_failed_total",
            &[("channel", "sms"), ("module", "echo")]
        ),
        2.0
    );
    assert_eq!(value(&scrape, "gateway_queue_due", &[("channel", "sms")]), 0.0);
    // Every SMS was one call into the module's `send`.
    let send_calls = text
        .lines()
        .find(|l| {
            l.starts_with("gateway_module_call_seconds_count{")
                && l.contains("module=\"echo\"")
                && l.contains("operation=\"send\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(send_calls, Some(7.0), "{text}");
    assert_eq!(
        value(
            &scrape,
            "gateway_http_requests_total",
            &[("route", "/v1/sms"), ("method", "POST"), ("status", "202")]
        ),
        7.0
    );
    assert_eq!(
        value(
            &scrape,
            "gateway_http_requests_total",
            &[("route", "/v1/sms"), ("method", "POST"), ("status", "422")]
        ),
        1.0
    );
    assert!(text.contains("gateway_module_call_seconds_bucket"), "{text}");
    assert!(text.contains("gateway_smtp_connections_open"), "{text}");
}
