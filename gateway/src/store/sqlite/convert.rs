//! SQLite errors as [`StoreError`]s naming the operation; the store's own units
//! (ids, unix milliseconds) come from [`crate::store::stored`].

pub(super) use crate::store::stored::{
    millis, millis_duration, new_id, now_millis, system_time, unix_millis,
};
use crate::store::StoreError;

/// Turns a SQLite error into a [`StoreError`] naming what was being done.
pub(super) fn database(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database {
        operation,
        cause: e.to_string(),
    }
}
