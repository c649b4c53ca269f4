//! Compatibility across plugin-api versions, tested with real libraries built against
//! other versions (tests/src/compat.rs): the `file` module as released with 1.0.0 in
//! this gateway, a gateway built against 1.0.0 given a module of this version, and a
//! module of the next minor version in this gateway.

use std::{path::Path, process::Command, time::Duration};

use e2e::{
    build_dir,
    compat::{loader_1_0, next_minor_module, next_minor_version, released_file_module},
    sms_lines, Api, InProcess, TestConfig, SEND_TOKEN,
};
use gateway::modules::{self, LoadError, Module, ModuleName};
use plugin_api::PLUGIN_API_VERSION;

fn name(text: &str) -> ModuleName {
    ModuleName::new(text).unwrap()
}

/// A modules directory holding `library` as `libNAME.so`.
fn modules_dir(library: &Path, name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    std::fs::copy(library, dir.path().join(file)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_file_module_released_with_plugin_api_1_0_loads_and_sends_in_this_gateway() {
    let dir = modules_dir(&released_file_module(), "file");
    let library = modules::load(dir.path(), &name("file")).unwrap();
    assert_eq!(library.info().plugin_api, "1.0.0");

    // Its provider's vtable ends before the session methods (which abi_stable would
    // refuse under this gateway's layout, "too many fields"): read with the layout of
    // its own plugin-api, it is an HTTP module without sessions.
    let blob = serde_json::json!({"path": dir.path().join("probe.jsonl")}).to_string();
    let module =
        tokio::task::block_in_place(|| Module::start(&library, &blob, Duration::from_secs(5))).unwrap();
    assert_eq!(module.session_plan().await.unwrap(), None);

    let mut config = TestConfig::new("file", None, "", "");
    config.toml = config.toml.replacen(
        &format!("modules_dir = {:?}", build_dir()),
        &format!("modules_dir = {:?}", dir.path()),
        1,
    );
    let gateway = InProcess::start(config).await;
    let api = Api::new(&gateway.url);
    let (status, body) = api
        .post(
            "/v1/sms",
            SEND_TOKEN,
            &serde_json::json!({"to": "+447911123456", "text": "sent by a 1.0 module"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    api.wait_status(&id, &["sent"]).await;
    let lines = sms_lines(&gateway.config.sms_file());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["id"], id.as_str());
    assert_eq!(lines[0]["to"], "+447911123456");
    assert_eq!(lines[0]["text"], "sent by a 1.0 module");
    gateway.stop().await.unwrap();
}

/// What abi_stable alone does, pinned: it compares major versions only, and a prefix
/// type's reader ignores the entries a newer writer added, so a gateway built against
/// 1.0.0 loads a module of this version. The module itself then refuses to start in
/// it, naming both versions (plugin-api's export asks the host for its version, which
/// a gateway before 1.2 cannot give).
#[test]
fn a_gateway_built_against_1_0_loads_a_newer_module_which_refuses_to_start_in_it() {
    let run = |library: &Path, blob: &str| {
        let output = Command::new(loader_1_0())
            .arg(library)
            .arg(blob)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let released = tempfile::tempdir().unwrap();
    let blob = serde_json::json!({"path": released.path().join("sms.jsonl")}).to_string();
    let out = run(&released_file_module(), &blob);
    assert_eq!(out, "loaded file 0.1.0 (plugin-api 1.0.0)\nstarted\n");

    let echo = build_dir().join(format!(
        "{}echo{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let out = run(&echo, "");
    assert_eq!(
        out,
        format!(
            "loaded echo 0.1.0 (plugin-api {PLUGIN_API_VERSION})\nrefused: module `echo` was built against \
             plugin-api {PLUGIN_API_VERSION}, newer than this gateway's plugin-api (1.0 or 1.1): upgrade the \
             gateway, or use a build of the module for the gateway's plugin-api\n"
        )
    );
}

#[test]
fn a_module_built_against_a_newer_minor_plugin_api_is_refused_naming_both_versions() {
    let dir = modules_dir(&next_minor_module(), "next");
    let error = modules::load(dir.path(), &name("next")).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::Newer { .. }), "{text}");
    let next = next_minor_version();
    assert!(
        text.starts_with(&format!("{}", dir.path().join("libnext.so").display()))
            && text.contains(&format!("built against plugin-api {next}"))
            && text.contains(&format!("this gateway's plugin-api {PLUGIN_API_VERSION}")),
        "{text}"
    );
}

/// abi_stable's layout rule, pinned: a prefix type of the library may have more entries
/// than the loader's, never fewer. Read with this gateway's own layout (a `Provider`
/// with the session methods), the released module is refused; this is why the gateway
/// reads 1.0 and 1.1 modules with the layouts kept in `plugin_api::before_1_2`.
#[test]
fn abi_stable_refuses_a_vtable_shorter_than_the_loaders() {
    let dir = modules_dir(&released_file_module(), "file");
    let header = abi_stable::library::lib_header_from_path(&dir.path().join("libfile.so")).unwrap();
    let error = header
        .init_root_module::<plugin_api::ModuleRootRef>()
        .err()
        .expect("abi_stable refuses the 1.0 layout as 1.2's");
    assert!(error.to_string().contains("too many fields"), "{error}");
}
