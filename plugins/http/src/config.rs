//! The configuration blob: read once into checked, ready-to-use types, so that a
//! mistake is reported when the admin loads the blob, naming the key, and never while
//! an SMS is being sent.

use std::fmt;

use serde::{
    de::{MapAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::Value;

use plugin_api::{ModuleError, Secret};

use crate::{
    redactor::Redactor,
    status::StatusSet,
    template::{JsonTemplate, Secrets, Template},
};

/// The header a callback carries its shared secret in, unless the blob names another.
pub const DEFAULT_SECRET_HEADER: &str = "X-Callback-Token";

/// Everything the module needs, checked. Not `Debug`: its templates hold credentials.
#[derive(Clone)]
pub struct Config {
    /// `POST` unless the blob says otherwise.
    pub method: String,
    pub url: Template,
    /// `scheme://host[:port]` of `url`, which is safe to log (no path, no query).
    pub origin: String,
    /// In the order they are sent: `Authorization` from `basic_auth`, the blob's
    /// `headers`, then `Content-Type` from `body` unless `headers` set it.
    pub headers: Vec<(String, Template)>,
    pub body: Body,
    pub success: StatusSet,
    pub transient: StatusSet,
    pub answer_status: Option<AnswerStatus>,
    pub message_id: MessageIdSource,
    pub callbacks: Option<Callbacks>,
    pub secrets: Secrets,
    /// Blanks out the blob's credentials from provider answers quoted in errors.
    pub redactor: Redactor,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(JsonTemplate),
    Form(Vec<(String, Template)>),
}

/// A status inside a successful (2xx) answer, for providers that answer 200 and say
/// in the body whether they took the SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerStatus {
    pub pointer: String,
    pub success: Vec<String>,
    pub transient: Vec<String>,
    pub detail_pointer: Option<String>,
}

/// Where the provider's message id is found in its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageIdSource {
    /// A JSON pointer into the answer's body.
    Pointer(String),
    /// A header of the answer.
    Header(String),
    /// The provider gives none: the gateway's own id stands in for it, which the
    /// provider must then echo in its reports (send it as `{{id}}`).
    GatewayId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callbacks {
    pub format: CallbackFormat,
    pub shared_secret: Option<Secret>,
    pub secret_header: String,
    pub inbound: Option<InboundFields>,
    pub report: Option<ReportFields>,
}

/// How a callback carries its fields; decides what the field names below mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackFormat {
    /// A JSON body; fields are JSON pointers.
    Json,
    /// A form body (or, when the body is empty, the query string); fields are names.
    Form,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundFields {
    pub from: String,
    pub text: String,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    /// The provider writes international numbers as bare digits (`447700900123`):
    /// put the `+` back on `from` and `to` when they are digits only.
    #[serde(default)]
    pub add_plus: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFields {
    pub id: String,
    pub status: String,
    /// Lower case, compared with the report's lower-cased status.
    pub delivered: Vec<String>,
    pub undelivered: Vec<String>,
    pub detail: Option<String>,
    pub message_id: Option<String>,
}

// ---- The blob as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    url: String,
    method: Option<String>,
    #[serde(default)]
    headers: OrderedMap<Secret>,
    basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    secrets: OrderedMap<Secret>,
    body: Option<RawBody>,
    success_status: Option<Vec<Value>>,
    transient_status: Option<Vec<Value>>,
    answer_status: Option<RawAnswerStatus>,
    message_id_pointer: Option<String>,
    message_id_header: Option<String>,
    callbacks: Option<RawCallbacks>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    user: String,
    password: Secret,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawBody {
    Json { template: Value },
    Form { fields: OrderedMap<String> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswerStatus {
    pointer: String,
    success_values: Vec<Value>,
    #[serde(default)]
    transient_values: Vec<Value>,
    detail_pointer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCallbacks {
    format: CallbackFormat,
    shared_secret: Option<Secret>,
    secret_header: Option<String>,
    inbound: Option<InboundFields>,
    delivery_report: Option<RawReport>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    id: String,
    status: String,
    delivered_values: Vec<Value>,
    undelivered_values: Vec<Value>,
    detail: Option<String>,
    message_id: Option<String>,
}

/// A JSON object read in the order it is written, refusing a repeated key (serde_json's
/// map would keep the last one silently, and sorts its keys).
struct OrderedMap<V>(Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("the key `{key}` appears twice")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}

// ---- Checking ------------------------------------------------------------------------

/// The configuration error for `key`.
fn bad(key: &str, reason: impl fmt::Display) -> ModuleError {
    ModuleError::configuration(format!("`{key}`: {reason}"))
}

impl Config {
    pub fn parse(blob: &str) -> Result<Config, ModuleError> {
        if blob.trim().is_empty() {
            return Err(ModuleError::configuration(
                "the blob is empty: the http module needs at least `url` (see the module's documentation)",
            ));
        }
        if !blob.trim_start().starts_with('{') {
            return Err(ModuleError::configuration(
                "the blob is not valid: it must be a JSON object",
            ));
        }
        let raw: RawConfig = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(blob))
            .map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    ModuleError::configuration(format!("the blob is not valid: {}", e.inner()))
                } else {
                    bad(&path, e.inner())
                }
            })?;
        raw.check()
    }
}

impl RawConfig {
    fn check(self) -> Result<Config, ModuleError> {
        let mut redactor = Redactor::default();

        let mut secrets = Vec::new();
        for (name, value) in self.secrets.0 {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad(
                    "secrets",
                    format!("the name `{name}` may hold only letters, digits, `_` and `-`"),
                ));
            }
            redactor.add(value.expose());
            secrets.push((name, value));
        }
        let secrets = Secrets::new(secrets);

        let method = self.method.unwrap_or_else(|| "POST".to_string());
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(bad(
                "method",
                "must be an HTTP method in capitals, such as `POST` or `GET`",
            ));
        }

        let origin = check_url(&self.url).map_err(|reason| bad("url", reason))?;
        let url = Template::parse(&self.url, &secrets, false).map_err(|reason| bad("url", reason))?;

        let mut headers = Vec::new();
        if let Some(auth) = &self.basic_auth {
            if auth.user.contains(':') {
                return Err(bad(
                    "basic_auth.user",
                    "may not contain `:` (HTTP Basic auth forbids it)",
                ));
            }
            if self
                .headers
                .0
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            {
                return Err(bad(
                    "basic_auth",
                    "`headers` already sets Authorization: keep one of the two",
                ));
            }
            redactor.add(auth.password.expose());
            let credentials = format!("{}:{}", auth.user, auth.password.expose());
            headers.push((
                "Authorization".to_string(),
                Template::literal(format!("Basic {}", base64_encode(credentials.as_bytes()))),
            ));
        }
        for (name, value) in &self.headers.0 {
            let key = format!("headers.{name}");
            check_header_name(name).map_err(|reason| bad(&key, reason))?;
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(bad(
                    &key,
                    "appears twice (header names are compared without regard to case)",
                ));
            }
            if ["content-length", "transfer-encoding", "host"].contains(&name.to_ascii_lowercase().as_str()) {
                return Err(bad(
                    &key,
                    "is set by the gateway's HTTP client and cannot be configured",
                ));
            }
            if value.expose().chars().any(|c| c.is_control() && c != '\t') {
                return Err(bad(
                    &key,
                    "the value holds a line break or another control character",
                ));
            }
            let template =
                Template::parse(value.expose(), &secrets, true).map_err(|reason| bad(&key, reason))?;
            if !template.has_placeholders() {
                redactor.add(value.expose());
            }
            headers.push((name.clone(), template));
        }

        let body = match self.body {
            None => Body::None,
            Some(RawBody::Json { template }) => Body::Json(
                JsonTemplate::parse(&template, "body.template", &secrets)
                    .map_err(|(key, reason)| bad(&key, reason))?,
            ),
            Some(RawBody::Form { fields }) => Body::Form(
                fields
                    .0
                    .into_iter()
                    .map(|(name, value)| {
                        let template = Template::parse(&value, &secrets, false)
                            .map_err(|reason| bad(&format!("body.fields.{name}"), reason))?;
                        Ok((name, template))
                    })
                    .collect::<Result<_, ModuleError>>()?,
            ),
        };
        let content_type = match body {
            Body::None => None,
            Body::Json(_) => Some("application/json"),
            Body::Form(_) => Some("application/x-www-form-urlencoded"),
        };
        if content_type.is_some() && (method == "GET" || method == "HEAD") {
            return Err(bad(
                "body",
                format!("a {method} request has no body; use POST, or put the fields in `url`"),
            ));
        }
        if let Some(content_type) = content_type {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".to_string(), Template::literal(content_type)));
            }
        }

        let success = match &self.success_status {
            None => StatusSet::default_success(),
            Some(items) if items.is_empty() => {
                return Err(bad(
                    "success_status",
                    "is empty: no answer could ever be a success",
                ))
            }
            Some(items) => {
                StatusSet::parse("success_status", items).map_err(|(key, reason)| bad(&key, reason))?
            }
        };
        let transient = match &self.transient_status {
            None => StatusSet::default_transient(),
            Some(items) => {
                StatusSet::parse("transient_status", items).map_err(|(key, reason)| bad(&key, reason))?
            }
        };

        let answer_status = self.answer_status.map(check_answer_status).transpose()?;

        let message_id = match (self.message_id_pointer, self.message_id_header) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "message_id_header",
                    "give `message_id_pointer` or `message_id_header`, not both",
                ))
            }
            (Some(pointer), None) => {
                check_pointer(&pointer).map_err(|reason| bad("message_id_pointer", reason))?;
                MessageIdSource::Pointer(pointer)
            }
            (None, Some(header)) => {
                check_header_name(&header).map_err(|reason| bad("message_id_header", reason))?;
                MessageIdSource::Header(header)
            }
            (None, None) => MessageIdSource::GatewayId,
        };

        let callbacks = self.callbacks.map(check_callbacks).transpose()?;
        if let Some(secret) = callbacks.as_ref().and_then(|c| c.shared_secret.as_ref()) {
            redactor.add(secret.expose());
        }

        Ok(Config {
            method,
            url,
            origin,
            headers,
            body,
            success,
            transient,
            answer_status,
            message_id,
            callbacks,
            secrets,
            redactor,
        })
    }
}

