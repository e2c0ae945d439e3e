//! Versioned schema migrations of the SQLite store, applied in order on open; `PRAGMA
//! user_version` records the last one applied.

use super::writer::store_tiles;
use crate::{Result, StoreError, leaf};
use rusqlite::Connection;
use stele_tlog::tiles::TileBuilder;

/// Versioned schema migrations, applied in order; `PRAGMA user_version` records the last.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_tree.sql"),
    include_str!("../../migrations/sqlite/0003_writer_guard.sql"),
    include_str!("../../migrations/sqlite/0004_events_rowid.sql"),
    include_str!("../../migrations/sqlite/0005_settings.sql"),
    include_str!("../../migrations/sqlite/0006_records.sql"),
];
/// The schema version that added tiles: a store migrated past it gets its tree built.
const TREE_VERSION: usize = 2;

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        if i + 1 == TREE_VERSION {
            build_trees(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "sqlite store migrated");
    }
    Ok(())
}

/// Builds the tiles of every log from its stored leaf hashes (stores older than the tree).
fn build_trees(conn: &Connection) -> Result<()> {
    let logs: Vec<(i64, i64)> = conn
        .prepare("SELECT log_id, size FROM logs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (log_id, size) in logs {
        let mut tree = TileBuilder::new();
        let mut stmt =
            conn.prepare("SELECT seq, leaf_hash FROM events WHERE log_id = ?1 ORDER BY seq")?;
        let mut rows = stmt.query([log_id])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            if seq as u64 != tree.size() {
                return Err(StoreError::Corrupt(format!(
                    "log {log_id}: seq {seq} out of place"
                )));
            }
            tree.push(leaf(row.get(1)?)?.into());
            if tree.size().is_multiple_of(65_536) {
                store_tiles(conn, log_id, tree.take_writes())?;
            }
        }
        if tree.size() != size as u64 {
            return Err(StoreError::Corrupt(format!(
                "log {log_id}: size {size} but {} events",
                tree.size()
            )));
        }
        store_tiles(conn, log_id, tree.take_writes())?;
        tracing::info!(log_id, size, "tree built");
    }
    Ok(())
}
