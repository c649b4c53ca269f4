//! A real PostgreSQL server for the tests: Debian's `postgresql` package, started by the
//! test process itself, one server per process, and a fresh database for each test.
//!
//! ```no_run
//! // postgres://gateway@127.0.0.1:PORT/test_1, empty, owned by the `gateway` role.
//! let url = e2e::postgres::database();
//! assert_eq!(e2e::postgres::psql(&url, "select 1").unwrap(), "1");
//! ```
//!
//! The server starts on first use, in a temporary directory, on a free loopback port.
//! It lives as long as the test process and no longer, however that process ends (a
//! normal exit, a panic, a SIGKILL): it runs under a small `sh` that waits on a pipe from
//! the test process, and when the pipe closes (the kernel closes it when the process is
//! gone) stops PostgreSQL and removes the directory. Nothing outlives the test binary.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the directory belongs to
//! the `postgres` user that Debian's package creates, and the server runs as that user
//! (`runuser`). Tests connect over TCP as `gateway`, an ordinary role (not a superuser),
//! that owns each test's database, as an operator would set it up for the gateway.

use std::{
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

/// The role the tests' databases belong to, and that the gateway connects as.
pub const USER: &str = "gateway";

/// The superuser that creates roles and databases (the name initdb is told to use).
const SUPERUSER: &str = "postgres";

/// The OS user that runs the server when the tests run as root.
const SERVER_OS_USER: &str = "postgres";

/// The longest a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `postgres "$@"` in the background, waits until its standard input (a pipe held
/// by the test process) reaches end of file, then stops PostgreSQL with a fast shutdown
/// (SIGINT: sessions are ended, nothing waits for clients) and removes the server's
/// directory. `$1` is that directory; the rest is the `postgres` command line.
const GUARD_SCRIPT: &str = r#"
dir=$1
shift
"$@" </dev/null >>"$dir/postgres.log" 2>&1 &
pg=$!
cat >/dev/null
kill -INT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$dir"
"#;

/// The test process's server, started by [`server`].
pub struct Server {
    /// The loopback port it listens on.
    pub port: u16,
    /// The temporary directory holding its data directory (`data`), its unix socket and
    /// its log (`postgres.log`); removed when the server stops.
    pub dir: PathBuf,
    /// The `sh` guarding the server. Its standard input is the pipe whose end stops
    /// the server: it is never written, only closed by the kernel when this process ends.
    guard: Child,
    _stop_pipe: ChildStdin,
}

impl Server {
    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The process id of the `sh` guarding the server.
    pub fn guard_pid(&self) -> u32 {
        self.guard.id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// The URL of database `name` as the superuser.
    fn admin_url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }
}

/// The server of this test process, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// A fresh, empty database on the shared server, owned by [`USER`]; returns its URL,
/// `postgres://gateway@127.0.0.1:PORT/NAME`. Every call makes another one, so tests
/// running at the same time never see each other's rows.
pub fn database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let server = server();
    let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    psql(
        &server.admin_url("postgres"),
        &format!("CREATE DATABASE {name} OWNER {USER}"),
    )
    .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    format!("postgres://{USER}@127.0.0.1:{}/{name}", server.port)
}

/// Runs `sql` with `psql` on the database at `url`; returns what it printed (unaligned,
/// tuples only, trimmed), or its error output when it fails.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new(bin_dir().join("psql"))
        .args(["--no-psqlrc", "--quiet", "--tuples-only", "--no-align"])
        .args(["--set", "ON_ERROR_STOP=1", "--dbname", url, "--command", sql])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// `fsync` for the server: off for tests (see where it is set), on for benchmarks,
/// which set `E2E_POSTGRES_FSYNC=on` to measure commits as production makes them.
fn fsync() -> &'static str {
    match std::env::var("E2E_POSTGRES_FSYNC").as_deref() {
        Ok("on") => "on",
        _ => "off",
    }
}

/// The binaries of the newest PostgreSQL installed (`/usr/lib/postgresql/<version>/bin`).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new("/usr/lib/postgresql");
        let newest = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                let complete = ["initdb", "postgres", "psql"]
                    .iter()
                    .all(|tool| bin.join(tool).is_file());
                complete.then_some((version, bin))
            })
            .max_by_key(|(version, _)| *version);
        match newest {
            Some((_, bin)) => bin,
            None => panic!(
                "no PostgreSQL server under {}/<version>/bin (initdb, postgres, psql): \
                 run `bash scripts/test`, which installs Debian's postgresql package, \
                 or `apt-get install postgresql`",
                root.display()
            ),
        }
    })
}

