//! `gateway modules conformance FILE`: what a provider runs against their own module
//! library before shipping it. It loads the file as the gateway does, checks that a bad
//! blob is refused with a message, sends through a local HTTP server standing in for
//! the provider, checks that a 500 is transient, and feeds the module broken answers
//! and callbacks to prove that none of them panics, and runs the self-check. Sends and
//! the self-check go through the step driver ([`super::steps`]), as in the gateway.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU16, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use abi_stable::std_types::RVec;
use plugin_api::{CallbackRequest, ErrorKind, Header, HttpResponse, OutboundSms};

use super::{
    http::HttpClient,
    loader,
    steps::{self, Operation, StepError},
    CallError, Module,
};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// The checks, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<(&'static str, Outcome)>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|(_, o)| matches!(o, Outcome::Fail(_)))
    }
    fn add(&mut self, name: &'static str, outcome: Outcome) {
        self.checks.push((name, outcome));
    }
}

/// What the stand-in provider answers.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// A local HTTP server that answers every request with the current status and body.
struct StandIn {
    url: String,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
}

async fn stand_in(answer: &Answer) -> std::io::Result<StandIn> {
    let status = Arc::new(AtomicU16::new(answer.status));
    let requests = Arc::new(AtomicUsize::new(0));
    let body = answer.body.clone();
    let (s, r) = (status.clone(), requests.clone());
    let app = axum::Router::new().fallback(move || {
        let (s, r, body) = (s.clone(), r.clone(), body.clone());
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            let status = axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst))
                .unwrap_or(axum::http::StatusCode::OK);
            (status, [("content-type", "application/json")], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(StandIn {
        url,
        status,
        requests,
    })
}

fn sms(id: &str, text: &str) -> OutboundSms {
    OutboundSms {
        id: id.into(),
        to: "+447911123456".into(),
        sender: "ACME".into(),
        text: text.into(),
        attempt: 1,
    }
}

/// Whether a call panicked inside the module (caught by its guard).
fn panicked(error: &CallError) -> bool {
    matches!(error, CallError::Module { error, .. } if error.kind == ErrorKind::PANICKED)
}

/// Runs every check against the library at `path`, configured with `blob` (where
/// `{{server}}` stands for the stand-in provider's URL).
pub async fn run(path: &Path, blob: &str, answer: &Answer) -> Report {
    let mut report = Report::default();
    let library = match loader::load_path(path) {
        Ok(library) => library,
        Err(error) => {
            report.add("loads", Outcome::Fail(error.to_string()));
            return report;
        }
    };
    let info = library.info().clone();
    let expected = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        info.name,
        std::env::consts::DLL_SUFFIX
    );
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    report.add(
        "loads",
        Outcome::Pass(format!(
            "{} {} built against plugin-api {}",
            info.name, info.version, info.plugin_api
        )),
    );
    report.add(
        "name matches the file",
        if file_name == expected {
            Outcome::Pass(expected)
        } else {
            Outcome::Fail(format!(
                "the module calls itself `{}`, so its file must be {expected}, not {file_name}",
                info.name
            ))
        },
    );

    let bad = "{ this is not a valid blob";
    report.add(
        "refuses a bad blob with a message",
        match library.check_config(bad) {
            Ok(()) => Outcome::Fail(format!("the blob {bad:?} was accepted")),
            Err(loader::LoadError::BadConfig { error, .. }) if error.kind == ErrorKind::PANICKED => {
                Outcome::Fail(format!("check_config panicked: {}", error.message))
            }
            Err(loader::LoadError::BadConfig { error, .. }) if error.message.trim().is_empty() => {
                Outcome::Fail("refused, but with an empty message".into())
            }
            Err(error) => Outcome::Pass(error.to_string()),
        },
    );

    let server = match stand_in(answer).await {
        Ok(server) => server,
        Err(error) => {
            report.add(
                "stand-in provider",
                Outcome::Fail(format!("cannot listen on 127.0.0.1: {error}")),
            );
            return report;
        }
    };
    let blob = blob.replace("{{server}}", &server.url);
    let module = match Module::start(&library, &blob, Duration::from_secs(5)) {
        Ok(module) => module,
        Err(error) => {
            report.add("accepts the blob", Outcome::Fail(error.to_string()));
            return report;
        }
    };
    report.add("accepts the blob", Outcome::Pass("provider created".into()));
    let http = HttpClient::new(Duration::from_secs(10));

    let sent = steps::run(
        &module,
        &http,
        Operation::Send(sms("conformance-1", "Hello from the conformance check")),
    )
    .await
    .outcome;
    let made_requests = server.requests.load(Ordering::SeqCst);
    report.add(
        "sends one SMS",
        match sent {
            Ok(id) if id.is_empty() => Outcome::Fail("sent, but the provider id is empty".into()),
            Ok(id) => Outcome::Pass(format!("provider id {id:?} after {made_requests} HTTP request(s)")),
            Err(error) => Outcome::Fail(format!(
                "{error} (the stand-in answered {} with {:?}; set --status and --answer as your provider answers)",
                answer.status, answer.body
            )),
        },
    );

    if made_requests == 0 {
        report.add(
            "a 500 is transient",
            Outcome::Skip("the module made no HTTP request".into()),
        );
    } else {
        server.status.store(500, Ordering::SeqCst);
        let result = steps::run(&module, &http, Operation::Send(sms("conformance-2", "Hello")))
            .await
            .outcome;
        server.status.store(answer.status, Ordering::SeqCst);
        report.add(
            "a 500 is transient",
            match result {
                Err(error) if error.is_transient() => Outcome::Pass(error.to_string()),
                Err(error) => {
                    Outcome::Fail(format!("not transient, so the gateway would not retry: {error}"))
                }
                Ok(id) => Outcome::Fail(format!("a 500 was taken as sent (provider id {id:?})")),
            },
        );
    }

    let mut panics = Vec::new();
    for (what, text) in [
        ("an empty text", ""),
        ("emoji and accents", "Ünïcødé ✓ 😀 \u{0}"),
        ("1600 characters", &"x".repeat(1600)),
    ] {
        match module.send(sms("conformance-3", text)).await {
            Err(error) if panicked(&error) => panics.push(format!("send with {what}: {error}")),
            _ => {}
        }
    }
    let broken_answers: [(u16, &[u8]); 6] = [
        (200, b""),
        (200, b"<html>not json</html>"),
        (200, b"{}"),
        (200, &[0xff, 0xfe, 0x00, 0x01]),
        (404, b"not found"),
        (302, b""),
    ];
    for (status, body) in broken_answers {
        let response = HttpResponse {
            status,
            headers: RVec::new(),
            body: body.to_vec().into(),
        };
        if let Err(error) = module
            .send_response(sms("conformance-4", "Hello"), response)
            .await
        {
            if panicked(&error) {
                panics.push(format!(
                    "send_response to a {status} with {} bytes: {error}",
                    body.len()
                ));
            }
        }
    }
    report.add(
        "survives broken input",
        if panics.is_empty() {
            Outcome::Pass("no panic on odd texts or broken answers (errors are fine)".into())
        } else {
            Outcome::Fail(format!(
                "the gateway caught these panics; fix them: {}",
                panics.join("; ")
            ))
        },
    );

    let mut callback_panics = Vec::new();
    let callbacks: [(&str, &[u8]); 4] = [
        ("", b""),
        ("application/json", b"{}"),
        ("application/x-www-form-urlencoded", b"a=1&%zz=&="),
        ("application/octet-stream", &[0xde, 0xad, 0xbe, 0xef]),
    ];
    for (content_type, body) in callbacks {
        let request = CallbackRequest {
            method: "POST".into(),
            path: format!("/v1/providers/{}/callback", info.name).as_str().into(),
            query: "x=%zz&token=".into(),
            headers: vec![Header::new("content-type", content_type)].into(),
            body: body.to_vec().into(),
        };
        if let Err(error) = module.parse_callback(request).await {
            if panicked(&error) {
                callback_panics.push(format!("a {content_type:?} callback: {error}"));
            }
        }
    }
    report.add(
        "survives broken callbacks",
        if callback_panics.is_empty() {
            Outcome::Pass("refused or parsed, never a panic".into())
        } else {
            Outcome::Fail(format!(
                "the gateway caught these panics; fix them: {}",
                callback_panics.join("; ")
            ))
        },
    );

    // The stand-in answers the self-check's requests as it answered the send, which is
    // rarely what the provider would say: only a panic or a broken limit is the module's fault.
    let check = steps::run(&module, &http, Operation::SelfCheck).await;
    let made = check.steps.len();
    report.add(
        "self-check",
        match check.outcome {
            Ok(result) => Outcome::Pass(format!("{result:?} after {made} HTTP request(s)")),
            Err(StepError::Call(error)) if panicked(&error) => Outcome::Fail(error.to_string()),
            Err(error @ StepError::TooManySteps { .. }) => Outcome::Fail(error.to_string()),
            Err(error) => Outcome::Skip(format!("answered with an error: {error}")),
        },
    );
    report
}
