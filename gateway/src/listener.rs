//! The HTTP listener: accepts connections and serves the API on each with hyper's
//! HTTP/1, holding the limits that keep a flood of slow or idle clients from taking
//! every descriptor (issue 9, defect 10):
//!
//! - **headers in time**: a client has `server.header_read_timeout_ms` to send a
//!   request's headers, counted from the request's first byte, or from connecting
//!   for a connection's first request, so a client sending a byte a second is cut
//!   off;
//! - **idle keep-alive**: a connection with no request in flight for
//!   `server.idle_timeout_ms` is closed;
//! - **a cap on open connections**: `server.max_connections`, lowered to what the
//!   descriptor limit allows ([`connection_cap`]). Past it, a new connection gets a
//!   quick 503 and is closed, while the open ones go on being served.
//!
//! hyper's own `header_read_timeout` is left off: its clock starts whenever a
//! connection waits for a request, idle keep-alive included, so it would also close
//! every idle connection at the header limit. [`Activity`] tells the two apart.

use std::{
    io,
    net::SocketAddr,
    pin::{pin, Pin},
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, Semaphore},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::logging::Throttle;

/// Descriptors kept for everything that is not an HTTP connection: the store's files,
/// SMTP and module connections, the runtime's own, and a few to accept-and-refuse
/// with when the cap is reached.
const RESERVED_DESCRIPTORS: u64 = 128;

/// How long accepting pauses after the descriptor limit was hit, so that a flood
/// does not spin the accept loop while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often a flood (refusals at the cap, accept errors) may write a log line.
const FLOOD_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a client at the cap reads before the connection closes.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 139\r\n\
\r\n\
{\"type\":\"/problems/unavailable\",\"title\":\"Service unavailable\",\"status\":503,\"detail\":\"the gateway has too many open connections; try again\"}";

/// The time limits of one connection, read when it is accepted (so a reload applies
/// to new connections).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
}

/// The most connections to hold open: `configured`, or fewer when the descriptor
/// limit (`ulimit -n`) would run out first. Returns the cap and the limit it was
/// measured against, if any.
pub fn connection_cap(configured: u32) -> (usize, Option<u64>) {
    let limit = descriptor_limit();
    let allowed = limit.map(|limit| {
        if limit > 2 * RESERVED_DESCRIPTORS {
            limit - RESERVED_DESCRIPTORS
        } else {
            (limit / 2).max(1)
        }
    });
    let cap = allowed.map_or(u64::from(configured), |allowed| {
        allowed.min(u64::from(configured))
    });
    (usize::try_from(cap).unwrap_or(usize::MAX), limit)
}

#[cfg(unix)]
fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

/// Serves `router` on `listener` until `stop` is cancelled, then stops accepting and
/// returns once every open connection has finished its request in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    limits: impl Fn() -> Limits,
    stop: CancellationToken,
) {
    let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
    let at_cap = Throttle::new(FLOOD_LOG_INTERVAL);
    let accept_failed = Throttle::new(FLOOD_LOG_INTERVAL);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                on_accept_error(&error, &accept_failed).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Refused now rather than left in the backlog, where the client would wait
            // for a connection that may not come.
            let _ = stream.try_write(REFUSAL);
            if let Some(held_back) = at_cap.allow() {
                tracing::warn!(
                    max_connections,
                    refused_since_last_line = held_back,
                    "too many open connections: refusing new ones with 503 (server.max_connections, ulimit -n)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = connection(stream, peer, router.clone(), limits(), stop.clone());
        tokio::spawn(async move {
            connection.await;
            drop(slot);
        });
    }
    // Closing the listening socket makes new clients fail at once instead of waiting.
    drop(listener);
    let open = max_connections - slots.available_permits();
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish their requests");
    }
    let _ = slots.acquire_many(max_connections as u32).await;
}

