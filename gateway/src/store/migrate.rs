//! `gateway store migrate --to postgres://…`: moves a stopped gateway's SQLite queue
//! into an empty PostgreSQL database, so an operator who outgrows one machine keeps
//! every queued message, mailing, inbound SMS, held delivery report, idempotency key
//! and suppressed address (and the history of finished messages, which the status API
//! still answers for).
//!
//! The copy is one PostgreSQL transaction: it lands whole or not at all, and a database
//! that already holds a queue is refused, so nothing is ever mixed or copied twice.
//! Messages that were `sending` when the gateway stopped are copied as `queued` and due
//! at once, their attempts still counted, as the SQLite store's own start-up does.

use std::path::Path;

use tokio_postgres::types::ToSql;

use super::{PostgresStore, SqliteStore, StoreError};

/// Rows read from SQLite and written to PostgreSQL per statement.
const CHUNK: i64 = 2000;

/// What was copied, table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub mailings: u64,
    pub messages: u64,
    pub inbound: u64,
    pub held_reports: u64,
    pub idempotency_keys: u64,
    pub suppressions: u64,
}

/// A column's type, the same in both databases.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
}

/// A table as both stores have it, in the order rows must be copied (mailings before
/// the messages that point at them).
struct Table {
    name: &'static str,
    /// Each column's name in PostgreSQL, the SQLite expression it is read from, its type.
    columns: &'static [(&'static str, &'static str, Kind)],
}

const TABLES: [Table; 6] = [
    Table {
        name: "mailings",
        columns: &[
            ("id", "id", Kind::Text),
            ("payload", "payload", Kind::Text),
            ("total", "total", Kind::Integer),
            ("created_at", "created_at", Kind::Integer),
            ("suppressed", "suppressed", Kind::Integer),
        ],
    },
    Table {
        name: "messages",
        columns: &[
            ("id", "id", Kind::Text),
            ("channel", "channel", Kind::Text),
            // `sending` becomes `queued` (see the module's doc): the lease columns
            // that follow are read as NULL for it.
            ("status", "CASE status WHEN 'sending' THEN 'queued' ELSE status END", Kind::Text),
            ("payload", "payload", Kind::Text),
            ("attempts", "attempts", Kind::Integer),
            (
                "due_at",
                "CASE status WHEN 'sending' THEN CAST(strftime('%s', 'now') AS INTEGER) * 1000 ELSE due_at END",
                Kind::Integer,
            ),
            ("provider_id", "provider_id", Kind::Text),
            ("error", "error", Kind::Text),
            ("mailing_id", "mailing_id", Kind::Text),
            ("created_at", "created_at", Kind::Integer),
            ("updated_at", "updated_at", Kind::Integer),
        ],
    },
    Table {
        name: "inbound",
        columns: &[
            ("id", "id", Kind::Text),
            ("module", "module", Kind::Text),
            ("sender", "sender", Kind::Text),
            ("recipient", "recipient", Kind::Text),
            ("text", "text", Kind::Text),
            ("provider_id", "provider_id", Kind::Text),
            ("received_at", "received_at", Kind::Integer),
            ("forward_status", "forward_status", Kind::Text),
            ("forward_url", "forward_url", Kind::Text),
            ("forward_due_at", "forward_due_at", Kind::Integer),
            ("forward_attempts", "forward_attempts", Kind::Integer),
            ("forward_error", "forward_error", Kind::Text),
        ],
    },
    Table {
        name: "held_reports",
        columns: &[
            ("module", "module", Kind::Text),
            ("provider_id", "provider_id", Kind::Text),
            ("message_id", "message_id", Kind::Text),
            ("status", "status", Kind::Text),
            ("detail", "detail", Kind::Text),
            ("received_at", "received_at", Kind::Integer),
        ],
    },
    Table {
        name: "idempotency_keys",
        columns: &[
            ("key", "key", Kind::Text),
            ("endpoint", "endpoint", Kind::Text),
            ("body_digest", "body_digest", Kind::Text),
            ("created_id", "created_id", Kind::Text),
            ("created_at", "created_at", Kind::Integer),
        ],
    },
    Table {
        name: "suppressions",
        columns: &[
            ("address", "address", Kind::Text),
            ("reason", "reason", Kind::Text),
            ("detail", "detail", Kind::Text),
            ("created_at", "created_at", Kind::Integer),
        ],
    },
];

/// One chunk of a table: a column of values per column, as PostgreSQL arrays take them.
enum Column {
    Text(Vec<Option<String>>),
    Integer(Vec<Option<i64>>),
}

