//! A real SMTP server for the e-mail tests, and what it saw.
//!
//! The server is [aiosmtpd] (Python, from PyPI) run by `tests/smtp/server.py`, which
//! adds only hooks: it records every connection, message and close as JSON lines, and
//! can be told to behave like a demanding provider (421 or a dropped connection after K
//! messages in a session, 550 for chosen recipients, required STARTTLS and AUTH).
//! Everything a test asserts about sessions and concurrency is computed from the
//! server's own record, never from the client's view.
//!
//! ```no_run
//! use e2e::smtp::{SmtpServer, TestCa, TlsMode};
//!
//! let ca = TestCa::new();
//! let server = SmtpServer::builder()
//!     .tls(TlsMode::StartTlsRequired, &ca)
//!     .auth("user", "pass")
//!     .reply_421_after(20)
//!     .start();
//! // ... point the gateway at 127.0.0.1:{server.port}, trusting ca.ca_pem ...
//! server.wait_sessions_closed(1);
//! assert!(server.max_messages_per_session() <= 20);
//! ```
//!
//! [aiosmtpd]: https://aiosmtpd.aio-libs.org

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

/// The aiosmtpd release the server is tested with; installed by [`ensure_aiosmtpd`]
/// and by `scripts/test` when missing.
pub const AIOSMTPD_VERSION: &str = "1.4.6";

/// How long a server may take to listen, and a test to see its sessions closed.
const WAIT: Duration = Duration::from_secs(10);

/// Makes sure `python3` can import aiosmtpd, installing the pinned release with pip
/// if it cannot. Runs once per test process; panics with pip's output if it fails.
pub fn ensure_aiosmtpd() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if importable() {
            return;
        }
        crate::pip_install(&format!("aiosmtpd=={AIOSMTPD_VERSION}"));
        assert!(
            importable(),
            "aiosmtpd was installed but python3 cannot import it"
        );
    });
}

fn importable() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A certificate authority made for one test, and a server certificate it signed for
/// `localhost` and `127.0.0.1`. A client that trusts `ca_pem` (and nothing else)
/// accepts the test server; the files live as long as this value.
pub struct TestCa {
    /// The CA certificate, for the client's trust store.
    pub ca_pem: PathBuf,
    /// The server's certificate (the leaf only; the client holds the CA).
    pub cert_pem: PathBuf,
    /// The server's private key (PKCS#8).
    pub key_pem: PathBuf,
    /// Holds the three files.
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
            KeyUsagePurpose,
        };

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "gateway e2e test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server certificate parameters");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        // rustls (webpki) rejects a CA certificate as a server's, and checks the EKU.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &issuer)
            .expect("sign the server certificate");

        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        TestCa {
            ca_pem: write("ca.pem", ca_cert.pem()),
            cert_pem: write("server.pem", cert.pem()),
            key_pem: write("server-key.pem", key.serialize_pem()),
            dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TestCa {
    fn default() -> TestCa {
        TestCa::new()
    }
}

/// How the test server does TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP only; STARTTLS is not offered.
    None,
    /// STARTTLS offered, plain sessions allowed too.
    StartTls,
    /// STARTTLS offered, and anything but EHLO/NOOP/QUIT before it gets `530`.
    StartTlsRequired,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
}

/// The `[email]` section of a test gateway that sends to the SMTP server on `port` of
/// 127.0.0.1: the shop's default sender, retries after 20 ms (at most 100 ms), then the
/// `extra` lines of the same section (keys these lines do not set: TOML refuses a key
/// set twice).
pub fn email_section(port: u16, extra: &str) -> String {
    format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {port}\ndefault_from = \"Shop <shop@example.com>\"\n\
         retry_base_ms = 20\nretry_max_ms = 100\n{extra}\n"
    )
}

/// Options for [`SmtpServer`]; [`SmtpServer::builder`] makes one with everything off.
#[derive(Clone, Debug)]
pub struct SmtpServerBuilder {
    tls: TlsMode,
    /// The server's certificate and key, with `tls` other than `None`.
    cert_key: Option<(PathBuf, PathBuf)>,
    auth: Option<(String, String)>,
    reply_421_after: Option<usize>,
    drop_after: Option<usize>,
    reject_rcpt: Option<String>,
    pipelining: bool,
    smtputf8: bool,
    keep_raw: bool,
}