fn check_answer_status(raw: RawAnswerStatus) -> Result<AnswerStatus, ModuleError> {
    check_pointer(&raw.pointer).map_err(|reason| bad("answer_status.pointer", reason))?;
    if let Some(pointer) = &raw.detail_pointer {
        check_pointer(pointer).map_err(|reason| bad("answer_status.detail_pointer", reason))?;
    }
    if raw.success_values.is_empty() {
        return Err(bad(
            "answer_status.success_values",
            "is empty: no answer could ever be a success",
        ));
    }
    Ok(AnswerStatus {
        pointer: raw.pointer,
        success: value_texts("answer_status.success_values", &raw.success_values)?,
        transient: value_texts("answer_status.transient_values", &raw.transient_values)?,
        detail_pointer: raw.detail_pointer,
    })
}

fn check_callbacks(raw: RawCallbacks) -> Result<Callbacks, ModuleError> {
    if raw.inbound.is_none() && raw.delivery_report.is_none() {
        return Err(bad("callbacks", "give `inbound`, `delivery_report` or both"));
    }
    if raw.secret_header.is_some() && raw.shared_secret.is_none() {
        return Err(bad(
            "callbacks.secret_header",
            "has no use without `callbacks.shared_secret`",
        ));
    }
    if raw.shared_secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
        return Err(bad("callbacks.shared_secret", "is empty"));
    }
    let secret_header = raw
        .secret_header
        .unwrap_or_else(|| DEFAULT_SECRET_HEADER.to_string());
    check_header_name(&secret_header).map_err(|reason| bad("callbacks.secret_header", reason))?;

    let check_field = |key: &str, field: &str| match raw.format {
        CallbackFormat::Json => check_pointer(field).map_err(|reason| bad(key, reason)),
        CallbackFormat::Form if field.is_empty() => Err(bad(key, "is empty: name a form field")),
        CallbackFormat::Form => Ok(()),
    };
    if let Some(inbound) = &raw.inbound {
        check_field("callbacks.inbound.from", &inbound.from)?;
        check_field("callbacks.inbound.text", &inbound.text)?;
        if let Some(to) = &inbound.to {
            check_field("callbacks.inbound.to", to)?;
        }
        if let Some(id) = &inbound.id {
            check_field("callbacks.inbound.id", id)?;
        }
    }
    let report = match raw.delivery_report {
        None => None,
        Some(report) => {
            check_field("callbacks.delivery_report.id", &report.id)?;
            check_field("callbacks.delivery_report.status", &report.status)?;
            if let Some(detail) = &report.detail {
                check_field("callbacks.delivery_report.detail", detail)?;
            }
            if let Some(message_id) = &report.message_id {
                check_field("callbacks.delivery_report.message_id", message_id)?;
            }
            if report.delivered_values.is_empty() {
                return Err(bad(
                    "callbacks.delivery_report.delivered_values",
                    "is empty: no report could ever say a message was delivered",
                ));
            }
            let lower = |key, values: &[Value]| -> Result<Vec<String>, ModuleError> {
                Ok(value_texts(key, values)?
                    .into_iter()
                    .map(|v| v.to_lowercase())
                    .collect())
            };
            Some(ReportFields {
                delivered: lower(
                    "callbacks.delivery_report.delivered_values",
                    &report.delivered_values,
                )?,
                undelivered: lower(
                    "callbacks.delivery_report.undelivered_values",
                    &report.undelivered_values,
                )?,
                id: report.id,
                status: report.status,
                detail: report.detail,
                message_id: report.message_id,
            })
        }
    };
    Ok(Callbacks {
        format: raw.format,
        shared_secret: raw.shared_secret,
        secret_header,
        inbound: raw.inbound,
        report,
    })
}

