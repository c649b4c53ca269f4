//! Bearer tokens under attack: a client that keeps presenting wrong tokens is held off
//! and logged, by address, without the tokens (issue 9, defect 13).

use std::{net::IpAddr, time::Duration};

use e2e::{GatewayProcess, TestConfig, SEND_TOKEN};

const MAX_FAILURES: usize = 5;
const WINDOW_MS: u64 = 3000;
/// Every guessed token starts with this, so the log can be searched for any of them.
const GUESS: &str = "guessed-token-";

fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn post_sms(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    client
        .post(format!("{url}/v1/sms"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(r#"{"to": "+447911123456", "text": "hi"}"#)
        .send()
        .await
        .expect("an answer")
}

#[tokio::test]
async fn a_token_guesser_gets_429_with_retry_after() {
    let mut config = TestConfig::new("file", None, "", "");
    config.toml = config.toml.replacen(
        "[[auth.tokens]]",
        &format!("[auth]\nmax_failures = {MAX_FAILURES}\nfailure_window_ms = {WINDOW_MS}\n\n[[auth.tokens]]"),
        1,
    );
    let gateway = GatewayProcess::start(&config).await;
    let url = gateway.url.clone();
    let guesser = client_from("127.0.0.1");

    for n in 0..MAX_FAILURES {
        let response = post_sms(&guesser, &url, &format!("{GUESS}{n:06}")).await;
        assert_eq!(response.status(), 401, "guess {n}");
    }
    let limited = post_sms(&guesser, &url, &format!("{GUESS}999999")).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=WINDOW_MS / 1000).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(limited.headers()["content-type"], "application/problem+json");

    // Held off means held off: a right token from that address is not served either,
    // or the answer would tell the guesser which guess was right.
    assert_eq!(post_sms(&guesser, &url, SEND_TOKEN).await.status(), 429);

    // Another address is not affected, and its own wrong token does not add to the
    // guesser's count or limit it.
    let neighbour = client_from("127.0.0.2");
    assert_eq!(post_sms(&neighbour, &url, SEND_TOKEN).await.status(), 202);
    assert_eq!(
        post_sms(&neighbour, &url, &format!("{GUESS}neighbour"))
            .await
            .status(),
        401
    );
    assert_eq!(post_sms(&neighbour, &url, SEND_TOKEN).await.status(), 202);

    // When the window ends, the right token works again from the guesser's address.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    assert_eq!(post_sms(&guesser, &url, SEND_TOKEN).await.status(), 202);

    // A flood from a third address: answered 401 then 429, logged a few lines at most.
    let flooder = client_from("127.0.0.3");
    for n in 0..50 {
        let status = post_sms(&flooder, &url, &format!("{GUESS}flood-{n}"))
            .await
            .status();
        assert!(status == 401 || status == 429, "{status}");
    }

    let log = gateway.log_text();
    let refused: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("refused authentication"))
        .collect();
    assert!(
        refused
            .iter()
            .any(|line| line.contains("127.0.0.1") && line.contains("/v1/sms")),
        "no log line names the guesser's address and the route:\n{log}"
    );
    assert!(
        refused.len() <= 4,
        "{} lines for ~60 refused tokens; the log is rate-limited:\n{log}",
        refused.len()
    );
    assert!(log.contains("holding off a client address"), "{log}");
    assert!(!log.contains(GUESS), "a presented token reached the log:\n{log}");
    assert!(
        !log.contains("guessed"),
        "a part of a presented token reached the log:\n{log}"
    );
}
