//! A scratch PostgreSQL schema per test (or benchmark run), so PostgreSQL tests run in
//! parallel and leave nothing behind.
//!
//! The database comes from `STELE_TEST_DATABASE_URL` (default: the local `test` database).
//! If it is unreachable the PostgreSQL tests are skipped with a loud message, unless
//! `STELE_REQUIRE_POSTGRES=1`, under which they fail.

use std::str::FromStr;
use std::time::Duration;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema that exists until this value is dropped. Its `url` selects it through the
/// connection's `search_path`.
pub struct PgSchema {
    pub name: String,
    pub url: String,
    admin: String,
}

impl PgSchema {
    /// A fresh, empty schema, or `None` when PostgreSQL is unreachable and not required.
    pub fn create() -> Option<PgSchema> {
        // The blocking client may not run on an async runtime's thread: use a thread of its own.
        std::thread::spawn(Self::create_here)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// A fresh, empty schema in the database at `admin` (a role that may create schemas).
    pub fn create_at(admin: &str) -> Result<PgSchema, postgres::Error> {
        let admin = admin.to_string();
        std::thread::spawn(move || {
            let mut client = connect(&admin)?;
            Ok(Self::create_with(&mut client, admin))
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    fn create_with(client: &mut postgres::Client, admin: String) -> PgSchema {
        let name = format!("stele_test_{}", uuid::Uuid::now_v7().simple());
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("creating a scratch schema");
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-csearch_path%3D{name}");
        PgSchema { name, url, admin }
    }

    fn create_here() -> Option<PgSchema> {
        let admin = std::env::var("STELE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let required = std::env::var("STELE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let mut client = match connect(&admin) {
            Ok(client) => client,
            Err(e) if required => {
                panic!("PostgreSQL at {admin} is unreachable and STELE_REQUIRE_POSTGRES=1: {e}")
            }
            Err(e) => {
                eprintln!(
                    "\n*** SKIPPED: PostgreSQL test, no database at {admin} ({e}); \
                     set STELE_TEST_DATABASE_URL, or STELE_REQUIRE_POSTGRES=1 to fail instead ***\n"
                );
                return None;
            }
        };
        Some(Self::create_with(&mut client, admin))
    }
}

impl PgSchema {
    /// Runs `sql` as the administrator (on a thread of its own, so async tests may call it).
    pub fn admin_execute(&self, sql: &str) {
        let (admin, sql) = (self.admin.clone(), sql.to_string());
        std::thread::spawn(move || {
            connect(&admin)
                .expect("connecting as the administrator")
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }

    /// The URL of this schema for another role.
    pub fn url_as(&self, role: &str) -> String {
        let after = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let host = after.split_once('@').map_or(after, |(_, h)| h);
        format!("postgres://{role}@{host}")
    }
}

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config = postgres::Config::from_str(url)?;
    config.connect_timeout(Duration::from_secs(5));
    config.connect(postgres::NoTls)
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = connect(&admin) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
            }
        })
        .join();
    }
}
