//! A small client of a running gateway's API, for the operator commands
//! (`gateway send-sms`, `send-email`, `mailing send`).

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// Where the API is and the token to use.
#[derive(Debug, Clone)]
pub struct ApiClient {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(url: &str, token: &str) -> anyhow::Result<ApiClient> {
        if token.is_empty() {
            bail!("no API token: pass --token or set GATEWAY_TOKEN");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(ApiClient {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    /// POSTs JSON; the answer's JSON, or the problem's detail as the error.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.url))?;
        answer(response).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.url))?;
        answer(response).await
    }

    /// Polls a message until it is no longer queued or sending.
    pub async fn wait_message(&self, id: &str) -> anyhow::Result<Value> {
        loop {
            let message = self.get(&format!("/v1/messages/{id}")).await?;
            if !matches!(message["status"].as_str(), Some("queued") | Some("sending")) {
                return Ok(message);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("the gateway's answer was cut off")?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    match body["detail"].as_str() {
        Some(detail) => bail!("{status}: {detail}"),
        None => bail!("{status}: {}", String::from_utf8_lossy(&bytes)),
    }
}

/// The recipients of a CSV file, as `POST /v1/mailings` takes them.
///
/// With a header row (one that names an `email` or `address` column), every row is an
/// object: that column is its `email`, a `name` column its `name`, and every other
/// column a merge field under its header (`{{ fields.city }}`), empty cells included.
/// Without one, the first column holds the addresses, and nothing else is read.
pub fn read_recipients(path: &std::path::Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut rows = reader.records();
    let mut column = 0;
    let mut header: Option<csv::StringRecord> = None;
    let mut recipients = Vec::new();
    if let Some(first) = rows.next() {
        let first = first.with_context(|| format!("{}: line 1", path.display()))?;
        match first
            .iter()
            .position(|field| field.eq_ignore_ascii_case("email") || field.eq_ignore_ascii_case("address"))
        {
            Some(index) => {
                column = index;
                header = Some(first);
            }
            None if first.get(0).is_some_and(|f| f.contains('@')) => {
                recipients.push(serde_json::Value::from(&first[0]))
            }
            None => {}
        }
    }
    for (line, row) in rows.enumerate() {
        let row = row.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let Some(address) = row.get(column).filter(|a| !a.is_empty()) else {
            continue;
        };
        let Some(header) = &header else {
            recipients.push(serde_json::Value::from(address));
            continue;
        };
        let mut recipient = serde_json::json!({ "email": address });
        let mut fields = serde_json::Map::new();
        for (index, (name, value)) in header.iter().zip(row.iter()).enumerate() {
            if index == column || name.is_empty() {
                continue;
            }
            if name.eq_ignore_ascii_case("name") {
                if !value.is_empty() {
                    recipient["name"] = value.into();
                }
            } else {
                fields.insert(name.to_string(), value.into());
            }
        }
        if !fields.is_empty() {
            recipient["fields"] = fields.into();
        }
        recipients.push(recipient);
    }
    if recipients.is_empty() {
        bail!("{} lists no recipients", path.display());
    }
    Ok(recipients)
}
