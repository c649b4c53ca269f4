//! The running gateway's shared state: what the HTTP API and the workers hold, and
//! how a reload replaces it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::{
    email::{connect::SmtpTarget, tls::TargetError},
    metrics::Metrics,
    modules::{http::HttpClient, LoadError, Module, ModuleInfo},
    settings::{self, Loaded, Settings, SettingsError, Shown},
    sms::session::{EventSender, SessionLimits, SessionPool},
    store::Store,
};

/// What a reload replaces as one: the settings and what is built from them.
#[derive(Debug)]
pub struct Live {
    pub settings: Settings,
    /// The settings as shown to admins (secrets redacted, with sources).
    pub shown: std::collections::BTreeMap<String, Shown>,
    /// The SMS module started from `settings.sms`.
    pub module: Module,
    /// Its sessions, when it asked for some (plugin-api 1.2): kept as long as the
    /// module is, ended politely when the last `Live` holding them is gone.
    pub sessions: Option<Arc<SessionPool>>,
    /// The SMTP server of `settings.email`, prepared (CA file read) once.
    pub smtp: SmtpTarget,
    /// Performs SMS modules' HTTP requests, with `sms.http_timeout_ms`.
    pub http: HttpClient,
}

impl Live {
    /// Builds everything the settings describe, keeping `running` (a module and its
    /// sessions) if given, else starting the module the settings name and, if it asks
    /// for sessions, opening them; what they deliver goes to `events`.
    pub async fn build(
        loaded: &Loaded,
        running: Option<(Module, Option<Arc<SessionPool>>)>,
        metrics: &Arc<Metrics>,
        events: &EventSender,
    ) -> Result<Live, ReloadError> {
        let settings = loaded.settings.clone();
        let smtp = SmtpTarget::new(&settings.email)?;
        let (module, sessions) = match running {
            Some(running) => running,
            None => {
                let module = start_module(&settings).await?.with_metrics(metrics.clone());
                let sessions = match module.session_plan().await {
                    Ok(Some(plan)) => Some(SessionPool::start(
                        module.clone(),
                        plan,
                        session_limits(&settings),
                        events.clone(),
                        Some(metrics.clone()),
                    )),
                    Ok(None) => None,
                    Err(error) => {
                        return Err(ReloadError::Module(LoadError::StartFailed {
                            path: module.info().path.clone(),
                            module: module.name().to_string(),
                            error: plugin_api::ModuleError::permanent(format!("session_plan: {error}")),
                        }))
                    }
                };
                (module, sessions)
            }
        };
        let http = HttpClient::new(settings.sms.http_timeout);
        Ok(Live {
            shown: loaded.describe(),
            settings,
            module,
            sessions,
            smtp,
            http,
        })
    }
}

/// The time limits of a module's sessions: connecting as an HTTP request may take, an
/// outcome within what the send's lease allows (see `modules::steps::lease_duration`),
/// and the stop's grace to end them.
pub fn session_limits(settings: &Settings) -> SessionLimits {
    let sms = &settings.sms;
    SessionLimits {
        connect: sms.http_timeout,
        outcome: sms.call_timeout * 2 + sms.http_timeout * crate::modules::steps::MAX_HTTP_STEPS as u32,
        close_grace: settings.server.shutdown_grace,
    }
}

/// Starts the SMS module the settings name (blocking work, done off the runtime).
pub async fn start_module(settings: &Settings) -> Result<Module, LoadError> {
    let sms = settings.sms.clone();
    let module = tokio::task::spawn_blocking(move || {
        let library = crate::modules::load(&sms.modules_dir, &sms.module)?;
        Module::start(&library, sms.plugin_config.expose(), sms.call_timeout)
            .map_err(|error| sms.plugin_config.locate(error))
    })
    .await
    .expect("the module loading thread does not panic")?;
    tracing::info!(
        module = module.name(),
        version = %module.info().version,
        plugin_api = %module.info().plugin_api,
        file = %module.info().path.display(),
        "SMS module loaded"
    );
    Ok(module)
}

