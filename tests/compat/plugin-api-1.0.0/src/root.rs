//! The root module a library exports, and the provider object it creates.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RStr},
    StableAbi,
};

use crate::{CallbackReply, CallbackRequest, Host, HttpResponse, ModuleError, OutboundSms, Step_NE};

/// What a module library exports. Built by [`export_sms_module!`](crate::export_sms_module);
/// read by the gateway through [`ModuleRootRef`].
///
/// A prefix type: later minor versions add fields after `new_provider` only.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ModuleRootRef)))]
#[sabi(missing_field(panic))]
pub struct ModuleRoot {
    /// The module's name; equals `NAME` in the library's file name `libNAME.so`.
    pub name: RStr<'static>,
    /// The module's own version (its crate version), for `gateway modules list`.
    pub version: RStr<'static>,
    /// One line for admins: which provider, which API.
    pub description: RStr<'static>,
    /// Checks a configuration blob without creating anything; the error says which
    /// setting is wrong and why.
    pub check_config: extern "C" fn(config: RStr<'_>) -> RResult<(), ModuleError>,
    /// Creates a provider from a configuration blob.
    #[sabi(last_prefix_field)]
    pub new_provider:
        extern "C" fn(config: RStr<'_>, host: Host) -> RResult<Provider_TO<'static, RBox<()>>, ModuleError>,
}

impl RootModule for ModuleRootRef {
    declare_root_module_statics! {ModuleRootRef}
    const BASE_NAME: &'static str = "sms_module";
    const NAME: &'static str = "sms_module";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// A configured connection to one provider, created by `new_provider`.
///
/// Every method is synchronous, short, CPU-bound work: the gateway calls it on a
/// blocking thread and stops waiting after its time limit. Network I/O is returned as
/// [`Step::Http`](crate::Step::Http) for the gateway to perform.
#[sabi_trait]
pub trait Provider: Send + Sync {
    /// Starts sending one SMS.
    fn send(&self, sms: &OutboundSms) -> RResult<Step_NE, ModuleError>;

    /// Continues a send with the provider's answer to the request of the last step.
    fn send_response(&self, sms: &OutboundSms, response: &HttpResponse) -> RResult<Step_NE, ModuleError>;

    /// Parses a provider's callback into inbound SMS and delivery reports. Refuses
    /// (with an error) a request it cannot authenticate or understand.
    fn parse_callback(&self, request: &CallbackRequest) -> RResult<CallbackReply, ModuleError>;

    /// Starts a self-check: that the configuration is usable (and, through an HTTP
    /// step, that the provider accepts the credentials).
    fn self_check(&self) -> RResult<Step_NE, ModuleError>;

    /// Continues a self-check with the provider's answer.
    #[sabi(last_prefix_field)]
    fn self_check_response(&self, response: &HttpResponse) -> RResult<Step_NE, ModuleError>;
}
