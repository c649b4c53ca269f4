//! Idempotency keys, claimed before anything else is written: of two gateways taking
//! one key at once, the second's `INSERT … ON CONFLICT DO NOTHING` waits for the first's
//! commit, then finds its row.

use deadpool_postgres::GenericClient;

use super::{execute, one_row, Attempt};
use crate::store::Idempotency;

/// Claims `idempotency`'s key for what this request is creating, `id`: `None` if the key
/// was new, or the id the first request with it created. A key first used on another
/// endpoint or with another body is refused.
pub(super) async fn claim(
    db: &impl GenericClient,
    idempotency: &Idempotency,
    id: &str,
) -> Attempt<Option<String>> {
    let claimed = execute(
        db,
        "INSERT INTO idempotency_keys (key, endpoint, body_digest, created_id, created_at)
         VALUES ($1, $2, $3, $4, gateway_now())
         ON CONFLICT (key) DO NOTHING",
        &[
            &idempotency.key,
            &idempotency.endpoint,
            &idempotency.body_digest,
            &id,
        ],
    )
    .await?;
    if claimed == 1 {
        return Ok(None);
    }
    let first = one_row(
        db,
        "SELECT endpoint, body_digest, created_id FROM idempotency_keys WHERE key = $1",
        &[&idempotency.key],
    )
    .await?;
    let digest: Option<String> = first.get(1);
    Ok(Some(idempotency.repeats(
        first.get(0),
        digest.as_deref(),
        first.get(2),
    )?))
}
