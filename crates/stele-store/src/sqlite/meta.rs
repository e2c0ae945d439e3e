//! The SQLite meta store: settings and records in their own tables of the store's file, written through
//! a connection of their own (the reader pool is read-only; the writer thread is the log's).

use super::{SqliteStore, configure};
use crate::{MetaStore, Result, now_micros};
use rusqlite::{Connection, OptionalExtension, params};

impl SqliteStore {
    fn with_settings_writer<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = Connection::open(self.path())?;
        configure(&conn)?;
        f(&conn)
    }
}

impl MetaStore for SqliteStore {
    fn setting(&self, name: &str) -> Result<Option<String>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached("SELECT value FROM settings WHERE name = ?1")?;
            Ok(stmt.query_row([name], |r| r.get(0)).optional()?)
        })
    }

    fn init_setting(&self, name: &str, value: &str) -> Result<String> {
        self.with_settings_writer(|conn| {
            conn.execute(
                "INSERT INTO settings (name, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING",
                params![name, value, now_micros()],
            )?;
            Ok(
                conn.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    fn put_setting(&self, name: &str, value: &str) -> Result<()> {
        self.with_settings_writer(|conn| {
            conn.execute(
                "INSERT INTO settings (name, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![name, value, now_micros()],
            )?;
            Ok(())
        })
    }

    fn record(&self, kind: &str, id: &str) -> Result<Option<String>> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT value FROM records WHERE kind = ?1 AND id = ?2")?;
            Ok(stmt.query_row([kind, id], |r| r.get(0)).optional()?)
        })
    }

    fn records(&self, kind: &str) -> Result<Vec<(String, String)>> {
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id, value FROM records WHERE kind = ?1 ORDER BY id")?;
            let rows = stmt.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn insert_record(&self, kind: &str, id: &str, value: &str) -> Result<bool> {
        self.with_settings_writer(|conn| {
            let added = conn.execute(
                "INSERT INTO records (kind, id, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, id) DO NOTHING",
                params![kind, id, value, now_micros()],
            )?;
            Ok(added == 1)
        })
    }

    fn put_record(&self, kind: &str, id: &str, value: &str) -> Result<()> {
        self.with_settings_writer(|conn| {
            conn.execute(
                "INSERT INTO records (kind, id, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![kind, id, value, now_micros()],
            )?;
            Ok(())
        })
    }
}
