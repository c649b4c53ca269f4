//! Wake-ups across a fleet: what one gateway queues or frees, another hears at once
//! through LISTEN/NOTIFY, instead of at its next poll.

use std::time::Duration;

use gateway::store::{Channel, FleetEvent, NewMessage, PostgresStore, Store};

/// The next event `events` hears that is not `Queued` of another channel, within 5 s.
async fn next_event(events: &mut tokio::sync::broadcast::Receiver<FleetEvent>) -> FleetEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the listener is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queued_and_a_slot_freed_on_one_gateway_wake_another() {
    let url = e2e::postgres::database();
    let listening = PostgresStore::connect(&url).await.unwrap();
    let other = PostgresStore::connect(&url).await.unwrap();
    let mut events = listening.fleet().expect("PostgreSQL is shared").events();
    // The listener subscribes on a connection of its own once the store is open, so
    // the first notifications may come before it listens: queue until one is heard.
    let sms = || NewMessage {
        channel: Channel::Sms,
        payload: serde_json::json!({"to": "+447700900123", "text": "hi"}),
        mailing_id: None,
    };
    let heard = async {
        loop {
            other.enqueue(sms(), None).await.unwrap();
            if let Ok(event) = tokio::time::timeout(Duration::from_millis(300), events.recv()).await {
                return event.expect("the listener is running");
            }
        }
    };
    let event = tokio::time::timeout(Duration::from_secs(10), heard)
        .await
        .expect("heard within 10 s");
    assert_eq!(event, FleetEvent::Queued(Channel::Sms));
    // Drain what the other enqueues woke, then the slot.
    while let Ok(Ok(FleetEvent::Queued(_))) =
        tokio::time::timeout(Duration::from_millis(300), events.recv()).await
    {}

    let fleet = other.fleet().unwrap();
    let slot = fleet
        .take_smtp_slot("gateway-b", 5, Duration::from_secs(60), Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free slot");
    fleet.give_back_smtp_slot(&slot).await.unwrap();
    assert_eq!(next_event(&mut events).await, FleetEvent::SmtpSlotFreed);
}
