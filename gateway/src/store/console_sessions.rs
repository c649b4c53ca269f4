//! The admin console's sign-in sessions, kept in the store so that any gateway of a
//! fleet recognises a session another one opened (a load balancer may send each
//! request elsewhere), and a restart signs nobody out.
//!
//! - **Only digests.** The browser holds a random session id in a cookie; the store
//!   holds its SHA-256 only, so that reading the database gives nobody a session. The
//!   session names its admin token by the token's digest too, never the token: a
//!   token removed from `auth.tokens` ends every session opened with it.
//! - **Expiry.** A session ends at `expires_at` whatever happens, and earlier when it
//!   has not been used for the idle timeout (`last_seen_at`). Both are judged by the
//!   API's session layer (`api/session.rs`); the store keeps the times and deletes
//!   what has ended.

use std::time::{Duration, SystemTime};

use super::StoreError;

/// A session to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsoleSession {
    /// SHA-256 of the session id, hex.
    pub id_digest: String,
    /// SHA-256 of the admin token it was opened with, hex.
    pub token_digest: String,
    /// When it ends, however busy.
    pub expires_at: SystemTime,
}

/// A session as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub token_digest: String,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    /// When it was last used (updated at most once a minute, see `api/session.rs`).
    pub last_seen_at: SystemTime,
}

/// The console's sessions: a side of the store of its own.
#[async_trait::async_trait]
pub trait ConsoleSessions: Send + Sync {
    /// Keeps a new session, first deleting every session that has ended (past its
    /// `expires_at`, or unused for `idle_timeout`), so that the table never grows
    /// with abandoned ones.
    async fn create_console_session(
        &self,
        session: NewConsoleSession,
        idle_timeout: Duration,
    ) -> Result<(), StoreError>;

    /// The session with this id digest, if it is kept (ended or not).
    async fn console_session(&self, id_digest: &str) -> Result<Option<ConsoleSession>, StoreError>;

    /// Records that the session was used now.
    async fn touch_console_session(&self, id_digest: &str) -> Result<(), StoreError>;

    /// Deletes the session (a sign-out, or one found ended); false if there was none.
    async fn end_console_session(&self, id_digest: &str) -> Result<bool, StoreError>;
}
