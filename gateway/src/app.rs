//! The running gateway's shared state: what the HTTP API and the delivery workers
//! hold.

use std::{collections::BTreeMap, sync::Arc};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::{
    email::connect::SmtpTarget,
    modules::Module,
    settings::{Settings, Shown},
    sms::http::HttpClient,
    store::Store,
};

/// What a reload replaces as one: the settings and the SMS module started from them.
#[derive(Debug)]
pub struct Live {
    pub settings: Settings,
    /// The settings as shown to admins (secrets redacted, with sources).
    pub shown: BTreeMap<String, Shown>,
    pub module: Module,
    /// The SMTP server of `settings.email`, prepared (CA file read) once.
    pub smtp: SmtpTarget,
}

/// Shared by every request and worker.
pub struct App {
    /// Swapped whole on reload; a request or a send keeps the `Live` it started with,
    /// so an SMS handed to a module finishes with that module.
    pub live: ArcSwap<Live>,
    pub store: Arc<dyn Store>,
    /// Performs the HTTP requests of SMS modules.
    pub http: HttpClient,
    /// Woken when an SMS is queued, so the worker does not wait for its next poll.
    pub sms_queued: Notify,
    /// Woken when e-mails are queued.
    pub email_queued: Notify,
    /// This process's lease owner name: unique per process.
    pub lease_owner: String,
}

impl App {
    pub fn new(live: Live, store: Arc<dyn Store>) -> Arc<App> {
        let http = HttpClient::new(live.settings.sms.http_timeout);
        Arc::new(App {
            live: ArcSwap::from_pointee(live),
            store,
            http,
            sms_queued: Notify::new(),
            email_queued: Notify::new(),
            lease_owner: format!("gateway-{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        })
    }

    /// The settings and module in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }
}
