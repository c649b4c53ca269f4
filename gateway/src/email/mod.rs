//! E-mail: what is queued ([`message`]) with headers that always fit on a line
//! ([`header`]), how a connection is secured ([`tls`]) and
//! opened ([`connect`]), what is said on it ([`session`]) and how its failures are
//! told apart ([`error`]), the admin's connection check ([`check`]), merge fields
//! ([`template`]) and DKIM signatures ([`dkim`]). The engine
//! that delivers the queue within the two limits is in `crate::delivery::email`.
//!
//! The engine uses lettre's async SMTP connection directly, not its pool: lettre's
//! pool caps idle connections, not open ones, and reuses a connection without limit,
//! while the contract (section 2) caps both the connections open at once and the
//! e-mails each connection carries.

pub mod check;
pub mod connect;
pub mod dkim;
pub mod error;
pub mod header;
pub mod limits;
pub mod message;
pub mod session;
pub mod template;
pub mod tls;
pub mod unsubscribe;

use std::{path::PathBuf, time::Duration};

use crate::{retry::RetryPolicy, secret::Secret};
use limits::EmailLimits;
use tls::TlsMode;

/// The `[email]` section, checked: the SMTP server, the two limits, and retries.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub limits: EmailLimits,
    pub default_from: Option<String>,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: TlsMode,
    pub check_address: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub retry: RetryPolicy,
    /// `email.public_url`: the gateway as recipients reach it, without a trailing `/`.
    /// Mailing e-mails carry a `List-Unsubscribe` link under it; without it, none.
    pub public_url: Option<String>,
    /// `email.max_per_minute|hour|day`: the sending quota's windows; empty for none.
    pub quota: Vec<crate::store::QuotaWindow>,
    /// `email.dkim`: the signer every e-mail goes through, when the section is set.
    pub dkim: Option<dkim::Dkim>,
}
