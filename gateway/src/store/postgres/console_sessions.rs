//! The console's sessions, shared by the fleet. Times are the database's clock
//! (`gateway_now()`), as for every other row, so that gateways whose clocks differ
//! agree on when a session was used.

use std::time::Duration;

use super::{execute, rows, PostgresStore};
use crate::store::stored::{millis, system_time, unix_millis};
use crate::store::{ConsoleSession, ConsoleSessions, NewConsoleSession, StoreError};

#[async_trait::async_trait]
impl ConsoleSessions for PostgresStore {
    async fn create_console_session(
        &self,
        session: NewConsoleSession,
        idle_timeout: Duration,
    ) -> Result<(), StoreError> {
        let expires_at = unix_millis(session.expires_at);
        let idle = millis(idle_timeout);
        let session = &session;
        self.run("keep a console session", move |mut client| async move {
            let tx = client.transaction().await?;
            execute(
                &tx,
                "DELETE FROM console_sessions
                 WHERE expires_at <= gateway_now() OR last_seen_at <= gateway_now() - $1",
                &[&idle],
            )
            .await?;
            execute(
                &tx,
                "INSERT INTO console_sessions (id_digest, token_digest, created_at, expires_at, last_seen_at)
                 VALUES ($1, $2, gateway_now(), $3, gateway_now())",
                &[&session.id_digest, &session.token_digest, &expires_at],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn console_session(&self, id_digest: &str) -> Result<Option<ConsoleSession>, StoreError> {
        self.read("read a console session", move |client| async move {
            let found = rows(
                &client,
                "SELECT token_digest, created_at, expires_at, last_seen_at
                 FROM console_sessions WHERE id_digest = $1",
                &[&id_digest],
            )
            .await?;
            Ok(found.first().map(|row| ConsoleSession {
                token_digest: row.get(0),
                created_at: system_time(row.get(1)),
                expires_at: system_time(row.get(2)),
                last_seen_at: system_time(row.get(3)),
            }))
        })
        .await
    }

    async fn touch_console_session(&self, id_digest: &str) -> Result<(), StoreError> {
        self.run("record a console session's use", move |client| async move {
            execute(
                &client,
                "UPDATE console_sessions SET last_seen_at = gateway_now() WHERE id_digest = $1",
                &[&id_digest],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn end_console_session(&self, id_digest: &str) -> Result<bool, StoreError> {
        self.run("end a console session", move |client| async move {
            let deleted = execute(
                &client,
                "DELETE FROM console_sessions WHERE id_digest = $1",
                &[&id_digest],
            )
            .await?;
            Ok(deleted > 0)
        })
        .await
    }
}