/// Shared by every request and worker.
pub struct App {
    /// Swapped whole on reload; a request or a send keeps the `Live` it started with,
    /// so an SMS handed to a module finishes with that module.
    pub live: ArcSwap<Live>,
    pub store: Arc<dyn Store>,
    /// Woken when an SMS is queued, so the worker does not wait for its next poll.
    pub sms_queued: Notify,
    /// Woken when e-mails are queued.
    pub email_queued: Notify,
    /// Woken when an inbound SMS waits to be forwarded.
    pub inbound_received: Notify,
    /// Woken when a peer of the fleet gives back an SMTP slot.
    pub smtp_slot_freed: Notify,
    /// Woken after a reload, so that the fleet hears of new limits at once.
    pub reloaded: Notify,
    /// The fleet as the last heartbeat saw it (a shared store only).
    pub fleet: crate::fleet::FleetView,
    /// This gateway's name on the leases it takes (unique per process), so that a
    /// graceful stop releases its own. Each lease also has a token of its own.
    pub gateway_id: String,
    pub metrics: Arc<Metrics>,
    /// Where the sessions of every module generation send what they deliver.
    pub session_events: EventSender,
    /// Mailings as the SMTP engine sends them (shared part read, sender parsed, merge-field
    /// templates compiled), prepared once per mailing.
    pub templates: crate::email::template::Compiled<Result<crate::email::message::Mailing, String>>,
    /// The key of unsubscribe links, read from the store on first use.
    unsubscribe_key: tokio::sync::OnceCell<crate::email::unsubscribe::UnsubscribeKey>,
    /// The settings in force, as loaded: what a reload compares against. Also held
    /// while a reload or a console save runs, so that they happen one at a time.
    pub(crate) loaded: tokio::sync::Mutex<Loaded>,
    /// The latest console version this gateway could not apply, so that the fleet's
    /// check does not log it again every heartbeat.
    pub(crate) refused_console_version: std::sync::atomic::AtomicU64,
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// The keys whose values changed (secrets are named, never shown).
    pub changed: Vec<String>,
    /// Whether a new SMS module took over.
    pub module_switched: bool,
    /// The SMS module in force after the reload.
    pub module: ModuleInfo,
    /// Changed keys that take effect only at the next start.
    pub needs_restart: Vec<String>,
}

/// Why the settings could not be put in force: at start, or at a reload (then the
/// settings and module in force stay as they were).
///
/// Each message says its cause once: the causes are part of the text, not also
/// `source()`s, which `{:#}` (the command line's `error: …`) would print a second time.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("these settings were not read from a file, so there is nothing to read again")]
    NoFile,
    #[error("settings refused: {0}")]
    Settings(SettingsError),
    /// The module the settings name cannot be loaded or started, at start.
    #[error("the SMS module was refused: {0}")]
    Module(LoadError),
    /// A reload switched modules (or their blob), and the new one cannot start.
    #[error("the new SMS module was refused: {0}")]
    NewModule(LoadError),
    #[error(transparent)]
    Smtp(#[from] TargetError),
    /// The console's saved settings could not be read.
    #[error("cannot read the console's saved settings: {0}")]
    Store(crate::store::StoreError),
}

impl From<SettingsError> for ReloadError {
    fn from(error: SettingsError) -> Self {
        ReloadError::Settings(error)
    }
}

impl From<LoadError> for ReloadError {
    fn from(error: LoadError) -> Self {
        ReloadError::Module(error)
    }
}

/// Keys read only at start.
const RESTART_KEYS: &[&str] = &["server.listen", "server.max_connections", "storage.url"];
/// Keys that need the SMS module restarted.
const MODULE_KEYS: &[&str] = &[
    "sms.module",
    "sms.modules_dir",
    "sms.plugin_config",
    "sms.call_timeout_ms",
];

impl App {
    /// The key unsubscribe links are sealed and opened with: the store's secret (made
    /// by the first gateway that needed it), read once.
    pub async fn unsubscribe_key(
        &self,
    ) -> Result<&crate::email::unsubscribe::UnsubscribeKey, crate::store::StoreError> {
        use crate::email::unsubscribe::{new_secret, UnsubscribeKey};
        self.unsubscribe_key
            .get_or_try_init(|| async {
                let secret = self.store.unsubscribe_secret(new_secret()).await?;
                Ok(UnsubscribeKey::from_secret(&secret))
            })
            .await
    }

