//! Connections that do not hold up their end: a client that sends its headers a byte
//! at a time, keep-alive connections left idle, and more connections than the gateway
//! (or its descriptor limit) can hold (issue 9, defect 10). Raw TCP on loopback, so
//! the test sees what a client sees: an answer, a refusal, or the connection closed.

use std::time::{Duration, Instant};

use e2e::{GatewayProcess, InProcess, TestConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n";

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Reads one HTTP answer (head and `content-length` body); `None` if the connection
/// closed first.
async fn read_answer(stream: &mut TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&bytes[..end + 4 + length]).to_string());
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Waits until the gateway closes `stream` (EOF or reset); panics after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the gateway kept the connection open for {within:?}"
    );
    started.elapsed()
}

/// What a new client gets from a gateway under a flood: an answer (200, or the 503
/// of the connection cap) or the connection closed, and never a wait.
async fn answered_quickly(address: &str) -> Result<String, String> {
    let started = Instant::now();
    let attempt = tokio::time::timeout(Duration::from_secs(2), async {
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(HEALTHZ)
            .await
            .map_err(|e| format!("write: {e}"))?;
        read_answer(&mut stream)
            .await
            .ok_or_else(|| "closed without an answer".to_string())
    })
    .await;
    let attempt = attempt.unwrap_or_else(|_| panic!("no answer and no refusal within 2 s"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    attempt
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[tokio::test]
async fn a_client_sending_headers_a_byte_a_second_is_cut_off() {
    let config = TestConfig::new("file", None, "", "")
        .with_server("header_read_timeout_ms = 1000\nidle_timeout_ms = 5000");
    let gateway = InProcess::start(config).await;
    let address = address(&gateway.url);

    // Once on a fresh connection, once on a kept-alive one whose first request was
    // fine: in both, the clock runs from the request's first byte.
    for kept_alive in [false, true] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if kept_alive {
            stream.write_all(HEALTHZ).await.unwrap();
            let answer = read_answer(&mut stream).await.expect("an answer");
            assert_eq!(status_line(&answer), "HTTP/1.1 200 OK");
            // Idle for a while, within the idle limit but past the header limit.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let (mut reader, mut writer) = stream.into_split();
        let first_byte = Instant::now();
        let trickle = tokio::spawn(async move {
            // Four bytes a second: the headers would take 10 s.
            for byte in HEALTHZ {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut chunk)).await;
        let cut_after = first_byte.elapsed();
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "kept_alive={kept_alive}: the slow client was not cut off: {read:?}"
        );
        assert!(
            cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(3),
            "kept_alive={kept_alive}: cut off after {cut_after:?}, the limit is 1 s from the first byte"
        );
        trickle.abort();
    }

    let answer = answered_quickly(&address)
        .await
        .expect("the gateway still answers");
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let config = TestConfig::new("file", None, "", "")
        .with_server("header_read_timeout_ms = 5000\nidle_timeout_ms = 1000");
    let gateway = InProcess::start(config).await;
    let address = address(&gateway.url);

    // A connection in use stays open past the idle limit...
    let mut busy = TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        busy.write_all(HEALTHZ).await.unwrap();
        let answer = read_answer(&mut busy)
            .await
            .expect("a connection in use is not closed");
        assert_eq!(status_line(&answer), "HTTP/1.1 200 OK");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    // ...and once left idle it is closed after the idle limit, not before.
    let idle_for = closed_within(&mut busy, Duration::from_secs(5)).await;
    assert!(
        idle_for >= Duration::from_millis(500) && idle_for < Duration::from_secs(3),
        "an idle keep-alive connection was closed after {idle_for:?}; the limit is 1 s"
    );
}

#[tokio::test]
async fn a_flood_of_idle_connections_does_not_stop_the_gateway_answering() {
    const CAP: usize = 20;
    let config = TestConfig::new("file", None, "", "").with_server(&format!(
        "max_connections = {CAP}\nheader_read_timeout_ms = 1500\nidle_timeout_ms = 1500"
    ));
    let gateway = InProcess::start(config).await;
    let address = address(&gateway.url);

    // Three times the cap, each kept alive after one request or left silent.
    let mut flood = Vec::new();
    let mut refused = 0;
    for n in 0..3 * CAP {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if n % 2 == 0 {
            stream.write_all(HEALTHZ).await.unwrap();
            match read_answer(&mut stream).await {
                Some(answer) if answer.starts_with("HTTP/1.1 503") => refused += 1,
                Some(answer) => assert_eq!(status_line(&answer), "HTTP/1.1 200 OK"),
                None => refused += 1,
            }
        }
        flood.push(stream);
    }
    assert!(
        refused > 0,
        "more connections than server.max_connections were all served"
    );

    // A newcomer is answered or refused at once, not left waiting.
    match answered_quickly(&address).await {
        Ok(answer) => assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 503"),
            "{answer}"
        ),
        Err(refusal) => eprintln!("refused: {refusal}"),
    }

    // Past the time limits the flood is gone and the gateway serves normally.
    for stream in &mut flood {
        closed_within(stream, Duration::from_secs(5)).await;
    }
    let answer = answered_quickly(&address)
        .await
        .expect("the gateway serves again");
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK");
    let response = reqwest::get(format!("{}/healthz", gateway.url)).await.unwrap();
    assert_eq!(response.status(), 200);
}

/// The same flood against the real binary under `ulimit -n 200`, with more
/// connections than it has descriptors: before, it stopped answering and logged
/// `Too many open files` every second.
#[tokio::test]
async fn a_flood_of_idle_connections_does_not_stop_the_gateway_answering_under_a_low_descriptor_limit() {
    const DESCRIPTORS: u64 = 200;
    let config = TestConfig::new("file", None, "", "")
        .with_server("header_read_timeout_ms = 2000\nidle_timeout_ms = 2000");
    let gateway = GatewayProcess::start_with_descriptor_limit(&config, DESCRIPTORS).await;
    let address = address(&gateway.url);

    let mut flood = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect(&address).await {
            Ok(stream) => flood.push(stream),
            Err(error) => panic!("connecting failed: {error}; log:\n{}", gateway.log_text()),
        }
    }
    for _ in 0..3 {
        match answered_quickly(&address).await {
            Ok(answer) => assert!(
                answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 503"),
                "{answer}"
            ),
            Err(refusal) => eprintln!("refused: {refusal}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    for stream in &mut flood {
        closed_within(stream, Duration::from_secs(6)).await;
    }
    let answer = answered_quickly(&address)
        .await
        .expect("the gateway serves again");
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK");

    let log = gateway.log_text();
    assert!(log.contains("capped below server.max_connections"), "{log}");
    let flood_lines = log
        .lines()
        .filter(|line| line.contains("too many open connections") || line.contains("cannot accept"))
        .count();
    assert!(
        (1..=2).contains(&flood_lines),
        "{flood_lines} lines about the flood in a few seconds; one per 10 s is the most:\n{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
}
