//! Every route the server answers and what it needs: one table, so that a route cannot be
//! added without deciding who may call it (the server refuses a matched route missing
//! here, and a test checks the table against the API document).

use crate::access::Permission;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health probes, metrics, the API document and its pages.
    Public,
    /// A key holding this permission (on the request's tenant, where it has one).
    Key(Permission),
    /// Like `Key`, but a tenant may open it to everyone (`auth.public_proofs`): what
    /// independent verifiers need.
    Verifiable,
}

/// Where a route's tenant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantFrom {
    /// The route is of no one tenant (key management, listings filtered by scope).
    None,
    /// The `{tenant}` path parameter.
    Path,
    /// The `tenant` query parameter, else the server's default tenant.
    Query,
    /// The body's events: the handler checks each event's tenant.
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// As the router declares it.
    pub path: &'static str,
    pub access: Access,
    pub tenant: TenantFrom,
    /// Reads and administration are meta-audited, one event each; ingest is counted, and
    /// verification reads (which may be public) too. Refusals are audited on every route.
    pub audited: bool,
    /// The meta-audit event's action.
    pub action: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    tenant: TenantFrom,
    audited: bool,
    action: &'static str,
) -> Route {
    Route {
        method,
        path,
        access,
        tenant,
        audited,
        action,
    }
}

use Access::{Key, Public, Verifiable};
use Permission::{Admin, Ingest, Read};
use TenantFrom::{Body, Path, Query};

/// Every route. Paths under `/docs` (the API document's pages) are public too.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/events", Key(Ingest), Body, false, "events.ingest"),
    route("GET", "/v1/events", Key(Read), Query, true, "events.query"),
    route("GET", "/v1/events/{id}", Key(Read), Query, true, "events.get"),
    route("GET", "/v1/traces/{correlation_id}", Key(Read), Query, true, "traces.get"),
    route("GET", "/v1/logs", Key(Read), TenantFrom::None, true, "logs.list"),
    route("GET", "/v1/logs/{tenant}/checkpoint", Verifiable, Path, false, "proofs.checkpoint"),
    route("GET", "/v1/logs/{tenant}/checkpoints", Verifiable, Path, false, "proofs.checkpoints"),
    route("GET", "/v1/logs/{tenant}/proof/consistency", Verifiable, Path, false, "proofs.consistency"),
    route("GET", "/v1/logs/{tenant}/tile/{*path}", Verifiable, Path, false, "proofs.tile"),
    route("GET", "/v1/keys", Key(Admin), TenantFrom::None, true, "keys.list"),
    route("POST", "/v1/keys", Key(Admin), TenantFrom::None, true, "keys.create"),
    route("GET", "/v1/keys/{id}", Key(Admin), TenantFrom::None, true, "keys.get"),
    route("DELETE", "/v1/keys/{id}", Key(Admin), TenantFrom::None, true, "keys.revoke"),
    route("GET", "/health/live", Public, TenantFrom::None, false, "health.live"),
    route("GET", "/health/ready", Public, TenantFrom::None, false, "health.ready"),
    route("GET", "/metrics", Public, TenantFrom::None, false, "metrics.get"),
    route("GET", "/openapi.json", Public, TenantFrom::None, false, "openapi.get"),
];

/// Routes whose answers are long to make (listings, traces; exports as they arrive): a key
/// may have only `auth.max_concurrent_reads` of them in progress at once.
pub fn is_heavy(route: &Route) -> bool {
    matches!(
        (route.method, route.path),
        ("GET", "/v1/events") | ("GET", "/v1/traces/{correlation_id}")
    )
}

/// The route `method` + `path` (as matched), if declared.
pub fn find(method: &str, path: &str) -> Option<&'static Route> {
    if path == "/docs" || path.starts_with("/docs/") {
        return Some(&DOCS);
    }
    ROUTES
        .iter()
        .find(|r| r.path == path && (r.method == method || (method == "HEAD" && r.method == "GET")))
}

const DOCS: Route = route("GET", "/docs", Public, TenantFrom::None, false, "docs.get");

/// The permission a `Verifiable` route needs of a key.
pub const VERIFIABLE: Permission = Permission::Proofs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_declared_once() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[..i]
                    .iter()
                    .all(|o| (o.method, o.path) != (r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert_eq!(find(r.method, r.path), Some(r));
            stele_core::validate_action(r.action).unwrap();
            // A tenant in the path is declared as the path's.
            assert_eq!(r.path.contains("{tenant}"), r.tenant == Path, "{}", r.path);
        }
        assert_eq!(find("GET", "/nowhere"), None);
        assert_eq!(find("PUT", "/v1/events"), None);
        assert_eq!(
            find("GET", "/docs/index.html").map(|r| r.access),
            Some(Public)
        );
    }
}
