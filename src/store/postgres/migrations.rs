//! The database's schema versions: the SQL files of `migrations/`, built
//! into the binary and applied in order when the store connects.
//!
//! `schema_version` holds one row per version applied. Checking it and
//! applying what is missing is one transaction under an advisory lock, so
//! gateways starting together migrate once, and none reads a schema half
//! made. A database at a version newer than this binary's is refused.

use deadpool_postgres::Object;

use super::locks;
use crate::store::{Result, StoreError};

/// Every version, in order, with its SQL.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_cluster.sql")),
];

/// The schema this binary writes.
pub(super) const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the database to [`SCHEMA_VERSION`]; returns how many versions it
/// applied.
pub(super) async fn migrate(client: &mut Object) -> Result<usize> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&locks::MIGRATIONS])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::Write(format!(
            "the database has schema version {found}, written by a newer hookgate; this one knows up to {SCHEMA_VERSION}"
        )));
    }
    let mut applied = 0;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[version],
        )
        .await?;
        applied += 1;
    }
    tx.commit().await?;
    if applied > 0 {
        tracing::info!(
            from = found,
            to = SCHEMA_VERSION,
            "database schema migrated"
        );
    }
    Ok(applied)
}
