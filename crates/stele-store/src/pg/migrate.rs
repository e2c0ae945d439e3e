//! Versioned schema migrations of the PostgreSQL store, applied under an advisory lock and
//! recorded in `stele_migrations`, and the monthly partitions of `events`.

use crate::{Result, StoreError};
use postgres::Client;
use stele_core::Timestamp;

/// Versioned schema migrations, applied in order and recorded in `stele_migrations`.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_settings.sql"),
    include_str!("../../migrations/postgres/0003_append_function.sql"),
    include_str!("../../migrations/postgres/0004_records.sql"),
];
/// Advisory lock key held while migrating or creating partitions ("stele"; the migration
/// SQL uses the same number).
pub(super) const LOCK_KEY: i64 = 0x0073_7465_6c65;
/// Months of partitions kept ready ahead of the current one.
pub(super) const MONTHS_AHEAD: i32 = 2;

pub(super) fn schema_version(client: &mut Client) -> Result<i32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('stele_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM stele_migrations",
            &[],
        )?
        .get(0))
}

/// Applies pending migrations under an advisory lock, so that nodes starting together
/// migrate once.
pub(super) fn migrate(client: &mut Client) -> Result<()> {
    // Current already: nothing to do, and nothing a runtime role without CREATE can't do.
    if schema_version(client)? == MIGRATIONS.len() as i32 {
        return Ok(());
    }
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])?;
    let result = (|| {
        client.batch_execute(
            "CREATE TABLE IF NOT EXISTS stele_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )?;
        let current = schema_version(client)?;
        let known = MIGRATIONS.len() as i32;
        if current > known {
            return Err(StoreError::TooNew {
                found: i64::from(current),
                known: i64::from(known),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let mut tx = client.transaction()?;
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO stele_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )?;
            tx.commit()?;
            tracing::info!(version = i + 1, "postgres store migrated");
        }
        Ok(())
    })();
    client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])?;
    result
}

/// (year, month) of a time, counted as months since year 0.
pub(super) fn month_of(t: Timestamp) -> i32 {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_micros()) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    dt.year() * 12 + i32::from(u8::from(dt.month())) - 1
}

/// Creates the monthly partition of `events` for `month` if missing (through a function
/// the schema owner defined, so a runtime role without CREATE can do it).
pub(super) fn create_partition(client: &mut Client, month: i32) -> Result<()> {
    let first_day = format!("{:04}-{:02}-01", month / 12, month % 12 + 1);
    client.execute(
        "SELECT stele_create_partition($1::text::date)",
        &[&first_day],
    )?;
    Ok(())
}
