//! The threads a module's calls run on: the module's own, fed by one queue.
//!
//! Module calls are synchronous by contract and may block, so they never run on the
//! async runtime. They used to hop to tokio's blocking pool, one pool task per call:
//! a thread woken for every call (about 25 µs each here), and as many threads as calls
//! in flight (64 under load). Instead each module has a queue and a few threads of its
//! own. One thread that stays busy takes the calls one after another without sleeping
//! in between, so a burst of sends costs one wake-up, not one per call.
//!
//! **A module that hangs.** The caller stops waiting after its time limit whatever the
//! thread does. A call that has not started when its caller gave up is skipped (so an
//! SMS is never handed to a module after the gateway has counted it as not sent), and
//! while calls wait and no call has finished for [`STUCK_AFTER`], another thread is
//! started, up to [`MAX_THREADS`]: one stuck call holds one thread, never the module's
//! other calls. Threads beyond the first end after [`IDLE_EXIT`] without work.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::oneshot;

use super::provider::ProviderObject;

/// Threads one module may hold at most (each stuck in a call, or working).
pub const MAX_THREADS: usize = 16;
/// With calls waiting, no call finished for this long means every thread is stuck or
/// slow: another one starts.
const STUCK_AFTER: Duration = Duration::from_millis(5);
/// A thread beyond the first ends after this long without a call.
const IDLE_EXIT: Duration = Duration::from_secs(30);
/// How long a thread that just finished a call looks for the next one before it sleeps,
/// while calls come that close together: a sleeping thread costs a wake-up. Calls
/// further apart (a session's sends, each waiting on the network) would only burn a
/// core the gateway's other threads need, so the thread sleeps at once until calls
/// come close together again.
const SPIN: Duration = Duration::from_micros(30);

type Job = Box<dyn FnOnce(&ProviderObject) + Send>;

/// A module's call queue and its threads. Dropping it lets the threads finish the calls
/// queued and end.
pub struct CallThreads {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
}

struct Shared {
    provider: Arc<ProviderObject>,
    jobs: Receiver<Job>,
    /// For thread names and logs.
    module: String,
    threads: AtomicUsize,
    idle: AtomicUsize,
    /// When a call last finished (or a thread last went idle), in µs since `epoch`.
    progress_us: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

impl CallThreads {
    pub fn new(module: &str, provider: Arc<ProviderObject>) -> CallThreads {
        let (jobs, receiver) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            provider,
            jobs: receiver,
            module: module.to_string(),
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            progress_us: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let threads = CallThreads { jobs, shared };
        threads.spawn();
        threads
    }

    /// Queues `f`; the answer arrives on the returned receiver, or the sender is dropped
    /// unanswered when the receiver was dropped before the call began.
    pub fn call<T, F>(&self, f: F) -> oneshot::Receiver<T>
    where
        T: Send + 'static,
        F: FnOnce(&ProviderObject) -> T + Send + 'static,
    {
        let (answer, receiver) = oneshot::channel();
        let job: Job = Box::new(move |provider| {
            if answer.is_closed() {
                return;
            }
            let _ = answer.send(f(provider));
        });
        // The receiver lives in `shared`, which this holds: the queue cannot be closed.
        self.jobs
            .send(job)
            .expect("the call queue is open while its sender lives");
        self.grow_if_stuck();
        receiver
    }

    /// Queues `job`, which answers its caller itself (for calls that stream answers).
    pub fn submit(&self, job: impl FnOnce(&ProviderObject) + Send + 'static) {
        self.jobs
            .send(Box::new(job))
            .expect("the call queue is open while its sender lives");
        self.grow_if_stuck();
    }

    /// Starts another thread when calls wait, none is idle and none finished lately.
    pub fn grow_if_stuck(&self) {
        let shared = &self.shared;
        if shared.idle.load(Ordering::Acquire) > 0 || self.jobs.is_empty() {
            return;
        }
        let quiet_for = shared
            .now_us()
            .saturating_sub(shared.progress_us.load(Ordering::Acquire));
        if Duration::from_micros(quiet_for) >= STUCK_AFTER
            && shared.threads.load(Ordering::Acquire) < MAX_THREADS
        {
            self.spawn();
        }
    }

    /// Threads alive now (for tests and metrics).
    pub fn threads(&self) -> usize {
        self.shared.threads.load(Ordering::Acquire)
    }

    fn spawn(&self) {
        let shared = self.shared.clone();
        let number = shared.threads.fetch_add(1, Ordering::AcqRel);
        if number >= MAX_THREADS {
            shared.threads.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // Counted as progress, so that a second caller does not start one more at once.
        shared.progress_us.store(shared.now_us(), Ordering::Release);
        let name = format!("module-{}", shared.module);
        let spawned = thread::Builder::new()
            .name(name)
            .stack_size(256 * 1024)
            .spawn(move || work(&shared, number == 0));
        if let Err(error) = spawned {
            self.shared.threads.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(module = %self.shared.module, %error, "cannot start a thread for module calls");
        }
    }
}

/// One thread's loop: the first thread lives as long as the queue, the others until
/// they have been idle for [`IDLE_EXIT`].
fn work(shared: &Shared, first: bool) {
    let mut spin = true;
    loop {
        let job = match next_job(shared, first, &mut spin) {
            Some(job) => job,
            None => break,
        };
        // A panic that escaped the module's own guard (plugin-api catches them at the
        // ABI boundary) drops the call's answer: its caller hears the thread failed.
        let provider = &shared.provider;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(provider))).is_err() {
            tracing::error!(module = %shared.module, "a module call panicked");
        }
        shared.progress_us.store(shared.now_us(), Ordering::Release);
    }
    shared.threads.fetch_sub(1, Ordering::AcqRel);
}

/// The next call: looked for during [`SPIN`] first if `spin`, which says whether the
/// last one came within that time; it is updated for the next.
fn next_job(shared: &Shared, first: bool, spin: &mut bool) -> Option<Job> {
    let looking = Instant::now();
    let spin_until = looking + if *spin { SPIN } else { Duration::ZERO };
    loop {
        match shared.jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if Instant::now() < spin_until => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => break,
        }
    }
    let job = sleep_for_job(shared, first);
    *spin = looking.elapsed() < SPIN;
    job
}

/// Waits for the next call without using the CPU (counted idle meanwhile).
fn sleep_for_job(shared: &Shared, first: bool) -> Option<Job> {
    shared.idle.fetch_add(1, Ordering::AcqRel);
    shared.progress_us.store(shared.now_us(), Ordering::Release);
    let job = loop {
        let wait = if first {
            Duration::from_secs(3600)
        } else {
            IDLE_EXIT
        };
        match shared.jobs.recv_timeout(wait) {
            Ok(job) => break Some(job),
            Err(RecvTimeoutError::Disconnected) => break None,
            Err(RecvTimeoutError::Timeout) if first => continue,
            Err(RecvTimeoutError::Timeout) => break None,
        }
    };
    shared.idle.fetch_sub(1, Ordering::AcqRel);
    job
}
