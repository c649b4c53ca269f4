//! The file's set-up: connection settings, and the schema's versions (kept in
//! `PRAGMA user_version`), brought up to date at open, each step in one transaction.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::store::StoreError;

/// How long a connection waits for another process's lock before giving up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema's versions, oldest first: each script brings a file of the version before
/// it to its own. Version 2's script is idempotent and also creates a new file.
const MIGRATIONS: &[(i64, &str)] = &[
    (2, include_str!("migrations/0002_base.sql")),
    (3, include_str!("migrations/0003_lease_tokens.sql")),
    (4, include_str!("migrations/0004_reports_keys_retention.sql")),
    (5, include_str!("migrations/0005_settings_versions.sql")),
    (6, include_str!("migrations/0006_console_sessions.sql")),
    (7, include_str!("migrations/0007_mail_features.sql")),
];

/// The newest schema this gateway knows.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Lets a prepared statement keep its plan whatever values are bound to it.
///
/// Without this, SQLite (built with STAT4) compiles a statement again whenever a value
/// bound to it might change its plan, as `now` does at every lease: a lease would
/// compile its statement every time, half its cost.
pub(super) fn keep_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map(|_| ())
}

/// Sets up the write connection: WAL, commits on disk before they are answered.
pub(super) fn configure_writer(conn: &Connection) -> Result<(), String> {
    let sqlite = |e: rusqlite::Error| e.to_string();
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        // WAL needs shared memory beside the file; without it readers would block the writer.
        return Err(format!(
            "the file system refused write-ahead logging (journal mode stays {mode})"
        ));
    }
    // FULL: a commit is on disk before the writer answers, which is what a 202 promises.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sqlite)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(sqlite)?;
    // Statement journals (every UPDATE of a row with a foreign key keeps one, to undo
    // just that statement) stay in memory instead of spilling to a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(sqlite)?;
    keep_plans(conn).map_err(sqlite)?;
    // A large mailing grows the write-ahead log; give the space back once it is checkpointed.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(sqlite)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Brings the file's schema up to [`SCHEMA_VERSION`]; refuses a file of a newer one.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_error = |e: rusqlite::Error| StoreError::Open {
        store: path.display().to_string(),
        cause: e.to_string(),
    };
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_error)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            store: path.display().to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for &(version, script) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_error)?;
        tx.execute_batch(script).map_err(open_error)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(open_error)?;
        tx.commit().map_err(open_error)?;
    }
    Ok(())
}
