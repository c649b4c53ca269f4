//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! One registry per running gateway (no process-wide globals), so that several
//! gateways in one test process count separately.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use crate::store::Channel;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
}

/// `module` is the SMS module's name, or `smtp` for e-mail.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub channel: String,
    pub module: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReportLabels {
    pub module: String,
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurgeLabels {
    /// What was purged: `messages`, `mailings`, `inbound`, `held_reports`, `idempotency_keys`.
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub module: String,
    pub operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModuleLabels {
    pub module: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: String,
}

/// Every metric the gateway keeps.
pub struct Metrics {
    registry: Registry,
    pub accepted: Family<ChannelLabels, Counter>,
    pub sent: Family<OutcomeLabels, Counter>,
    pub failed: Family<OutcomeLabels, Counter>,
    pub retried: Family<OutcomeLabels, Counter>,
    pub delivery_reports: Family<ReportLabels, Counter>,
    pub delivery_reports_held: Family<ReportLabels, Counter>,
    pub inbound: Counter,
    pub queue_due: Family<ChannelLabels, Gauge>,
    pub queue_oldest_due_seconds: Family<ChannelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub smtp_connections_open: Gauge,
    /// Unix time (seconds) when the sending quota lets the next e-mail go; 0 while it
    /// lets e-mails go now (or there is no quota).
    pub email_quota_next_send: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub smtp_emails_per_connection: Histogram,
    pub module_call_seconds: Family<CallLabels, Histogram>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub purged: Family<PurgeLabels, Counter>,
    /// Gateways of the fleet alive at the last heartbeat, this one included.
    pub fleet_gateways: Gauge,
    /// Sessions (plugin-api 1.2) whose module said they are ready, per module.
    pub sessions_ready: Family<ModuleLabels, Gauge>,
    /// SMS handed to a session and not answered yet, per module.
    pub session_sends_pending: Family<ModuleLabels, Gauge>,
    pub session_reconnects: Family<ModuleLabels, Counter>,
    settings_fingerprint: Family<FingerprintLabels, Gauge>,
}

/// The digest of the settings a fleet must share.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FingerprintLabels {
    pub fingerprint: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Shows `fingerprint` as the settings' digest, in place of any earlier one.
    pub fn set_fingerprint(&self, fingerprint: &str) {
        let labels = FingerprintLabels {
            fingerprint: fingerprint.to_owned(),
        };
        if self
            .settings_fingerprint
            .get(&labels)
            .is_none_or(|gauge| gauge.get() != 1)
        {
            self.settings_fingerprint.clear();
            self.settings_fingerprint.get_or_create(&labels).set(1);
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gateway");
        let accepted = Family::<ChannelLabels, Counter>::default();
        registry.register(
            "messages_accepted",
            "Messages accepted (202) by the API",
            accepted.clone(),
        );
        let sent = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "messages_sent",
            "Messages the provider or SMTP server accepted",
            sent.clone(),
        );
        let failed = Family::<OutcomeLabels, Counter>::default();
        registry.register("messages_failed", "Messages failed for good", failed.clone());
        let retried = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "messages_retried",
            "Attempts that failed and were put back for a retry",
            retried.clone(),
        );
        let delivery_reports = Family::<ReportLabels, Counter>::default();
        registry.register(
            "messages_delivery_reports",
            "Delivery reports that changed a message (status delivered or undelivered)",
            delivery_reports.clone(),
        );
        let delivery_reports_held = Family::<ReportLabels, Counter>::default();
        registry.register(
            "delivery_reports_held",
            "Delivery reports that came before their SMS was recorded as sent, held to be applied when it is",
            delivery_reports_held.clone(),
        );
        let inbound = Counter::default();
        registry.register("inbound_sms", "Inbound SMS stored", inbound.clone());
        let queue_due = Family::<ChannelLabels, Gauge>::default();
        registry.register("queue_due", "Messages due for delivery now", queue_due.clone());
        let queue_oldest_due_seconds =
            Family::<ChannelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "queue_oldest_due_seconds",
            "How long the oldest due message has waited",
            queue_oldest_due_seconds.clone(),
        );
        let fleet_gateways = Gauge::default();
        registry.register(
            "fleet_gateways",
            "Gateways sharing this store that were alive at the last heartbeat, this one included",
            fleet_gateways.clone(),
        );
        let sessions_ready = Family::<ModuleLabels, Gauge>::default();
        registry.register(
            "sms_sessions_ready",
            "Sessions of a session module (plugin-api 1.2) that are ready for sends",
            sessions_ready.clone(),
        );
        let session_sends_pending = Family::<ModuleLabels, Gauge>::default();
        registry.register(
            "sms_session_sends_pending",
            "SMS handed to a module's sessions whose outcome has not come yet",
            session_sends_pending.clone(),
        );
        let session_reconnects = Family::<ModuleLabels, Counter>::default();
        registry.register(
            "sms_session_reconnects",
            "Sessions that ended and were opened again (or failed to open)",
            session_reconnects.clone(),
        );
        let settings_fingerprint = Family::<FingerprintLabels, Gauge>::default();
        registry.register(
            "settings_fingerprint",
            "1 for the digest of the settings a fleet must share (storage.url on PostgreSQL): \
             gateways whose digests differ disagree on one of them",
            settings_fingerprint.clone(),
        );
        let smtp_connections_open = Gauge::default();
        registry.register(
            "smtp_connections_open",
            "SMTP connections open now",
            smtp_connections_open.clone(),
        );
        let email_quota_next_send = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "email_quota_next_send_timestamp_seconds",
            "When the sending quota (email.max_per_minute|hour|day) lets the next e-mail go, as \
             unix time; 0 while e-mails may go now",
            email_quota_next_send.clone(),
        );
        let smtp_emails_per_connection =
            Histogram::new([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]);
        registry.register(
            "smtp_emails_per_connection",
            "E-mails carried by each SMTP connection before QUIT",
            smtp_emails_per_connection.clone(),
        );
        let module_call_seconds = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
        });
        registry.register(
            "module_call_seconds",
            "Time of each call into the SMS module",
            module_call_seconds.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        let purged = Family::<PurgeLabels, Counter>::default();
        registry.register(
            "purged",
            "Rows deleted once older than storage.retention (held reports: sms.report_hold)",
            purged.clone(),
        );
        Metrics {
            registry,
            accepted,
            sent,
            failed,
            retried,
            delivery_reports,
            inbound,
            queue_due,
            queue_oldest_due_seconds,
            smtp_connections_open,
            email_quota_next_send,
            fleet_gateways,
            sessions_ready,
            session_sends_pending,
            session_reconnects,
            settings_fingerprint,
            smtp_emails_per_connection,
            module_call_seconds,
            http_requests,
            purged,
            delivery_reports_held,
        }
    }

    pub fn outcome(channel: Channel, module: &str) -> OutcomeLabels {
        OutcomeLabels {
            channel: channel.as_str().into(),
            module: module.into(),
        }
    }

    pub fn channel(channel: Channel) -> ChannelLabels {
        ChannelLabels {
            channel: channel.as_str().into(),
        }
    }

    /// Records one call into a module.
    pub fn module_call(&self, module: &str, operation: &str, took: Duration) {
        self.module_call_seconds
            .get_or_create(&CallLabels {
                module: module.into(),
                operation: operation.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
