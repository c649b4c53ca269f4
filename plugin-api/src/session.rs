//! Sessions (since 1.2): long-lived connections that the gateway holds open for a
//! module whose provider speaks a session protocol (SMPP, UCP/EMI, CIMD) instead of
//! one HTTP request per SMS.
//!
//! The module stays sans-IO. It says once, in [`SessionPlan`], where to connect, how
//! many connections to keep and how many sends each may have outstanding. The gateway
//! opens them (TCP, or TLS with its own roots), reconnects with backoff, and hands the
//! module each thing that happens on a session as a [`SessionEvent`]; the module
//! answers with [`SessionAction`]s: bytes to write, a timer to be called back on, that
//! the session is ready for sends, that it should be closed, the outcome of an SMS sent
//! earlier, or an inbound SMS or delivery report. State that lives as long as a
//! connection (a sequence number, the sends awaiting an answer) is the module's, kept
//! per [`SessionId`] behind a lock.
//!
//! ```text
//! gateway                                  module                        provider
//!   | session_plan()  ─────────────────────▶ |                               |
//!   | ◀─ host, port, tls, sessions, window ─ |                               |
//!   | connect ──────────────────────────────────────────────────────────────▶ |
//!   | session_event(0, Connected) ─────────▶ |                               |
//!   | ◀────────── [Write(bind), Timer(30s)] ─ |                               |
//!   | write bind ───────────────────────────────────────────────────────────▶ |
//!   | ◀───────────────────────────────────────────────────────── bind_resp ─ |
//!   | session_event(0, Received(bytes)) ───▶ |                               |
//!   | ◀──────────────────────────── [Ready] ─ |                               |
//!   | session_send(0, sms) ────────────────▶ |                               |
//!   | ◀───────────────── [Write(submit_sm)] ─ |  (the send is pending)        |
//!   | write submit_sm ──────────────────────────────────────────────────────▶ |
//!   | ◀──────────────────────────────────────────────────── submit_sm_resp ─ |
//!   | session_event(0, Received(bytes)) ───▶ |                               |
//!   | ◀────────── [Sent { sms_id, Ok(id) }] ─ |  (settled like an HTTP send)  |
//!   | ◀───────────────────────────────────────────────── deliver_sm (report) ─ |
//!   | session_event(0, Received(bytes)) ───▶ |                               |
//!   | ◀───── [Write(deliver_sm_resp), Event(DeliveryReport)] ─               |
//!   | session_event(0, Timer) ─────────────▶ |  (keep-alive)                 |
//!   | ◀──────────── [Write(enquire_link), Timer(30s)] ─                       |
//!   | session_event(0, Closing) ───────────▶ |  (stop, reload, self-check)   |
//!   | ◀────────────────────── [Write(unbind)] ─                               |
//!   | ◀───────────────────────────────────────────────────────── unbind_resp ─ |
//!   | session_event(0, Received(bytes)) ───▶ |                               |
//!   | ◀──────────────────────────── [Close] ─ |                               |
//!   | close ────────────────────────────────────────────────────────────────▶ |
//! ```

use abi_stable::{
    std_types::{RBox, RResult, RString, RVec},
    StableAbi,
};

use crate::{CallbackEvent, CallbackEvent_NE, ModuleError};

/// Where and how the gateway connects for a module, returned by
/// [`Provider::session_plan`](crate::Provider::session_plan).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// A host name or an IP address.
    pub host: RString,
    pub port: u16,
    /// TLS from the first byte, verified against the gateway's trusted roots.
    pub tls: bool,
    /// How many sessions to keep open at once (at least 1).
    pub sessions: u32,
    /// The most sends the gateway lets one session have pending (at least 1): it
    /// calls [`session_send`](crate::Provider::session_send) on a session only while
    /// fewer of that session's sends await their [`SessionAction::Sent`].
    pub window: u32,
}

