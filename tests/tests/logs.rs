//! The log as an operator reads it: written to a file, it is plain text.

use e2e::{Api, GatewayProcess, TestConfig, SEND_TOKEN};

/// Defect: a log written to a file carried terminal colour codes (`ESC[2m…`), which
/// log collectors and `grep` keep as noise.
#[tokio::test]
async fn logs_written_to_a_file_carry_no_colour_codes() {
    let config = TestConfig::new("file", None, "", "");
    let gateway = GatewayProcess::start(&config).await;
    // Some traffic, including a refused request, so that warnings are logged too.
    let api = Api::new(&gateway.url);
    let (status, _) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &serde_json::json!({ "to": "+447911123456", "text": "hi" }),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = api.get("/v1/messages/nope", "a-token-nobody-has-0000").await;
    assert_eq!(status, 401);

    let log = gateway.log_text();
    assert!(
        log.contains("HTTP API listening"),
        "the log has the start lines:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "the log file holds terminal escape codes:\n{}",
        log.escape_debug()
    );
}
