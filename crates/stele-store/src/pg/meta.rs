//! The PostgreSQL meta store: settings and records in tables of their own beside the log's, shared
//! by every node of the database.

use super::PgStore;
use crate::{MetaStore, Result, now_micros};

impl MetaStore for PgStore {
    fn setting(&self, name: &str) -> Result<Option<String>> {
        self.with_client(|c| {
            Ok(
                c.query_opt("SELECT value FROM settings WHERE name = $1", &[&name])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn init_setting(&self, name: &str, value: &str) -> Result<String> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &value, &now_micros()],
            )?;
            Ok(
                c.query_one("SELECT value FROM settings WHERE name = $1", &[&name])?
                    .get(0),
            )
        })
    }

    fn put_setting(&self, name: &str, value: &str) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                &[&name, &value, &now_micros()],
            )?;
            Ok(())
        })
    }

    fn record(&self, kind: &str, id: &str) -> Result<Option<String>> {
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT value FROM records WHERE kind = $1 AND id = $2",
                &[&kind, &id],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn records(&self, kind: &str) -> Result<Vec<(String, String)>> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT id, value FROM records WHERE kind = $1 ORDER BY id",
                &[&kind],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn insert_record(&self, kind: &str, id: &str, value: &str) -> Result<bool> {
        self.with_client(|c| {
            let added = c.execute(
                "INSERT INTO records (kind, id, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, id) DO NOTHING",
                &[&kind, &id, &value, &now_micros()],
            )?;
            Ok(added == 1)
        })
    }

    fn put_record(&self, kind: &str, id: &str, value: &str) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO records (kind, id, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                &[&kind, &id, &value, &now_micros()],
            )?;
            Ok(())
        })
    }
}
