//! Access control. An API key (`stl_<key id>_<secret>`) names a stored [`KeyRecord`]: a
//! role, a tenant scope, an expiry and a revocation. Every route has one declared
//! [`Permission`] (or is public) in [`routes::ROUTES`]; one table in [`access`] says which
//! roles hold which permission; [`authorize`] decides.
//!
//! The store keeps only a SHA-256 of each secret; secrets are compared in constant time
//! and never printed: [`ApiKey`]'s `Debug` shows the key id alone.

pub mod access;
pub mod key;
pub mod routes;

pub use access::{Denied, META_TENANT, Permission, Role, Scope, authorize};
pub use key::{ApiKey, KeyError, KeyRecord, NewKey};
