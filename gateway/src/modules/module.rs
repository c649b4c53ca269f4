//! A started module, and the one way the gateway calls into it.
//!
//! Module calls are synchronous by contract (see `plugin-api`'s "Who does the I/O"),
//! so each runs on the module's own threads ([`super::calls`]) and never on the async
//! runtime. The gateway stops waiting after `sms.call_timeout_ms`; the thread of a call
//! that hangs is lost until the module returns, so the threads one module may hold are
//! capped, and a module that hangs on every call ends up failing its calls by timeout
//! instead of taking the gateway's threads.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use super::{calls::CallThreads, provider::ProviderObject, Library, LoadError, ModuleInfo};
use crate::metrics::Metrics;
use abi_stable::std_types::{ROk, RResult, RVec};
use plugin_api::{
    CallbackReply, CallbackRequest, HttpResponse, ModuleError, OutboundSms, SessionAction, SessionAction_NE,
    SessionEvent, SessionEvent_NE, SessionId, SessionPlan, Step, Step_NE,
};

/// What the thread running a batch of sends shares with its caller.
struct BatchProgress {
    answers: std::sync::Mutex<Vec<Option<RResult<Step_NE, ModuleError>>>>,
    /// When the last answer came, in µs since `epoch`.
    last_answer_us: AtomicU64,
    /// Set by the caller once it gave up: no further SMS is handed over.
    stop: AtomicBool,
    epoch: std::time::Instant,
}

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

/// A module library with a provider created from a configuration blob.
#[derive(Clone)]
pub struct Module {
    info: ModuleInfo,
    threads: Arc<CallThreads>,
    call_timeout: Duration,
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
            threads: Arc::new(CallThreads::new(&info.name, Arc::new(provider))),
            info,
            call_timeout,
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

