//! The cap on the number of logs (`ingest.max_tenants`): any client can name a new tenant,
//! so without a cap one client could create logs without end.
//!
//! Counted by each node from the logs it has seen (every log in the store when it started,
//! and those it has written since); with several nodes on one PostgreSQL store, a log
//! another node created counts here once this node writes to it.

use std::collections::HashSet;
use std::sync::RwLock;

pub struct TenantGate {
    known: RwLock<HashSet<String>>,
    max: usize,
}

/// Admitting a request's logs would pass the cap.
#[derive(Debug, thiserror::Error)]
#[error("log `{tenant}` would be log number {count}, beyond this server's limit of {max}")]
pub struct TenantLimit {
    pub tenant: String,
    pub count: usize,
    pub max: usize,
}

impl TenantGate {
    pub fn new(existing: impl IntoIterator<Item = String>, max: usize) -> TenantGate {
        TenantGate {
            known: RwLock::new(existing.into_iter().collect()),
            max,
        }
    }

    /// Admits the logs a request writes to: every one already known, or few enough new
    /// ones to stay within the cap (which then counts them).
    pub fn admit<'a>(
        &self,
        tenants: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<(), TenantLimit> {
        let all_known = {
            let known = self.known.read().expect("tenant set poisoned");
            let mut last = None;
            tenants.clone().all(|t| {
                let seen = last == Some(t) || known.contains(t);
                last = Some(t);
                seen
            })
        };
        if all_known {
            return Ok(());
        }
        let mut known = self.known.write().expect("tenant set poisoned");
        let new: HashSet<&str> = tenants.filter(|t| !known.contains(*t)).collect();
        if known.len() + new.len() > self.max {
            let mut new: Vec<&str> = new.into_iter().collect();
            new.sort_unstable();
            return Err(TenantLimit {
                tenant: new[0].to_string(),
                count: known.len() + 1,
                max: self.max,
            });
        }
        known.extend(new.into_iter().map(str::to_string));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_known_logs_and_new_ones_up_to_the_cap() {
        let gate = TenantGate::new(["a".to_string(), "b".to_string()], 3);
        assert!(gate.admit(["a", "b", "a"].into_iter()).is_ok());
        let err = gate.admit(["a", "d", "c"].into_iter()).unwrap_err();
        assert_eq!((err.tenant.as_str(), err.count, err.max), ("c", 3, 3));
        assert!(gate.admit(["c", "c"].into_iter()).is_ok());
        assert!(gate.admit(["d"].into_iter()).is_err());
        assert!(gate.admit(["c", "a"].into_iter()).is_ok());
    }
}
