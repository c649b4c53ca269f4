//! `gateway modules conformance FILE`: what a provider runs against their own module
//! library before shipping it. It loads the file as the gateway does, checks that bad
//! blobs are refused with a message, sends through a local HTTP server standing in for
//! the provider ([`stand_in`]), checks that a 500 is transient, feeds the module broken
//! answers and callbacks to prove that none of them panics, parses a real callback of
//! the provider when given one ([`callback`]), and runs the self-check. Sends and the
//! self-check go through the step driver ([`super::steps`]), as in the gateway.
//!
//! Every check is reported, in the order of [`CHECKS`]: one that could not run because
//! an earlier one failed (nothing to send with when the blob is refused) is listed as
//! skipped, with the reason.

pub mod callback;
pub mod stand_in;

use std::{fmt, path::Path, time::Duration};

use plugin_api::{CallbackRequest, ErrorKind, Header, HttpResponse, OutboundSms};

use self::stand_in::StandIn;
pub use self::{
    callback::{CallbackCheck, Expected},
    stand_in::Answer,
};
use super::{
    http::HttpClient,
    loader,
    steps::{self, Operation, StepError},
    CallError, Module,
};

/// Every check, in the order they run and are reported.
pub const CHECKS: [&str; 10] = [
    "loads",
    "name matches the file",
    "refuses bad blobs with a message",
    "accepts the blob",
    "sends one SMS",
    "a 500 is transient",
    "survives broken input",
    "survives broken callbacks",
    "parses the provider's callback",
    "self-check",
];

/// Blobs no module should accept, each of which must be refused with a message. (An
/// empty blob may be fine: the `file` module takes it as "all defaults".)
const BAD_BLOBS: [&str; 3] = ["{ this is not a valid blob", "null", "42"];

/// What to check a library with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The module's blob; `{{server}}` stands for the stand-in provider's URL.
    pub blob: String,
    /// What the stand-in answers a send (and the self-check).
    pub answer: Answer,
    /// A callback the provider sends, and what it should become.
    pub callback: Option<CallbackCheck>,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// One check: its name (from [`CHECKS`]), outcome, and what it tried, line by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub details: Vec<String>,
}

/// The checks of one library, in the order of [`CHECKS`].
#[derive(Debug, Clone)]
pub struct Report {
    pub file: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| matches!(c.outcome, Outcome::Fail(_)))
    }

    fn add(&mut self, name: &'static str, outcome: Outcome) {
        self.add_with(name, outcome, Vec::new());
    }

    fn add_with(&mut self, name: &'static str, outcome: Outcome, details: Vec<String>) {
        debug_assert!(CHECKS.contains(&name), "{name} is not in CHECKS");
        self.checks.push(Check {
            name,
            outcome,
            details,
        });
    }

    /// Lists every check not run yet as skipped, because of `reason`.
    fn skip_rest(&mut self, reason: &str) {
        for name in CHECKS {
            if !self.checks.iter().any(|c| c.name == name) {
                self.add(name, Outcome::Skip(format!("not run: {reason}")));
            }
        }
    }
}

/// The report as `gateway modules conformance` prints it.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}", self.file)?;
        for check in &self.checks {
            let (mark, text) = match &check.outcome {
                Outcome::Pass(text) => ("ok  ", text),
                Outcome::Fail(text) => ("FAIL", text),
                Outcome::Skip(text) => ("skip", text),
            };
            writeln!(f, "  {mark} {}: {text}", check.name)?;
            for detail in &check.details {
                writeln!(f, "         {detail}")?;
            }
        }
        Ok(())
    }
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

