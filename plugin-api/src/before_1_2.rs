//! The layouts of plugin-api 1.0 and 1.1, frozen, for the gateway to load the modules
//! built against them. Not for modules.
//!
//! abi_stable checks a library's types against the loader's, and for a prefix type (a
//! root module, a `#[sabi_trait]` vtable) it accepts a library with *more* entries than
//! the loader knows, never fewer: a gateway whose `Provider` has the session methods of
//! 1.2 refuses a 1.0 module's vtable with "too many fields" (the compatibility tests
//! pin this). So each minor version that adds entries keeps the previous layout here,
//! under the same type names (abi_stable compares names, not module paths), and the
//! gateway checks a library that says it was built against an older minor version
//! against these types instead.
//!
//! Only the types whose layout 1.2 changed are copied: [`ModuleRoot`], [`Provider`],
//! [`HostLog`] and the [`Host`] that holds it. Everything else (`OutboundSms`, `Step`,
//! `CallbackReply`, …) is the same type in both.

// abi_stable's derives and #[sabi_trait] expand to impls inside constants.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, RResult, RStr},
    StableAbi,
};

use crate::{CallbackReply, CallbackRequest, HttpResponse, LogLevel, ModuleError, OutboundSms, Step_NE};

/// The root module of 1.0 and 1.1.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ModuleRootRef)))]
#[sabi(missing_field(panic))]
pub struct ModuleRoot {
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    pub description: RStr<'static>,
    pub check_config: extern "C" fn(config: RStr<'_>) -> RResult<(), ModuleError>,
    #[sabi(last_prefix_field)]
    pub new_provider:
        extern "C" fn(config: RStr<'_>, host: Host) -> RResult<Provider_TO<'static, RBox<()>>, ModuleError>,
}

impl RootModule for ModuleRootRef {
    declare_root_module_statics! {ModuleRootRef}
    const BASE_NAME: &'static str = "sms_module";
    const NAME: &'static str = "sms_module";
    const VERSION_STRINGS: VersionStrings = VersionStrings {
        version: RStr::from_str("1.1.0"),
    };
}

/// The provider of 1.0 and 1.1: HTTP steps and callbacks, no sessions.
#[sabi_trait]
pub trait Provider: Send + Sync {
    fn send(&self, sms: &OutboundSms) -> RResult<Step_NE, ModuleError>;
    fn send_response(&self, sms: &OutboundSms, response: &HttpResponse) -> RResult<Step_NE, ModuleError>;
    fn parse_callback(&self, request: &CallbackRequest) -> RResult<CallbackReply, ModuleError>;
    fn self_check(&self) -> RResult<Step_NE, ModuleError>;
    #[sabi(last_prefix_field)]
    fn self_check_response(&self, response: &HttpResponse) -> RResult<Step_NE, ModuleError>;
}

/// The host's log of 1.0 and 1.1.
#[sabi_trait]
pub trait HostLog: Send + Sync + Clone {
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

/// The host of 1.0 and 1.1.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct Host {
    log: HostLog_TO<'static, RArc<()>>,
}

impl Host {
    pub fn new(log: HostLog_TO<'static, RArc<()>>) -> Self {
        Host { log }
    }
}
