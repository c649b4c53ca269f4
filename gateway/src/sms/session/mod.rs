//! Sessions (plugin-api 1.2): the connections the gateway holds open for a module that
//! asked for them with a `SessionPlan`, and sending SMS over them.
//!
//! A [`SessionPool`] belongs to one started module (one generation: a reload that
//! switches modules starts a new pool, and the old one ends its sessions politely once
//! the last send handed to it is done). It keeps `sessions` connections
//! ([`connection`]), reconnecting each with backoff; an SMS is handed to whichever ready
//! session has room in its window first, and [`SessionPool::send`] waits for its
//! outcome, so the delivery worker settles it through its lease exactly as an HTTP send.
//! Inbound SMS and delivery reports found on a session go to [`apply_events`], the path
//! of a provider's callback.

mod connection;
mod transport;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use plugin_api::{CallbackEvent_NE, OutboundSms, SessionId, SessionPlan};
use tokio::{
    sync::{mpsc, oneshot, Mutex},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    metrics::Metrics,
    modules::{
        steps::{SelfCheck, StepRecord},
        CallError, Module,
    },
};

/// Where the inbound SMS and delivery reports of every session go.
pub type EventSender = mpsc::UnboundedSender<CallbackEvent_NE>;

/// SMS waiting for a session, beyond those in the sessions' windows.
const QUEUE: usize = 1024;

/// Why an SMS sent over a session has no provider id.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// The module refused it, or the provider answered with an error.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The session ended while the SMS was pending: the provider may or may not have it.
    #[error("module `{module}`: the session ended before the provider answered: {reason}")]
    Lost { module: String, reason: String },
    /// No answer in time (no session ready, or the provider is slow).
    #[error(
        "module `{module}`: no outcome within {after:?} (no session ready, or no answer from the provider)"
    )]
    NoOutcome { module: String, after: Duration },
    /// No session is ready, and the last attempt to open one failed: said at once
    /// rather than after the time limit (a *Send test* shows a refused bind this way).
    #[error("module `{module}`: no session is ready: {reason}")]
    NotReady { module: String, reason: String },
    /// The pool is ending (a reload replaced the module, or the gateway stops).
    #[error("module `{module}`: its sessions are closing")]
    Closing { module: String },
}

impl SessionError {
    pub fn is_transient(&self) -> bool {
        match self {
            SessionError::Call(error) => error.is_transient(),
            SessionError::Lost { .. }
            | SessionError::NoOutcome { .. }
            | SessionError::NotReady { .. }
            | SessionError::Closing { .. } => true,
        }
    }
}

/// One SMS handed to the pool, and where its outcome goes.
struct SendRequest {
    sms: OutboundSms,
    reply: oneshot::Sender<Result<String, SessionError>>,
}

/// What a pool's sessions share.
struct Shared {
    module: Module,
    plan: SessionPlan,
    queue: Mutex<mpsc::Receiver<SendRequest>>,
    events: EventSender,
    metrics: SessionMetrics,
    connect_timeout: Duration,
    /// How long a session has to end politely once asked.
    close_grace: Duration,
    /// Sessions ready now.
    ready: AtomicUsize,
    /// Why the last session that never became ready ended; cleared when one is ready.
    last_failure: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn new(
        module: Module,
        plan: SessionPlan,
        queue: mpsc::Receiver<SendRequest>,
        events: EventSender,
        metrics: Option<Arc<Metrics>>,
        limits: SessionLimits,
    ) -> Shared {
        Shared {
            module,
            plan,
            queue: Mutex::new(queue),
            events,
            metrics: SessionMetrics(metrics),
            connect_timeout: limits.connect,
            close_grace: limits.close_grace,
            ready: AtomicUsize::new(0),
            last_failure: std::sync::Mutex::new(None),
        }
    }

    /// A session became ready (`true`) or a ready one ended (`false`).
    fn ready_changed(&self, ready: bool) {
        if ready {
            self.ready.fetch_add(1, Ordering::SeqCst);
            *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        } else {
            self.ready.fetch_sub(1, Ordering::SeqCst);
        }
        self.metrics
            .connected(self.module.name(), if ready { 1 } else { -1 });
    }

    /// A session ended before it was ready, for this reason.
    fn failed(&self, reason: &str) {
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
    }

    /// Why no session is ready, if none is and the last attempt failed.
    fn not_ready(&self) -> Option<String> {
        if self.ready.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Time limits of a pool, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Connecting (and the TLS handshake): `sms.http_timeout_ms`.
    pub connect: Duration,
    /// From handing an SMS to the pool to its outcome.
    pub outcome: Duration,
    /// Ending a session politely: `server.shutdown_grace_ms`.
    pub close_grace: Duration,
}

/// The sessions of one started module.
pub struct SessionPool {
    module_name: String,
    shared: Arc<Shared>,
    queue: mpsc::Sender<SendRequest>,
    stop: CancellationToken,
    tasks: std::sync::Mutex<Option<JoinSet<()>>>,
    outcome_within: Duration,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("module", &self.module_name)
            .finish()
    }
}

