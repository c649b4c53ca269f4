//! Switching the SMS module by SIGHUP while SMS keep flowing: the process stays the
//! same, every SMS is delivered by exactly one module, none is lost, new SMS go to the
//! new module, and a switch to a broken module leaves the old one sending.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use e2e::{sms_lines, Api, GatewayProcess, TestConfig, ADMIN_TOKEN, SEND_TOKEN};
use serde_json::json;

/// A provider's HTTP API that records the gateway id (`ref`) of each SMS it takes.
async fn provider() -> (String, Arc<Mutex<Vec<String>>>) {
    let refs = Arc::new(Mutex::new(Vec::new()));
    let log = refs.clone();
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move |body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let reference = json["ref"].as_str().unwrap().to_string();
                log.lock().unwrap().push(reference.clone());
                json!({ "id": format!("P-{reference}") }).to_string()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, refs)
}

async fn module_in_force(api: &Api) -> String {
    let (_, settings) = api.get("/v1/admin/settings", ADMIN_TOKEN).await;
    settings["sms_module"]["name"].as_str().unwrap().to_string()
}

async fn wait_for_module(api: &Api, name: &str) {
    for _ in 0..200 {
        if module_in_force(api).await == name {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the module never became {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_switches_modules_while_sms_flow_and_loses_nothing() {
    let (url, provider_refs) = provider().await;
    let config = TestConfig::new("file", None, "", "");
    let file_toml = config.toml.clone();
    let file_blob = format!("plugin_config = '{}'", json!({ "path": config.sms_file() }));
    let http_blob = json!({
        "url": format!("{url}/send"),
        "body": { "type": "json", "template": { "to": "{{to}}", "text": "{{text}}", "ref": "{{id}}" } },
        "message_id_pointer": "/id",
    });
    let http_toml = file_toml
        .replace("module = \"file\"", "module = \"http\"")
        .replace(&file_blob, &format!("plugin_config = '{http_blob}'"));
    assert_ne!(http_toml, file_toml);

    let gateway = GatewayProcess::start(&config).await;
    let pid = gateway.child.id();
    let api = Api::new(&gateway.url);
    let path = config.dir.path().join("gateway.toml");
    let port_line = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("listen"))
        .unwrap()
        .to_string();
    let with_port = |toml: &str| toml.replace("listen = \"127.0.0.1:0\"", &port_line);

    // One client sends continuously until told to stop.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (api, accepted, stop) = (api.clone(), accepted.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (status, body) = api
                    .post(
                        "/v1/sms",
                        SEND_TOKEN,
                        &json!({ "to": "+447911123456", "text": format!("sms {n}") }),
                    )
                    .await;
                assert_eq!(status, 202, "{body}");
                accepted
                    .lock()
                    .unwrap()
                    .push(body["id"].as_str().unwrap().to_string());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let count = || accepted.lock().unwrap().len();
    let wait_more = |n: usize| {
        let accepted = accepted.clone();
        async move {
            let target = accepted.lock().unwrap().len() + n;
            while accepted.lock().unwrap().len() < target {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    wait_more(50).await;
    std::fs::write(&path, with_port(&http_toml)).unwrap();
    gateway.signal(libc::SIGHUP);
    wait_for_module(&api, "http").await;
    let after_first_switch = count();
    wait_more(50).await;

    // A broken module: refused, and the http module keeps sending.
    std::fs::write(
        &path,
        with_port(&http_toml.replace("module = \"http\"", "module = \"nosuch\"")),
    )
    .unwrap();
    gateway.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(module_in_force(&api).await, "http");
    wait_more(30).await;

    std::fs::write(&path, with_port(&file_toml)).unwrap();
    gateway.signal(libc::SIGHUP);
    wait_for_module(&api, "file").await;
    let after_second_switch = count();
    wait_more(50).await;
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();

    let accepted = accepted.lock().unwrap().clone();
    for id in &accepted {
        api.wait_status(id, &["sent"]).await;
    }
    assert_eq!(gateway.child.id(), pid);
    assert!(
        gateway.log_text().contains("reload refused"),
        "the broken module was refused in the log"
    );

    let by_file: Vec<String> = sms_lines(&config.sms_file())
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    let by_http = provider_refs.lock().unwrap().clone();
    let file_set: HashSet<&String> = by_file.iter().collect();
    let http_set: HashSet<&String> = by_http.iter().collect();
    assert_eq!(file_set.len(), by_file.len(), "the file module sent an SMS twice");
    assert_eq!(http_set.len(), by_http.len(), "the http module sent an SMS twice");
    assert!(
        file_set.is_disjoint(&http_set),
        "an SMS went through both modules"
    );
    let delivered: HashSet<&String> = file_set.union(&http_set).copied().collect();
    let all: HashSet<&String> = accepted.iter().collect();
    assert_eq!(
        delivered, all,
        "every accepted SMS was delivered, and nothing else"
    );
    assert!(
        !by_http.is_empty() && by_file.len() > 50,
        "both modules took SMS: file {}, http {}",
        by_file.len(),
        by_http.len()
    );
    // SMS accepted well after a switch went to the new module.
    let later_http = &accepted[after_first_switch + 10..after_first_switch + 40];
    assert!(
        later_http.iter().all(|id| http_set.contains(id)),
        "after the switch to http"
    );
    let later_file = &accepted[after_second_switch + 10..];
    assert!(
        later_file.iter().all(|id| file_set.contains(id)),
        "after the switch back to file"
    );
}
