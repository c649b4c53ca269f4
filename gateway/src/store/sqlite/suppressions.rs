//! The suppression list in SQLite: adds and removals through the writer, reads on the
//! read connections.

use rusqlite::{params, Connection, Row};

use super::convert::{database, system_time};
use super::SqliteStore;
use crate::store::{NewSuppression, StoreError, Suppression, Suppressions};

fn add(conn: &Connection, entries: &[NewSuppression], now: i64) -> Result<u64, StoreError> {
    let failed = database("add to the suppression list");
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO suppressions (address, reason, detail, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (address) DO NOTHING",
        )
        .map_err(&failed)?;
    let mut added = 0;
    for entry in entries {
        added += insert
            .execute(params![entry.address, entry.reason.as_str(), entry.detail, now])
            .map_err(&failed)? as u64;
    }
    Ok(added)
}

fn from_row(row: &Row) -> rusqlite::Result<(String, String, Option<String>, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn list(conn: &Connection, limit: i64, after: Option<&str>) -> Result<Vec<Suppression>, StoreError> {
    let failed = database("list the suppression list");
    let mut select = conn
        .prepare_cached(
            "SELECT address, reason, detail, created_at FROM suppressions
             WHERE ?1 IS NULL OR address > ?1 ORDER BY address LIMIT ?2",
        )
        .map_err(&failed)?;
    let rows = select
        .query_map(params![after, limit], from_row)
        .map_err(&failed)?;
    rows.map(|row| {
        let (address, reason, detail, created_at) = row.map_err(&failed)?;
        Ok(Suppression {
            address,
            reason: reason.parse()?,
            detail,
            created_at: system_time(created_at),
        })
    })
    .collect()
}

fn listed(conn: &Connection, addresses: &[String]) -> Result<Vec<String>, StoreError> {
    let failed = database("read the suppression list");
    let mut select = conn
        .prepare_cached("SELECT 1 FROM suppressions WHERE address = ?1")
        .map_err(&failed)?;
    let mut found = Vec::new();
    for address in addresses {
        if select.exists([address]).map_err(&failed)? {
            found.push(address.clone());
        }
    }
    Ok(found)
}

#[async_trait::async_trait]
impl Suppressions for SqliteStore {
    async fn suppress(&self, entries: Vec<NewSuppression>) -> Result<u64, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        self.write(move |conn, now| add(conn, &entries, now)).await
    }

    async fn unsuppress(&self, address: &str) -> Result<bool, StoreError> {
        let address = address.to_owned();
        self.write(move |conn, _now| {
            conn.prepare_cached("DELETE FROM suppressions WHERE address = ?1")
                .and_then(|mut delete| delete.execute([&address]))
                .map(|deleted| deleted > 0)
                .map_err(database("remove from the suppression list"))
        })
        .await
    }

    async fn suppressions(
        &self,
        limit: usize,
        after: Option<String>,
    ) -> Result<Vec<Suppression>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("list the suppression list", move |conn| {
            list(conn, limit, after.as_deref())
        })
        .await
    }

    async fn suppressed(&self, addresses: Vec<String>) -> Result<Vec<String>, StoreError> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        self.read("read the suppression list", move |conn| listed(conn, &addresses))
            .await
    }

    async fn unsubscribe_secret(&self, fresh: String) -> Result<String, StoreError> {
        self.write(move |conn, _now| {
            conn.prepare_cached(
                "INSERT INTO gateway_secrets (name, value) VALUES ('unsubscribe', ?1)
                 ON CONFLICT (name) DO NOTHING",
            )
            .and_then(|mut insert| insert.execute([&fresh]))
            .and_then(|_| {
                conn.prepare_cached("SELECT value FROM gateway_secrets WHERE name = 'unsubscribe'")?
                    .query_row([], |row| row.get(0))
            })
            .map_err(database("read the unsubscribe secret"))
        })
        .await
    }
}
