//! Modules as real dynamic libraries loaded from disk: loading, checking, calling,
//! and every way a module can be wrong.

use std::{path::Path, process::Command, time::Duration};

use e2e::{build_dir, gateway_bin, modules_dir_with};
use gateway::{
    modules::{self, CallError, LoadError, Module, ModuleName},
    settings::Settings,
};
use plugin_api::{ErrorKind, OutboundSms, Step};

fn name(n: &str) -> ModuleName {
    ModuleName::new(n).unwrap()
}

fn sms(id: &str, text: &str) -> OutboundSms {
    OutboundSms {
        id: id.into(),
        to: "+447911123456".into(),
        sender: "ACME".into(),
        text: text.into(),
        attempt: 1,
    }
}

fn start(dir: &Path, module: &str, blob: &str) -> Module {
    let library = modules::load(dir, &name(module)).unwrap();
    Module::start(&library, blob, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn file_module_loaded_by_name_appends_the_sms_as_a_json_line() {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("sms.jsonl");
    let module = start(
        build_dir(),
        "file",
        &serde_json::json!({ "path": path }).to_string(),
    );
    assert_eq!(module.info().name, "file");
    assert_eq!(module.info().plugin_api, plugin_api::PLUGIN_API_VERSION);

    let step = module.send(sms("01JTEST", "hello")).await.unwrap();
    assert_eq!(
        step,
        Step::Done {
            result: "file-01JTEST".into()
        }
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["id"], "01JTEST");
    assert_eq!(line["to"], "+447911123456");
    assert_eq!(line["sender"], "ACME");
    assert_eq!(line["text"], "hello");
    assert!(line["at"].as_str().unwrap().starts_with("20"));
}

#[tokio::test]
async fn a_panic_in_send_is_an_error_naming_the_module_and_the_next_call_works() {
    let module = start(build_dir(), "panicky", "");
    let error = module.send(sms("m1", "please panic")).await.unwrap_err();
    let CallError::Module {
        module: who,
        error: inner,
    } = &error
    else {
        panic!("expected the module's error, got {error:?}");
    };
    assert_eq!(who, "panicky");
    assert_eq!(inner.kind, ErrorKind::PANICKED);
    assert!(
        inner.message.contains("module `panicky` panicked in send at")
            && inner.message.contains("told to panic by message m1"),
        "{error}"
    );
    assert!(error.is_transient());
    // The process is alive and the module is still usable.
    for i in 0..3 {
        let id = format!("after-{i}");
        let step = module.send(sms(&id, "fine")).await.unwrap();
        assert_eq!(
            step,
            Step::Done {
                result: format!("panicky-{id}").into()
            }
        );
    }
}

#[test]
fn a_panic_while_starting_is_a_start_error_naming_the_file() {
    let library = modules::load(build_dir(), &name("panicky")).unwrap();
    let error = Module::start(&library, "panic", Duration::from_secs(5)).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::StartFailed { .. }), "{text}");
    assert!(
        text.contains("libpanicky.so") && text.contains("told to panic in new"),
        "{text}"
    );
}

#[test]
fn a_missing_module_names_the_file_it_looked_for() {
    let dir = modules_dir_with(&[]);
    let error = modules::load(dir.path(), &name("nosuch")).unwrap_err();
    assert!(matches!(error, LoadError::Missing { .. }));
    let expected = dir.path().join("libnosuch.so");
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: no such file", expected.display())),
        "{error}"
    );
}

#[test]
fn a_text_file_named_like_a_module_is_not_a_library() {
    let dir = modules_dir_with(&[]);
    std::fs::write(dir.path().join("libbogus.so"), "this is not a library\n").unwrap();
    let error = modules::load(dir.path(), &name("bogus")).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::NotALibrary { .. }), "{text}");
    assert!(text.contains("libbogus.so: not a loadable library"), "{text}");
}

#[test]
fn a_shared_library_without_a_root_module_is_not_a_module() {
    let dir = modules_dir_with(&[]);
    let source = dir.path().join("plain.c");
    std::fs::write(&source, "int plain_function(void) { return 42; }\n").unwrap();
    let library = dir.path().join("libplain.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .expect("a C compiler (cc) to build a plain shared library");
    assert!(status.success());
    let error = modules::load(dir.path(), &name("plain")).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::NotAModule { .. }), "{text}");
    assert!(text.contains("libplain.so: not a gateway SMS module"), "{text}");
}

