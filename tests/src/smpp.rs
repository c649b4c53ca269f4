//! A real SMSC for the `smpp` module's tests: tests/smpp/simulator.py, the SMPP 3.4
//! server of the PyPI package smpp34 behind a front that checks passwords and counts
//! what each bind has outstanding on the wire, optionally behind TLS. Started as a
//! child process; the test talks to it in JSON lines.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// The smpp34 release the simulator is written against (also in scripts/test).
pub const SMPP34_VERSION: &str = "1.5.0";

/// Makes sure `python3` can import smpp34, installing the pinned release if it cannot.
pub fn ensure_smpp34() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if importable() {
            return;
        }
        crate::pip_install(&format!("smpp34=={SMPP34_VERSION}"));
        assert!(importable(), "smpp34 was installed but python3 cannot import it");
    });
}

fn importable() -> bool {
    Command::new("python3")
        .args(["-c", "import smpp34"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The simulator, listening on `port` for binds with `password`.
pub struct Simulator {
    pub port: u16,
    inner_port: u16,
    password: String,
    /// The certificate and key it serves TLS with, if it does.
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Every event it printed, in order, across restarts.
    events: Arc<Mutex<Vec<Value>>>,
}

impl Simulator {
    pub fn start(password: &str) -> Simulator {
        Simulator::start_with(password, None)
    }

    /// The simulator speaking TLS from the first byte, with the server certificate of
    /// `ca` (a client must trust `ca.ca_pem` to bind).
    pub fn start_tls(password: &str, ca: &crate::smtp::TestCa) -> Simulator {
        Simulator::start_with(password, Some((ca.cert_pem.clone(), ca.key_pem.clone())))
    }

    fn start_with(password: &str, tls: Option<(PathBuf, PathBuf)>) -> Simulator {
        ensure_smpp34();
        let mut simulator = Simulator {
            port: crate::free_port(),
            inner_port: crate::free_port(),
            password: password.to_string(),
            tls,
            child: None,
            stdin: None,
            events: Arc::new(Mutex::new(Vec::new())),
        };
        simulator.spawn();
        simulator
    }

    fn spawn(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smpp/simulator.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .args(["--port", &self.port.to_string()])
            .args(["--inner-port", &self.inner_port.to_string()])
            .args(["--password", &self.password]);
        if let Some((cert, key)) = &self.tls {
            command.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 tests/smpp/simulator.py");
        let stdout = child.stdout.take().unwrap();
        let events = self.events.clone();
        let ready = Arc::new(Mutex::new(false));
        let seen_ready = ready.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["event"] == "ready" {
                    *seen_ready.lock().unwrap() = true;
                }
                events.lock().unwrap().push(event);
            }
        });
        self.stdin = child.stdin.take();
        self.child = Some(child);
        let started = Instant::now();
        while !*ready.lock().unwrap() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the simulator never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it at once (SIGKILL): every bind drops with no unbind.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stdin = None;
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn command(&mut self, command: Value) {
        let stdin = self.stdin.as_mut().expect("the simulator runs");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// Every `submit` event so far.
    pub fn submits(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "submit")
            .cloned()
            .collect()
    }

    /// How many binds have ended so far.
    pub fn unbound(&self) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "unbound")
            .count()
    }

    /// Asks for its counts and waits for the answer: `{max_outstanding, binds,
    /// connections}`, where `connections` holds, for each bound connection, its
    /// `bind` (`transceiver`, `transmitter`, `receiver`), the arrival time in seconds
    /// of each `submit_sm` on it (`submits`) and how many `deliver_sm` went to it.
    pub fn stats(&mut self) -> Value {
        let before = self.events.lock().unwrap().len();
        self.command(json!({"cmd": "stats"}));
        let started = Instant::now();
        loop {
            if let Some(stats) = self.events.lock().unwrap()[before..]
                .iter()
                .find(|e| e["event"] == "stats")
            {
                return stats.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no stats from the simulator"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.kill();
    }
}
