//! LISTEN on a connection of its own: what other gateways notify (work queued, an SMTP
//! slot freed) becomes [`FleetEvent`]s for this gateway's idle workers. Notifications
//! are a shortcut, not a promise: while the connection is down, workers still find
//! their work at their next poll, and the listener reconnects.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::fleet::SLOT_NOTIFICATION;
use super::messages::QUEUED_NOTIFICATION;
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
    // The connection delivers notifications only while it is polled: poll it here,
    // and send LISTEN from a task of its own through the client.
    let subscribe = tokio::spawn(async move {
        let result = client
            .batch_execute(&format!(
                "LISTEN {QUEUED_NOTIFICATION}; LISTEN {SLOT_NOTIFICATION}"
            ))
            .await;
        // The client must live as long as the connection is listened to.
        (client, result)
    });
    let mut subscribe = Some(subscribe);
    let mut _client = None;
    loop {
        let message = tokio::select! {
            () = closed.cancelled() => return Ok(()),
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => message,
        };
        if let Some(done) = subscribe.as_mut().filter(|task| task.is_finished()) {
            let (client, result) = done.await.expect("the LISTEN task does not panic");
            result?;
            _client = Some(client);
            subscribe = None;
        }
        match message {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                let event = match (notification.channel(), notification.payload()) {
                    (QUEUED_NOTIFICATION, "sms") => FleetEvent::Queued(Channel::Sms),
                    (QUEUED_NOTIFICATION, _) => FleetEvent::Queued(Channel::Email),
                    _ => FleetEvent::SmtpSlotFreed,
                };
                // No receiver yet (nothing idle) is fine: nobody was waiting.
                let _ = events.send(event);
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error),
            None => return Ok(()),
        }
    }
}
