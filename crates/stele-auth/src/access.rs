//! Roles, permissions and tenant scopes, and the one decision: may this key do this here?

use crate::key::KeyRecord;
use serde::{Deserialize, Serialize};
use stele_core::Timestamp;

/// The reserved tenant holding the meta-audit: every read and administrative request,
/// appended by the server. Readable by auditors and admins whose scope is all tenants (or
/// names it); nobody writes it.
pub const META_TENANT: &str = "_stele";

/// What a key is for. A fixed set; what each may do is [`GRANTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ingest,
    Reader,
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Reader, Role::Auditor, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == text)
    }

    /// Whether this role holds `permission` (the row of [`GRANTS`]).
    pub fn allows(self, permission: Permission) -> bool {
        GRANTS
            .iter()
            .any(|(role, granted)| *role == self && granted.contains(&permission))
    }
}

/// What a route needs. Every route declares one (or is public) in [`crate::routes::ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Append events to its tenants.
    Ingest,
    /// Query, get and trace events; list logs.
    Read,
    /// Checkpoints, proofs and tiles (which a tenant may also make public).
    Proofs,
    /// Export, reports, verification endpoints, alert and retention views.
    Audit,
    /// Keys, policies, retention, alert rules, erasure.
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::Ingest,
        Permission::Read,
        Permission::Proofs,
        Permission::Audit,
        Permission::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::Ingest => "ingest",
            Permission::Read => "read",
            Permission::Proofs => "proofs",
            Permission::Audit => "audit",
            Permission::Admin => "admin",
        }
    }
}

/// The role matrix: each role and every permission it holds. The README's table is this.
pub const GRANTS: &[(Role, &[Permission])] = &[
    (Role::Ingest, &[Permission::Ingest]),
    (Role::Reader, &[Permission::Read, Permission::Proofs]),
    (
        Role::Auditor,
        &[Permission::Read, Permission::Proofs, Permission::Audit],
    ),
    (
        Role::Admin,
        &[
            Permission::Ingest,
            Permission::Read,
            Permission::Proofs,
            Permission::Audit,
            Permission::Admin,
        ],
    ),
];

/// The tenants a key may touch: `"all"`, or a list of names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Tenants(Vec<String>),
}

impl Scope {
    /// Whether the scope names `tenant` (the meta tenant only when listed or all).
    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenants(list) => list.iter().any(|t| t == tenant),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::All => s.serialize_str("all"),
            Scope::Tenants(list) => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            List(Vec<String>),
        }
        match Repr::deserialize(d)? {
            Repr::Word(w) if w == "all" => Ok(Scope::All),
            Repr::Word(w) => Ok(Scope::Tenants(vec![w])),
            Repr::List(list) => Ok(Scope::Tenants(list)),
        }
    }
}

/// Why a request may not proceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No usable key: 401. The reason never tells a key that does not exist from a wrong
    /// secret.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A usable key without the right: 403. Never says whether the tenant exists.
    #[error("{0}")]
    Forbidden(String),
}

/// May `key` use `permission` on `tenant` (`None`: a route of no one tenant) at `now`?
///
/// The meta tenant is for auditors and admins whose scope covers it, and only to read.
/// Administration of no one tenant (keys) needs an admin of every tenant.
pub fn authorize(
    key: &KeyRecord,
    permission: Permission,
    tenant: Option<&str>,
    now: Timestamp,
) -> Result<(), Denied> {
    if let Some(reason) = key.unusable(now) {
        return Err(Denied::Unauthenticated(reason));
    }
    if !key.role.allows(permission) {
        return Err(Denied::Forbidden(format!(
            "a key of role `{}` may not {}",
            key.role.name(),
            doing(permission)
        )));
    }
    match tenant {
        Some(tenant) => {
            if tenant == META_TENANT
                && (!matches!(key.role, Role::Auditor | Role::Admin)
                    || !matches!(
                        permission,
                        Permission::Read | Permission::Proofs | Permission::Audit
                    ))
            {
                return Err(Denied::Forbidden(format!(
                    "the `{META_TENANT}` log is read by auditors and admins only"
                )));
            }
            if !key.scope.covers(tenant) {
                return Err(Denied::Forbidden(format!(
                    "this key may not access tenant `{tenant}`"
                )));
            }
        }
        None => {
            if permission == Permission::Admin && key.scope != Scope::All {
                return Err(Denied::Forbidden(
                    "this needs an admin key of every tenant".into(),
                ));
            }
        }
    }
    Ok(())
}

