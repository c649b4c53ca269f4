//! The database's schema: versions kept in `gateway_schema`, brought up to date at
//! connect, all in one transaction under an advisory lock, so that gateways starting
//! together migrate once and one at a time.

use deadpool_postgres::Client;

use crate::store::StoreError;

/// The schema's versions, oldest first: each script brings a database of the version
/// before it to its own.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_base.sql")),
    (2, include_str!("migrations/0002_settings_versions.sql")),
    (3, include_str!("migrations/0003_console_sessions.sql")),
    (4, include_str!("migrations/0004_mail_features.sql")),
];

/// The newest schema this gateway knows.
pub(super) const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock key held while migrating: "gw-schema" in ASCII, so it is unlikely
/// to collide with any other application's sharing the database.
const MIGRATION_LOCK: i64 = 0x6777_2d73_6368_656d;

/// Brings the database's schema up to [`SCHEMA_VERSION`]; refuses one of a newer version.
pub(super) async fn migrate(client: &mut Client, name: &str) -> Result<(), StoreError> {
    let open_error = |e: tokio_postgres::Error| StoreError::Open {
        store: name.to_owned(),
        cause: super::describe(&e),
    };
    let tx = client.transaction().await.map_err(open_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(open_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS gateway_schema (
             version    INTEGER NOT NULL PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(open_error)?;
    let found: Option<i32> = tx
        .query_one("SELECT max(version) FROM gateway_schema", &[])
        .await
        .map_err(open_error)?
        .get(0);
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            store: name.to_owned(),
            found: i64::from(found),
            supported: i64::from(SCHEMA_VERSION),
        });
    }
    for &(version, script) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        tx.batch_execute(script).await.map_err(open_error)?;
        tx.execute("INSERT INTO gateway_schema (version) VALUES ($1)", &[&version])
            .await
            .map_err(open_error)?;
    }
    tx.commit().await.map_err(open_error)
}