impl SmtpServerBuilder {
    /// TLS with the server certificate of `ca` (which must outlive the start only).
    pub fn tls(mut self, mode: TlsMode, ca: &TestCa) -> Self {
        self.tls = mode;
        self.cert_key = Some((ca.cert_pem.clone(), ca.key_pem.clone()));
        self
    }

    /// Requires AUTH (PLAIN or LOGIN) with these credentials before MAIL; other
    /// credentials get `535 5.7.8`.
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }

    /// After `k` accepted messages in a session, answers the next MAIL FROM with
    /// `421 4.7.0 maximum message count per session reached` and closes, as Amazon
    /// SES does.
    pub fn reply_421_after(mut self, k: usize) -> Self {
        self.reply_421_after = Some(k);
        self
    }

    /// After `k` accepted messages in a session, resets the TCP connection at the
    /// next MAIL FROM, with no reply.
    pub fn drop_after(mut self, k: usize) -> Self {
        self.drop_after = Some(k);
        self
    }

    /// Announces PIPELINING (RFC 2920), so a client may send MAIL, RCPT and DATA in one
    /// write; aiosmtpd handles such pipelined commands in order.
    pub fn pipelining(mut self) -> Self {
        self.pipelining = true;
        self
    }

    /// Announces SMTPUTF8 (RFC 6531): addresses in UTF-8 are taken with `MAIL FROM:<…>
    /// SMTPUTF8`, as aiosmtpd's `enable_SMTPUTF8` does.
    pub fn smtputf8(mut self) -> Self {
        self.smtputf8 = true;
        self
    }

    /// Keeps each message's bytes as received in its event (`raw`, base64): see
    /// [`SmtpServer::raw_messages`].
    pub fn keep_raw(mut self) -> Self {
        self.keep_raw = true;
        self
    }

    /// RCPT TO addresses containing `substring` get
    /// `550 5.1.1 <addr>: Recipient address rejected: User unknown`.
    pub fn reject_rcpt(mut self, substring: &str) -> Self {
        self.reject_rcpt = Some(substring.to_string());
        self
    }

    /// Starts the server on a free port of 127.0.0.1 and waits until it listens;
    /// panics with the server's stderr if it does not within 10 s.
    pub fn start(self) -> SmtpServer {
        ensure_aiosmtpd();
        let dir = tempfile::tempdir().expect("temp dir");
        let events = dir.path().join("events.jsonl");
        let ready = dir.path().join("ready.json");
        let stderr_path = dir.path().join("server.stderr");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/server.py");

        let mut command = Command::new("python3");
        command
            .arg(&script)
            // Port 0: the server binds a free port itself and reports it, so two
            // tests cannot race for one.
            .args(["--port", "0"])
            .arg("--events")
            .arg(&events)
            .arg("--ready-file")
            .arg(&ready);
        let tls = match self.tls {
            TlsMode::None => None,
            TlsMode::StartTls | TlsMode::StartTlsRequired => Some("starttls"),
            TlsMode::Implicit => Some("implicit"),
        };
        if let Some(tls) = tls {
            let (cert, key) = self.cert_key.as_ref().expect("TLS needs a TestCa");
            command
                .args(["--tls", tls])
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key);
        }
        if self.tls == TlsMode::StartTlsRequired {
            command.arg("--require-tls");
        }
        if let Some((user, password)) = &self.auth {
            command.arg("--auth").arg(format!("{user}:{password}"));
        }
        if let Some(k) = self.reply_421_after {
            command.arg("--reply-421-after").arg(k.to_string());
        }
        if let Some(k) = self.drop_after {
            command.arg("--drop-after").arg(k.to_string());
        }
        if self.keep_raw {
            command.arg("--keep-raw");
        }
        if self.pipelining {
            command.arg("--pipelining");
        }
        if self.smtputf8 {
            command.arg("--smtputf8");
        }
        if let Some(substring) = &self.reject_rcpt {
            command.arg("--reject-rcpt").arg(substring);
        }
        // stderr to a file, not a pipe: nobody reads a pipe while the test runs, and
        // a full one would stall the server.
        let stderr = std::fs::File::create(&stderr_path).expect("create the server's stderr file");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start python3 tests/smtp/server.py");

        let started = Instant::now();
        let port = loop {
            // The server renames the file into place, so it is never read half-written.
            if let Ok(text) = std::fs::read_to_string(&ready) {
                let ready: Value = serde_json::from_str(&text).expect("the ready file is JSON");
                break ready["port"].as_u64().expect("the ready file has the port") as u16;
            }
            let exited = child.try_wait().expect("poll the SMTP server");
            if exited.is_some() || started.elapsed() > WAIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the SMTP server did not come up ({}); its stderr:\n{}",
                    exited.map_or("no ready file after 10 s".to_string(), |s| s.to_string()),
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        SmtpServer {
            port,
            events,
            stderr: stderr_path,
            child,
            dir,
        }
    }
}