fn doing(permission: Permission) -> &'static str {
    match permission {
        Permission::Ingest => "append events",
        Permission::Read => "read events",
        Permission::Proofs => "read checkpoints, proofs or tiles",
        Permission::Audit => "use auditor functions",
        Permission::Admin => "administer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-12-01T00:00:00Z").unwrap()
    }

    fn key(role: Role, scope: Scope) -> KeyRecord {
        KeyRecord {
            id: "0123456789abcdef".into(),
            name: "test".into(),
            role,
            scope,
            created_at: now(),
            expires_at: None,
            revoked_at: None,
            secret_sha256: String::new(),
        }
    }

    #[test]
    fn the_matrix_is_the_documented_one() {
        let expected = [
            (Role::Ingest, "ingest"),
            (Role::Reader, "read proofs"),
            (Role::Auditor, "read proofs audit"),
            (Role::Admin, "ingest read proofs audit admin"),
        ];
        for (role, names) in expected {
            let held: Vec<&str> = Permission::ALL
                .into_iter()
                .filter(|p| role.allows(*p))
                .map(Permission::name)
                .collect();
            assert_eq!(held.join(" "), names, "{role:?}");
        }
        assert_eq!(GRANTS.len(), Role::ALL.len());
    }

    #[test]
    fn scope_and_meta_tenant() {
        let acme = Scope::Tenants(vec!["acme".into()]);
        let reader = key(Role::Reader, acme.clone());
        assert_eq!(
            authorize(&reader, Permission::Read, Some("acme"), now()),
            Ok(())
        );
        assert!(matches!(
            authorize(&reader, Permission::Read, Some("globex"), now()),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            authorize(&reader, Permission::Ingest, Some("acme"), now()),
            Err(Denied::Forbidden(_))
        ));
        let everything = key(Role::Reader, Scope::All);
        assert!(authorize(&everything, Permission::Read, Some(META_TENANT), now()).is_err());
        let auditor = key(Role::Auditor, Scope::All);
        assert!(authorize(&auditor, Permission::Read, Some(META_TENANT), now()).is_ok());
        let scoped_auditor = key(Role::Auditor, acme);
        assert!(authorize(&scoped_auditor, Permission::Read, Some(META_TENANT), now()).is_err());
        let admin = key(Role::Admin, Scope::All);
        assert!(authorize(&admin, Permission::Ingest, Some(META_TENANT), now()).is_err());
        assert!(authorize(&admin, Permission::Admin, None, now()).is_ok());
        let tenant_admin = key(Role::Admin, Scope::Tenants(vec!["acme".into()]));
        assert!(authorize(&tenant_admin, Permission::Admin, None, now()).is_err());
        assert!(authorize(&tenant_admin, Permission::Admin, Some("acme"), now()).is_ok());
    }

    #[test]
    fn unusable_keys_are_unauthenticated() {
        let mut admin = key(Role::Admin, Scope::All);
        admin.revoked_at = Some(now());
        assert_eq!(
            authorize(&admin, Permission::Read, Some("acme"), now()),
            Err(Denied::Unauthenticated("the API key is revoked"))
        );
    }

    #[test]
    fn scopes_read_and_write_as_documented() {
        assert_eq!(serde_json::to_string(&Scope::All).unwrap(), "\"all\"");
        let list: Scope = serde_json::from_str("[\"a\",\"b\"]").unwrap();
        assert_eq!(list, Scope::Tenants(vec!["a".into(), "b".into()]));
        let one: Scope = serde_json::from_str("\"a\"").unwrap();
        assert_eq!(one, Scope::Tenants(vec!["a".into()]));
        assert!(serde_json::from_str::<Scope>("3").is_err());
    }
}
