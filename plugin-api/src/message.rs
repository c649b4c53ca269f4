//! An outbound SMS as the module receives it, and the steps of sending it.

use abi_stable::{
    std_types::{RBox, RString, RVec},
    StableAbi,
};

/// One SMS for the module to send. Everything here has been checked by the gateway;
/// what is left to the module is the provider's format.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct OutboundSms {
    /// The gateway's message id, as its API returned it to the app. Providers that
    /// accept a client reference should be given it, so that a delivery report can
    /// be matched even when the provider's own id is lost.
    pub id: RString,
    /// The recipient in E.164, always with its `+` (`+447700900123`): national numbers
    /// have had the default country code put in front, and a number that is not a
    /// phone number never reaches the module. A provider that wants bare digits gets
    /// `sms.to.trim_start_matches('+')`.
    pub to: RString,
    /// Never empty, and already checked: an alphanumeric sender ID (1 to 11 ASCII
    /// letters and digits, at least one letter) or a number in E.164 with its `+`.
    /// Whether the provider lets the account use it is the provider's to say.
    pub sender: RString,
    /// The text as the app sent it: UTF-8, not blank, at most 1600 characters (any
    /// Unicode, emoji included). Splitting it into parts and the encoding on the air
    /// (GSM 7-bit or UCS-2) are the provider's business; a provider that must be told
    /// (a `unicode` flag, a `coding` field) or wants another character set is told or
    /// given it by the module.
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

/// The value of the first header called `name`, compared without regard to case (as
/// HTTP compares header names).
pub(crate) fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
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
    /// An answer with this status and body and no headers: what a module's tests hand
    /// to `send_response`, as the provider's documentation shows it.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse {
            status,
            headers: RVec::new(),
            body: body.into().into(),
        }
    }

    /// The same answer with one more header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.push(Header::new(name, value));
        self
    }

    /// The first header with this name (compared without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
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

impl Step {
    /// Asks the gateway to perform `request` and to call back with the answer.
    pub fn http(request: HttpRequest) -> Step {
        Step::Http(RBox::new(request))
    }

    /// Finished with `result`: for a send, the provider's message id.
    pub fn done(result: impl Into<String>) -> Step {
        Step::Done {
            result: RString::from(result.into()),
        }
    }

    /// The request of an [`Http`](Step::Http) step; for tests.
    pub fn as_http(&self) -> Option<&HttpRequest> {
        match self {
            Step::Http(request) => Some(request),
            _ => None,
        }
    }

    /// The result of a [`Done`](Step::Done) step; for tests.
    pub fn as_done(&self) -> Option<&str> {
        match self {
            Step::Done { result } => Some(result),
            _ => None,
        }
    }
}
