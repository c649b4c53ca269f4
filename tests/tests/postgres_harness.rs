//! The PostgreSQL harness itself (tests/src/postgres.rs): every test gets a database of
//! its own that it can use, and the server never outlives the test process that
//! started it, whether that process exits or is killed.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use e2e::postgres::{self, psql};

/// Set for the child process of the tests below: `exit` or `hang`.
const CHILD_MODE: &str = "E2E_POSTGRES_HARNESS_CHILD";

#[test]
fn two_databases_are_independent_and_usable() {
    let first = postgres::database();
    let second = postgres::database();
    assert_ne!(first, second);
    for url in [&first, &second] {
        assert!(url.starts_with("postgres://gateway@127.0.0.1:"), "{url}");
        assert_eq!(psql(url, "select 1").as_deref(), Ok("1"), "{url}");
        assert_eq!(psql(url, "select current_user").as_deref(), Ok(postgres::USER));
        assert_eq!(
            psql(url, "select rolsuper from pg_roles where rolname = current_user").as_deref(),
            Ok("f"),
            "the gateway's role is an ordinary one, as in production"
        );
    }

    psql(
        &first,
        "create table messages (id text primary key); insert into messages values ('m-1')",
    )
    .expect("the role owns its database and may create tables");
    assert_eq!(psql(&first, "select count(*) from messages").as_deref(), Ok("1"));
    let error = psql(&second, "select count(*) from messages").expect_err("another database");
    assert!(error.contains("does not exist"), "{error}");
}

#[test]
fn the_server_is_configured_for_the_fleet_tests() {
    let url = postgres::database();
    for (setting, expected) in [
        ("max_connections", "300"),
        ("listen_addresses", "127.0.0.1"),
        ("fsync", "off"),
        ("synchronous_commit", "on"),
    ] {
        assert_eq!(
            psql(&url, &format!("show {setting}")).as_deref(),
            Ok(expected),
            "{setting}"
        );
    }
}

/// Does nothing in a normal run. In the child process of the tests below it starts the
/// server, prints where its files are, and then exits (`exit`) or waits to be killed.
#[test]
fn child_starts_a_server() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let url = postgres::database();
    assert_eq!(psql(&url, "select 1").as_deref(), Ok("1"));
    let server = postgres::server();
    println!("server dir {}", server.dir.display());
    if mode == "hang" {
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

#[test]
fn the_server_stops_when_the_test_process_exits() {
    let (mut child, dir) = start_child("exit");
    assert!(child.wait().unwrap().success());
    assert_server_gone(&dir);
}

#[test]
fn the_server_stops_when_the_test_process_is_killed() {
    let (mut child, dir) = start_child("hang");
    assert!(
        !processes_in(&dir).is_empty(),
        "the server runs while its test process does"
    );
    child.kill().unwrap(); // SIGKILL: no destructor, no atexit, nothing of the child's runs
    child.wait().unwrap();
    assert_server_gone(&dir);
}

/// Starts this test binary as a child running `child_starts_a_server`; returns it once
/// its server is up, with the server's directory.
fn start_child(mode: &str) -> (std::process::Child, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_starts_a_server", "--nocapture"])
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let dir = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("server dir ").map(PathBuf::from))
        .expect("the child prints its server's directory");
    // Read the rest, so the child's last words never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, dir)
}

/// Waits (at most 30 s) until no process runs in `dir` and `dir` is removed.
fn assert_server_gone(dir: &Path) {
    let started = Instant::now();
    while (!processes_in(dir).is_empty() || dir.exists()) && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = processes_in(dir);
    assert!(
        left.is_empty(),
        "PostgreSQL processes outlived their test process: {left:?}"
    );
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

/// The processes whose command line names `dir` (the postmaster, the guard) or whose
/// working directory is inside it (every PostgreSQL process works in its data
/// directory, and its children rewrite their command lines), as `pid: command line`.
fn processes_in(dir: &Path) -> Vec<String> {
    let dir_text = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if cmdline.contains(&dir_text) || cwd.starts_with(dir) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}
