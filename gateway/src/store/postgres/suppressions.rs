//! The suppression list in PostgreSQL, shared by the fleet: an address one gateway
//! suppresses is skipped by every gateway's next mailing.

use deadpool_postgres::GenericClient;

use super::{execute, rows, Attempt, PostgresStore};
use crate::store::stored::system_time;
use crate::store::{NewSuppression, StoreError, Suppression, Suppressions};

async fn add(db: &impl GenericClient, entries: &[NewSuppression]) -> Attempt<u64> {
    let addresses: Vec<&str> = entries.iter().map(|e| e.address.as_str()).collect();
    let reasons: Vec<&str> = entries.iter().map(|e| e.reason.as_str()).collect();
    let details: Vec<Option<&str>> = entries.iter().map(|e| e.detail.as_deref()).collect();
    Ok(execute(
        db,
        "INSERT INTO suppressions (address, reason, detail, created_at)
         SELECT entry.address, entry.reason, entry.detail, gateway_now()
         FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS entry (address, reason, detail, n)
         ORDER BY entry.n
         ON CONFLICT (address) DO NOTHING",
        &[&addresses, &reasons, &details],
    )
    .await?)
}

async fn list(db: &impl GenericClient, limit: i64, after: Option<&str>) -> Attempt<Vec<Suppression>> {
    let found = rows(
        db,
        "SELECT address, reason, detail, created_at FROM suppressions
         WHERE $1::TEXT IS NULL OR address COLLATE \"C\" > $1 ORDER BY address COLLATE \"C\" LIMIT $2",
        &[&after, &limit],
    )
    .await?;
    let mut list = Vec::with_capacity(found.len());
    for row in found {
        list.push(Suppression {
            address: row.get(0),
            reason: row.get::<_, String>(1).parse()?,
            detail: row.get(2),
            created_at: system_time(row.get(3)),
        });
    }
    Ok(list)
}

#[async_trait::async_trait]
impl Suppressions for PostgresStore {
    async fn suppress(&self, entries: Vec<NewSuppression>) -> Result<u64, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let entries = &entries;
        self.run("add to the suppression list", move |client| async move {
            add(&client, entries).await
        })
        .await
    }

    async fn unsuppress(&self, address: &str) -> Result<bool, StoreError> {
        self.run("remove from the suppression list", move |client| async move {
            let deleted = execute(
                &client,
                "DELETE FROM suppressions WHERE address = $1",
                &[&address],
            )
            .await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn suppressions(
        &self,
        limit: usize,
        after: Option<String>,
    ) -> Result<Vec<Suppression>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = after.as_deref();
        self.read("list the suppression list", move |client| async move {
            list(&client, limit, after).await
        })
        .await
    }

    async fn suppressed(&self, addresses: Vec<String>) -> Result<Vec<String>, StoreError> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let addresses = &addresses;
        self.read("read the suppression list", move |client| async move {
            let found = rows(
                &client,
                "SELECT given.address FROM unnest($1::text[]) WITH ORDINALITY AS given (address, n)
                 WHERE EXISTS (SELECT 1 FROM suppressions s WHERE s.address = given.address)
                 ORDER BY given.n",
                &[addresses],
            )
            .await?;
            Ok(found.iter().map(|row| row.get(0)).collect())
        })
        .await
    }

    async fn unsubscribe_secret(&self, fresh: String) -> Result<String, StoreError> {
        let fresh = &fresh;
        self.run("read the unsubscribe secret", move |client| async move {
            // Of two gateways asking at once, the second waits for the first's insert
            // and reads its value.
            execute(
                &client,
                "INSERT INTO gateway_secrets (name, value) VALUES ('unsubscribe', $1)
                 ON CONFLICT (name) DO NOTHING",
                &[fresh],
            )
            .await?;
            let row = rows(
                &client,
                "SELECT value FROM gateway_secrets WHERE name = 'unsubscribe'",
                &[],
            )
            .await?;
            Ok(row.first().map(|r| r.get(0)).unwrap_or_default())
        })
        .await
    }
}
