//! Reading a JSON request body: the media type (415), the size limit (413), the
//! syntax (400), then the shape, with the failing field named (422). Handlers take
//! the [`JsonBody`] extractor; the errors are the problem+json answers above.

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Request},
    http::{header, HeaderMap},
};
use futures_util::StreamExt;
use serde::de::{Deserialize, DeserializeOwned};

use super::{problem::Problem, ApiState};
use crate::settings::ServerSettings;

/// A request body type, with the size limit it is read under.
pub trait BodyLimit {
    /// The most bytes accepted; `server.max_body_bytes` unless the body type says
    /// otherwise.
    fn limit(server: &ServerSettings) -> u64 {
        server.max_body_bytes
    }
}

/// A JSON object body, checked into `T` (the limit comes from the settings in force).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + BodyLimit> FromRequest<ApiState> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Problem> {
        let limit = T::limit(&state.app.live().settings.server);
        let (parts, body) = request.into_parts();
        read_json(&parts.headers, body, limit).await.map(JsonBody)
    }
}

/// A JSON object body kept as its checked text, for a handler that reads it with
/// [`JsonText::parse`] into a type borrowing from it (a mailing's recipients stay slices
/// of the body, not 200,000 copies); the limit is `L`'s.
pub struct JsonText<L> {
    text: Bytes,
    limit: std::marker::PhantomData<fn() -> L>,
}

impl<L> JsonText<L> {
    /// Deserialises `T`, borrowing from the text; a value that does not fit is a 422
    /// naming its field.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Problem> {
        from_json(&self.text, "")
    }
}

impl<L: BodyLimit> FromRequest<ApiState> for JsonText<L> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Problem> {
        let limit = L::limit(&state.app.live().settings.server);
        let (parts, body) = request.into_parts();
        let text = read_json_text(&parts.headers, body, limit).await?;
        Ok(JsonText {
            text,
            limit: std::marker::PhantomData,
        })
    }
}

/// Reads at most `limit` bytes of JSON and deserialises it into `T`.
async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body, limit: u64) -> Result<T, Problem> {
    let text = read_json_text(headers, body, limit).await?;
    from_json(&text, "")
}

/// Reads at most `limit` bytes of a JSON object's text, checked to be one.
async fn read_json_text(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, Problem> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json")
            && !essence.to_ascii_lowercase().ends_with("+json")
        {
            return Err(Problem::unsupported_media_type(format!(
                "the body must be application/json, not `{essence}`"
            )));
        }
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|length| length > limit) {
        return Err(Problem::too_large(limit));
    }
    // Read into one buffer of the announced size: collecting the frames first and then
    // joining them would hold a 20 MB mailing twice.
    let mut text = Vec::with_capacity(usize::try_from(length.unwrap_or(0)).unwrap_or(0));
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|e| Problem::bad_request(format!("the body could not be read: {e}")))?;
        if (text.len() + frame.len()) as u64 > limit {
            return Err(Problem::too_large(limit));
        }
        text.extend_from_slice(&frame);
    }
    let bytes = Bytes::from(text);
    if bytes.is_empty() {
        return Err(Problem::bad_request("the body is empty: send a JSON object"));
    }
    // Checked first without building anything (a 20 MB mailing as a `serde_json::Value`
    // takes hundreds of MB), so that broken JSON is a 400 wherever the break is.
    serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::bad_request("the body must be a JSON object"));
    }
    Ok(bytes)
}

/// Deserialises `T` from JSON text already checked to be valid; a value that does not
/// fit is a 422 naming its field, under `prefix` (say `recipients[3]`) if given.
pub(super) fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], prefix: &str) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // Said without where in the text: the field's path names it.
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        let inner = inner.to_string();
        let inner = inner.strip_suffix(&position).unwrap_or(&inner).to_string();
        // A missing field is reported at its parent; name the field itself.
        let missing = backticked(&inner).filter(|_| inner.starts_with("missing field"));
        let field = [prefix, path.as_str(), missing.unwrap_or(".")]
            .into_iter()
            .filter(|part| !part.is_empty() && *part != ".")
            .collect::<Vec<_>>()
            .join(".");
        Problem::invalid(field, inner)
    })
}

/// The first `…` quoted name in a serde message.
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(&message[start..end])
}