    /// Starts sending each SMS of `batch`, one after another on one of the module's
    /// threads: one hop for the batch, where [`Module::send`] makes one per SMS. Each
    /// call still has the whole time limit, counted from the previous answer. The
    /// answers are in the order of `batch`; `None` for an SMS never handed to the module,
    /// because a call before it did not answer in time.
    ///
    /// The thread writes each answer into a shared list and wakes the caller once, at
    /// the end (a wake-up per answer cost more than the calls); the caller watches the
    /// time of the last answer to tell a batch that is slow from a call that hangs.
    pub async fn send_batch(&self, batch: Vec<OutboundSms>) -> Vec<Option<Result<Step, CallError>>> {
        let progress = Arc::new(BatchProgress {
            answers: std::sync::Mutex::new((0..batch.len()).map(|_| None).collect()),
            last_answer_us: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            epoch: std::time::Instant::now(),
        });
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let job = progress.clone();
        let (metrics, module) = (self.metrics.clone(), self.info.name.clone());
        self.threads.submit(move |provider| {
            for (n, sms) in batch.iter().enumerate() {
                // The caller gave up (a call before this one hung): stop handing SMS over.
                if job.stop.load(Ordering::Acquire) {
                    return;
                }
                let started = std::time::Instant::now();
                let answer = provider.send(sms);
                if let Some(metrics) = &metrics {
                    metrics.module_call(&module, "send", started.elapsed());
                }
                if let Some(slot) = job.answers.lock().unwrap_or_else(|p| p.into_inner()).get_mut(n) {
                    *slot = Some(answer);
                }
                job.last_answer_us
                    .store(job.epoch.elapsed().as_micros() as u64, Ordering::Release);
            }
            let _ = done.send(());
        });
        let mut finished = finished;
        let mut deadline = tokio::time::Instant::now() + self.call_timeout;
        let complete = loop {
            match tokio::time::timeout_at(deadline, &mut finished).await {
                Ok(result) => break result.is_ok(),
                Err(_) => {
                    let last = Duration::from_micros(progress.last_answer_us.load(Ordering::Acquire));
                    let next = tokio::time::Instant::from_std(progress.epoch + last) + self.call_timeout;
                    if next > tokio::time::Instant::now() {
                        deadline = next;
                        continue;
                    }
                    progress.stop.store(true, Ordering::Release);
                    self.threads.grow_if_stuck();
                    break false;
                }
            }
        };
        let answers = std::mem::take(&mut *progress.answers.lock().unwrap_or_else(|p| p.into_inner()));
        let mut answers: Vec<Option<Result<Step, CallError>>> = answers
            .into_iter()
            .map(|answer| {
                answer.map(|answer| match answer {
                    RResult::ROk(step) => self.step(step, "send"),
                    RResult::RErr(error) => Err(CallError::Module {
                        module: self.info.name.clone(),
                        error,
                    }),
                })
            })
            .collect();
        if !complete {
            // The call after the last answer was cut off (or its thread ended in a panic
            // that escaped the module's guard); those after it were never made.
            let cut = answers
                .iter()
                .rposition(Option::is_some)
                .map_or(0, |last| last + 1);
            if let Some(stuck) = answers.get_mut(cut) {
                *stuck = Some(Err(CallError::Timeout {
                    module: self.info.name.clone(),
                    operation: "send",
                    after: self.call_timeout,
                }));
            }
        }
        answers
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

    /// Hands the SMS of `batch` to the module to send over `session`, in one hop to
    /// the module's thread: each is pending until a [`SessionAction::Sent`] for it.
    /// The answers are in the order of `batch`; `None` for an SMS not handed over
    /// because an answer before it asked to pause (a rate cap) or to close: the
    /// caller keeps it for later. The batch shares one time limit: past it, each SMS
    /// of the batch has the timeout as its answer (the caller treats them as not
    /// sent, and an answer the module gives for one later is ignored).
    pub async fn session_send_batch(
        &self,
        session: SessionId,
        batch: Vec<OutboundSms>,
    ) -> Vec<Option<Result<Vec<SessionAction>, CallError>>> {
        let count = batch.len();
        let (metrics, module) = (self.metrics.clone(), self.info.name.clone());
        let answers = self.threads.call(move |provider| {
            let mut answers = Vec::with_capacity(batch.len());
            for sms in &batch {
                let started = std::time::Instant::now();
                let answer = provider.session_send(session, sms);
                if let Some(metrics) = &metrics {
                    metrics.module_call(&module, "session_send", started.elapsed());
                }
                let stop = matches!(&answer, RResult::ROk(actions) if actions.iter().any(|action| {
                    matches!(action.as_enum(), Ok(SessionAction::Pause { .. } | SessionAction::Close { .. }))
                }));
                answers.push(answer);
                if stop {
                    break;
                }
            }
            answers
        });
        let failed = |error: CallError| (0..count).map(|_| Some(Err(error.clone()))).collect();
        match tokio::time::timeout(self.call_timeout, answers).await {
            Err(_) => {
                self.threads.grow_if_stuck();
                failed(CallError::Timeout {
                    module: self.info.name.clone(),
                    operation: "session_send",
                    after: self.call_timeout,
                })
            }
            Ok(Err(_)) => failed(CallError::Thread {
                module: self.info.name.clone(),
                operation: "session_send",
                reason: "the call's thread ended without an answer".into(),
            }),
            Ok(Ok(answers)) => {
                let mut answers: Vec<_> = answers
                    .into_iter()
                    .map(|answer| {
                        Some(match answer {
                            RResult::ROk(actions) => self.actions(actions, "session_send"),
                            RResult::RErr(error) => Err(CallError::Module {
                                module: self.info.name.clone(),
                                error,
                            }),
                        })
                    })
                    .collect();
                answers.resize_with(count, || None);
                answers
            }
        }
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

    /// Threads the module holds now (one, more while calls are stuck or slow).
    pub fn threads(&self) -> usize {
        self.threads.threads()
    }

    /// Runs `f` against the provider on the module's threads, within the time limit.
    async fn call<T, F>(&self, operation: &'static str, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&ProviderObject) -> RResult<T, ModuleError> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let answer = self.threads.call(f);
        let _record = self.metrics.as_ref().map(|metrics| RecordCall {
            metrics,
            module: &self.info.name,
            operation,
            started,
        });
        match tokio::time::timeout(self.call_timeout, answer).await {
            Err(_) => {
                // Dropping the answer's receiver skips the call if it has not begun.
                self.threads.grow_if_stuck();
                Err(CallError::Timeout {
                    module: self.info.name.clone(),
                    operation,
                    after: self.call_timeout,
                })
            }
            Ok(Err(_)) => Err(CallError::Thread {
                module: self.info.name.clone(),
                operation,
                reason: "the call's thread ended without an answer".into(),
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
