//! A started module, and the one way the gateway calls into it.
//!
//! Module calls are synchronous by contract (see `plugin-api`'s "Who does the I/O"),
//! so each runs on tokio's blocking pool and never on the async runtime. The gateway
//! stops waiting after `sms.call_timeout_ms`; the thread of a call that hangs is lost
//! until the module returns, so the calls in flight into one module are capped, and a
//! module that hangs on every call ends up failing its calls by timeout instead of
//! taking the gateway's threads.

use std::{sync::Arc, time::Duration};

use abi_stable::std_types::{ROk, RResult, RVec};
use plugin_api::{
    CallbackReply, CallbackRequest, HttpResponse, ModuleError, OutboundSms, SessionAction, SessionAction_NE,
    SessionEvent, SessionEvent_NE, SessionId, SessionPlan, Step, Step_NE,
};
use tokio::sync::Semaphore;

use super::{provider::ProviderObject, Library, LoadError, ModuleInfo};
use crate::metrics::Metrics;

/// Records a call's duration when dropped, however the call ended.
struct RecordCall<'a> {
    metrics: &'a Metrics,
    module: &'a str,
    operation: &'static str,
    started: std::time::Instant,
}

impl Drop for RecordCall<'_> {
    fn drop(&mut self) {
        self.metrics
            .module_call(self.module, self.operation, self.started.elapsed());
    }
}

/// Calls into one module that may be in flight at once (and threads it may hold).
const MAX_CALLS_IN_FLIGHT: usize = 64;

/// A module library with a provider created from a configuration blob.
#[derive(Clone)]
pub struct Module {
    info: ModuleInfo,
    provider: Arc<ProviderObject>,
    call_timeout: Duration,
    permits: Arc<Semaphore>,
    /// Where call durations are recorded, once the gateway has said.
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("info", &self.info).finish()
    }
}

/// Why a call into a module gave no answer the gateway can use.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The module answered with an error.
    #[error("module `{module}`: {error}")]
    Module { module: String, error: ModuleError },
    /// The module did not answer in time.
    #[error("module `{module}` did not finish {operation} within {after:?}")]
    Timeout {
        module: String,
        operation: &'static str,
        after: Duration,
    },
    /// The module is newer than the gateway and answered with something unknown.
    #[error("module `{module}` answered {operation} with a step this gateway does not know (is the module newer than the gateway?)")]
    UnknownStep { module: String, operation: &'static str },
    /// The same, for a session action (plugin-api 1.2).
    #[error("module `{module}` answered {operation} with a session action this gateway does not know (is the module newer than the gateway?)")]
    UnknownAction { module: String, operation: &'static str },
    /// The blocking thread of the call failed (a bug in the gateway, not the module).
    #[error("module `{module}`: the call thread of {operation} failed: {reason}")]
    Thread {
        module: String,
        operation: &'static str,
        reason: String,
    },
}

impl CallError {
    /// Whether the same call later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Module { error, .. } => error.is_transient(),
            CallError::Timeout { .. } | CallError::Thread { .. } => true,
            CallError::UnknownStep { .. } | CallError::UnknownAction { .. } => false,
        }
    }
}