/// Checks the URL before its placeholders are parsed; returns its origin, for logs.
fn check_url(url: &str) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return Err("must start with `http://` or `https://`".to_string());
    };
    if without_placeholders(url)
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("holds a space or a control character: write it percent-encoded".to_string());
    }
    let rest = &url[scheme_len..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() {
        return Err("has no host".to_string());
    }
    if authority.contains('@') {
        return Err(
            "holds credentials: put them in `basic_auth` or `headers`, where they stay secret".to_string(),
        );
    }
    if authority.contains("{{") {
        return Err("the host cannot hold a placeholder".to_string());
    }
    Ok(format!("{}{}", &lower[..scheme_len], authority))
}

/// `text` without its `{{...}}` placeholders (which may be written `{{ to }}`).
fn without_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// An RFC 6901 JSON pointer: empty (the whole document) or `/`-separated tokens in
/// which `~` is only ever `~0` or `~1`.
pub fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "`{pointer}` is not a JSON pointer: it must start with `/` (for example `/messages/0/id`)"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "`{pointer}` is not a JSON pointer: `~` must be written `~0` and `/` inside a key `~1`"
            ));
        }
    }
    Ok(())
}

/// An HTTP header name (an RFC 9110 token).
fn check_header_name(name: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("`{name}` is not a valid header name"));
    }
    Ok(())
}

/// Strings and numbers, as text (a provider may write a status as `0` or `"0"`).
fn value_texts(key: &str, values: &[Value]) -> Result<Vec<String>, ModuleError> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            value_text(value).ok_or_else(|| bad(&format!("{key}[{i}]"), "must be a string or a number"))
        })
        .collect()
}

/// A JSON scalar as text; `None` for null, arrays and objects.
pub fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