/// Which session an event or a send is for. The gateway numbers the sessions of one
/// plan `0..sessions`; a number is reused when its session reconnects (after
/// [`SessionEvent::Disconnected`] and a new [`SessionEvent::Connected`]). A self-check
/// opens its own session, with a number of its own.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// What happened on a session, as the gateway tells the module.
///
/// Crosses the boundary as [`SessionEvent_NE`]; a module meets an event of a kind its
/// plugin-api does not know (from a newer gateway) as nothing to do, and
/// [`SmsModule`](crate::SmsModule)'s export answers it with no actions.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum SessionEvent {
    /// The connection is open (and TLS established): start the session (bind, log in).
    /// Whatever the module knew of an earlier connection with this id is stale.
    Connected,
    /// Bytes read from the connection, as they came: a protocol data unit may be split
    /// across events, or several may arrive in one.
    Received(RVec<u8>),
    /// The timer the module asked for with [`SessionAction::Timer`] is due.
    Timer,
    /// The gateway wants this session to end (it stops, a reload replaced the module,
    /// a self-check is done): end it politely (unbind) and answer
    /// [`SessionAction::Close`] when done. Sends already pending may still be answered;
    /// no new ones come. The gateway closes the connection itself if that takes too long.
    Closing,
    /// The connection is gone (closed by the provider, an I/O error, a time limit).
    /// Sends still pending on it are failed by the gateway as transient; the module
    /// forgets the session's state.
    Disconnected { reason: RString },
}

/// What the module wants done on a session, answered to an event or a send, in order.
///
/// Crosses the boundary as [`SessionAction_NE`]. A gateway that meets an action it
/// does not know (from a newer module) closes the session with an error that says the
/// gateway is older than the module.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 16], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum SessionAction {
    /// Write these bytes to the connection.
    Write(RVec<u8>),
    /// Call back with [`SessionEvent::Timer`] after this many milliseconds, replacing
    /// any timer set before (keep-alives, answer time limits).
    Timer { ms: u64 },
    /// The session is established (bound): sends may go.
    Ready,
    /// Send nothing on this session for this many milliseconds (the provider asked
    /// to slow down, or a rate cap was reached). Pending sends are not affected.
    Pause { ms: u64 },
    /// Close the connection once the bytes before it are written. For a session that
    /// never became ready (a refused bind), `reason` is the error an admin is shown.
    Close { reason: RString },
    /// The outcome of a send that [`session_send`](crate::Provider::session_send)
    /// accepted: the provider's message id, or an error whose kind says whether a retry
    /// can help.
    Sent {
        /// The gateway's id of the SMS ([`OutboundSms::id`](crate::OutboundSms::id)).
        sms_id: RString,
        result: RResult<RString, ModuleError>,
    },
    /// An inbound SMS or a delivery report, taken as if it came in a provider's
    /// callback.
    Event(RBox<CallbackEvent_NE>),
}

impl SessionAction {
    /// Writes these bytes.
    pub fn write(bytes: impl Into<Vec<u8>>) -> SessionAction {
        SessionAction::Write(bytes.into().into())
    }

    /// The send of SMS `sms_id` ended with `result`.
    pub fn sent(sms_id: impl Into<String>, result: Result<String, ModuleError>) -> SessionAction {
        SessionAction::Sent {
            sms_id: RString::from(sms_id.into()),
            result: result.map(RString::from).into(),
        }
    }

    /// Closes the session, for this reason.
    pub fn close(reason: impl Into<String>) -> SessionAction {
        SessionAction::Close {
            reason: RString::from(reason.into()),
        }
    }

    /// An inbound SMS or a delivery report.
    pub fn event(event: CallbackEvent) -> SessionAction {
        SessionAction::Event(RBox::new(CallbackEvent_NE::new(event)))
    }

    /// The bytes of a [`Write`](SessionAction::Write); for tests.
    pub fn as_write(&self) -> Option<&[u8]> {
        match self {
            SessionAction::Write(bytes) => Some(bytes),
            _ => None,
        }
    }
}