impl Module {
    /// Checks `blob` and creates the provider. Blocking: call it off the runtime.
    pub fn start(library: &Library, blob: &str, call_timeout: Duration) -> Result<Module, LoadError> {
        let info = library.info().clone();
        let provider = library.start(blob)?;
        Ok(Module {
            info,
            provider: Arc::new(provider),
            call_timeout,
            permits: Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)),
            metrics: None,
        })
    }

    /// Records the duration of every call into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Module {
        self.metrics = Some(metrics);
        self
    }

    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Starts sending one SMS.
    pub async fn send(&self, sms: OutboundSms) -> Result<Step, CallError> {
        let ne = self.call("send", move |p| p.send(&sms)).await?;
        self.step(ne, "send")
    }

    /// Continues a send with the provider's HTTP answer.
    pub async fn send_response(&self, sms: OutboundSms, response: HttpResponse) -> Result<Step, CallError> {
        let ne = self
            .call("send_response", move |p| p.send_response(&sms, &response))
            .await?;
        self.step(ne, "send_response")
    }

    /// Hands a provider's callback to the module.
    pub async fn parse_callback(&self, request: CallbackRequest) -> Result<CallbackReply, CallError> {
        self.call("parse_callback", move |p| p.parse_callback(&request))
            .await
    }

    /// Starts the module's self-check.
    pub async fn self_check(&self) -> Result<Step, CallError> {
        let ne = self.call("self_check", |p| p.self_check()).await?;
        self.step(ne, "self_check")
    }

    /// Continues a self-check with the provider's HTTP answer.
    pub async fn self_check_response(&self, response: HttpResponse) -> Result<Step, CallError> {
        let ne = self
            .call("self_check_response", move |p| p.self_check_response(&response))
            .await?;
        self.step(ne, "self_check_response")
    }

    /// The sessions the module wants held open (plugin-api 1.2), or `None` for a module
    /// that sends over HTTP (every module built against 1.0 or 1.1).
    pub async fn session_plan(&self) -> Result<Option<SessionPlan>, CallError> {
        let plan = self.call("session_plan", |p| ROk(p.session_plan())).await?;
        Ok(plan.into_option())
    }

    /// Tells the module what happened on `session`; returns what it wants done.
    pub async fn session_event(
        &self,
        session: SessionId,
        event: SessionEvent,
    ) -> Result<Vec<SessionAction>, CallError> {
        let event = SessionEvent_NE::new(event);
        let actions = self
            .call("session_event", move |p| p.session_event(session, &event))
            .await?;
        self.actions(actions, "session_event")
    }

    /// Hands `sms` to the module to send over `session`: pending until a
    /// [`SessionAction::Sent`] for it.
    pub async fn session_send(
        &self,
        session: SessionId,
        sms: OutboundSms,
    ) -> Result<Vec<SessionAction>, CallError> {
        let actions = self
            .call("session_send", move |p| p.session_send(session, &sms))
            .await?;
        self.actions(actions, "session_send")
    }

    fn actions(
        &self,
        actions: RVec<SessionAction_NE>,
        operation: &'static str,
    ) -> Result<Vec<SessionAction>, CallError> {
        let mut known = Vec::with_capacity(actions.len());
        for action in actions {
            match action.into_enum() {
                Ok(action) => known.push(action),
                Err(_) => {
                    return Err(CallError::UnknownAction {
                        module: self.info.name.clone(),
                        operation,
                    })
                }
            }
        }
        Ok(known)
    }

    /// Runs `f` against the provider on a blocking thread, within the time limit.
    async fn call<T, F>(&self, operation: &'static str, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&ProviderObject) -> RResult<T, ModuleError> + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let timeout = || CallError::Timeout {
            module: self.info.name.clone(),
            operation,
            after: self.call_timeout,
        };
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| timeout())?
            .expect("the semaphore is never closed");
        let provider = self.provider.clone();
        let started = std::time::Instant::now();
        let task = tokio::task::spawn_blocking(move || {
            let result = f(&provider);
            drop(permit);
            result
        });
        let _record = self.metrics.as_ref().map(|metrics| RecordCall {
            metrics,
            module: &self.info.name,
            operation,
            started,
        });
        match tokio::time::timeout_at(deadline, task).await {
            Err(_) => Err(timeout()),
            Ok(Err(join_error)) => Err(CallError::Thread {
                module: self.info.name.clone(),
                operation,
                reason: join_error.to_string(),
            }),
            Ok(Ok(RResult::ROk(value))) => Ok(value),
            Ok(Ok(RResult::RErr(error))) => Err(CallError::Module {
                module: self.info.name.clone(),
                error,
            }),
        }
    }

    fn step(&self, ne: Step_NE, operation: &'static str) -> Result<Step, CallError> {
        ne.into_enum().map_err(|_| CallError::UnknownStep {
            module: self.info.name.clone(),
            operation,
        })
    }
}
