//! Module libraries built against other plugin-api versions than the gateway's, for
//! the compatibility tests (tests/tests/compat.rs):
//!
//! - the `file` module as released with plugin-api 1.0.0, and a loader that opens a
//!   library as a gateway built against 1.0.0 does, from `tests/compat` (a workspace of
//!   its own, kept buildable);
//! - a module built against the next minor version of plugin-api, which does not
//!   exist yet: this repository's plugin-api copied with its minor version raised by
//!   one, which is exactly what its next release will look like to a loader.
//!
//! Both are built into `target/compat`, apart from the gateway's own libraries (the
//! released `file` module is `libfile.so` too).

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use crate::{build_dir, cargo};

/// Where the libraries of this file are built: `target/compat`.
fn target_dir() -> PathBuf {
    build_dir()
        .parent()
        .expect("the profile directory is inside the target directory")
        .join("compat")
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
}

fn run_build(manifest: &Path, locked: bool) {
    let mut command = cargo();
    command
        .args(["build", "--quiet", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir());
    if locked {
        command.arg("--locked");
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "building {} failed", manifest.display());
}

/// `target/compat/debug`, with the released `file` module and the 1.0.0 loader built.
fn released_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        run_build(&repository().join("tests/compat/Cargo.toml"), true);
        target_dir().join("debug")
    })
}

/// The `file` module's library as released, built against plugin-api 1.0.0.
pub fn released_file_module() -> PathBuf {
    released_dir().join(library("file"))
}

/// `compat-loader LIBRARY [BLOB]`: what a gateway built against plugin-api 1.0.0 makes
/// of a library (see tests/compat/loader-1.0.0).
pub fn loader_1_0() -> PathBuf {
    released_dir().join("compat-loader")
}

/// The plugin-api version one minor above this repository's (`1.3.0` for `1.2.x`).
pub fn next_minor_version() -> String {
    let mut parts = plugin_api::PLUGIN_API_VERSION.split('.');
    let major: u64 = parts.next().unwrap().parse().unwrap();
    let minor: u64 = parts.next().unwrap().parse().unwrap();
    format!("{major}.{}.0", minor + 1)
}

/// A module called `next`, built against [`next_minor_version`] of plugin-api; it
/// answers every SMS with `next-<id>`.
pub fn next_minor_module() -> PathBuf {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let root = target_dir().join("next-minor");
            let _ = std::fs::remove_dir_all(&root);
            let api = root.join("plugin-api");
            copy_tree(&repository().join("plugin-api"), &api);
            let manifest = std::fs::read_to_string(api.join("Cargo.toml")).unwrap();
            let current = format!("version = \"{}\"", plugin_api::PLUGIN_API_VERSION);
            assert!(
                manifest.contains(&current),
                "plugin-api's Cargo.toml has {current}"
            );
            let raised = format!("version = \"{}\"", next_minor_version());
            std::fs::write(api.join("Cargo.toml"), manifest.replacen(&current, &raised, 1)).unwrap();
            std::fs::create_dir_all(root.join("module/src")).unwrap();
            std::fs::write(root.join("Cargo.toml"), NEXT_WORKSPACE).unwrap();
            std::fs::write(root.join("module/Cargo.toml"), NEXT_MODULE_MANIFEST).unwrap();
            std::fs::write(root.join("module/src/lib.rs"), NEXT_MODULE).unwrap();
            // The registry crates at the versions the tests already use, so that
            // nothing new is fetched.
            std::fs::copy(
                repository().join("tests/compat/Cargo.lock"),
                root.join("Cargo.lock"),
            )
            .unwrap();
            run_build(&root.join("Cargo.toml"), false);
            target_dir().join("debug").join(library("next"))
        })
        .clone()
}

const NEXT_WORKSPACE: &str = r#"[workspace]
resolver = "2"
members = ["plugin-api", "module"]

[workspace.package]
edition = "2021"
rust-version = "1.85"
license = "Apache-2.0"
repository = "https://example.invalid/gateway"

[workspace.dependencies]
abi_stable = "0.11.3"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
"#;

const NEXT_MODULE_MANIFEST: &str = r#"[package]
name = "test-module-next"
version = "0.1.0"
publish = false
edition = "2021"

[lib]
name = "next"
crate-type = ["cdylib"]

[dependencies]
plugin-api = { path = "../plugin-api" }
"#;

const NEXT_MODULE: &str = r#"
use plugin_api::{export_sms_module, Host, ModuleError, OutboundSms, SmsModule, Step};

pub struct Next;

impl SmsModule for Next {
    const NAME: &'static str = "next";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "built against a plugin-api newer than the gateway's";

    fn check_config(_config: &str) -> Result<(), ModuleError> {
        Ok(())
    }
    fn new(_config: &str, _host: Host) -> Result<Self, ModuleError> {
        Ok(Next)
    }
    fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError> {
        Ok(Step::done(format!("next-{}", sms.id)))
    }
}

export_sms_module!(Next);
"#;

fn library(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
