//! An outbound SMS as the module receives it, and the steps of sending it.

use abi_stable::{
    std_types::{RBox, RString, RVec},
    StableAbi,
};

/// One SMS for the module to send. Everything here has been checked by the gateway.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct OutboundSms {
    /// The gateway's message id, as its API returned it to the app. Providers that
    /// accept a client reference should be given it, so that a delivery report can
    /// be matched even when the provider's own id is lost.
    pub id: RString,
    /// The recipient in E.164 (`+447700900123`).
    pub to: RString,
    /// Alphanumeric sender ID (up to 11 letters and digits) or an E.164 number.
    pub sender: RString,
    /// The text, as the app sent it (UTF-8).
    pub text: RString,
    /// 1 for the first try, 2 for the first retry, and so on.
    pub attempt: u32,
}

/// One HTTP header.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: RString,
    pub value: RString,
}

impl Header {
    pub fn new(name: impl Into<RString>, value: impl Into<RString>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A request the gateway performs on the module's behalf (see "Who does the I/O" in
/// the crate docs). Header values may hold credentials: the gateway never logs them.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: RString,
    /// An absolute `http://` or `https://` URL.
    pub url: RString,
    pub headers: RVec<Header>,
    pub body: RVec<u8>,
}

/// The provider's answer to an [`HttpRequest`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: RVec<Header>,
    pub body: RVec<u8>,
}

impl HttpResponse {
    /// The first header with this name (compared without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}

/// What the module wants next. Returned by `send`, `send_response` and `self_check`.
///
/// Crosses the boundary as [`Step_NE`], so that later minor versions can add steps.
/// A gateway that meets a step it does not know fails the call with an error that
/// says the gateway is older than the module.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum Step {
    /// Finished. For a send: the provider's message id. For a self-check: a short
    /// description of what was checked.
    Done { result: RString },
    /// Perform this request and call `send_response` (or `self_check_response`) with
    /// the answer.
    Http(RBox<HttpRequest>),
}
