//! Idempotency keys: one key, one request.
//!
//! A client that repeats a request (a timeout, a retry) with the same `Idempotency-Key`
//! gets the id of what the first one created, and nothing is sent twice. The key stands
//! for one request, not for one id: the same key on another endpoint, or with another
//! body, is a mistake of the client's, which the store refuses
//! ([`StoreError::IdempotencyKeyReused`](super::StoreError::IdempotencyKeyReused)) instead of
//! answering with something the request did not create, as the IETF Idempotency-Key
//! draft describes. Keys are kept as long as finished messages (`storage.retention`).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A request's idempotency key, with what identifies the request it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The key, already scoped to the caller (two callers' keys never collide).
    pub key: String,
    /// The operation, as `POST /v1/sms`.
    pub endpoint: &'static str,
    /// [`body_digest`] of the request.
    pub body_digest: String,
}

impl Idempotency {
    /// The key `key` of a request to `endpoint` with `body`.
    pub fn new(key: String, endpoint: &'static str, body: &impl Serialize) -> Idempotency {
        Idempotency {
            key,
            endpoint,
            body_digest: body_digest(body),
        }
    }

    /// Whether this request is the one the key was first used for (on `endpoint`, with a
    /// body digested as `digest`), so that what that request created, `created_id`, is
    /// the answer. A key stored before bodies were digested (`None`) matches on its
    /// endpoint alone.
    pub fn repeats(
        &self,
        endpoint: String,
        digest: Option<&str>,
        created_id: String,
    ) -> Result<String, super::StoreError> {
        let same_endpoint = endpoint == self.endpoint;
        let same_body = digest.is_none_or(|digest| digest == self.body_digest);
        if same_endpoint && same_body {
            Ok(created_id)
        } else {
            Err(super::StoreError::IdempotencyKeyReused {
                endpoint,
                same_endpoint,
            })
        }
    }
}

/// SHA-256 (hex) of `body` serialised as compact JSON with its object keys sorted: the
/// same request digests the same whatever its whitespace or key order.
pub fn body_digest(body: &impl Serialize) -> String {
    let value = serde_json::to_value(body).unwrap_or(serde_json::Value::Null);
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `value` as compact JSON with every object's keys in byte order. Done here
/// rather than left to `serde_json::Value`, whose order depends on a crate feature that
/// any other dependency may turn on.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by_key(|(key, _)| *key);
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::body_digest;

    #[test]
    fn whitespace_and_key_order_do_not_change_the_digest() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"to": "+44", "text": "hi", "n": {"b": 1, "a": 2}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str("{ \"n\":{\"a\":2,\"b\":1},\n\"text\":\"hi\",\"to\":\"+44\" }").unwrap();
        assert_eq!(body_digest(&a), body_digest(&b));
        let c: serde_json::Value =
            serde_json::from_str(r#"{"to": "+44", "text": "hi!", "n": {"b": 1, "a": 2}}"#).unwrap();
        assert_ne!(body_digest(&a), body_digest(&c));
        assert_eq!(body_digest(&a).len(), 64);
    }
}
