//! One session: a connection kept open for a module, reconnected with backoff, and the
//! loop that feeds the module what happens on it and does what it answers.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use plugin_api::{SessionAction, SessionEvent, SessionId};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    transport::{self, Stream},
    SendRequest, SessionError, Shared,
};

/// The longest wait between two attempts to connect.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first wait, doubled after each attempt that did not reach `Ready`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Bytes read from a connection at once.
const READ_CHUNK: usize = 64 * 1024;

/// What a session is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// One of a pool's sessions: takes sends until told to stop.
    Pool,
    /// A self-check: ends itself as soon as it is ready.
    Check,
}

/// How a connection ended.
pub(super) struct Ended {
    /// Whether the module said `Ready` on it.
    pub ready: bool,
    /// Why it ended, for the log (and for a self-check that never got ready, the
    /// verdict): the module's `Close` reason, its error, or the connection's.
    pub reason: String,
    /// Whether it ended as asked (a `Close` after `Closing`, or the module's own `Close`).
    pub closed_by_module: bool,
}

/// Keeps session `id` open until `stop`: connects, serves, and after every end tells
/// the module and waits before connecting again (longer after each failure).
pub(super) async fn run(shared: Arc<Shared>, id: SessionId, stop: CancellationToken) {
    let mut failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let ended = open_and_serve(&shared, id, &stop, Purpose::Pool).await;
        if stop.is_cancelled() && ended.closed_by_module {
            tracing::info!(module = shared.module.name(), session = id.0, "session closed");
            return;
        }
        failures = if ended.ready {
            0
        } else {
            failures.saturating_add(1)
        };
        shared.metrics.reconnect(shared.module.name());
        let wait = FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(failures.min(16)))
            .min(MAX_BACKOFF);
        tracing::warn!(module = shared.module.name(), session = id.0, reason = %ended.reason, reconnect_in = ?wait, "session ended");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Connects once and serves the connection to its end; tells the module it ended.
pub(super) async fn open_and_serve(
    shared: &Shared,
    id: SessionId,
    stop: &CancellationToken,
    purpose: Purpose,
) -> Ended {
    let stream = match transport::connect(&shared.plan, shared.connect_timeout).await {
        Ok(stream) => stream,
        Err(reason) => {
            shared.failed(&reason);
            return Ended {
                ready: false,
                reason,
                closed_by_module: false,
            };
        }
    };
    let mut connection = Connection {
        shared,
        id,
        stream,
        purpose,
        ready: false,
        held: VecDeque::new(),
        pending: HashMap::new(),
        paused_until: None,
        timer: None,
        closing_deadline: None,
        close: None,
    };
    let ended = connection.serve(stop).await;
    connection.fail_pending(&ended.reason);
    if connection.ready {
        shared.ready_changed(false);
    } else {
        shared.failed(&ended.reason);
    }
    let _ = connection.stream.shutdown().await;
    let disconnected = SessionEvent::Disconnected {
        reason: ended.reason.as_str().into(),
    };
    if let Err(error) = shared.module.session_event(id, disconnected).await {
        tracing::debug!(module = shared.module.name(), session = id.0, %error, "module's answer to the disconnection");
    }
    ended
}

/// One open connection and what the gateway knows of its session.
struct Connection<'a> {
    shared: &'a Shared,
    id: SessionId,
    stream: Stream,
    purpose: Purpose,
    /// The module said `Ready`: sends may go.
    ready: bool,
    /// Sends the module did not take yet, because it asked to pause first.
    held: VecDeque<SendRequest>,
    /// Sends handed to the module and not yet answered, by the gateway's SMS id.
    pending: HashMap<String, oneshot::Sender<Result<String, SessionError>>>,
    /// No sends before this (the module asked to pause).
    paused_until: Option<Instant>,
    /// When the module wants its `Timer`.
    timer: Option<Instant>,
    /// Set once the gateway has asked the module to end the session: by then it must
    /// have answered `Close`.
    closing_deadline: Option<Instant>,
    /// The module asked to close, for this reason.
    close: Option<String>,
}

