//! `--callback BODY [--callback-header K:V]... --expect delivered|undelivered|inbound`:
//! a callback the provider really sends, handed to the module's parser as the gateway
//! would hand it over (nothing is posted anywhere), and the event checked to be the
//! one the provider meant.

use plugin_api::{CallbackEvent, CallbackReply, CallbackRequest, DeliveryStatus, Header};

use super::{panicked, Outcome};
use crate::modules::{CallError, Module};

/// What the callback should become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Expected {
    /// A delivery report saying the SMS reached the handset.
    Delivered,
    /// A delivery report saying it never will.
    Undelivered,
    /// An SMS sent to the operator's number.
    Inbound,
}

/// A callback as the provider sends it.
#[derive(Debug, Clone)]
pub struct CallbackCheck {
    pub body: String,
    /// As given; a `Content-Type` is guessed from the body when none is.
    pub headers: Vec<(String, String)>,
    /// Without the `?`, as the provider calls the URL.
    pub query: String,
    pub expect: Expected,
}

/// Parses `NAME:VALUE` (`--callback-header X-Token:abc`), the value trimmed.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("`{text}` is not a header: write it NAME:VALUE")),
    }
}

impl CallbackCheck {
    /// The request the gateway would hand the module for this callback to `module`'s
    /// callback URL, and a line saying what it holds.
    fn request(&self, module: &str) -> (CallbackRequest, String) {
        let mut headers: Vec<Header> = self
            .headers
            .iter()
            .map(|(name, value)| Header::new(name.as_str(), value.as_str()))
            .collect();
        let mut guessed = String::new();
        if !headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("content-type"))
        {
            let body = self.body.trim_start();
            let content_type = if body.starts_with('{') || body.starts_with('[') {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            guessed = format!(" (Content-Type {content_type}, guessed from the body)");
            headers.push(Header::new("Content-Type", content_type));
        }
        let path = format!("/v1/providers/{module}/callback");
        let shown = format!(
            "POST {path}{}{} with {} header(s) and {} bytes{guessed}",
            if self.query.is_empty() { "" } else { "?" },
            self.query,
            headers.len(),
            self.body.len()
        );
        let request = CallbackRequest {
            method: "POST".into(),
            path: path.as_str().into(),
            query: self.query.as_str().into(),
            headers: headers.into(),
            body: self.body.as_bytes().to_vec().into(),
        };
        (request, shown)
    }

    /// Runs the callback through `module`; the outcome and what it saw.
    pub async fn run(&self, module: &Module) -> (Outcome, Vec<String>) {
        let (request, shown) = self.request(module.name());
        let mut details = vec![shown];
        let reply = match module.parse_callback(request).await {
            Ok(reply) => reply,
            Err(error) if panicked(&error) => return (Outcome::Fail(error.to_string()), details),
            Err(CallError::Module { error, .. }) => {
                return (
                    Outcome::Fail(format!(
                        "the module refused it ({error}), so the gateway would answer the provider with an error \
                         and record nothing"
                    )),
                    details,
                )
            }
            Err(error) => return (Outcome::Fail(error.to_string()), details),
        };
        details.push(answer(&reply));
        let count = reply.events.len();
        let mut events = Vec::new();
        for event in reply.events {
            match event.into_enum() {
                Ok(event) => events.push(event),
                Err(_) => {
                    return (
                        Outcome::Fail(
                            "it holds an event this gateway does not know (is the module newer?)".into(),
                        ),
                        details,
                    )
                }
            }
        }
        details.extend(events.iter().map(describe));
        let outcome = match events.iter().find(|event| self.is_expected(event)) {
            Some(event) => match missing(event) {
                Some(reason) => Outcome::Fail(reason),
                None => Outcome::Pass(describe(event)),
            },
            None if count == 0 => Outcome::Fail(format!(
                "the module accepted it but gave no event, where {} was expected",
                self.wanted()
            )),
            None => Outcome::Fail(format!(
                "{} was expected, but the module made {}",
                self.wanted(),
                events.iter().map(describe).collect::<Vec<_>>().join("; ")
            )),
        };
        (outcome, details)
    }

    fn is_expected(&self, event: &CallbackEvent) -> bool {
        match (self.expect, event) {
            (Expected::Delivered, CallbackEvent::DeliveryReport { status, .. }) => {
                *status == DeliveryStatus::DELIVERED
            }
            (Expected::Undelivered, CallbackEvent::DeliveryReport { status, .. }) => {
                *status == DeliveryStatus::UNDELIVERED
            }
            (Expected::Inbound, CallbackEvent::Inbound { .. }) => true,
            _ => false,
        }
    }

    fn wanted(&self) -> &'static str {
        match self.expect {
            Expected::Delivered => "a delivery report saying delivered",
            Expected::Undelivered => "a delivery report saying undelivered",
            Expected::Inbound => "an inbound SMS",
        }
    }
}

/// What the gateway would need and the event lacks.
fn missing(event: &CallbackEvent) -> Option<String> {
    match event {
        CallbackEvent::DeliveryReport {
            provider_id,
            message_id,
            ..
        } if provider_id.trim().is_empty()
            && message_id
                .as_ref()
                .into_option()
                .is_none_or(|id| id.trim().is_empty()) =>
        {
            Some(
                "the report names neither the provider's id nor the gateway's, so it cannot be matched to its SMS"
                    .into(),
            )
        }
        CallbackEvent::Inbound { from, .. } if from.trim().is_empty() => {
            Some("the inbound SMS has no sender (`from`), so the app cannot tell who wrote".into())
        }
        _ => None,
    }
}

/// An event as the check shows it.
fn describe(event: &CallbackEvent) -> String {
    match event {
        CallbackEvent::DeliveryReport {
            provider_id,
            message_id,
            status,
            detail,
        } => {
            let status = match *status {
                DeliveryStatus::DELIVERED => "delivered".to_string(),
                DeliveryStatus::UNDELIVERED => "undelivered".to_string(),
                DeliveryStatus::IN_PROGRESS => "in progress".to_string(),
                DeliveryStatus(other) => format!("status {other}"),
            };
            let message_id = match message_id.as_ref().into_option() {
                Some(id) => format!("message id {:?}", id.as_str()),
                None => "no message id".to_string(),
            };
            format!(
                "delivery report: {status}, provider id {:?}, {message_id}, detail {:?}",
                provider_id.as_str(),
                detail.as_str()
            )
        }
        CallbackEvent::Inbound {
            from,
            to,
            text,
            provider_id,
        } => format!(
            "inbound SMS from {:?} to {:?}, provider id {:?}: {:?}",
            from.as_str(),
            to.as_str(),
            provider_id.as_str(),
            text.as_str()
        ),
        other => format!("{other:?}"),
    }
}

/// What the gateway would answer the provider.
fn answer(reply: &CallbackReply) -> String {
    let body = if reply.body.is_empty() {
        "an empty body".to_string()
    } else {
        format!("{} ({})", plugin_api::excerpt(&reply.body), reply.content_type)
    };
    format!("the provider would be answered HTTP {} with {body}", reply.status)
}