/// Runs every check against the library at `path`.
pub async fn run(path: &Path, options: &Options) -> Report {
    let mut report = Report {
        file: path.display().to_string(),
        checks: Vec::new(),
    };
    let library = match loader::load_path(path) {
        Ok(library) => library,
        Err(error) => {
            report.add("loads", Outcome::Fail(error.to_string()));
            report.skip_rest("the library did not load");
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

    let (outcome, details) = bad_blobs(&library);
    report.add_with("refuses bad blobs with a message", outcome, details);

    let server = match StandIn::start(options.answer.clone()).await {
        Ok(server) => server,
        Err(error) => {
            report.add(
                "accepts the blob",
                Outcome::Fail(format!(
                    "cannot listen on 127.0.0.1 for the stand-in provider: {error}"
                )),
            );
            report.skip_rest("there is no stand-in provider to send through");
            return report;
        }
    };
    let blob = options.blob.replace("{{server}}", &server.url);
    let module = match Module::start(&library, &blob, Duration::from_secs(5)) {
        Ok(module) => module,
        Err(error) => {
            report.add("accepts the blob", Outcome::Fail(error.to_string()));
            report.skip_rest("the blob was refused, so there is no provider to check");
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
    .await;
    let made_requests = server.requests();
    let answer = &options.answer;
    report.add_with(
        "sends one SMS",
        match sent.outcome {
            Ok(id) if id.is_empty() => Outcome::Fail("sent, but the provider id is empty".into()),
            Ok(id) => Outcome::Pass(format!("provider id {id:?} after {made_requests} HTTP request(s)")),
            Err(error) => Outcome::Fail(format!(
                "{error} (the stand-in answered {} with {:?}; set --status and --answer as your provider answers)",
                answer.status, answer.body
            )),
        },
        sent.steps.iter().map(step_line).collect(),
    );

    if made_requests == 0 {
        report.add(
            "a 500 is transient",
            Outcome::Skip("the module made no HTTP request".into()),
        );
    } else {
        let error_answer = Answer::internal_error();
        server.answer(error_answer.clone());
        let result = steps::run(&module, &http, Operation::Send(sms("conformance-2", "Hello")))
            .await
            .outcome;
        server.answer(answer.clone());
        report.add_with(
            "a 500 is transient",
            match result {
                Err(error) if error.is_transient() => Outcome::Pass(error.to_string()),
                Err(error) => {
                    Outcome::Fail(format!("not transient, so the gateway would not retry: {error}"))
                }
                Ok(id) => Outcome::Fail(format!("a 500 was taken as sent (provider id {id:?})")),
            },
            vec![format!("the stand-in answered 500 with {}", error_answer.body)],
        );
    }

    report.add("survives broken input", broken_input(&module).await);
    report.add("survives broken callbacks", broken_callbacks(&module).await);

    match &options.callback {
        Some(callback) => {
            let (outcome, details) = callback.run(&module).await;
            report.add_with("parses the provider's callback", outcome, details);
        }
        None => report.add(
            "parses the provider's callback",
            Outcome::Skip(
                "no --callback given: pass a delivery report or an inbound SMS as your provider sends it, \
                 with --expect delivered, undelivered or inbound"
                    .into(),
            ),
        ),
    }

    // The stand-in answers the self-check's requests as it answered the send, which is
    // rarely what the provider would say: only a panic or a broken limit is the module's fault.
    let check = steps::run(&module, &http, Operation::SelfCheck).await;
    let made = check.steps.len();
    report.add_with(
        "self-check",
        match check.outcome {
            Ok(result) => Outcome::Pass(format!("{result:?} after {made} HTTP request(s)")),
            Err(StepError::Call(error)) if panicked(&error) => Outcome::Fail(error.to_string()),
            Err(error @ StepError::TooManySteps { .. }) => Outcome::Fail(error.to_string()),
            Err(error) => Outcome::Skip(format!("answered with an error: {error}")),
        },
        check.steps.iter().map(step_line).collect(),
    );
    report
}

/// One HTTP exchange of a send or the self-check, as a detail line.
fn step_line(step: &steps::StepRecord) -> String {
    let answer = match (step.status, &step.error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(error)) => error.clone(),
        (None, None) => "no answer".into(),
    };
    format!("{} {}: {answer}", step.method, step.url)
}

/// Every one of [`BAD_BLOBS`] must be refused with a message, without a panic.
fn bad_blobs(library: &loader::Library) -> (Outcome, Vec<String>) {
    let mut details = Vec::new();
    let mut wrong = Vec::new();
    for blob in BAD_BLOBS {
        let verdict = match library.check_config(blob) {
            Ok(()) => Err("accepted".to_string()),
            Err(loader::LoadError::BadConfig { error, .. }) if error.kind == ErrorKind::PANICKED => {
                Err(format!("check_config panicked: {}", error.message))
            }
            Err(loader::LoadError::BadConfig { error, .. }) if error.message.trim().is_empty() => {
                Err("refused, but with an empty message".into())
            }
            Err(loader::LoadError::BadConfig { error, .. }) => Ok(format!("refused: {}", error.message)),
            Err(error) => Ok(format!("refused: {error}")),
        };
        match verdict {
            Ok(text) => details.push(format!("{blob:?} {text}")),
            Err(text) => {
                details.push(format!("{blob:?} {text}"));
                wrong.push(format!("{blob:?} {text}"));
            }
        }
    }
    let outcome = if wrong.is_empty() {
        Outcome::Pass(format!("all {} refused", BAD_BLOBS.len()))
    } else {
        Outcome::Fail(wrong.join("; "))
    };
    (outcome, details)
}

/// Odd texts and broken answers: errors are fine, panics are not.
async fn broken_input(module: &Module) -> Outcome {
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
        let response = HttpResponse::new(status, body);
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
    if panics.is_empty() {
        Outcome::Pass("no panic on odd texts or broken answers (errors are fine)".into())
    } else {
        Outcome::Fail(format!(
            "the gateway caught these panics; fix them: {}",
            panics.join("; ")
        ))
    }
}

/// Callbacks that are no provider's: refused or parsed, never a panic.
async fn broken_callbacks(module: &Module) -> Outcome {
    let mut panics = Vec::new();
    let callbacks: [(&str, &[u8]); 4] = [
        ("", b""),
        ("application/json", b"{}"),
        ("application/x-www-form-urlencoded", b"a=1&%zz=&="),
        ("application/octet-stream", &[0xde, 0xad, 0xbe, 0xef]),
    ];
    for (content_type, body) in callbacks {
        let request = CallbackRequest {
            method: "POST".into(),
            path: format!("/v1/providers/{}/callback", module.name())
                .as_str()
                .into(),
            query: "x=%zz&token=".into(),
            headers: vec![Header::new("content-type", content_type)].into(),
            body: body.to_vec().into(),
        };
        if let Err(error) = module.parse_callback(request).await {
            if panicked(&error) {
                panics.push(format!("a {content_type:?} callback: {error}"));
            }
        }
    }
    if panics.is_empty() {
        Outcome::Pass("refused or parsed, never a panic".into())
    } else {
        Outcome::Fail(format!(
            "the gateway caught these panics; fix them: {}",
            panics.join("; ")
        ))
    }
}