/// Starts the server; retried on another port when the free one was taken meanwhile.
fn start() -> Server {
    let mut last_log = String::new();
    for _ in 0..3 {
        match try_start() {
            Ok(server) => return server,
            Err(log) if log.contains("could not bind") || log.contains("could not create any TCP/IP") => {
                last_log = log;
            }
            Err(log) => panic!("the test PostgreSQL server did not start; its log:\n{log}"),
        }
    }
    panic!("the test PostgreSQL server found no free port; its last log:\n{last_log}");
}

/// Initialises a data directory and starts a server on it; on failure, answers the
/// server's log (the guard then removes the directory).
fn try_start() -> Result<Server, String> {
    let bin = bin_dir();
    let as_root = euid() == 0;
    let dir = tempfile::Builder::new()
        .prefix("e2e-postgres-")
        .tempdir()
        .expect("create a temporary directory for PostgreSQL")
        // The guard removes it when the server stops, after this process has ended.
        .keep();
    if as_root {
        // The directory is created 0700 for root: give it to the server's user, or
        // PostgreSQL could not even enter it.
        let (uid, gid) = server_os_user();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {} to {SERVER_OS_USER}: {e}", dir.display()));
    }
    let data = dir.join("data");

    let mut initdb = as_server_user(as_root, &bin.join("initdb"));
    initdb
        .arg("--pgdata")
        .arg(&data)
        .args(["--username", SUPERUSER, "--auth", "trust", "--encoding", "UTF8"])
        // The C locale does not depend on which locales the machine has generated;
        // no sync: a test server's files need not survive a power cut.
        .args(["--no-locale", "--no-sync", "--no-instructions"])
        .current_dir(&dir);
    let output = initdb.output().expect("run initdb");
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        panic!(
            "initdb failed for the test PostgreSQL server in {}: {}{}",
            data.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let port = crate::free_port();
    let mut guard = as_server_user(as_root, Path::new("sh"));
    guard
        .args(["-c", GUARD_SCRIPT, "e2e-postgres"])
        .arg(&dir)
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", &format!("port={port}")])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        // Fleet tests run three gateways, each with its own connection pool, on it.
        .args(["-c", "max_connections=300"])
        // Tests only: fsync guards against a power cut or a kernel crash, which no test
        // makes, and skipping it keeps a suite of many small databases fast on a shared
        // machine. A commit still waits for its WAL to reach the kernel
        // (`synchronous_commit` stays on), so a killed gateway or server loses nothing
        // committed, as in production.
        .args(["-c", &format!("fsync={}", fsync())])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut guard = guard.spawn().expect("start the PostgreSQL guard (sh)");
    let stop_pipe = guard.stdin.take().expect("the guard's stdin is a pipe");
    let server = Server {
        port,
        dir,
        guard,
        _stop_pipe: stop_pipe,
    };

    let started = Instant::now();
    loop {
        match psql(&server.admin_url("postgres"), "select 1") {
            Ok(_) => break,
            Err(_) if started.elapsed() < START_TIMEOUT && server_may_come_up(&server) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => {
                let log = server.log();
                // Dropping the server closes the pipe: the guard cleans up.
                return Err(format!("{log}\n(psql: {error})"));
            }
        }
    }
    psql(
        &server.admin_url("postgres"),
        &format!("CREATE ROLE {USER} LOGIN"),
    )
    .unwrap_or_else(|e| panic!("cannot create the role {USER}: {e}"));
    Ok(server)
}

/// False once the log says PostgreSQL gave up starting. The connections refused while
/// it starts are logged as FATAL too; those are no reason to give up.
fn server_may_come_up(server: &Server) -> bool {
    !server.log().lines().any(|line| {
        line.contains("PANIC:")
            || (line.contains("FATAL:")
                && !line.contains("is starting up")
                && !line.contains("not yet accepting connections"))
    })
}

/// `program`, run as the server's OS user when this process is root.
fn as_server_user(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", SERVER_OS_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The uid and gid of the server's OS user, created if it is missing (Debian's package
/// creates it; a machine that had the package removed may lack it).
fn server_os_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, SERVER_OS_USER]).output().ok()?;
        if !output.status.success() {
            return None;
        }
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let status = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home", SERVER_OS_USER])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "the user {SERVER_OS_USER} is missing and useradd could not create it: \
             run `bash scripts/test`, which installs Debian's postgresql package"
        );
    }
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => (uid, gid),
        _ => panic!("cannot read the uid and gid of the user {SERVER_OS_USER}"),
    }
}

/// This process's effective user id.
fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
