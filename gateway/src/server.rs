//! Running the gateway: start the SMS module, then serve until told to stop.

use anyhow::Context;

use crate::{
    modules::{self, Module},
    settings::{ConfigFile, Loaded},
};

/// `gateway serve`: loads the configured module and runs until SIGTERM or Ctrl-C.
pub async fn serve(config: ConfigFile, loaded: Loaded) -> anyhow::Result<()> {
    let settings = loaded.settings;
    if config.path.exists() {
        tracing::info!(file = %config.path.display(), "settings loaded");
    } else {
        tracing::info!(file = %config.path.display(), "no settings file: running on the embedded defaults");
    }
    let sms = settings.sms.clone();
    let module = tokio::task::spawn_blocking(move || -> anyhow::Result<Module> {
        let library = modules::load(&sms.modules_dir, &sms.module)?;
        Ok(Module::start(
            &library,
            sms.plugin_config.expose(),
            sms.call_timeout,
        )?)
    })
    .await
    .context("module loading thread failed")??;
    tracing::info!(
        module = module.name(),
        version = %module.info().version,
        plugin_api = %module.info().plugin_api,
        file = %module.info().path.display(),
        "SMS module loaded"
    );
    shutdown_signal().await;
    tracing::info!("stopping");
    Ok(())
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
