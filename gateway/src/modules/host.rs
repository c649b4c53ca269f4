//! The gateway's side of a module's logging: lines go to `tracing`, tagged with the
//! module's name, at target `gateway::module`.

use std::sync::Arc;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RStr},
};
use plugin_api::{Host, HostLog, HostLog_TO, LogLevel};

#[derive(Clone)]
struct TracingLog {
    module: Arc<str>,
}

impl HostLog for TracingLog {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
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

/// The [`Host`] handed to module `module`.
pub fn host_for(module: &str) -> Host {
    let log = TracingLog {
        module: Arc::from(module),
    };
    Host::new(HostLog_TO::from_ptr(RArc::new(log), TD_Opaque))
}
