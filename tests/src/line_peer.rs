//! A provider that holds sessions, for the tests of the gateway's session driver: a
//! real TCP server on loopback speaking the line protocol of the `lines` test module
//! (tests/modules/lines). It answers every `SUBMIT` a little later (so a window fills),
//! counts what each connection has outstanding, and can push inbound SMS and delivery
//! reports, refuse a password, answer `BUSY`, and be killed and started again.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinSet,
};

/// What the peer saw and is told to do, shared with the test.
#[derive(Default)]
pub struct PeerState {
    /// Every `SUBMIT`, in order: (connection, recipient, text).
    pub submits: Mutex<Vec<(usize, String, String)>>,
    /// The most `SUBMIT`s each connection had unanswered at once.
    pub max_outstanding: Mutex<HashMap<usize, usize>>,
    pub logins: AtomicUsize,
    pub logouts: AtomicUsize,
    /// Answer `BUSY` to this many `SUBMIT`s first.
    pub busy: AtomicUsize,
    /// Lines to push, taken by whichever connection is logged in.
    push: Mutex<Vec<String>>,
    connections: AtomicUsize,
}

/// The peer: listening on `port` until killed.
pub struct LinePeer {
    pub port: u16,
    pub password: String,
    pub state: Arc<PeerState>,
    tasks: Option<JoinSet<()>>,
}

impl LinePeer {
    /// Starts a peer on a free port that accepts `password`.
    pub async fn start(password: &str) -> LinePeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut peer = LinePeer {
            port,
            password: password.to_string(),
            state: Arc::new(PeerState::default()),
            tasks: None,
        };
        peer.serve(listener);
        peer
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let (state, password) = (self.state.clone(), self.password.clone());
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let n = state.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(connection(stream, n, state.clone(), password.clone()));
            }
        });
        self.tasks = Some(tasks);
    }

    /// Kills the peer: the listener and every connection, at once, with no goodbye.
    pub async fn kill(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    /// Pushes `line` (`MO …`, `DLR …`) on a logged-in connection.
    pub fn push(&self, line: &str) {
        self.state.push.lock().unwrap().push(line.to_string());
    }

    pub fn submits(&self) -> Vec<(usize, String, String)> {
        self.state.submits.lock().unwrap().clone()
    }
}

impl Drop for LinePeer {
    fn drop(&mut self) {
        if let Some(tasks) = self.tasks.as_mut() {
            tasks.abort_all();
        }
    }
}

async fn connection(stream: TcpStream, n: usize, state: Arc<PeerState>, password: String) {
    let (read, mut write) = stream.into_split();
    let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
    // One writer, so that answers sent later by the timers below are whole lines.
    let writer = tokio::spawn(async move {
        while let Some(line) = outgoing.recv().await {
            if write.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let outstanding = Arc::new(AtomicUsize::new(0));
    let mut lines = BufReader::new(read).lines();
    let mut logged_in = false;
    let mut answers = JoinSet::new();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = tokio::time::sleep(Duration::from_millis(20)), if logged_in => {
                let pushed: Vec<String> = std::mem::take(&mut *state.push.lock().unwrap());
                for line in pushed {
                    let _ = out.send(format!("{line}\n"));
                }
                continue;
            }
        };
        let Ok(Some(line)) = line else { break };
        let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb {
            "LOGIN" if rest == password => {
                logged_in = true;
                state.logins.fetch_add(1, Ordering::SeqCst);
                let _ = out.send("OK\n".into());
            }
            "LOGIN" => {
                let _ = out.send("DENIED wrong password\n".into());
            }
            "PING" => {
                let _ = out.send("PONG\n".into());
            }
            "LOGOUT" => {
                state.logouts.fetch_add(1, Ordering::SeqCst);
                let _ = out.send("BYE\n".into());
                break;
            }
            "SUBMIT" => {
                let mut parts = rest.splitn(3, ' ');
                let seq = parts.next().unwrap_or("").to_string();
                let to = parts.next().unwrap_or("").to_string();
                let text = parts.next().unwrap_or("").to_string();
                let now = outstanding.fetch_add(1, Ordering::SeqCst) + 1;
                {
                    let mut max = state.max_outstanding.lock().unwrap();
                    let entry = max.entry(n).or_default();
                    *entry = (*entry).max(now);
                }
                let busy = state
                    .busy
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                    .is_ok();
                let number = {
                    let mut submits = state.submits.lock().unwrap();
                    submits.push((n, to, text));
                    submits.len()
                };
                let (out, outstanding) = (out.clone(), outstanding.clone());
                answers.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    outstanding.fetch_sub(1, Ordering::SeqCst);
                    let answer = if busy {
                        format!("BUSY {seq}\n")
                    } else {
                        format!("ACK {seq} peer-{number}\n")
                    };
                    let _ = out.send(answer);
                });
            }
            _ => {}
        }
    }
    // Answers already due go out before the goodbye; a killed peer sends nothing.
    while answers.join_next().await.is_some() {}
    drop(out);
    let _ = writer.await;
}
