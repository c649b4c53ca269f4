//! The two stores the suite runs on, opened as the gateway opens them.

use std::sync::Arc;

use gateway::{secret::Secret, server::open_store, settings::StorageUrl, store::Store};

/// Where one test's store lives: its own SQLite file, or its own PostgreSQL database.
pub enum Backend {
    /// The embedded store, in a file inside this temporary directory.
    Sqlite(tempfile::TempDir),
    /// A fresh database on the test process's PostgreSQL server: its URL.
    Postgres(String),
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("a temporary directory"))
    }

    pub fn postgres() -> Backend {
        Backend::Postgres(e2e::postgres::database())
    }

    /// `storage.url` as the gateway's settings hold it.
    pub fn url(&self) -> StorageUrl {
        match self {
            Backend::Sqlite(dir) => StorageUrl::Sqlite(dir.path().join("data").join("queue.db")),
            Backend::Postgres(url) => StorageUrl::Postgres(Secret::new(url.clone())),
        }
    }

    /// Opens the store as `gateway serve` does when it starts. Opening it again is a
    /// restart of the gateway (SQLite: the same file) or another gateway sharing the
    /// queue (PostgreSQL: the same database).
    pub async fn open(&self) -> Arc<dyn Store> {
        open_store(&self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot open the {} store: {e:#}", self.name()))
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}
