//! What only concerns the PostgreSQL store's database: its schema's versions, gateways
//! that start together, and errors that name the database without its password.

use gateway::store::{PostgresStore, StoreError};

/// `url` with a password the test server (trust authentication) ignores: what an
/// operator's `storage.url` holds, and what no error may show.
fn with_password(url: &str) -> String {
    url.replacen("postgres://gateway@", "postgres://gateway:hunter2-secret@", 1)
}

#[tokio::test]
async fn a_newer_schema_is_refused_naming_the_database_but_not_its_password() {
    let url = with_password(&e2e::postgres::database());
    drop(
        PostgresStore::connect(&url)
            .await
            .expect("a fresh database is migrated"),
    );
    e2e::postgres::psql(&url, "INSERT INTO gateway_schema (version) VALUES (99)").unwrap();

    let error = PostgresStore::connect(&url)
        .await
        .expect_err("schema 99 is unknown");

    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 99, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("schema version 99") && text.contains("run a newer gateway"),
        "{text}"
    );
    let database = url.rsplit('/').next().unwrap();
    assert!(
        text.contains("postgres://gateway@127.0.0.1:") && text.contains(database),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_starting_together_migrate_the_database_once() {
    let url = e2e::postgres::database();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every gateway starts");
    }
    let versions = e2e::postgres::psql(
        &url,
        "SELECT count(*) || ' ' || count(DISTINCT version) FROM gateway_schema",
    )
    .unwrap();
    assert_eq!(versions, "4 4", "each of the four versions is applied once");
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let url = format!(
        "postgres://gateway:hunter2-secret@127.0.0.1:{}/queue",
        e2e::free_port()
    );

    let error = PostgresStore::connect(&url)
        .await
        .expect_err("nothing listens there");

    let text = error.to_string();
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(
        text.contains("postgres://gateway@127.0.0.1:") && text.contains("/queue"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