/// A running test SMTP server (aiosmtpd) on `127.0.0.1:port`; killed on drop.
pub struct SmtpServer {
    pub port: u16,
    /// The server's JSON-lines record of what it saw.
    events: PathBuf,
    /// The server's stderr (Python tracebacks, aiosmtpd's errors).
    stderr: PathBuf,
    child: Child,
    /// Holds the event, ready and stderr files.
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// A builder with plain SMTP, no AUTH and no limits.
    pub fn builder() -> SmtpServerBuilder {
        SmtpServerBuilder {
            tls: TlsMode::None,
            cert_key: None,
            auth: None,
            reply_421_after: None,
            drop_after: None,
            reject_rcpt: None,
            pipelining: false,
            smtputf8: false,
            keep_raw: false,
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything the server recorded so far, in the order it happened (see
    /// `tests/smtp/server.py` for the events and their fields).
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.events)
    }

    /// The messages the server accepted (`"event": "message"`).
    pub fn messages(&self) -> Vec<Value> {
        messages(&self.events())
    }

    /// The bytes of each message accepted, as the server received them; needs
    /// [`SmtpServerBuilder::keep_raw`].
    pub fn raw_messages(&self) -> Vec<Vec<u8>> {
        use base64::Engine;
        self.messages()
            .iter()
            .map(|m| {
                let raw = m["raw"].as_str().expect("the server was started with keep_raw");
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .expect("raw is base64")
            })
            .collect()
    }

    /// How many connections the server has seen.
    pub fn sessions(&self) -> usize {
        sessions(&self.events())
    }

    /// The most connections that were open at once.
    pub fn max_concurrent_sessions(&self) -> usize {
        max_concurrent_sessions(&self.events())
    }

    /// The most messages accepted in one session (0 before any).
    pub fn max_messages_per_session(&self) -> usize {
        max_messages_per_session(&self.events())
    }

    /// The `X-Gateway-Id` headers of the accepted messages, sorted, duplicates kept.
    pub fn gateway_ids(&self) -> Vec<String> {
        gateway_ids(&self.events())
    }

    /// Waits until at least `n` sessions were opened and every opened one is closed,
    /// and returns the events then; panics with them after 10 s.
    pub fn wait_sessions_closed(&self, n: usize) -> Vec<Value> {
        self.wait_until(|events| {
            let opened = sessions(events);
            opened >= n && count(events, "close") == opened
        })
    }

    /// Waits until `done` holds for the events, and returns them; panics with the
    /// events and the server's stderr after 10 s.
    pub fn wait_until(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            if started.elapsed() > WAIT {
                panic!(
                    "the SMTP server's events never matched; they are:\n{}\nits stderr:\n{}",
                    events.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The directory holding the server's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events in a server's event file; a last line still being written is left out.
pub fn read_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// The `message` events.
pub fn messages(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event"] == "message")
        .cloned()
        .collect()
}

/// The number of `connect` events.
pub fn sessions(events: &[Value]) -> usize {
    count(events, "connect")
}

/// The most sessions open at once, from the order of `connect` and `close` events.
pub fn max_concurrent_sessions(events: &[Value]) -> usize {
    let (mut open, mut max) = (0usize, 0usize);
    for event in events {
        if event["event"] == "connect" {
            open += 1;
            max = max.max(open);
        } else if event["event"] == "close" {
            open = open.saturating_sub(1);
        }
    }
    max
}

/// The most `message` events of one session.
pub fn max_messages_per_session(events: &[Value]) -> usize {
    let mut per_session: HashMap<u64, usize> = HashMap::new();
    for message in messages(events) {
        let session = message["session"].as_u64().expect("a message has its session");
        *per_session.entry(session).or_default() += 1;
    }
    per_session.into_values().max().unwrap_or(0)
}

/// The `X-Gateway-Id` of each message that had one, sorted, duplicates kept.
pub fn gateway_ids(events: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = messages(events)
        .iter()
        .filter_map(|m| m["gateway_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}
