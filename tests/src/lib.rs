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
    "test-module-echo",
    "test-module-panicky",
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
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut command = Command::new(cargo);
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
