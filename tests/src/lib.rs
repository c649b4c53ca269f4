//! Shared harness for the end-to-end tests: builds the real module libraries and the
//! `gateway` binary with the same cargo and profile as the tests, so every test loads
//! real files from disk.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The crates whose libraries (and binary) the tests use.
const PACKAGES: &[&str] = &[
    "gateway",
    "sms-module-file",
    "sms-module-http",
    "sms-module-smpp",
    "sms-module-twilio",
    "sms-module-template",
    "test-module-echo",
    "test-module-lines",
    "test-module-guide",
    "test-module-panicky",
    "test-module-steps",
    "test-module-wrongabi",
];

/// The cargo profile directory the tests run from (`target/debug`), where the module
/// libraries and the `gateway` binary are built. Builds them on first use.
pub fn build_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // .../target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("tests run from target/<profile>/deps")
            .to_path_buf();
        let mut command = cargo();
        command
            .arg("build")
            .arg("--quiet")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for package in PACKAGES {
            command.args(["-p", package]);
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build for the test modules");
        assert!(status.success(), "building the modules for the tests failed");
        profile_dir
    })
}

/// A `cargo` command (the cargo running the tests) without the variables that cargo
/// gives the test process for the e2e package: some build scripts (ring's) track
/// CARGO_MANIFEST_DIR, so passing them on would rebuild those crates on every run, and
/// again for the next `cargo test`.
pub fn cargo() -> Command {
    let mut command = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_BIN_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&&*name)
        {
            command.env_remove(&*name);
        }
    }
    command
}

/// The `gateway` binary built by [`build_dir`].
pub fn gateway_bin() -> PathBuf {
    build_dir().join(format!("gateway{}", std::env::consts::EXE_SUFFIX))
}

