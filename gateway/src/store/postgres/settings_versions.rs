//! The console's settings versions, shared by the fleet. A save checks its base
//! version and inserts the next in one transaction; two gateways saving on one base at
//! once collide on the version's primary key (`ON CONFLICT DO NOTHING` waits for the
//! first's commit), and the second is refused as stale. Each save notifies every
//! gateway, which then applies it.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{execute, one_row, rows, Attempt, PostgresStore};
use crate::store::settings_versions::{parse_keys, parse_values, version_number};
use crate::store::stored::system_time;
use crate::store::{NewSettingsVersion, SettingsVersion, SettingsVersions, StoreError};

/// The channel on which a save is announced; the payload is the new version.
pub(super) const SAVED_NOTIFICATION: &str = "gateway_settings_saved";

const COLUMNS: &str = "version, saved_at, saved_by, changed, settings, rollback_of";

pub(super) async fn save(db: &impl GenericClient, new: &NewSettingsVersion) -> Attempt<SettingsVersion> {
    let latest = latest_version(db).await?;
    let stale = StoreError::StaleSettingsVersion {
        base: new.base_version,
        latest,
    };
    if latest != new.base_version {
        return Err(stale.into());
    }
    let version = i64::try_from(latest + 1).unwrap_or(i64::MAX);
    let changed = serde_json::to_string(&new.changed).expect("a list of keys serialises");
    let values = serde_json::Value::Object(new.values.clone()).to_string();
    let rollback_of = new.rollback_of.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let inserted = rows(
        db,
        &format!(
            "INSERT INTO settings_versions (version, saved_at, saved_by, changed, settings, rollback_of)
             VALUES ($1, gateway_now(), $2, $3, $4, $5)
             ON CONFLICT (version) DO NOTHING
             RETURNING {COLUMNS}"
        ),
        &[&version, &new.saved_by, &changed, &values, &rollback_of],
    )
    .await?;
    let Some(row) = inserted.first() else {
        // Another gateway saved this very version first.
        return Err(StoreError::StaleSettingsVersion {
            base: new.base_version,
            latest: latest + 1,
        }
        .into());
    };
    execute(
        db,
        "SELECT pg_notify($1, $2)",
        &[&SAVED_NOTIFICATION, &version.to_string()],
    )
    .await?;
    Ok(from_row(row)?)
}

pub(super) async fn latest_version(db: &impl GenericClient) -> Attempt<u64> {
    let row = one_row(db, "SELECT coalesce(max(version), 0) FROM settings_versions", &[]).await?;
    Ok(version_number(row.get::<_, i64>(0))?)
}

/// Versions newest first, at most `limit`; `version` alone when it is given.
pub(super) async fn list(
    db: &impl GenericClient,
    version: Option<u64>,
    limit: i64,
) -> Attempt<Vec<SettingsVersion>> {
    let version = version.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let found = rows(
        db,
        &format!(
            "SELECT {COLUMNS} FROM settings_versions WHERE $1::BIGINT IS NULL OR version = $1
             ORDER BY version DESC LIMIT $2"
        ),
        &[&version, &limit],
    )
    .await?;
    Ok(found.iter().map(from_row).collect::<Result<_, _>>()?)
}

fn from_row(row: &Row) -> Result<SettingsVersion, StoreError> {
    Ok(SettingsVersion {
        version: version_number(row.get(0))?,
        saved_at: system_time(row.get(1)),
        saved_by: row.get(2),
        changed: parse_keys(row.get(3))?,
        values: parse_values(row.get(4))?,
        rollback_of: row.get::<_, Option<i64>>(5).map(version_number).transpose()?,
    })
}

#[async_trait::async_trait]
impl SettingsVersions for PostgresStore {
    async fn save_settings(&self, new: NewSettingsVersion) -> Result<SettingsVersion, StoreError> {
        let new = &new;
        self.run("save a settings version", move |mut client| async move {
            let tx = client.transaction().await?;
            let saved = save(&tx, new).await?;
            tx.commit().await?;
            Ok(saved)
        })
        .await
    }

    async fn latest_settings(&self) -> Result<Option<SettingsVersion>, StoreError> {
        self.run("read the latest settings version", |client| async move {
            Ok(list(&client, None, 1).await?.pop())
        })
        .await
    }

    async fn latest_settings_version(&self) -> Result<u64, StoreError> {
        self.run("read the latest settings version", |client| async move {
            latest_version(&client).await
        })
        .await
    }

    async fn settings_history(&self, limit: usize) -> Result<Vec<SettingsVersion>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("read settings versions", move |client| async move {
            list(&client, None, limit).await
        })
        .await
    }

    async fn settings_version(&self, version: u64) -> Result<Option<SettingsVersion>, StoreError> {
        self.run("read settings versions", move |client| async move {
            Ok(list(&client, Some(version), 1).await?.pop())
        })
        .await
    }
}