impl Connection<'_> {
    async fn serve(&mut self, stop: &CancellationToken) -> Ended {
        let mut buffer = vec![0u8; READ_CHUNK];
        if let Err(reason) = self.event(SessionEvent::Connected).await {
            return self.ended(reason, false);
        }
        loop {
            if let Some(reason) = self.close.take() {
                return self.ended(reason, true);
            }
            // A self-check's session has shown what it had to once ready: end it.
            if self.purpose == Purpose::Check && self.ready {
                if let Err(reason) = self.begin_closing().await {
                    return self.ended(reason, false);
                }
            }
            let now = Instant::now();
            let paused = self.paused_until.is_some_and(|until| until > now);
            let may_send = self.purpose == Purpose::Pool
                && self.ready
                && self.closing_deadline.is_none()
                && !paused
                && self.pending.len() < self.shared.plan.window as usize;
            let room = (self.shared.plan.window as usize).saturating_sub(self.pending.len());
            if may_send && !self.held.is_empty() {
                let kept = self.held.drain(..room.min(self.held.len())).collect();
                if let Err(reason) = self.send(kept).await {
                    return self.ended(reason, false);
                }
                continue;
            }
            let far = now + Duration::from_secs(86_400);
            tokio::select! {
                read = self.stream.read(&mut buffer) => {
                    let outcome = match read {
                        Ok(0) => Err("the provider closed the connection".to_string()),
                        Ok(n) => self.event(SessionEvent::Received(buffer[..n].to_vec().into())).await,
                        Err(error) => Err(format!("reading from the connection failed: {error}")),
                    };
                    if let Err(reason) = outcome {
                        return self.ended(reason, false);
                    }
                }
                _ = tokio::time::sleep_until(self.timer.unwrap_or(far)), if self.timer.is_some() => {
                    self.timer = None;
                    if let Err(reason) = self.event(SessionEvent::Timer).await {
                        return self.ended(reason, false);
                    }
                }
                _ = tokio::time::sleep_until(self.paused_until.unwrap_or(far)), if paused => {
                    self.paused_until = None;
                }
                requests = next_sends(self.shared, room), if may_send => match requests {
                    Some(requests) => {
                        if let Err(reason) = self.send(requests).await {
                            return self.ended(reason, false);
                        }
                    }
                    None => {
                        if let Err(reason) = self.begin_closing().await {
                            return self.ended(reason, false);
                        }
                    }
                },
                _ = stop.cancelled(), if self.closing_deadline.is_none() => {
                    if let Err(reason) = self.begin_closing().await {
                        return self.ended(reason, false);
                    }
                }
                _ = tokio::time::sleep_until(self.closing_deadline.unwrap_or(far)), if self.closing_deadline.is_some() => {
                    let reason = format!("the module did not end the session within {:?}", self.shared.close_grace);
                    return self.ended(reason, false);
                }
            }
        }
    }

    fn ended(&self, reason: String, closed_by_module: bool) -> Ended {
        Ended {
            ready: self.ready,
            reason,
            closed_by_module,
        }
    }

    /// Asks the module to end the session (unbind), once.
    async fn begin_closing(&mut self) -> Result<(), String> {
        if self.closing_deadline.is_some() {
            return Ok(());
        }
        self.closing_deadline = Some(Instant::now() + self.shared.close_grace);
        self.event(SessionEvent::Closing).await
    }

    /// Tells the module `event` and does what it answers. An error ends the session.
    async fn event(&mut self, event: SessionEvent) -> Result<(), String> {
        let actions = self
            .shared
            .module
            .session_event(self.id, event)
            .await
            .map_err(|error| error.to_string())?;
        self.apply(actions).await
    }

    /// Hands SMS to the module, all in one call to its thread; each is pending until
    /// its `Sent`.
    /// Those the module did not take (it asked to pause first) are kept, to go first
    /// once the session may send again.
    async fn send(&mut self, requests: Vec<SendRequest>) -> Result<(), String> {
        let batch = requests.iter().map(|request| request.sms.clone()).collect();
        let answers = self.shared.module.session_send_batch(self.id, batch).await;
        let mut actions = Vec::new();
        let mut not_taken = Vec::new();
        for (request, answer) in requests.into_iter().zip(answers) {
            match answer {
                Some(Ok(more)) => {
                    self.pending.insert(request.sms.id.to_string(), request.reply);
                    self.shared.metrics.outstanding(self.shared.module.name(), 1);
                    actions.extend(more);
                }
                Some(Err(error)) => {
                    let _ = request.reply.send(Err(SessionError::Call(error)));
                }
                None => not_taken.push(request),
            }
        }
        for request in not_taken.into_iter().rev() {
            self.held.push_front(request);
        }
        self.apply(actions).await
    }

    /// Does what the module answered; what it asked to write goes out in one write.
    async fn apply(&mut self, actions: Vec<SessionAction>) -> Result<(), String> {
        let mut out: Vec<u8> = Vec::new();
        for action in actions {
            match action {
                SessionAction::Write(bytes) => {
                    if out.is_empty() {
                        out = bytes.into_vec();
                    } else {
                        out.extend_from_slice(&bytes);
                    }
                }
                SessionAction::Timer { ms } => {
                    self.timer = Some(Instant::now() + Duration::from_millis(ms));
                }
                SessionAction::Ready => {
                    if !self.ready {
                        self.ready = true;
                        self.shared.ready_changed(true);
                        tracing::info!(
                            module = self.shared.module.name(),
                            session = self.id.0,
                            "session ready"
                        );
                    }
                }
                SessionAction::Pause { ms } => {
                    self.paused_until = Some(Instant::now() + Duration::from_millis(ms));
                }
                SessionAction::Close { reason } => {
                    self.close = Some(reason.into_string());
                }
                SessionAction::Sent { sms_id, result } => {
                    if let Some(reply) = self.pending.remove(sms_id.as_str()) {
                        self.shared.metrics.outstanding(self.shared.module.name(), -1);
                        let outcome = result.into_result().map(|id| id.into_string()).map_err(|error| {
                            SessionError::Call(crate::modules::CallError::Module {
                                module: self.shared.module.name().to_string(),
                                error,
                            })
                        });
                        let _ = reply.send(outcome);
                    }
                }
                SessionAction::Event(event) => {
                    let _ = self
                        .shared
                        .events
                        .send(abi_stable::std_types::RBox::into_inner(event));
                }
                _ => return Err("the module answered with an action this gateway does not know".into()),
            }
        }
        if !out.is_empty() {
            self.stream
                .write_all(&out)
                .await
                .map_err(|e| format!("writing to the connection failed: {e}"))?;
        }
        self.stream
            .flush()
            .await
            .map_err(|e| format!("writing to the connection failed: {e}"))
    }

    /// Sends still pending when the connection ended: the provider may or may not have
    /// them; they are failed as transient, so they are retried (at most a window's
    /// worth may reach the provider twice). Those kept back are failed the same way.
    fn fail_pending(&mut self, reason: &str) {
        for request in self.held.drain(..) {
            let _ = request.reply.send(Err(SessionError::Lost {
                module: self.shared.module.name().to_string(),
                reason: reason.to_string(),
            }));
        }
        for (_, reply) in self.pending.drain() {
            self.shared.metrics.outstanding(self.shared.module.name(), -1);
            let _ = reply.send(Err(SessionError::Lost {
                module: self.shared.module.name().to_string(),
                reason: reason.to_string(),
            }));
        }
    }
}

/// The next SMS waiting for any of the pool's sessions, and those waiting behind it,
/// `room` at most; `None` once the pool is gone.
async fn next_sends(shared: &Shared, room: usize) -> Option<Vec<SendRequest>> {
    let mut requests = Vec::new();
    let received = shared
        .queue
        .lock()
        .await
        .recv_many(&mut requests, room.max(1))
        .await;
    (received > 0).then_some(requests)
}