/// Copies the SQLite queue in the file `from` into the empty database at `to`.
pub async fn sqlite_to_postgres(from: &Path, to: &str) -> Result<Copied, StoreError> {
    let path = from.to_path_buf();
    // Opening it brings an older file's schema up to date, so its columns are these.
    drop(
        tokio::task::spawn_blocking(move || SqliteStore::open(&path))
            .await
            .map_err(|e| StoreError::Invalid(format!("the opening thread failed: {e}")))??,
    );
    let target = PostgresStore::connect(to).await?;
    let mut client = target.client().await?;
    let failed = |operation: &'static str| {
        move |e: tokio_postgres::Error| StoreError::Database {
            operation,
            cause: super::postgres::describe(&e),
        }
    };
    let tx = client.transaction().await.map_err(failed("start the copy"))?;
    let present: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM mailings)
                  + (SELECT count(*) FROM inbound) + (SELECT count(*) FROM idempotency_keys)
                  + (SELECT count(*) FROM held_reports) + (SELECT count(*) FROM suppressions)",
            &[],
        )
        .await
        .map_err(failed("look into the target database"))?
        .get(0);
    if present > 0 {
        return Err(StoreError::Invalid(format!(
            "the database {} already holds a queue ({present} rows): migrate into an empty database",
            target.name()
        )));
    }

    let mut copied = Copied::default();
    for table in &TABLES {
        let mut after: i64 = 0;
        loop {
            let (columns, last) = read_chunk(from, table, after).await?;
            let Some(last) = last else { break };
            after = last;
            let rows = write_chunk(&tx, table, columns)
                .await
                .map_err(failed("copy rows"))?;
            *match table.name {
                "mailings" => &mut copied.mailings,
                "messages" => &mut copied.messages,
                "inbound" => &mut copied.inbound,
                "held_reports" => &mut copied.held_reports,
                "suppressions" => &mut copied.suppressions,
                _ => &mut copied.idempotency_keys,
            } += rows;
        }
    }
    tx.commit().await.map_err(failed("commit the copy"))?;
    Ok(copied)
}

/// Reads up to [`CHUNK`] rows of `table` after SQLite's `rowid` `after`; returns them by
/// column, and the last rowid read (`None` when there were none).
async fn read_chunk(
    from: &Path,
    table: &'static Table,
    after: i64,
) -> Result<(Vec<Column>, Option<i64>), StoreError> {
    let path = from.to_path_buf();
    let read = move || -> rusqlite::Result<(Vec<Column>, Option<i64>)> {
        let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let expressions: Vec<&str> = table
            .columns
            .iter()
            .map(|(_, expression, _)| *expression)
            .collect();
        let sql = format!(
            "SELECT {}, rowid FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            expressions.join(", "),
            table.name
        );
        let mut columns: Vec<Column> = table
            .columns
            .iter()
            .map(|(_, _, kind)| match kind {
                Kind::Text => Column::Text(Vec::new()),
                Kind::Integer => Column::Integer(Vec::new()),
            })
            .collect();
        let mut last = None;
        let mut select = conn.prepare(&sql)?;
        let mut rows = select.query(rusqlite::params![after, CHUNK])?;
        while let Some(row) = rows.next()? {
            for (index, column) in columns.iter_mut().enumerate() {
                match column {
                    Column::Text(values) => values.push(row.get(index)?),
                    Column::Integer(values) => values.push(row.get(index)?),
                }
            }
            last = Some(row.get(table.columns.len())?);
        }
        Ok((columns, last))
    };
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| StoreError::Invalid(format!("the reading thread failed: {e}")))?
        .map_err(|e| StoreError::Database {
            operation: "read the SQLite queue",
            cause: e.to_string(),
        })
}

/// Inserts one chunk, in its order, with one statement.
async fn write_chunk(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
    columns: Vec<Column>,
) -> Result<u64, tokio_postgres::Error> {
    let names: Vec<&str> = table.columns.iter().map(|(name, _, _)| *name).collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| match column {
            Column::Text(_) => format!("${}::text[]", index + 1),
            Column::Integer(_) => format!("${}::bigint[]", index + 1),
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({names}) SELECT {names} FROM unnest({arrays}) WITH ORDINALITY
             AS chunk ({names}, copy_order) ORDER BY copy_order",
        table = table.name,
        names = names.join(", "),
        arrays = arrays.join(", "),
    );
    let params: Vec<&(dyn ToSql + Sync)> = columns
        .iter()
        .map(|column| match column {
            Column::Text(values) => values as &(dyn ToSql + Sync),
            Column::Integer(values) => values as &(dyn ToSql + Sync),
        })
        .collect();
    tx.execute(&sql, &params).await
}
