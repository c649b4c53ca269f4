//! Running the gateway: open the store, start the SMS module, serve the API and run
//! the delivery workers until told to stop, then stop gracefully.
//!
//! [`run`] takes its listener and a shutdown future, so a test can start a whole
//! gateway on port 0 in-process; `gateway serve` binds the configured address and
//! stops on SIGTERM or SIGINT.

use std::{future::Future, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    app::{App, Live},
    delivery, fleet, listener,
    metrics::Metrics,
    purger,
    settings::{ConfigFile, Loaded, StorageUrl},
    sms,
    store::{PostgresStore, SqliteStore, Store},
};

/// `gateway serve`: binds `server.listen` and runs until SIGTERM or Ctrl-C.
pub async fn serve(config: ConfigFile, loaded: Loaded) -> anyhow::Result<()> {
    if config.path.exists() {
        tracing::info!(file = %config.path.display(), "settings loaded");
    } else {
        tracing::info!(file = %config.path.display(), "no settings file: running on the embedded defaults");
    }
    let address = loaded.settings.server.listen;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (server.listen)"))?;
    run(listener, loaded, shutdown_signal()).await
}

/// Opens the store named by `storage.url`.
pub async fn open_store(url: &StorageUrl) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        StorageUrl::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .context("the store opening thread failed")??;
            // One gateway per SQLite file: leases left in it are a dead process's.
            let expired = store.expire_all_leases().await?;
            if expired > 0 {
                tracing::warn!(
                    expired,
                    "messages were in flight when the gateway last stopped; they are due again"
                );
            }
            Ok(Arc::new(store))
        }
        // Shared by a fleet: leases held now may be live gateways' own. A dead gateway's
        // are released by its peers once its heartbeat stops.
        StorageUrl::Postgres(url) => Ok(Arc::new(PostgresStore::connect(url.expose()).await?)),
    }
}

/// Runs a whole gateway on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    loaded: Loaded,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = open_store(&loaded.settings.storage.url).await?;
    let metrics = Arc::new(Metrics::new());
    let (session_events, delivered_on_sessions) = tokio::sync::mpsc::unbounded_channel();
    let (loaded, live) = start_settings(loaded, store.as_ref(), &metrics, &session_events).await?;
    let grace = live.settings.server.shutdown_grace;
    let reload_on_hangup = loaded.source.is_some();
    let app = App::new(loaded, live, store, metrics, session_events);
    if reload_on_hangup {
        tokio::spawn(reload_on_sighup(app.clone()));
    }

    let stop = CancellationToken::new();
    let sms_worker = tokio::spawn(delivery::sms::run(app.clone(), stop.child_token()));
    let smtp_engine = tokio::spawn(delivery::email::run(app.clone(), stop.child_token()));
    let forwarder = tokio::spawn(sms::inbound::forward(app.clone(), stop.child_token()));
    let session_events = tokio::spawn(sms::session::apply_events(
        app.clone(),
        delivered_on_sessions,
        stop.child_token(),
    ));
    let purge = tokio::spawn(purger::run(app.clone(), stop.child_token()));
    let heartbeat = tokio::spawn(fleet::run(app.clone(), stop.child_token()));
    let wake_ups = tokio::spawn(fleet::wake_on_peers(app.clone(), stop.child_token()));

    let address = listener.local_addr().context("the listener has no address")?;
    let configured = app.live().settings.server.max_connections.get();
    let (max_connections, descriptor_limit) = listener::connection_cap(configured);
    if max_connections < configured as usize {
        tracing::warn!(
            max_connections,
            configured,
            descriptor_limit,
            "open connections capped below server.max_connections by the descriptor limit (ulimit -n)"
        );
    }
    tracing::info!(%address, max_connections, "HTTP API listening");
    match &app.live().settings.email.public_url {
        Some(url) => {
            tracing::info!(public_url = %url, "mailing e-mails carry a List-Unsubscribe link under email.public_url")
        }
        None => tracing::warn!(
            "email.public_url is not set: mailing e-mails go out without a List-Unsubscribe link \
             (set it to the URL recipients reach this gateway at)"
        ),
    }
    let limits = {
        let app = app.clone();
        move || {
            let server = &app.live().settings.server;
            listener::Limits {
                header_read: server.header_read_timeout,
                idle: server.idle_timeout,
            }
        }
    };
    let server = tokio::spawn(listener::serve(
        listener,
        api::router(app.clone()),
        max_connections,
        limits,
        stop.clone(),
    ));

    shutdown.await;
    tracing::info!(grace = ?grace, "stopping: no new requests; finishing what is in flight");
    stop.cancel();
    let finished = tokio::time::timeout(grace, async {
        let _ = server.await;
        let _ = sms_worker.await;
        // No SMS is handed to the sessions any more: they unbind once the provider has
        // answered the last ones.
        if let Some(sessions) = app.live().sessions.clone() {
            sessions.close().await;
        }
        let _ = session_events.await;
        let _ = smtp_engine.await;
        let _ = forwarder.await;
        let _ = purge.await;
        let _ = heartbeat.await;
        let _ = wake_ups.await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!(grace = ?grace, "work still in flight after the grace period; leaving it to the next start");
    }
    match app.store.release_leases(&app.gateway_id).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "released leases of unfinished messages"),
        Err(error) => tracing::error!(%error, "cannot release leases; they will run out on their own"),
    }
    if let Some(fleet) = app.store.fleet() {
        if let Err(error) = fleet.leave(&app.gateway_id).await {
            tracing::error!(%error, "cannot leave the fleet; peers will notice this gateway is gone");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The settings to start on, and what they describe: the console's latest saved
/// version over the file, if one was saved. A saved version that cannot be put in
/// force here (its module library is not on this machine) is logged, and the gateway
/// starts on the file's settings instead, so that an admin can still reach it to roll
/// back; a fleet's gateway tries the latest version again at its next heartbeat.
async fn start_settings(
    loaded: Loaded,
    store: &dyn Store,
    metrics: &Arc<Metrics>,
    events: &crate::sms::session::EventSender,
) -> anyhow::Result<(Loaded, Live)> {
    if let Some(layer) = crate::console_settings::latest_layer(store).await? {
        let version = layer.version;
        let attempt = async {
            let with_console = loaded.with_console(Some(layer))?;
            let live = Live::build(&with_console, None, metrics, events).await?;
            Ok::<_, crate::app::ReloadError>((with_console, live))
        };
        match attempt.await {
            Ok(started) => {
                tracing::info!(version, "console settings applied over the file");
                return Ok(started);
            }
            Err(error) => tracing::error!(
                version,
                %error,
                "the console's saved settings cannot be put in force; starting on the file's \
                 settings (roll back or save again to fix)"
            ),
        }
    }
    let live = Live::build(&loaded, None, metrics, events).await?;
    Ok((loaded, live))
}

/// Reloads the settings on every SIGHUP, as `POST /v1/admin/reload` does.
async fn reload_on_sighup(app: Arc<App>) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP; reload with POST /v1/admin/reload");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the settings");
            if let Err(error) = app.reload().await {
                tracing::error!(%error, "reload refused; the settings in force stay as they were");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = app;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
