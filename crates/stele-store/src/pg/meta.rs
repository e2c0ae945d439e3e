//! The PostgreSQL meta store: settings in a table of their own beside the log's, shared
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
}
