//! The gateway's side of a module's logging: lines go to `tracing`, tagged with the
//! module's name, at target `gateway::module`.

use std::sync::Arc;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RStr},
};
use plugin_api::{before_1_2, Host, HostLog, HostLog_TO, LogLevel};

#[derive(Clone)]
struct TracingLog {
    module: Arc<str>,
}

impl TracingLog {
    fn write(&self, level: LogLevel, message: RStr<'_>) {
        let module = &*self.module;
        let message = message.as_str();
        match level {
            LogLevel::ERROR => tracing::error!(target: "gateway::module", module, "{message}"),
            LogLevel::WARN => tracing::warn!(target: "gateway::module", module, "{message}"),
            LogLevel::DEBUG => tracing::debug!(target: "gateway::module", module, "{message}"),
            LogLevel::TRACE => tracing::trace!(target: "gateway::module", module, "{message}"),
            _ => tracing::info!(target: "gateway::module", module, "{message}"),
        }
    }
}

impl HostLog for TracingLog {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.write(level, message);
    }

    fn plugin_api_version(&self) -> RStr<'static> {
        RStr::from_str(plugin_api::PLUGIN_API_VERSION)
    }
}

impl before_1_2::HostLog for TracingLog {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.write(level, message);
    }
}

/// The [`Host`] handed to module `module`.
pub fn host_for(module: &str) -> Host {
    let log = TracingLog {
        module: Arc::from(module),
    };
    Host::new(HostLog_TO::from_ptr(RArc::new(log), TD_Opaque))
}

/// The same, for a module built against plugin-api 1.0 or 1.1.
pub fn host_before_1_2_for(module: &str) -> before_1_2::Host {
    let log = TracingLog {
        module: Arc::from(module),
    };
    before_1_2::Host::new(before_1_2::HostLog_TO::from_ptr(RArc::new(log), TD_Opaque))
}
