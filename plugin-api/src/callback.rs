//! Requests that a provider makes to the gateway: inbound SMS and delivery reports.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

use crate::{message::find_header, Header};

/// A provider's HTTP request to `POST /v1/providers/{module}/callback`, as received.
/// The module checks its authenticity (a signature header, a shared secret).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    pub method: RString,
    pub path: RString,
    /// The query string without the `?`, still percent-encoded.
    pub query: RString,
    pub headers: RVec<Header>,
    pub body: RVec<u8>,
}

impl CallbackRequest {
    /// A `POST` with this body, no headers, no query and an empty path: what a
    /// module's tests build, as the provider's documentation shows a callback.
    pub fn post(body: impl Into<Vec<u8>>) -> CallbackRequest {
        CallbackRequest {
            method: "POST".into(),
            path: RString::new(),
            query: RString::new(),
            headers: RVec::new(),
            body: body.into().into(),
        }
    }

    /// The same request with one more header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> CallbackRequest {
        self.headers.push(Header::new(name, value));
        self
    }

    /// The same request with this query string (without the `?`, percent-encoded).
    #[must_use]
    pub fn with_query(mut self, query: &str) -> CallbackRequest {
        self.query = query.into();
        self
    }

    /// The first header called `name`, compared without regard to case (as HTTP
    /// compares header names; proxies change their case).
    ///
    /// ```
    /// use plugin_api::CallbackRequest;
    ///
    /// let request = CallbackRequest::post(r#"{"id": "m-1"}"#).with_header("x-acme-token", "t0k3n");
    /// assert_eq!(request.header("X-Acme-Token"), Some("t0k3n"));
    /// assert_eq!(request.header("X-Other"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// How far a message got, as a provider's delivery report says.
///
/// A gateway that meets a status it does not know records the report's text and
/// leaves the message's status as it was.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryStatus(pub u8);

impl DeliveryStatus {
    /// The handset received it.
    pub const DELIVERED: Self = DeliveryStatus(0);
    /// It will not be delivered (expired, rejected by the network, unknown number).
    pub const UNDELIVERED: Self = DeliveryStatus(1);
    /// An intermediate report (queued at the provider, sent to the network).
    pub const IN_PROGRESS: Self = DeliveryStatus(2);
}

/// One thing a callback told the gateway.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 24], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum CallbackEvent {
    /// An SMS sent by a phone to one of the operator's numbers. `from` is as the
    /// provider gave it; the gateway normalises it to E.164.
    Inbound {
        from: RString,
        to: RString,
        text: RString,
        provider_id: RString,
    },
    /// The fate of a message the gateway sent. `provider_id` is what `send` returned;
    /// `message_id` is the gateway's id when the provider echoes the client reference.
    DeliveryReport {
        provider_id: RString,
        message_id: ROption<RString>,
        status: DeliveryStatus,
        /// The provider's own words (an error code, a status name), for the admin.
        detail: RString,
    },
}

impl CallbackEvent {
    /// A [`DeliveryReport`](CallbackEvent::DeliveryReport), with the gateway's id
    /// when the provider echoed it.
    ///
    /// ```
    /// use plugin_api::{CallbackEvent, DeliveryStatus};
    ///
    /// let reference: Option<String> = Some("01J9ZQ3MSG".into());
    /// let event = CallbackEvent::delivery_report("acme-42", reference.as_deref(), DeliveryStatus::DELIVERED, "DELIVRD");
    /// assert!(matches!(event, CallbackEvent::DeliveryReport { status: DeliveryStatus::DELIVERED, .. }));
    /// ```
    pub fn delivery_report(
        provider_id: impl Into<String>,
        message_id: Option<&str>,
        status: DeliveryStatus,
        detail: impl Into<String>,
    ) -> CallbackEvent {
        CallbackEvent::DeliveryReport {
            provider_id: RString::from(provider_id.into()),
            message_id: message_id.map(RString::from).into(),
            status,
            detail: RString::from(detail.into()),
        }
    }
}

/// What the module makes of a callback: the events in it, and what the gateway must
/// answer the provider (some providers expect a particular body).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct CallbackReply {
    pub events: RVec<CallbackEvent_NE>,
    /// The HTTP status to answer with, usually 200.
    pub status: u16,
    pub content_type: RString,
    pub body: RString,
}

impl CallbackReply {
    /// A `200` with an empty body carrying these events.
    pub fn ok(events: Vec<CallbackEvent>) -> Self {
        CallbackReply {
            events: events.into_iter().map(CallbackEvent_NE::new).collect(),
            status: 200,
            content_type: RString::from("text/plain"),
            body: RString::new(),
        }
    }

    /// The same reply with this body, for providers that expect one (Twilio wants
    /// TwiML).
    #[must_use]
    pub fn with_body(mut self, content_type: &str, body: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self.body = RString::from(body.into());
        self
    }

    /// The events, as plain [`CallbackEvent`]s; for tests. An event of a kind this
    /// version of plugin-api does not know (from a newer module) is left out.
    pub fn into_events(self) -> Vec<CallbackEvent> {
        self.events
            .into_iter()
            .filter_map(|event| event.into_enum().ok())
            .collect()
    }
}