impl SessionPool {
    /// Opens `plan.sessions` sessions for `module` (on the current runtime).
    pub fn start(
        module: Module,
        plan: SessionPlan,
        limits: SessionLimits,
        events: EventSender,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<SessionPool> {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let module_name = module.name().to_string();
        let sessions = plan.sessions.max(1);
        let plan = SessionPlan {
            window: plan.window.max(1),
            ..plan
        };
        tracing::info!(module = %module_name, host = %plan.host, port = plan.port, tls = plan.tls, sessions, window = plan.window, "opening sessions");
        let shared = Arc::new(Shared::new(module, plan, waiting, events, metrics, limits));
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for id in 0..sessions {
            tasks.spawn(connection::run(shared.clone(), SessionId(id), stop.clone()));
        }
        Arc::new(SessionPool {
            module_name,
            shared: shared.clone(),
            queue,
            stop,
            tasks: std::sync::Mutex::new(Some(tasks)),
            outcome_within: limits.outcome,
        })
    }

    /// Sends `sms` over the first session with room, and waits for its outcome.
    pub async fn send(&self, sms: OutboundSms) -> Result<String, SessionError> {
        let deadline = tokio::time::Instant::now() + self.outcome_within;
        let no_outcome = || SessionError::NoOutcome {
            module: self.module_name.clone(),
            after: self.outcome_within,
        };
        let closing = || SessionError::Closing {
            module: self.module_name.clone(),
        };
        if self.stop.is_cancelled() {
            return Err(closing());
        }
        if let Some(reason) = self.shared.not_ready() {
            return Err(SessionError::NotReady {
                module: self.module_name.clone(),
                reason,
            });
        }
        let (reply, outcome) = oneshot::channel();
        tokio::time::timeout_at(deadline, self.queue.send(SendRequest { sms, reply }))
            .await
            .map_err(|_| no_outcome())?
            .map_err(|_| closing())?;
        match tokio::time::timeout_at(deadline, outcome).await {
            Err(_) => Err(no_outcome()),
            Ok(Err(_)) => Err(closing()),
            Ok(Ok(outcome)) => outcome,
        }
    }

    /// Ends every session politely (the module unbinds once its pending sends are
    /// answered) and waits for them, each within the close grace.
    pub async fn close(&self) {
        self.stop.cancel();
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
        // SMS handed over while the sessions were ending go back to the queue, to be
        // sent by whichever module is in force now.
        let mut waiting = self.shared.queue.lock().await;
        waiting.close();
        while let Ok(request) = waiting.try_recv() {
            let _ = request.reply.send(Err(SessionError::Closing {
                module: self.module_name.clone(),
            }));
        }
    }
}

impl Drop for SessionPool {
    /// The generation is over (a reload replaced the module, and the last send handed
    /// to it is done): its sessions end politely on their own.
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(mut tasks) = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            tasks.detach_all();
        }
    }
}

/// The module's self-check over a session: opens one session of its own, waits until
/// the module says it is ready (bound) or ends it (a refused bind, with the provider's
/// status in the reason), then ends it politely.
pub async fn self_check(module: &Module, plan: SessionPlan, limits: SessionLimits) -> SelfCheck {
    let (events, _dropped) = mpsc::unbounded_channel();
    let (_no_sends, waiting) = mpsc::channel(1);
    let address = format!(
        "{}://{}:{}",
        if plan.tls { "tls" } else { "tcp" },
        plan.host,
        plan.port
    );
    let shared = Shared::new(module.clone(), plan, waiting, events, None, limits);
    let started = Instant::now();
    let stop = CancellationToken::new();
    // A number no pool session has: the module keeps its state apart.
    let id = SessionId(u32::MAX);
    let run = connection::open_and_serve(&shared, id, &stop, connection::Purpose::Check);
    let ended = match tokio::time::timeout(limits.outcome, run).await {
        Ok(ended) => ended,
        Err(_) => connection::Ended {
            ready: false,
            reason: format!("no session ready within {:?}", limits.outcome),
            closed_by_module: false,
        },
    };
    let step = StepRecord {
        method: "SESSION".into(),
        url: address.clone(),
        status: None,
        duration_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        error: (!ended.ready).then(|| ended.reason.clone()),
    };
    let (result, error) = if ended.ready {
        (Some(format!("session with {address} ready, then ended")), None)
    } else {
        (
            None,
            Some(format!("module `{}`: {}", module.name(), ended.reason)),
        )
    };
    SelfCheck {
        ok: error.is_none(),
        module: module.name().to_string(),
        steps: vec![step],
        result,
        error,
    }
}

/// Applies the inbound SMS and delivery reports found on sessions, as a provider's
/// callback would be, until `stop`.
pub async fn apply_events(
    app: Arc<App>,
    mut events: mpsc::UnboundedReceiver<CallbackEvent_NE>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let live = app.live();
        if let Err(error) = super::inbound::apply(&app, &live, vec![event]).await {
            tracing::error!(%error, "cannot store what a session delivered");
        }
    }
}

/// The pool's metrics, when the gateway keeps them.
struct SessionMetrics(Option<Arc<Metrics>>);

impl SessionMetrics {
    fn connected(&self, module: &str, change: i64) {
        if let Some(metrics) = &self.0 {
            metrics
                .sessions_ready
                .get_or_create(&module_label(module))
                .inc_by(change);
        }
    }
    fn outstanding(&self, module: &str, change: i64) {
        if let Some(metrics) = &self.0 {
            metrics
                .session_sends_pending
                .get_or_create(&module_label(module))
                .inc_by(change);
        }
    }
    fn reconnect(&self, module: &str) {
        if let Some(metrics) = &self.0 {
            metrics
                .session_reconnects
                .get_or_create(&module_label(module))
                .inc();
        }
    }
}

fn module_label(module: &str) -> crate::metrics::ModuleLabels {
    crate::metrics::ModuleLabels {
        module: module.to_string(),
    }
}
