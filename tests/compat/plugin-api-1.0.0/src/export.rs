//! The safe side of the boundary for module authors: a plain Rust trait, and the
//! export that wraps it so that no panic ever crosses into the gateway.

use std::{
    cell::RefCell,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Once,
};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RErr, RResult, RStr},
};

use crate::{
    CallbackReply, CallbackRequest, ErrorKind, Host, HttpResponse, ModuleError, ModuleRoot, ModuleRootRef,
    OutboundSms, Provider, Provider_TO, Step, Step_NE,
};

/// A provider module, written in plain Rust. Export it with
/// [`export_sms_module!`](crate::export_sms_module).
///
/// Only `check_config`, `new` and `send` are required; the rest have defaults that say
/// the module does not support them.
pub trait SmsModule: Sized + Send + Sync + 'static {
    /// The module's name: the `NAME` of its library file `libNAME.so`.
    const NAME: &'static str;
    /// The module's own version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// One line for admins.
    const DESCRIPTION: &'static str;

    /// Checks a configuration blob; the error names the wrong setting and why.
    fn check_config(config: &str) -> Result<(), ModuleError>;

    /// Creates the provider from a blob that `check_config` accepted.
    fn new(config: &str, host: Host) -> Result<Self, ModuleError>;

    /// Starts sending one SMS: returns the provider's id ([`Step::Done`]) or a request
    /// for the gateway to make ([`Step::Http`]).
    fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError>;

    /// Continues a send with the answer to the request of the previous step.
    fn send_response(&self, _sms: &OutboundSms, _response: &HttpResponse) -> Result<Step, ModuleError> {
        Err(ModuleError::unsupported(format!(
            "module `{}` made no HTTP request and expects no response",
            Self::NAME
        )))
    }

    /// Parses a provider callback (inbound SMS, delivery reports).
    fn parse_callback(&self, _request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
        Err(ModuleError::unsupported(format!(
            "module `{}` does not accept callbacks",
            Self::NAME
        )))
    }

    /// Checks that the provider is usable.
    fn self_check(&self) -> Result<Step, ModuleError> {
        Ok(Step::Done {
            result: "configuration accepted".into(),
        })
    }

    /// Continues a self-check with the provider's answer.
    fn self_check_response(&self, _response: &HttpResponse) -> Result<Step, ModuleError> {
        Err(ModuleError::unsupported(format!(
            "module `{}` made no HTTP request and expects no response",
            Self::NAME
        )))
    }
}

/// Exports a type that implements [`SmsModule`] as the library's root module.
///
/// Every call from the gateway into the module goes through `catch_unwind`: a panic
/// becomes a [`ModuleError`] of kind [`ErrorKind::PANICKED`] naming the module.
#[macro_export]
macro_rules! export_sms_module {
    ($module:ty) => {
        // What abi_stable's `#[export_root_module]` generates, spelled with `$crate`
        // paths so that a module needs no direct dependency on abi_stable. The symbol
        // name is abi_stable's `ROOT_MODULE_LOADER_NAME` (a test in plugin-api pins it).
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static __SMS_MODULE_LIB_HEADER: $crate::abi_stable::library::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader($crate::__export_root::<$module>)
            }
            // SAFETY: the constructor returns the root module of type `ModuleRootRef`,
            // the type whose layout the header is built from.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::ModuleRootRef>(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// Builds the root module of `M`. Called once per process by the code that
/// [`export_sms_module!`](crate::export_sms_module) generates.
#[doc(hidden)]
pub fn __export_root<M: SmsModule>() -> ModuleRootRef {
    install_panic_hook();
    ModuleRoot {
        name: RStr::from_str(M::NAME),
        version: RStr::from_str(M::VERSION),
        description: RStr::from_str(M::DESCRIPTION),
        check_config: check_config::<M>,
        new_provider: new_provider::<M>,
    }
    .leak_into_prefix()
}

extern "C" fn check_config<M: SmsModule>(config: RStr<'_>) -> RResult<(), ModuleError> {
    guard::<M, _>("check_config", || M::check_config(config.as_str()))
}

extern "C" fn new_provider<M: SmsModule>(
    config: RStr<'_>,
    host: Host,
) -> RResult<Provider_TO<'static, RBox<()>>, ModuleError> {
    guard::<M, _>("new_provider", || {
        let module = M::new(config.as_str(), host)?;
        Ok(Provider_TO::from_value(Guarded(module), TD_Opaque))
    })
}

/// The provider object handed to the gateway: `M` with every call guarded.
struct Guarded<M>(M);

impl<M: SmsModule> Provider for Guarded<M> {
    fn send(&self, sms: &OutboundSms) -> RResult<Step_NE, ModuleError> {
        guard::<M, _>("send", || self.0.send(sms).map(Step_NE::new))
    }
    fn send_response(&self, sms: &OutboundSms, response: &HttpResponse) -> RResult<Step_NE, ModuleError> {
        guard::<M, _>("send_response", || {
            self.0.send_response(sms, response).map(Step_NE::new)
        })
    }
    fn parse_callback(&self, request: &CallbackRequest) -> RResult<CallbackReply, ModuleError> {
        guard::<M, _>("parse_callback", || self.0.parse_callback(request))
    }
    fn self_check(&self) -> RResult<Step_NE, ModuleError> {
        guard::<M, _>("self_check", || self.0.self_check().map(Step_NE::new))
    }
    fn self_check_response(&self, response: &HttpResponse) -> RResult<Step_NE, ModuleError> {
        guard::<M, _>("self_check_response", || {
            self.0.self_check_response(response).map(Step_NE::new)
        })
    }
}

thread_local! {
    /// Where the last panic on this thread happened, recorded by the module's panic
    /// hook and read back by [`guard`].
    static LAST_PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Inside a module library (which links its own copy of `std`), replaces the default
/// panic hook, which would print to the gateway's stderr, by one that records the
/// location for the error that [`guard`] returns.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
            LAST_PANIC_LOCATION.with(|cell| *cell.borrow_mut() = location);
        }));
    });
}

/// Runs `f`, turning a panic into a [`ModuleError`] of kind [`ErrorKind::PANICKED`].
fn guard<M: SmsModule, T>(
    operation: &str,
    f: impl FnOnce() -> Result<T, ModuleError>,
) -> RResult<T, ModuleError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".to_string());
            let at = LAST_PANIC_LOCATION
                .with(|cell| cell.borrow_mut().take())
                .map(|location| format!(" at {location}"))
                .unwrap_or_default();
            RErr(ModuleError::new(
                ErrorKind::PANICKED,
                format!("module `{}` panicked in {operation}{at}: {what}", M::NAME),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_macro_uses_abi_stables_symbol_name() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader",
            "abi_stable changed its root-module symbol: update export_sms_module!"
        );
    }
}
