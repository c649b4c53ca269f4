//! The step driver: runs one operation of a module (sending one SMS, or its self-check)
//! to its end. The module answers each call with a [`Step`]; for [`Step::Http`] the
//! driver performs the request with the gateway's [`HttpClient`] and hands the answer
//! back, until [`Step::Done`] or an error.
//!
//! Every caller goes through here (the SMS worker, *Send test*, the self-check of
//! `gateway modules check` and `POST /v1/admin/sms/check`, the conformance kit), so the
//! step limit, the time each step may take (see [`lease_duration`]) and what an admin
//! is shown of a step are the same everywhere.

use std::time::{Duration, Instant};

use plugin_api::{HttpRequest, HttpResponse, OutboundSms, Step};
use serde::Serialize;

use super::{
    http::{HttpClient, HttpError},
    CallError, Module,
};

/// HTTP exchanges a module gets for one operation (a token fetch, then the send, with
/// room to spare). A module asking for one more fails, and that request is not made.
pub const MAX_HTTP_STEPS: usize = 4;

/// Added to the longest an operation may take, for the store's write of its outcome and
/// for scheduling on a busy machine.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// The shortest lease, however short the time limits.
const MIN_LEASE: Duration = Duration::from_secs(60);

/// How long a worker must hold an SMS so that nobody else sends it while one operation
/// may still run: each of its up to `1 + MAX_HTTP_STEPS` module calls may take
/// `call_timeout`, and each of its `MAX_HTTP_STEPS` requests `http_timeout`.
pub fn lease_duration(call_timeout: Duration, http_timeout: Duration) -> Duration {
    let calls = 1 + MAX_HTTP_STEPS as u32;
    let requests = MAX_HTTP_STEPS as u32;
    (call_timeout * calls + http_timeout * requests + LEASE_MARGIN).max(MIN_LEASE)
}

/// What the driver runs.
#[derive(Debug, Clone)]
pub enum Operation {
    /// Send one SMS; the result is the provider's message id.
    Send(OutboundSms),
    /// The module's self-check; the result says what was checked.
    SelfCheck,
}

impl Operation {
    /// How an error names the operation to an admin.
    fn noun(&self) -> &'static str {
        match self {
            Operation::Send(_) => "one SMS",
            Operation::SelfCheck => "its self-check",
        }
    }

    async fn start(&self, module: &Module) -> Result<Step, CallError> {
        match self {
            Operation::Send(sms) => module.send(sms.clone()).await,
            Operation::SelfCheck => module.self_check().await,
        }
    }

    async fn answer(&self, module: &Module, response: HttpResponse) -> Result<Step, CallError> {
        match self {
            Operation::Send(sms) => module.send_response(sms.clone(), response).await,
            Operation::SelfCheck => module.self_check_response(response).await,
        }
    }

    /// The module call a step came from, for [`CallError::UnknownStep`].
    fn call_name(&self, first: bool) -> &'static str {
        match (self, first) {
            (Operation::Send(_), true) => "send",
            (Operation::Send(_), false) => "send_response",
            (Operation::SelfCheck, true) => "self_check",
            (Operation::SelfCheck, false) => "self_check_response",
        }
    }
}

/// Why an operation did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("module `{module}`: {error}")]
    Http { module: String, error: HttpError },
    #[error(
        "module `{module}` asked for more than {MAX_HTTP_STEPS} HTTP requests for {operation}; \
         {MAX_HTTP_STEPS} is the limit, so the next one was not made"
    )]
    TooManySteps { module: String, operation: &'static str },
}

impl StepError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        match self {
            StepError::Call(e) => e.is_transient(),
            StepError::Http { error, .. } => matches!(error, HttpError::NoAnswer { .. }),
            // The module would ask for as many again.
            StepError::TooManySteps { .. } => false,
        }
    }
}

/// One HTTP exchange, as an admin may see it. Headers and the URL's query, user and
/// fragment are left out: they may carry a provider's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub method: String,
    /// Scheme, host, port and path only.
    pub url: String,
    /// The provider's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// Why there was no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepRecord {
    fn new(request: &HttpRequest, answer: &Result<HttpResponse, HttpError>, took: Duration) -> StepRecord {
        StepRecord {
            method: request.method.to_string(),
            url: shown_url(&request.url),
            status: answer.as_ref().ok().map(|r| r.status),
            duration_ms: took.as_millis().try_into().unwrap_or(u64::MAX),
            error: answer.as_ref().err().map(ToString::to_string),
        }
    }
}