/// Logs an accept error (at most once per interval in a flood) and, when the
/// descriptor limit is the cause, pauses accepting briefly.
async fn on_accept_error(error: &io::Error, throttle: &Throttle) {
    // The client gave up before it was accepted: nothing to say.
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    let out_of_descriptors = error.raw_os_error().is_some_and(is_descriptor_limit);
    if let Some(held_back) = throttle.allow() {
        if out_of_descriptors {
            tracing::error!(
                %error,
                failed_since_last_line = held_back,
                "cannot accept connections: the descriptor limit is reached (ulimit -n); \
                 serving the open ones and retrying"
            );
        } else {
            tracing::error!(%error, failed_since_last_line = held_back, "cannot accept a connection");
        }
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// EMFILE (this process) or ENFILE (the whole system).
fn is_descriptor_limit(code: i32) -> bool {
    #[cfg(unix)]
    {
        let code = rustix::io::Errno::from_raw_os_error(code);
        code == rustix::io::Errno::MFILE || code == rustix::io::Errno::NFILE
    }
    #[cfg(not(unix))]
    {
        let _ = code;
        false
    }
}

/// Serves one connection until the client closes it, a time limit closes it, or the
/// gateway stops (then the request in flight is finished first).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = service_fn({
        let activity = activity.clone();
        move |mut request: Request<Incoming>| {
            // Handlers and the auth guard learn the client's address as axum's
            // `ConnectInfo`, as `into_make_service_with_connect_info` would give it.
            request.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = activity.request_started();
            let response = router.clone().call(request.map(Body::new));
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        }
    });
    let mut builder = http1::Builder::new();
    // Explicitly off (see the module's doc); set without a timer it would panic.
    builder.header_read_timeout(None);
    let mut served = pin!(builder.serve_connection(io, service));
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(limits);
        let limit_reached = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            _ = activity.changed.notified() => {}
            _ = limit_reached => {
                // Activity may have moved the deadline while we slept.
                if let Some((at, why)) = activity.deadline(limits) {
                    if at <= Instant::now() {
                        tracing::debug!(%peer, "closing the connection: {why}");
                        return;
                    }
                }
            }
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What one connection is doing, as the time limits need it.
struct Activity {
    state: Mutex<ActivityState>,
    /// Woken when a request starts or ends, or a request's first byte arrives: each
    /// moves the deadline.
    changed: Notify,
}

struct ActivityState {
    /// Requests handed to the router and not answered yet.
    in_flight: usize,
    /// Requests answered on this connection.
    answered: u64,
    /// When the connection last had nothing in flight: accepted, or its last answer.
    idle_since: Instant,
    /// The first byte read since then: a request's headers are arriving.
    first_byte: Option<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                answered: 0,
                idle_since: Instant::now(),
                first_byte: None,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // The state is a few plain fields, consistent after every statement.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.state().in_flight += 1;
        self.changed.notify_one();
        InFlight(self.clone())
    }

    fn bytes_read(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.first_byte.is_none() {
            state.first_byte = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// When the connection must close, and why; `None` while a request is in flight
    /// (handlers hold their own time limits).
    fn deadline(&self, limits: Limits) -> Option<(Instant, &'static str)> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        Some(match state.first_byte {
            Some(first) => (first + limits.header_read, "the request's headers took too long"),
            None if state.answered == 0 => (
                state.idle_since + limits.header_read,
                "no request within the header time limit",
            ),
            None => (state.idle_since + limits.idle, "idle keep-alive connection"),
        })
    }
}

/// A request in flight; dropped when its answer is ready.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight -= 1;
        state.answered += 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.first_byte = None;
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

/// The connection's socket, telling [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], 503);
    }

    #[test]
    fn the_cap_leaves_descriptors_for_the_rest_of_the_gateway() {
        let (cap, limit) = connection_cap(u32::MAX);
        if let Some(limit) = limit {
            assert!(
                (cap as u64) < limit,
                "cap {cap} with a descriptor limit of {limit}"
            );
        }
        assert_eq!(connection_cap(3).0, 3);
    }
}
