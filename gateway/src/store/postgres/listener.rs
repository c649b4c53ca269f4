//! LISTEN on a connection of its own: what other gateways notify (work queued, an SMTP
//! slot freed) becomes [`FleetEvent`]s for this gateway's idle workers. Notifications
//! are a shortcut, not a promise: while the connection is down, workers still find
//! their work at their next poll, and the listener reconnects.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::fleet::SLOT_NOTIFICATION;
use super::messages::QUEUED_NOTIFICATION;
use super::settings_versions::SAVED_NOTIFICATION;
use crate::store::{Channel, FleetEvent};

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Listens until `closed` is cancelled, sending what it hears to `events`.
pub(super) async fn run(
    config: tokio_postgres::Config,
    name: String,
    events: broadcast::Sender<FleetEvent>,
    closed: CancellationToken,
) {
    while !closed.is_cancelled() {
        if let Err(error) = listen(&config, &events, &closed).await {
            tracing::warn!(database = %name, %error, "lost the connection that hears other gateways; reconnecting");
        }
        tokio::select! {
            () = closed.cancelled() => break,
            () = tokio::time::sleep(RECONNECT_AFTER) => {}
        }
    }
}

async fn listen(
    config: &tokio_postgres::Config,
    events: &broadcast::Sender<FleetEvent>,
    closed: &CancellationToken,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection delivers notifications only while it is polled: a task polls it
    // and hands over what it reads, while the client sends LISTEN through it.
    let (messages, mut received) = mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if messages.send(message).is_err() {
                break;
            }
        }
    });
    let _stop_pump = AbortOnDrop(pump);
    client
        .batch_execute(&format!(
            "LISTEN {QUEUED_NOTIFICATION}; LISTEN {SLOT_NOTIFICATION}; LISTEN {SAVED_NOTIFICATION}"
        ))
        .await?;
    loop {
        let message = tokio::select! {
            () = closed.cancelled() => return Ok(()),
            message = received.recv() => message,
        };
        match message {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                let event = match (notification.channel(), notification.payload()) {
                    (QUEUED_NOTIFICATION, "sms") => FleetEvent::Queued(Channel::Sms),
                    (QUEUED_NOTIFICATION, _) => FleetEvent::Queued(Channel::Email),
                    (SAVED_NOTIFICATION, _) => FleetEvent::SettingsSaved,
                    _ => FleetEvent::SmtpSlotFreed,
                };
                // No receiver yet (nothing idle) is fine: nobody was waiting.
                let _ = events.send(event);
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error),
            // The connection ended.
            None => return Ok(()),
        }
    }
}

/// Stops the connection's task when the listener returns, closing the connection.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
