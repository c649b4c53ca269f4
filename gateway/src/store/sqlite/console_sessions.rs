//! The console's sessions in the SQLite file: writes go through the writer, reads use
//! a reader's connection.

use std::time::Duration;

use rusqlite::{params, OptionalExtension};

use super::convert::{database, millis, system_time, unix_millis};
use super::SqliteStore;
use crate::store::{ConsoleSession, ConsoleSessions, NewConsoleSession, StoreError};

#[async_trait::async_trait]
impl ConsoleSessions for SqliteStore {
    async fn create_console_session(
        &self,
        session: NewConsoleSession,
        idle_timeout: Duration,
    ) -> Result<(), StoreError> {
        let expires_at = unix_millis(session.expires_at);
        let idle = millis(idle_timeout);
        self.write(move |conn, now| {
            let failed = database("keep a console session");
            conn.prepare_cached(
                "DELETE FROM console_sessions WHERE expires_at <= ?1 OR last_seen_at <= ?1 - ?2",
            )
            .and_then(|mut delete| delete.execute(params![now, idle]))
            .map_err(&failed)?;
            conn.prepare_cached(
                "INSERT INTO console_sessions (id_digest, token_digest, created_at, expires_at, last_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?3)",
            )
            .and_then(|mut insert| {
                insert.execute(params![session.id_digest, session.token_digest, now, expires_at])
            })
            .map_err(&failed)?;
            Ok(())
        })
        .await
    }

    async fn console_session(&self, id_digest: &str) -> Result<Option<ConsoleSession>, StoreError> {
        let id_digest = id_digest.to_owned();
        self.read("read a console session", move |conn| {
            conn.prepare_cached(
                "SELECT token_digest, created_at, expires_at, last_seen_at
                 FROM console_sessions WHERE id_digest = ?1",
            )
            .and_then(|mut select| {
                select
                    .query_row([&id_digest], |row| {
                        Ok(ConsoleSession {
                            token_digest: row.get(0)?,
                            created_at: system_time(row.get(1)?),
                            expires_at: system_time(row.get(2)?),
                            last_seen_at: system_time(row.get(3)?),
                        })
                    })
                    .optional()
            })
            .map_err(database("read a console session"))
        })
        .await
    }

    async fn touch_console_session(&self, id_digest: &str) -> Result<(), StoreError> {
        let id_digest = id_digest.to_owned();
        self.write(move |conn, now| {
            conn.prepare_cached("UPDATE console_sessions SET last_seen_at = ?2 WHERE id_digest = ?1")
                .and_then(|mut update| update.execute(params![id_digest, now]))
                .map_err(database("record a console session's use"))?;
            Ok(())
        })
        .await
    }

    async fn end_console_session(&self, id_digest: &str) -> Result<bool, StoreError> {
        let id_digest = id_digest.to_owned();
        self.write(move |conn, _| {
            let deleted = conn
                .prepare_cached("DELETE FROM console_sessions WHERE id_digest = ?1")
                .and_then(|mut delete| delete.execute([&id_digest]))
                .map_err(database("end a console session"))?;
            Ok(deleted > 0)
        })
        .await
    }
}
