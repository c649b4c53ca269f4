//! The gateway's HTTP client for modules' requests (see `plugin-api`, "Who does the
//! I/O"), which the step driver ([`super::steps`]) performs, and for forwarding inbound
//! SMS to `sms.inbound_webhook` ([`HttpClient::post_json`]): one connection pool,
//! Mozilla's root certificates (webpki-roots), and `sms.http_timeout_ms` on every
//! request. Header values may hold credentials, so neither requests nor answers are
//! logged here.

use std::time::Duration;

use abi_stable::std_types::RVec;
use plugin_api::{Header, HttpRequest, HttpResponse};

/// Answers bigger than this are cut off: a provider's answer to one SMS is small.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Performs modules' HTTP requests.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

/// Why a module's request got no answer. Always transient: the provider may answer
/// later, and the module never saw a response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("the module asked for an invalid request: {0}")]
    BadRequest(String),
    #[error("no answer from {host}: {reason}")]
    NoAnswer { host: String, reason: String },
}

impl HttpClient {
    pub fn new(timeout: Duration) -> HttpClient {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with rustls builds");
        HttpClient { client }
    }

    /// Performs `request` and reads the whole answer.
    pub async fn perform(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| HttpError::BadRequest(format!("`{}` is not an HTTP method", request.method)))?;
        // The URL may carry a provider's key in its query: errors never quote it.
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| HttpError::BadRequest(format!("the request's URL is not valid: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::BadRequest(format!(
                "the request's URL has scheme `{}`; only http and https are allowed",
                url.scheme()
            )));
        }
        let host = url.host_str().unwrap_or("").to_string();
        let mut builder = self.client.request(method, url);
        for header in request.headers.iter() {
            builder = builder.header(header.name.as_str(), header.value.as_str());
        }
        let no_answer = |e: reqwest::Error| HttpError::NoAnswer {
            host: host.clone(),
            reason: describe(&e),
        };
        let mut response = builder
            .body(request.body.to_vec())
            .send()
            .await
            .map_err(no_answer)?;
        let status = response.status().as_u16();
        let headers: RVec<Header> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some(Header::new(name.as_str(), value.to_str().ok()?)))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(no_answer)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_RESPONSE_BYTES {
                body.truncate(MAX_RESPONSE_BYTES);
                break;
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body: body.into(),
        })
    }
}

/// reqwest's error chain in one line, without the URL (which may carry a key).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = std::error::Error::source(error);
    let mut reasons = Vec::new();
    while let Some(e) = cause {
        reasons.push(e.to_string());
        cause = e.source();
    }
    match reasons.last() {
        Some(root) => format!("{kind}: {root}"),
        None => kind.to_string(),
    }
}

impl HttpClient {
    /// POSTs `body` as JSON to `url`; the answer's status, or why there was none.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<u16, HttpError> {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| HttpError::NoAnswer {
                host,
                reason: describe(&e),
            })?;
        Ok(response.status().as_u16())
    }
}
