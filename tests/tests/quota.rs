//! Sending quotas (issue 14, part 4), counted at a real SMTP server (aiosmtpd): with
//! 30 per "minute" a 100-recipient mailing never puts more than 30 e-mails into any
//! minute, the rest waits queued (and the API and `/metrics` say until when), and the
//! two connection limits still hold. The minute is shortened by the test-only
//! `email.quota_minute_ms`, not waited through.

use std::time::{Duration, Instant};

use e2e::{smtp::SmtpServer, InProcess, SEND_TOKEN};
use serde_json::json;

const MINUTE_MS: u64 = 4000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_per_minute_holds_at_the_server_for_a_100_recipient_mailing() {
    let server = SmtpServer::builder().pipelining().start();
    let (_gateway, api) = InProcess::sending_to(
        &server,
        &format!(
            "max_per_connection = 10\nsmtp_threads = 2\nmax_per_minute = 30\nmax_per_day = 1000\n\
             quota_minute_ms = {MINUTE_MS}"
        ),
    )
    .await;
    let recipients: Vec<String> = (0..100).map(|i| format!("user{i}@example.org")).collect();
    let started = Instant::now();
    let (status, body) = api
        .post(
            "/v1/mailings",
            SEND_TOKEN,
            &json!({ "subject": "News", "text": "Hi", "recipients": recipients }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap();

    let (mut saw_next_send_at, mut saw_gauge) = (false, false);
    let counts = loop {
        let (_, counts) = api.get(&format!("/v1/mailings/{id}"), SEND_TOKEN).await;
        if counts["next_send_at"].is_string() {
            saw_next_send_at = true;
            assert!(
                counts["queued"].as_u64().unwrap() > 0,
                "held e-mails wait queued: {counts}"
            );
        }
        let metrics = api.metrics().await;
        let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).unwrap();
        saw_gauge |= e2e::metric_value(&scrape, "gateway_email_quota_next_send_timestamp_seconds", &[]) > 1e9;
        if counts["queued"] == 0 && counts["sending"] == 0 {
            break counts;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the mailing never finished: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(counts["sent"], 100, "{counts}");
    eprintln!(
        "100 e-mails at 30 a minute of {MINUTE_MS} ms: {:?}",
        started.elapsed()
    );
    assert!(
        saw_next_send_at,
        "GET /v1/mailings/{{id}} showed when the next e-mail may go"
    );
    assert!(saw_gauge, "/metrics showed when the next e-mail may go");
    assert!(
        started.elapsed() >= Duration::from_millis(3 * MINUTE_MS),
        "100 at 30 a minute takes more than three minutes: {:?}",
        started.elapsed()
    );

    server.wait_sessions_closed(1);
    let mut times: Vec<f64> = server
        .messages()
        .iter()
        .map(|m| m["t"].as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 100, "each e-mail once");
    times.sort_by(f64::total_cmp);
    let minute = MINUTE_MS as f64 / 1000.0;
    let most = (0..times.len())
        .map(|i| times[i..].iter().take_while(|t| **t < times[i] + minute).count())
        .max()
        .unwrap();
    assert!(most <= 30, "{most} e-mails within one minute at the server");
    assert_eq!(most, 30, "the quota is used, not undershot");
    assert!(server.max_concurrent_sessions() <= 2, "smtp_threads still holds");
    assert!(
        server.max_messages_per_session() <= 5,
        "max_per_connection / smtp_threads still holds"
    );
}
