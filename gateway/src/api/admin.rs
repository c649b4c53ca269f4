//! Admin endpoints: *Send test*, the module's self-check, the modules installed, the
//! queue's depth, and the reload (the settings themselves are in `settings.rs`).

use std::sync::Arc;

use axum::{extract::State, Json};
use plugin_api::OutboundSms;
use serde::Serialize;

use super::{
    body::JsonBody,
    problem::Problem,
    sms::{check, SmsRequest},
};
use crate::{
    app::{App, ReloadReport},
    modules::{
        self,
        steps::{SelfCheck, StepRecord},
    },
    store::Channel,
};

/// The answer of *Send test*.
#[derive(Debug, Serialize)]
pub(super) struct TestSent {
    /// `test-…`: never stored, so never in `GET /v1/messages`.
    id: String,
    module: String,
    /// The number as normalised and handed to the module.
    to: String,
    provider_id: String,
    /// The HTTP exchanges the send took.
    steps: Vec<StepRecord>,
}

/// `POST /v1/admin/sms/test`: sends one SMS at once through the loaded module,
/// bypassing the queue, and answers with the provider's id and the HTTP exchanges it
/// took, or the module's error.
pub(super) async fn sms_test(
    State(app): State<Arc<App>>,
    JsonBody(request): JsonBody<SmsRequest>,
) -> Result<Json<TestSent>, Problem> {
    let live = app.live();
    let payload = check(request, &live.settings)?;
    let id = format!("test-{}", uuid::Uuid::now_v7());
    let sms = OutboundSms {
        id: id.as_str().into(),
        to: payload.to.as_str().into(),
        sender: payload.sender.as_str().into(),
        text: payload.text.as_str().into(),
        attempt: 1,
    };
    let module = &live.module;
    let (steps, outcome) = crate::sms::send::run(&live, sms).await;
    match outcome {
        Ok(provider_id) => {
            tracing::info!(message_id = %id, module = module.name(), %provider_id, "test SMS sent");
            Ok(Json(TestSent {
                id,
                module: module.name().to_string(),
                to: payload.to,
                provider_id,
                steps,
            }))
        }
        Err(error) => {
            tracing::warn!(message_id = %id, module = module.name(), %error, "test SMS failed");
            Err(Problem::bad_gateway(format!(
                "the test SMS was not sent: {error}"
            )))
        }
    }
}

/// `POST /v1/admin/sms/check`: the module in force runs its self-check, with the HTTP
/// requests it asks for. A failed check is still a 200: the request worked, and the
/// answer says what failed.
pub(super) async fn sms_check(State(app): State<Arc<App>>) -> Json<SelfCheck> {
    let live = app.live();
    let check = crate::sms::send::self_check(&live.module, &live.http, &live.settings).await;
    match &check.error {
        None => tracing::info!(module = %check.module, "module self-check passed"),
        Some(error) => tracing::warn!(module = %check.module, %error, "module self-check failed"),
    }
    Json(check)
}

/// `POST /v1/admin/reload`: reads the settings file again, as SIGHUP does.
pub(super) async fn reload(State(app): State<Arc<App>>) -> Result<Json<ReloadReport>, Problem> {
    match app.reload().await {
        Ok(report) => Ok(Json(report)),
        Err(error) => {
            tracing::warn!(%error, "reload refused; the settings in force stay as they were");
            Err(Problem::invalid(
                "settings",
                format!("{error}; the settings in force stay as they were"),
            ))
        }
    }
}

/// The answer of `GET /v1/admin/sms/modules`.
#[derive(Debug, Serialize)]
pub(super) struct ModuleList {
    /// `sms.modules_dir`.
    dir: String,
    /// The module in force.
    current: String,
    /// Every library there, sorted by file name.
    modules: Vec<ModuleListed>,
}

#[derive(Debug, Serialize)]
struct ModuleListed {
    file: String,
    /// Whether it loads; if not, `error` says why and the module fields are absent.
    loadable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin_api: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /v1/admin/sms/modules`: every module library in `sms.modules_dir`, as
/// `gateway modules list` shows them: name, version and description, or why it
/// cannot load (the console's *Module* list box).
pub(super) async fn sms_modules(State(app): State<Arc<App>>) -> Result<Json<ModuleList>, Problem> {
    let live = app.live();
    let dir = live.settings.sms.modules_dir.clone();
    let current = live.module.name().to_string();
    let listing = {
        let dir = dir.clone();
        // Loading a library reads and maps a file: blocking work.
        tokio::task::spawn_blocking(move || modules::list_dir(&dir)).await
    };
    let entries = match listing {
        Ok(Ok(entries)) => entries,
        Ok(Err(error)) => {
            return Err(Problem::unavailable(format!(
                "cannot read sms.modules_dir {}: {error}",
                dir.display()
            )))
        }
        Err(error) => return Err(Problem::internal(format!("listing the modules failed: {error}"))),
    };
    let modules = entries
        .into_iter()
        .map(|(path, result)| {
            let file = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            match result {
                Ok(info) => ModuleListed {
                    file,
                    loadable: true,
                    name: Some(info.name),
                    version: Some(info.version),
                    description: Some(info.description),
                    plugin_api: Some(info.plugin_api),
                    error: None,
                },
                Err(error) => ModuleListed {
                    file,
                    loadable: false,
                    name: None,
                    version: None,
                    description: None,
                    plugin_api: None,
                    error: Some(error.to_string()),
                },
            }
        })
        .collect();
    Ok(Json(ModuleList {
        dir: dir.display().to_string(),
        current,
        modules,
    }))
}

/// The answer of `GET /v1/admin/queue`.
#[derive(Debug, Serialize)]
pub(super) struct QueueView {
    sms: ChannelDepth,
    email: ChannelDepth,
}

#[derive(Debug, Serialize)]
struct ChannelDepth {
    /// Messages waiting to be leased now.
    due: u64,
    /// How long the oldest of them has waited, in seconds (0 when none waits).
    oldest_due_seconds: f64,
}

/// `GET /v1/admin/queue`: the work waiting for each channel's workers, as `/metrics`
/// reports it.
pub(super) async fn queue(State(app): State<Arc<App>>) -> Result<Json<QueueView>, Problem> {
    let depth = |channel| {
        let app = app.clone();
        async move {
            let depth = app.store.queue_depth(channel).await.map_err(|error| {
                tracing::error!(%error, "cannot measure the queue");
                Problem::unavailable("the store cannot be read now; try again")
            })?;
            Ok::<_, Problem>(ChannelDepth {
                due: depth.due,
                oldest_due_seconds: depth.oldest_due_age.map_or(0.0, |age| age.as_secs_f64()),
            })
        }
    };
    Ok(Json(QueueView {
        sms: depth(Channel::Sms).await?,
        email: depth(Channel::Email).await?,
    }))
}
