//! Requests that a provider makes to the gateway: inbound SMS and delivery reports.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

use crate::Header;

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
}
