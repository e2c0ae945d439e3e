//! Test support shared by the test suites and the benchmark tool: the real `stele` binary
//! run as a server on port 0, event factories, and scratch PostgreSQL schemas.
//!
//! The PostgreSQL database comes from `STELE_TEST_DATABASE_URL` (default: the local `test`
//! database). If it is unreachable the PostgreSQL tests are skipped with a loud message,
//! unless `STELE_REQUIRE_POSTGRES=1`, under which they fail.

pub mod events;
mod pg;
pub mod server;

pub use events::{Generator, Rng, sample_event, tenant_event};
pub use pg::{DEFAULT_URL, PgSchema};
pub use server::{Server, run_stele, stele_binary};