    pub fn new(
        loaded: Loaded,
        live: Live,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        session_events: EventSender,
    ) -> Arc<App> {
        Arc::new(App {
            live: ArcSwap::from_pointee(live),
            store,
            sms_queued: Notify::new(),
            email_queued: Notify::new(),
            inbound_received: Notify::new(),
            smtp_slot_freed: Notify::new(),
            reloaded: Notify::new(),
            fleet: crate::fleet::FleetView::default(),
            gateway_id: format!("gateway-{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
            loaded: tokio::sync::Mutex::new(loaded),
            refused_console_version: std::sync::atomic::AtomicU64::new(0),
            templates: Default::default(),
            unsubscribe_key: tokio::sync::OnceCell::new(),
            metrics,
            session_events,
        })
    }

    /// The settings and module in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Reads the settings file again (SIGHUP, `POST /v1/admin/reload`), with the
    /// console's latest saved version over it. A changed SMS module or blob is loaded
    /// and checked first, and takes over only if it is good; SMS already handed to the
    /// old module finish there. Anything wrong leaves the gateway exactly as it was.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let mut current = self.loaded.lock().await;
        let file = current.source.clone().ok_or(ReloadError::NoFile)?;
        let console = crate::console_settings::latest_layer(self.store.as_ref())
            .await
            .map_err(ReloadError::Store)?;
        let loaded = tokio::task::spawn_blocking(move || settings::load(&file)?.with_console(console))
            .await
            .expect("the settings reading thread does not panic")?;
        let (live, report) = self.prepare(&current, &loaded).await?;
        self.put_in_force(&mut current, loaded, live, &report);
        Ok(report)
    }

    /// Builds what `loaded` describes, to replace `current`: a new module only if its
    /// keys changed. Nothing is in force yet.
    pub(crate) async fn prepare(
        &self,
        current: &Loaded,
        loaded: &Loaded,
    ) -> Result<(Live, ReloadReport), ReloadError> {
        let changed = loaded.changed_since(current);
        let module_switched = changed.iter().any(|key| MODULE_KEYS.contains(&key.as_str()));
        let running = if module_switched {
            None
        } else {
            let live = self.live();
            Some((live.module.clone(), live.sessions.clone()))
        };
        let live = Live::build(loaded, running, &self.metrics, &self.session_events)
            .await
            .map_err(|error| match error {
                ReloadError::Module(error) => ReloadError::NewModule(error),
                other => other,
            })?;
        let report = ReloadReport {
            needs_restart: changed
                .iter()
                .filter(|key| RESTART_KEYS.contains(&key.as_str()))
                .cloned()
                .collect(),
            changed,
            module_switched,
            module: live.module.info().clone(),
        };
        Ok((live, report))
    }

    /// Puts what [`App::prepare`] built in force.
    pub(crate) fn put_in_force(
        &self,
        current: &mut Loaded,
        loaded: Loaded,
        live: Live,
        report: &ReloadReport,
    ) {
        let old = self.live.swap(Arc::new(live));
        if report.module_switched {
            // The old module's sessions end now, not when the last holder of the old
            // settings lets go of them: they unbind once their pending sends are
            // answered, and SMS handed to them meanwhile are retried with the new one.
            if let Some(sessions) = old.sessions.clone() {
                tokio::spawn(async move { sessions.close().await });
            }
        }
        *current = loaded;
        tracing::info!(
            changed = ?report.changed,
            module = %report.module.name,
            module_switched = report.module_switched,
            needs_restart = ?report.needs_restart,
            console_version = current.console().map_or(0, |c| c.version),
            "settings reloaded"
        );
        // Work waiting for the old settings may be due under the new ones.
        self.sms_queued.notify_one();
        self.email_queued.notify_one();
        self.reloaded.notify_one();
    }
}
