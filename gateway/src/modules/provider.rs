//! A started provider, whichever plugin-api its module was built against: the calls of
//! `plugin_api::Provider`, answered for a module of 1.0 or 1.1 through the layout it was
//! built with (`plugin_api::before_1_2`, see there why), with the session methods it
//! does not have answered as their defaults say (no sessions).

use abi_stable::std_types::{RBox, RErr, RNone, ROption, RResult, RVec};
use plugin_api::{
    before_1_2, CallbackReply, CallbackRequest, HttpResponse, ModuleError, OutboundSms, Provider_TO,
    SessionAction_NE, SessionEvent_NE, SessionId, SessionPlan, Step_NE,
};

/// A provider object created by a module library.
pub enum ProviderObject {
    /// Built against this gateway's plugin-api minor version.
    Current(Provider_TO<'static, RBox<()>>),
    /// Built against plugin-api 1.0 or 1.1.
    Before1_2(before_1_2::Provider_TO<'static, RBox<()>>),
}

/// The same call on either kind of provider.
macro_rules! either {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            ProviderObject::Current($p) => $call,
            ProviderObject::Before1_2($p) => $call,
        }
    };
}

impl ProviderObject {
    pub fn send(&self, sms: &OutboundSms) -> RResult<Step_NE, ModuleError> {
        either!(self, p => p.send(sms))
    }

    pub fn send_response(&self, sms: &OutboundSms, response: &HttpResponse) -> RResult<Step_NE, ModuleError> {
        either!(self, p => p.send_response(sms, response))
    }

    pub fn parse_callback(&self, request: &CallbackRequest) -> RResult<CallbackReply, ModuleError> {
        either!(self, p => p.parse_callback(request))
    }

    pub fn self_check(&self) -> RResult<Step_NE, ModuleError> {
        either!(self, p => p.self_check())
    }

    pub fn self_check_response(&self, response: &HttpResponse) -> RResult<Step_NE, ModuleError> {
        either!(self, p => p.self_check_response(response))
    }

    pub fn session_plan(&self) -> ROption<SessionPlan> {
        match self {
            ProviderObject::Current(p) => p.session_plan(),
            ProviderObject::Before1_2(_) => RNone,
        }
    }

    pub fn session_event(
        &self,
        session: SessionId,
        event: &SessionEvent_NE,
    ) -> RResult<RVec<SessionAction_NE>, ModuleError> {
        match self {
            ProviderObject::Current(p) => p.session_event(session, event),
            ProviderObject::Before1_2(_) => RErr(no_sessions()),
        }
    }

    pub fn session_send(
        &self,
        session: SessionId,
        sms: &OutboundSms,
    ) -> RResult<RVec<SessionAction_NE>, ModuleError> {
        match self {
            ProviderObject::Current(p) => p.session_send(session, sms),
            ProviderObject::Before1_2(_) => RErr(no_sessions()),
        }
    }
}

fn no_sessions() -> ModuleError {
    ModuleError::unsupported("the module was built against a plugin-api before 1.2, which has no sessions")
}