/// A directory holding copies of the named modules only, so that a test controls
/// exactly what is in `sms.modules_dir`.
pub fn modules_dir_with(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in names {
        let file = format!(
            "{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        std::fs::copy(build_dir().join(&file), dir.path().join(&file))
            .unwrap_or_else(|e| panic!("copy module {file}: {e}"));
    }
    dir
}

/// Installs a pinned PyPI package for `python3` (the tests' Python tools), falling back
/// to `--break-system-packages` where Debian's Python refuses (PEP 668); panics with
/// pip's output if both fail.
pub fn pip_install(package: &str) {
    let install = |break_system: bool| {
        let mut command = Command::new("python3");
        command.args(["-m", "pip", "install", "--quiet", package]);
        if break_system {
            command.arg("--break-system-packages");
        }
        command.output().expect("run python3 -m pip")
    };
    let mut output = install(false);
    if !output.status.success() {
        output = install(true);
    }
    assert!(
        output.status.success(),
        "could not install {package} for python3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The bearer tokens every test gateway accepts.
pub const SEND_TOKEN: &str = "send-token-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// A gateway configuration in a temporary directory: SQLite store, `sms.jsonl` for
/// the `file` module, the two tokens, and `extra` TOML appended (which may override
/// the module and its blob with its own `[sms]` keys via `sms_module`).
pub struct TestConfig {
    pub dir: tempfile::TempDir,
    pub toml: String,
}

impl TestConfig {
    /// A configuration using module `module` with blob `blob` (for the `file` module,
    /// pass `None` to write to `sms.jsonl` in the test directory) and extra TOML.
    pub fn new(module: &str, blob: Option<&str>, sms_extra: &str, extra: &str) -> TestConfig {
        let dir = tempfile::tempdir().expect("temp dir");
        let sms_file = dir.path().join("sms.jsonl");
        let blob = blob
            .map(str::to_string)
            .unwrap_or_else(|| serde_json::json!({ "path": sms_file }).to_string());
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace_ms = 5000

[storage]
url = "sqlite://{db}"

[sms]
module = "{module}"
modules_dir = {modules:?}
default_country_code = "+44"
sender = "ACME"
plugin_config = '{blob}'
{sms_extra}

[[auth.tokens]]
token = "{SEND_TOKEN}"
role = "send"

[[auth.tokens]]
token = "{ADMIN_TOKEN}"
role = "admin"

{extra}
"#,
            db = dir.path().join("gateway.db").display(),
            modules = build_dir(),
        );
        TestConfig { dir, toml }
    }

    /// Adds `lines` to the `[server]` section (the TOML may hold one `[server]` only).
    pub fn with_server(mut self, lines: &str) -> TestConfig {
        self.toml = self.toml.replacen(
            "shutdown_grace_ms = 5000\n",
            &format!("shutdown_grace_ms = 5000\n{lines}\n"),
            1,
        );
        self
    }

    /// Keeps the queue at `url` (a `postgres://` database shared by a fleet) instead of
    /// the SQLite file in the test directory.
    pub fn with_storage_url(mut self, url: &str) -> TestConfig {
        let sqlite = format!(
            "url = \"sqlite://{}\"",
            self.dir.path().join("gateway.db").display()
        );
        assert!(
            self.toml.contains(&sqlite),
            "the configuration keeps its SQLite url line"
        );
        self.toml = self.toml.replacen(&sqlite, &format!("url = \"{url}\""), 1);
        self
    }

    /// Adds `lines` to the `[storage]` section (the TOML may hold one `[storage]` only).
    pub fn with_storage_lines(mut self, lines: &str) -> TestConfig {
        self.toml = self
            .toml
            .replacen("\n[storage]\n", &format!("\n[storage]\n{lines}\n"), 1);
        self
    }

    /// The `file` module's output in this configuration.
    pub fn sms_file(&self) -> PathBuf {
        self.dir.path().join("sms.jsonl")
    }

    /// The SQLite file of this configuration's queue (unless
    /// [`TestConfig::with_storage_url`] moved it to PostgreSQL).
    pub fn sqlite_file(&self) -> PathBuf {
        self.dir.path().join("gateway.db")
    }

    /// Writes the configuration to `gateway.toml` in its directory.
    pub fn write(&self) -> PathBuf {
        let path = self.dir.path().join("gateway.toml");
        std::fs::write(&path, &self.toml).expect("write gateway.toml");
        path
    }
}

/// The JSON lines the `file` module wrote so far.
pub fn sms_lines(path: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A whole gateway running in this process on a free port, stopped on drop.
pub struct InProcess {
    pub url: String,
    pub config: TestConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl InProcess {
    /// A gateway sending e-mail to `server` ([`smtp::email_section`] with the `extra`
    /// lines of `[email]`; more sections may follow them), and a client of its API.
    pub async fn sending_to(server: &smtp::SmtpServer, extra: &str) -> (InProcess, Api) {
        let email = smtp::email_section(server.port, extra);
        let gateway = InProcess::start(TestConfig::new("file", None, "", &email)).await;
        let api = Api::new(&gateway.url);
        (gateway, api)
    }

    /// Starts a gateway with `config`; panics with the gateway's error if it fails.
    pub async fn start(config: TestConfig) -> InProcess {
        let loaded = gateway::settings::Loaded::from_toml(&config.toml).expect("test settings are valid");
        InProcess::run(config, loaded).await
    }

    /// Starts a gateway whose settings come from `gateway.toml` in the config's
    /// directory, so that `POST /v1/admin/reload` reads that file again.
    pub async fn start_from_file(config: TestConfig) -> InProcess {
        let path = config.write();
        let file = gateway::settings::ConfigFile { path, required: true };
        let loaded = gateway::settings::load(&file).expect("test settings are valid");
        InProcess::run(config, loaded).await
    }

    async fn run(config: TestConfig, loaded: gateway::settings::Loaded) -> InProcess {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            gateway::server::run(listener, loaded, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| format!("{e:#}"))
        });
        let mut gateway = InProcess {
            url,
            config,
            stop: Some(stop),
            task: Some(task),
        };
        gateway.wait_healthy().await;
        gateway
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        // Generous: a loaded CI machine runs many gateways at once.
        for _ in 0..800 {
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let result = self.task.take().unwrap().await;
                panic!("the gateway at {} stopped while starting: {result:?}", self.url);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the gateway at {} never became healthy", self.url);
    }

    /// Stops the gateway gracefully and returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.expect("gateway task")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A small client for the gateway's API.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(url: &str) -> Api {
        Api {
            url: url.to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// POSTs JSON with a token; returns the status and the JSON body (or Null).
    pub async fn post(&self, path: &str, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::POST, path, token, body).await
    }

    /// PUTs JSON with a token; returns the status and the JSON body (or Null).
    pub async fn put(&self, path: &str, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::PUT, path, token, body).await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, json_body(response).await)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, json_body(response).await)
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .delete(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, json_body(response).await)
    }

    /// `GET /metrics`: the Prometheus text, as a scraper reads it.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        response.text().await.expect("a text body")
    }

    /// Polls a message until its status is one of `wanted` (or 20 s pass).
    pub async fn wait_status(&self, id: &str, wanted: &[&str]) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..400 {
            let (status, body) = self.get(&format!("/v1/messages/{id}"), SEND_TOKEN).await;
            assert_eq!(status, 200, "{body}");
            if wanted.iter().any(|w| body["status"] == *w) {
                return body;
            }
            last = body;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("message {id} never reached {wanted:?}; last seen {last}");
    }

    /// Polls a mailing until nothing of it is queued or sending, for at most `within`;
    /// returns its counts.
    pub async fn wait_mailing(&self, id: &str, within: std::time::Duration) -> serde_json::Value {
        let started = std::time::Instant::now();
        loop {
            let (status, counts) = self.get(&format!("/v1/mailings/{id}"), SEND_TOKEN).await;
            assert_eq!(status, 200, "{counts}");
            if counts["queued"] == 0 && counts["sending"] == 0 {
                return counts;
            }
            assert!(
                started.elapsed() < within,
                "the mailing {id} was not done within {within:?}: {counts}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The JSON body of a response, or `Null` when it has none.
pub async fn json_body(response: reqwest::Response) -> serde_json::Value {
    let bytes = response.bytes().await.unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

/// A figure of `/proc/{pid}/status` in kB (`"VmRSS:"`, `"VmHWM:"` for the peak), or 0.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A free TCP port on 127.0.0.1 (free when asked; a test uses it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A `gateway serve` child process, for what needs a real process: signals, crashes.
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub url: String,
    pub log: PathBuf,
}

impl GatewayProcess {
    /// Writes `config` with a fixed free port and starts `gateway serve` on it; its
    /// log goes to `gateway-N.log` in the config's directory.
    pub async fn start(config: &TestConfig) -> GatewayProcess {
        GatewayProcess::start_with(config, |_| {}).await
    }

    /// Starts `gateway serve` with at most `descriptors` open files (`ulimit -n`).
    pub async fn start_with_descriptor_limit(config: &TestConfig, descriptors: u64) -> GatewayProcess {
        GatewayProcess::start_with(config, |command| {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: descriptors as libc::rlim_t,
                rlim_max: descriptors as libc::rlim_t,
            };
            // SAFETY: setrlimit(2) is async-signal-safe, so it may run between fork and
            // exec; it touches only the child.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        })
        .await
    }

    /// Starts `gateway serve` as [`GatewayProcess::start`] does, after `adjust` has
    /// changed the command.
    pub async fn start_with(config: &TestConfig, adjust: impl FnOnce(&mut Command)) -> GatewayProcess {
        let port = free_port();
        let toml = config.toml.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        let path = config.dir.path().join("gateway.toml");
        std::fs::write(&path, toml).expect("write gateway.toml");
        let mut n = 0;
        let log = loop {
            let candidate = config.dir.path().join(format!("gateway-{n}.log"));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let mut command = Command::new(gateway_bin());
        command
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create log"));
        adjust(&mut command);
        let child = command.spawn().expect("start the gateway binary");
        let process = GatewayProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        process.wait_healthy().await;
        process
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!(
            "the gateway at {} never became healthy; its log:\n{}",
            self.url,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Sends `signal` (e.g. `libc::SIGKILL`) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Waits for the process to end; returns its exit status.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for the gateway")
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
pub mod compat;
pub mod dkim;
pub mod line_peer;
pub mod postgres;
pub mod smpp;
pub mod smtp;

/// The sum of the samples of metric `name` with these labels in a `/metrics` scrape
/// (counters, gauges and untyped values; 0 when there are none).
pub fn metric_value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}