#[test]
fn a_module_built_against_an_incompatible_plugin_api_is_refused() {
    let error = modules::load(build_dir(), &name("wrongabi")).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::Incompatible { .. }), "{text}");
    assert!(
        text.contains("libwrongabi.so") && text.contains("plugin-api 2.0.0"),
        "{text}"
    );
}

#[test]
fn a_module_name_with_a_path_is_refused_before_any_file_is_touched() {
    for bad in ["../file", "/usr/lib/file", "..", "a/b"] {
        assert!(ModuleName::new(bad).is_err(), "{bad}");
    }
    let error = Settings::from_toml("[sms]\nmodule = \"../debug/file\"").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("sms.module: `../debug/file` is not a module name"),
        "{error}"
    );
}

#[test]
fn a_module_whose_name_differs_from_its_file_is_refused() {
    let dir = modules_dir_with(&[]);
    std::fs::copy(build_dir().join("libecho.so"), dir.path().join("libparrot.so")).unwrap();
    let error = modules::load(dir.path(), &name("parrot")).unwrap_err();
    assert!(error.to_string().contains("calls itself `echo`"), "{error}");
}

#[test]
fn a_bad_blob_is_refused_naming_the_file_and_the_reason() {
    let library = modules::load(build_dir(), &name("file")).unwrap();
    let error = Module::start(&library, r#"{"path": 5}"#, Duration::from_secs(5)).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::BadConfig { .. }), "{text}");
    assert!(
        text.contains("libfile.so: module `file` refused its configuration (sms.plugin_config)")
            && text.contains("invalid type"),
        "{text}"
    );
    let error = library.check_config("not json").unwrap_err();
    assert!(error.to_string().contains("expected"), "{error}");
}

#[tokio::test]
async fn two_different_modules_in_one_process_answer_with_their_own_names() {
    let out = tempfile::tempdir().unwrap();
    let blob = serde_json::json!({ "path": out.path().join("f.jsonl") }).to_string();
    let file = start(build_dir(), "file", &blob);
    let echo = start(build_dir(), "echo", "");
    assert_eq!((file.name(), echo.name()), ("file", "echo"));
    let (a, b) = tokio::join!(file.send(sms("x1", "hi")), echo.send(sms("x1", "hi")));
    assert_eq!(
        a.unwrap(),
        Step::Done {
            result: "file-x1".into()
        }
    );
    assert_eq!(
        b.unwrap(),
        Step::Done {
            result: "echo-x1".into()
        }
    );
}

#[tokio::test]
async fn a_module_that_hangs_is_cut_off_at_the_time_limit() {
    let library = modules::load(build_dir(), &name("echo")).unwrap();
    let slow = Module::start(&library, r#"{"sleep_ms": 3000}"#, Duration::from_millis(200)).unwrap();
    let started = std::time::Instant::now();
    let error = slow.send(sms("slow", "hi")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert!(matches!(error, CallError::Timeout { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("module `echo` did not finish send within 200ms"),
        "{error}"
    );
    assert!(error.is_transient());
    // The gateway keeps working with a module that answers.
    let quick = Module::start(&library, "", Duration::from_millis(200)).unwrap();
    assert!(quick.send(sms("quick", "hi")).await.is_ok());
}

#[tokio::test]
async fn one_stuck_call_does_not_hold_back_the_modules_other_calls() {
    let library = modules::load(build_dir(), &name("echo")).unwrap();
    let blob = r#"{"sleep_ms": 3000, "sleep_if_text_contains": "stuck"}"#;
    let module = Module::start(&library, blob, Duration::from_millis(1500)).unwrap();
    let stuck = tokio::spawn({
        let module = module.clone();
        async move { module.send(sms("stuck", "stuck")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The quick calls queue behind the stuck one; another thread takes them.
    let started = std::time::Instant::now();
    for n in 0..20 {
        let step = module.send(sms(&format!("quick-{n}"), "hi")).await.unwrap();
        assert_eq!(
            step,
            Step::Done {
                result: format!("echo-quick-{n}").into()
            }
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "20 quick calls took {:?} beside a stuck one",
        started.elapsed()
    );
    assert_eq!(module.threads(), 2, "one thread stuck, one for the rest");
    let error = stuck.await.unwrap().unwrap_err();
    assert!(matches!(error, CallError::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn a_batch_stops_at_a_call_that_hangs_and_hands_the_module_nothing_after_it() {
    let library = modules::load(build_dir(), &name("echo")).unwrap();
    let blob = r#"{"sleep_ms": 3000, "sleep_if_text_contains": "stuck"}"#;
    let module = Module::start(&library, blob, Duration::from_millis(300)).unwrap();
    let batch = vec![sms("a", "hi"), sms("b", "stuck"), sms("c", "hi"), sms("d", "hi")];
    let answers = module.send_batch(batch).await;
    assert_eq!(answers.len(), 4);
    assert_eq!(
        answers[0].as_ref().unwrap().as_ref().unwrap(),
        &Step::Done {
            result: "echo-a".into()
        }
    );
    let stuck = answers[1].as_ref().unwrap().as_ref().unwrap_err();
    assert!(matches!(stuck, CallError::Timeout { .. }), "{stuck}");
    assert!(
        answers[2].is_none() && answers[3].is_none(),
        "the SMS after the stuck one were never handed over: {answers:?}"
    );
    // The module's next batch goes through on another thread.
    let answers = module.send_batch(vec![sms("e", "hi")]).await;
    assert!(matches!(answers[0], Some(Ok(Step::Done { .. }))), "{answers:?}");
}

#[test]
fn a_modules_log_lines_reach_the_gateway_log_with_its_name() {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || LogBuffer(writer.clone()))
        .finish();
    let library = modules::load(build_dir(), &name("echo")).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        Module::start(&library, r#"{"log": "echo is ready"}"#, Duration::from_secs(5)).unwrap();
    });
    let log = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = serde_json::from_str(log.lines().next().expect("a log line")).unwrap();
    assert_eq!(line["fields"]["message"], "echo is ready");
    assert_eq!(line["fields"]["module"], "echo");
    assert_eq!(line["target"], "gateway::module");
}

struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn gateway_modules_list_shows_each_module_and_why_a_file_is_not_one() {
    let dir = modules_dir_with(&["file", "echo"]);
    std::fs::write(dir.path().join("libbogus.so"), "text").unwrap();
    std::fs::copy(
        build_dir().join("libwrongabi.so"),
        dir.path().join("libwrongabi.so"),
    )
    .unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, format!("[sms]\nmodules_dir = {:?}\n", dir.path())).unwrap();
    let output = Command::new(gateway_bin())
        .args(["--config"])
        .arg(&config)
        .args(["modules", "list"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{stdout}"))
    };
    assert!(line("  file ").contains(&format!("plugin-api {}", plugin_api::PLUGIN_API_VERSION)));
    assert!(line("  echo ").contains("0.1.0"));
    assert!(line("libbogus.so").contains("not a loadable library"));
    assert!(line("libwrongabi.so").contains("plugin-api 2.0.0"));
}

#[test]
fn gateway_modules_check_reports_a_bad_blob_with_the_key() {
    let dir = modules_dir_with(&["file"]);
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[sms]\nmodules_dir = {:?}\nplugin_config = '{{\"paht\": \"x\"}}'\n",
            dir.path()
        ),
    )
    .unwrap();
    let output = Command::new(gateway_bin())
        .arg("--config")
        .arg(&config)
        .args(["modules", "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("sms.plugin_config") && stderr.contains("unknown field `paht`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_new_build_shipped_in_place_of_a_loaded_module_is_what_loads_next() {
    // Regression: the dynamic loader keeps a library per path for the life of the
    // process, so loading libecho.so again after the file was replaced gave back the
    // old code. Here the replacement is another module's build, which must be seen.
    let dir = modules_dir_with(&["echo"]);
    let first = modules::load(dir.path(), &name("echo")).unwrap();
    assert_eq!(first.info().name, "echo");
    std::fs::copy(build_dir().join("libfile.so"), dir.path().join("libecho.so")).unwrap();
    let error = modules::load(dir.path(), &name("echo")).unwrap_err();
    assert!(error.to_string().contains("calls itself `file`"), "{error}");
    // The first library still works: what was loaded stays loaded.
    let module = Module::start(&first, "", Duration::from_secs(5)).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert!(runtime.block_on(module.send(sms("after", "hi"))).is_ok());
}

#[test]
fn the_same_module_loaded_from_many_threads_at_once_loads_every_time() {
    // Regression: concurrent loads of one library raced on its private copy's name.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| modules::load(build_dir(), &name("echo")).map(|l| l.info().name.clone()))
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), "echo");
    }
}