/// `url` without what may be secret: its query (`?api_key=…`), user and password, and
/// fragment.
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            // Only fails for URLs that cannot have credentials, which then have none.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "(not a valid URL)".to_string(),
    }
}

/// An operation run to its end: the HTTP exchanges made, in order, and the result.
#[derive(Debug, Clone)]
pub struct Run {
    pub steps: Vec<StepRecord>,
    pub outcome: Result<String, StepError>,
}

/// Runs `operation` through `module`, performing the module's requests with `http`.
pub async fn run(module: &Module, http: &HttpClient, operation: Operation) -> Run {
    let mut steps = Vec::new();
    let outcome = match operation.start(module).await {
        Ok(first) => drive(module, http, &operation, first, &mut steps).await,
        Err(error) => Err(error.into()),
    };
    Run { steps, outcome }
}

/// Runs `operation` on from `first`, the answer of its first call, made already (the
/// SMS worker starts a whole batch of sends with [`Module::send_batch`]).
pub async fn run_from(module: &Module, http: &HttpClient, operation: Operation, first: Step) -> Run {
    let mut steps = Vec::new();
    let outcome = drive(module, http, &operation, first, &mut steps).await;
    Run { steps, outcome }
}

async fn drive(
    module: &Module,
    http: &HttpClient,
    operation: &Operation,
    first: Step,
    steps: &mut Vec<StepRecord>,
) -> Result<String, StepError> {
    let mut step = first;
    loop {
        let request = match step {
            Step::Done { result } => return Ok(result.into_string()),
            Step::Http(request) => request,
            _ => {
                return Err(StepError::Call(CallError::UnknownStep {
                    module: module.name().to_string(),
                    operation: operation.call_name(steps.is_empty()),
                }))
            }
        };
        if steps.len() == MAX_HTTP_STEPS {
            return Err(StepError::TooManySteps {
                module: module.name().to_string(),
                operation: operation.noun(),
            });
        }
        let started = Instant::now();
        let answer = http.perform(&request).await;
        steps.push(StepRecord::new(&request, &answer, started.elapsed()));
        let response = answer.map_err(|error| StepError::Http {
            module: module.name().to_string(),
            error,
        })?;
        step = operation.answer(module, response).await?;
    }
}

/// A self-check as `gateway modules check` and `POST /v1/admin/sms/check` show it.
#[derive(Debug, Clone, Serialize)]
pub struct SelfCheck {
    pub ok: bool,
    pub module: String,
    pub steps: Vec<StepRecord>,
    /// What the module says it checked, when the check passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `module`'s self-check, with every HTTP request it asks for.
pub async fn self_check(module: &Module, http: &HttpClient) -> SelfCheck {
    let Run { steps, outcome } = run(module, http, Operation::SelfCheck).await;
    let (result, error) = match outcome {
        Ok(result) => (Some(result), None),
        Err(error) => (None, Some(error.to_string())),
    };
    SelfCheck {
        ok: error.is_none(),
        module: module.name().to_string(),
        steps,
        result,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_never_shows_the_query_or_credentials_of_its_url() {
        assert_eq!(
            shown_url("https://user:pa55@rest.example.com:8443/sms/json?api_key=k&api_secret=s#frag"),
            "https://rest.example.com:8443/sms/json"
        );
        assert_eq!(shown_url("not a url?key=s"), "(not a valid URL)");
    }

    #[test]
    fn the_lease_outlasts_every_call_and_request_of_one_operation() {
        let (call, http) = (Duration::from_secs(20), Duration::from_secs(30));
        let longest = call * (1 + MAX_HTTP_STEPS as u32) + http * MAX_HTTP_STEPS as u32;
        assert!(lease_duration(call, http) > longest);
        assert_eq!(
            lease_duration(Duration::from_millis(10), Duration::from_millis(10)),
            MIN_LEASE
        );
    }
}
