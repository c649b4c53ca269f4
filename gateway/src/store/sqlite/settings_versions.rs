//! The console's settings versions: a save is one write through the writer, so
//! checking the base version and inserting the next one cannot be split by another save.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::convert::{database, system_time};
use super::SqliteStore;
use crate::store::settings_versions::{parse_keys, parse_values, version_number};
use crate::store::{NewSettingsVersion, SettingsVersion, SettingsVersions, StoreError};

const COLUMNS: &str = "version, saved_at, saved_by, changed, settings, rollback_of";

pub(super) fn save(
    conn: &Connection,
    new: &NewSettingsVersion,
    now: i64,
) -> Result<SettingsVersion, StoreError> {
    let failed = database("save a settings version");
    let latest = latest_version(conn).map_err(&failed)?;
    if latest != new.base_version {
        return Err(StoreError::StaleSettingsVersion {
            base: new.base_version,
            latest,
        });
    }
    let version = latest + 1;
    let changed = serde_json::to_string(&new.changed).expect("a list of keys serialises");
    let values = serde_json::Value::Object(new.values.clone()).to_string();
    let rollback_of = new.rollback_of.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    conn.prepare_cached(
        "INSERT INTO settings_versions (version, saved_at, saved_by, changed, settings, rollback_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            i64::try_from(version).unwrap_or(i64::MAX),
            now,
            new.saved_by,
            changed,
            values,
            rollback_of
        ])
    })
    .map_err(&failed)?;
    Ok(SettingsVersion {
        version,
        saved_at: system_time(now),
        saved_by: new.saved_by.clone(),
        changed: new.changed.clone(),
        values: new.values.clone(),
        rollback_of: new.rollback_of,
    })
}

pub(super) fn latest_version(conn: &Connection) -> rusqlite::Result<u64> {
    let latest: i64 = conn
        .prepare_cached("SELECT coalesce(max(version), 0) FROM settings_versions")?
        .query_row([], |row| row.get(0))?;
    Ok(u64::try_from(latest).unwrap_or(0))
}

/// Versions newest first, at most `limit`; from `version` alone when it is given.
pub(super) fn list(
    conn: &Connection,
    version: Option<u64>,
    limit: i64,
) -> Result<Vec<SettingsVersion>, StoreError> {
    let failed = database("read settings versions");
    let version = version.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let mut select = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM settings_versions WHERE ?1 IS NULL OR version = ?1
             ORDER BY version DESC LIMIT ?2"
        ))
        .map_err(&failed)?;
    let rows = select
        .query_map(params![version, limit], raw_row)
        .map_err(&failed)?;
    rows.map(|row| row.map_err(&failed).and_then(RawVersion::check))
        .collect()
}

/// The latest version, read in the writer's or a reader's connection.
pub(super) fn latest(conn: &Connection) -> Result<Option<SettingsVersion>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM settings_versions ORDER BY version DESC LIMIT 1"
        ))
        .and_then(|mut select| select.query_row([], raw_row).optional())
        .map_err(database("read the latest settings version"))?;
    row.map(RawVersion::check).transpose()
}

/// A row as SQLite holds it, before its JSON is parsed.
struct RawVersion {
    version: i64,
    saved_at: i64,
    saved_by: String,
    changed: String,
    values: String,
    rollback_of: Option<i64>,
}

fn raw_row(row: &Row<'_>) -> rusqlite::Result<RawVersion> {
    Ok(RawVersion {
        version: row.get(0)?,
        saved_at: row.get(1)?,
        saved_by: row.get(2)?,
        changed: row.get(3)?,
        values: row.get(4)?,
        rollback_of: row.get(5)?,
    })
}

impl RawVersion {
    fn check(self) -> Result<SettingsVersion, StoreError> {
        Ok(SettingsVersion {
            version: version_number(self.version)?,
            saved_at: system_time(self.saved_at),
            saved_by: self.saved_by,
            changed: parse_keys(&self.changed)?,
            values: parse_values(&self.values)?,
            rollback_of: self.rollback_of.map(version_number).transpose()?,
        })
    }
}

#[async_trait::async_trait]
impl SettingsVersions for SqliteStore {
    async fn save_settings(&self, new: NewSettingsVersion) -> Result<SettingsVersion, StoreError> {
        self.write(move |conn, now| save(conn, &new, now)).await
    }

    async fn latest_settings(&self) -> Result<Option<SettingsVersion>, StoreError> {
        self.read("read the latest settings version", latest).await
    }

    async fn latest_settings_version(&self) -> Result<u64, StoreError> {
        self.read("read the latest settings version", |conn| {
            latest_version(conn).map_err(database("read the latest settings version"))
        })
        .await
    }

    async fn settings_history(&self, limit: usize) -> Result<Vec<SettingsVersion>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("read settings versions", move |conn| list(conn, None, limit))
            .await
    }

    async fn settings_version(&self, version: u64) -> Result<Option<SettingsVersion>, StoreError> {
        self.read("read settings versions", move |conn| {
            Ok(list(conn, Some(version), 1)?.pop())
        })
        .await
    }
}
