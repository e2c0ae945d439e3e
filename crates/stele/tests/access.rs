//! Access control against the real server: the permission matrix generated from the route
//! table, cross-tenant reads, the meta-audit, revocation, rate limits, the bootstrap key,
//! and secrets kept out of everything the server writes or says.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use stele_auth::routes::{Access, ROUTES, Route, TenantFrom};
use stele_auth::{Permission, Role};

/// Checkpoints soon, so that proof routes answer.
const CONFIG: &str = "[log]\ncheckpoint_interval_ms = 50\n";

/// One request: status, body, and the `WWW-Authenticate` and `Retry-After` headers.
struct Answer {
    status: u16,
    body: Value,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
}

async fn call(
    server: &Server,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut request = client().request(method, server.endpoint(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (www_authenticate, retry_after) = (header("www-authenticate"), header("retry-after"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        www_authenticate,
        retry_after,
    }
}

/// The status of a GET without a key.
async fn anonymous(server: &Server, path: &str) -> u16 {
    call(server, None, Method::GET, path, None).await.status
}

async fn get_as(server: &Server, key: &str, path: &str) -> Answer {
    call(server, Some(key), Method::GET, path, None).await
}

/// Creates a key with the admin key; answers its token and id.
async fn create_key(server: &Server, admin: &str, request: Value) -> (String, String) {
    let answer = call(
        server,
        Some(admin),
        Method::POST,
        "/v1/keys",
        Some(&request),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let key = answer.body["key"].as_str().unwrap().to_string();
    let id = answer.body["record"]["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("stl_{id}_")));
    (key, id)
}

fn start_secured(
    backend: &Backend,
    dir: &std::path::Path,
    extra: Option<&str>,
) -> (Server, String) {
    let server = Server::start_secured(dir, backend.config(extra).as_deref());
    let admin = server.admin_key.clone().expect("a bootstrap admin key");
    (server, admin)
}

/// Two tenants, `acme` (the keys' own) and `globex` (another), each with two events of one
/// correlation id, signed.
struct World {
    event: HashMap<&'static str, String>,
    victim: String,
}

async fn populate(server: &Server, admin: &str) -> World {
    let mut event = HashMap::new();
    for tenant in ["acme", "globex"] {
        let events: Vec<Value> = (0..2)
            .map(|i| {
                let mut e = sample_event(i);
                e["tenant"] = json!(tenant);
                e["correlation_id"] = json!(format!("c-{tenant}"));
                e
            })
            .collect();
        let answer = call(
            server,
            Some(admin),
            Method::POST,
            "/v1/events",
            Some(&json!(events)),
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        event.insert(
            tenant,
            answer.body["receipts"][0]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = get_as(
                server,
                admin,
                &format!("/v1/events?tenant={tenant}&min_seq=1"),
            )
            .await;
            let checkpoint = get_as(server, admin, &format!("/v1/logs/{tenant}/checkpoints")).await;
            let signed = checkpoint.body["checkpoints"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["size"] == 2));
            if answer.body["events"]
                .as_array()
                .is_some_and(|e| e.len() == 2)
                && signed
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{tenant} never became readable and signed"
            );
        }
    }
    let (_, victim) = create_key(
        server,
        admin,
        json!({"name": "victim", "role": "reader", "scope": "all"}),
    )
    .await;
    World { event, victim }
}

/// The request that exercises `route` on `tenant`.
fn request_for(route: &Route, tenant: &str, world: &World) -> (Method, String, Option<Value>) {
    let method = Method::from_bytes(route.method.as_bytes()).unwrap();
    let (path, body) = match route.path {
        "/v1/events" if route.method == "POST" => (
            "/v1/events".to_string(),
            Some(json!([{ "action": "matrix.probe", "tenant": tenant }])),
        ),
        "/v1/events" => (format!("/v1/events?tenant={tenant}"), None),
        "/v1/events/{id}" => (
            format!("/v1/events/{}?tenant={tenant}", world.event[tenant]),
            None,
        ),
        "/v1/traces/{correlation_id}" => (format!("/v1/traces/c-{tenant}?tenant={tenant}"), None),
        "/v1/logs" => ("/v1/logs".to_string(), None),
        "/v1/logs/{tenant}/checkpoint" => (format!("/v1/logs/{tenant}/checkpoint"), None),
        "/v1/logs/{tenant}/checkpoints" => (format!("/v1/logs/{tenant}/checkpoints"), None),
        "/v1/logs/{tenant}/proof/consistency" => (
            format!("/v1/logs/{tenant}/proof/consistency?from=1&to=2"),
            None,
        ),
        "/v1/logs/{tenant}/tile/{*path}" => (format!("/v1/logs/{tenant}/tile/0/000.p/2"), None),
        "/v1/keys" if route.method == "POST" => (
            "/v1/keys".to_string(),
            Some(json!({"name": "matrix", "role": "reader", "scope": [tenant]})),
        ),
        "/v1/keys" => ("/v1/keys".to_string(), None),
        "/v1/keys/{id}" => (format!("/v1/keys/{}", world.victim), None),
        other => panic!(
            "no request for route {} {other}: add one to the matrix",
            route.method
        ),
    };
    (method, path, body)
}

/// What the documented matrix says a key of `role` over `scope_all` (or `acme` only) gets.
fn expected(route: &Route, role: Role, scope_all: bool, own: bool) -> u16 {
    let permission = match route.access {
        Access::Key(p) => p,
        Access::Verifiable => Permission::Proofs,
        Access::Public => unreachable!(),
    };
    if !role.allows(permission) {
        return 403;
    }
    let covered = match route.tenant {
        TenantFrom::None => permission != Permission::Admin || scope_all,
        _ => own || scope_all,
    };
    if covered { 200 } else { 403 }
}

async fn every_route_answers_each_role_as_documented(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_secured(&backend, dir.path(), Some(CONFIG));
    let world = populate(&server, &admin).await;
    let mut keys: Vec<(Role, bool, String)> = Vec::new();
    for role in Role::ALL {
        let (key, _) = create_key(
            &server,
            &admin,
            json!({"name": format!("{role:?}"), "role": role.name(), "scope": ["acme"]}),
        )
        .await;
        keys.push((role, false, key));
    }
    keys.push((Role::Admin, true, admin.clone()));
    let (revoked, revoked_id) = create_key(
        &server,
        &admin,
        json!({"name": "gone", "role": "admin", "scope": "all"}),
    )
    .await;
    assert_eq!(
        call(
            &server,
            Some(&admin),
            Method::DELETE,
            &format!("/v1/keys/{revoked_id}"),
            None
        )
        .await
        .status,
        200
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let soon = stele_core::Timestamp::from_micros(now.as_micros() as i64 + 1_000_000).unwrap();
    let (expired, _) = create_key(
        &server,
        &admin,
        json!({"name": "brief", "role": "admin", "scope": "all", "expires_at": soon}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_as(&server, &expired, "/v1/logs").await.status != 401 {
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let malformed = "stl_not_a_key".to_string();
    let unknown = format!("stl_{}_{}", "0".repeat(16), "0".repeat(64));

    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.access != Access::Public) {
        let tenants: &[&str] = if matches!(route.tenant, TenantFrom::None) {
            &["acme"]
        } else {
            &["acme", "globex"]
        };
        for &tenant in tenants {
            let (method, path, body) = request_for(route, tenant, &world);
            let label = format!("{} {path}", route.method);
            for bad in [
                None,
                Some(&malformed),
                Some(&unknown),
                Some(&revoked),
                Some(&expired),
            ] {
                let answer = call(
                    &server,
                    bad.map(String::as_str),
                    method.clone(),
                    &path,
                    body.as_ref(),
                )
                .await;
                assert_eq!(answer.status, 401, "{label} with {bad:?}: {}", answer.body);
                assert_eq!(answer.body["code"], "unauthenticated", "{label}");
                assert_eq!(
                    answer.www_authenticate.as_deref(),
                    Some("Bearer"),
                    "{label}"
                );
                checked += 1;
            }
            for (role, all, key) in &keys {
                let want = expected(route, *role, *all, tenant == "acme");
                let answer = call(&server, Some(key), method.clone(), &path, body.as_ref()).await;
                let got = if (200..300).contains(&answer.status) {
                    200
                } else {
                    answer.status
                };
                assert_eq!(
                    got, want,
                    "{label} as {role:?} (all tenants: {all}): {}",
                    answer.body
                );
                if want == 403 {
                    assert_eq!(answer.body["code"], "forbidden", "{label}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "only {checked} cases");
    server.stop();
}

async fn no_route_crosses_tenants(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_secured(&backend, dir.path(), Some(CONFIG));
    let world = populate(&server, &admin).await;
    let (reader, _) = create_key(
        &server,
        &admin,
        json!({"name": "acme reader", "role": "reader", "scope": ["acme"]}),
    )
    .await;
    // Globex's event id, asked for in acme: not there (and nothing says it exists elsewhere).
    let foreign = &world.event["globex"];
    let answer = get_as(
        &server,
        &reader,
        &format!("/v1/events/{foreign}?tenant=acme"),
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    let answer = get_as(&server, &reader, &format!("/v1/events/{foreign}")).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let answer = get_as(
        &server,
        &reader,
        &format!("/v1/events/{foreign}?tenant=acme&tenant=globex"),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    // A cursor from globex's listing does not page acme.
    let page = get_as(&server, &admin, "/v1/events?tenant=globex&limit=1").await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    let answer = get_as(
        &server,
        &reader,
        &format!("/v1/events?tenant=acme&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["code"], "invalid_cursor");
    // Globex's trace is not found in acme.
    let answer = get_as(&server, &reader, "/v1/traces/c-globex?tenant=acme").await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    // The logs listed are the key's own.
    let logs = get_as(&server, &reader, "/v1/logs").await;
    let names: Vec<&str> = logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);
    // An ingest key of acme cannot write globex, even beside an acme event: nothing stored.
    let (ingest, _) = create_key(
        &server,
        &admin,
        json!({"name": "acme writer", "role": "ingest", "scope": ["acme"]}),
    )
    .await;
    let mixed =
        json!([{ "action": "a.b", "tenant": "acme" }, { "action": "a.b", "tenant": "globex" }]);
    let answer = call(
        &server,
        Some(&ingest),
        Method::POST,
        "/v1/events",
        Some(&mixed),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let sizes = get_as(&server, &admin, "/v1/logs").await;
    for log in sizes.body["logs"].as_array().unwrap() {
        if log["tenant"] != "_stele" {
            assert_eq!(log["size"], 2, "{log}");
        }
    }
    // Nobody writes the meta log, and only auditors and admins of every tenant read it.
    let answer = call(
        &server,
        Some(&admin),
        Method::POST,
        "/v1/events",
        Some(&json!([{ "action": "a.b", "tenant": "_stele" }])),
    )
    .await;
    assert!(
        answer.status == 400 || answer.status == 422 || answer.status == 403,
        "{}",
        answer.body
    );
    let (everything, _) = create_key(
        &server,
        &admin,
        json!({"name": "all reader", "role": "reader", "scope": "all"}),
    )
    .await;
    assert_eq!(
        get_as(&server, &everything, "/v1/events?tenant=_stele")
            .await
            .status,
        403
    );
    server.stop();
}

/// Waits until the `_stele` log holds an event that `wanted` accepts; answers it.
async fn find_meta(server: &Server, admin: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = get_as(
            server,
            admin,
            "/v1/events?tenant=_stele&limit=1000&order=desc",
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.body);
        if let Some(found) = page.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| wanted(e))
        {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no such meta-audit event; last page: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reads_and_refusals_are_meta_audited_and_verifiable(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_secured(&backend, dir.path(), Some(CONFIG));
    populate(&server, &admin).await;
    let (auditor, auditor_id) = create_key(
        &server,
        &admin,
        json!({"name": "the auditor", "role": "auditor", "scope": "all"}),
    )
    .await;
    let (reader, reader_id) = create_key(
        &server,
        &admin,
        json!({"name": "acme reader", "role": "reader", "scope": ["acme"]}),
    )
    .await;
    let client_side = client()
        .get(server.endpoint("/v1/events?tenant=acme&action=user.login&limit=5"))
        .bearer_auth(&auditor)
        .header("user-agent", "audit-test/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(client_side.status(), 200);
    let listed: Value = client_side.json().await.unwrap();
    let n = listed["events"].as_array().unwrap().len();

    let query = find_meta(&server, &admin, |e| {
        e["actor"]["id"] == auditor_id.as_str() && e["action"] == "events.query"
    })
    .await;
    assert_eq!(query["outcome"], "success");
    assert_eq!(query["actor"]["name"], "the auditor");
    assert_eq!(query["actor"]["type"], "api_key");
    assert_eq!(query["actor"]["ip"], "127.0.0.1");
    assert_eq!(query["actor"]["user_agent"], "audit-test/1.0");
    assert_eq!(query["resource"]["id"], "acme");
    assert_eq!(query["details"]["filters"]["action"], "user.login");
    assert_eq!(query["details"]["filters"]["limit"], "5");
    assert_eq!(query["details"]["result_count"], n);
    assert_eq!(query["details"]["route"], "/v1/events");

    // A denied request, and a failed authentication naming a key id.
    assert_eq!(
        get_as(&server, &reader, "/v1/events?tenant=globex")
            .await
            .status,
        403
    );
    let denied = find_meta(&server, &admin, |e| {
        e["actor"]["id"] == reader_id.as_str() && e["outcome"] == "denied"
    })
    .await;
    assert_eq!(denied["category"], "security");
    assert_eq!(denied["resource"]["id"], "globex");
    assert_eq!(denied["details"]["status"], 403);
    let wrong = format!("stl_{reader_id}_{}", "ab".repeat(32));
    assert_eq!(
        get_as(&server, &wrong, "/v1/events?tenant=acme")
            .await
            .status,
        401
    );
    let failed = find_meta(&server, &admin, |e| {
        e["actor"]["id"] == reader_id.as_str() && e["details"]["status"] == 401
    })
    .await;
    assert_eq!(failed["outcome"], "denied");
    // Key administration is recorded too.
    find_meta(&server, &admin, |e| {
        e["action"] == "keys.create" && e["outcome"] == "success"
    })
    .await;
    server.stop();

    // The meta log is a log like the others: `stele verify` checks it.
    let run = stele(
        &[
            &["verify", "--json", "--data", path(dir.path())][..],
            &backend
                .store_args()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ]
        .concat(),
    );
    run.assert_ok();
    let summary = run.json();
    assert_eq!(summary["logs"], 3, "{summary}");
}

async fn revocation_is_immediate_on_the_node_and_keys_made_offline_work(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_secured(&backend, dir.path(), None);
    let (reader, id) = create_key(
        &server,
        &admin,
        json!({"name": "r", "role": "reader", "scope": "all"}),
    )
    .await;
    assert_eq!(get_as(&server, &reader, "/v1/logs").await.status, 200);
    assert_eq!(
        call(
            &server,
            Some(&admin),
            Method::DELETE,
            &format!("/v1/keys/{id}"),
            None
        )
        .await
        .status,
        200
    );
    let answer = get_as(&server, &reader, "/v1/logs").await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.body["detail"].as_str().unwrap().contains("revoked"),
        "{}",
        answer.body
    );
    // Listed as revoked, with a last use, never with a secret.
    let listed = get_as(&server, &admin, &format!("/v1/keys/{id}")).await;
    assert!(listed.body["revoked_at"].is_string(), "{}", listed.body);
    assert!(listed.body.get("secret_sha256").is_none());

    // `stele keys create` against the store, with the server running: the server takes it
    // up within its refresh interval; `stele keys revoke` likewise.
    let mut args = vec![
        "keys", "create", "--name", "offline", "--role", "reader", "--tenant", "acme",
    ];
    let store_args = backend.store_args();
    let data_args = ["--data", path(dir.path())];
    match &backend {
        Backend::Sqlite => args.extend(data_args),
        Backend::Postgres(_) => args.extend(store_args.iter().map(String::as_str)),
    }
    let run = stele(&args);
    run.assert_ok();
    let offline = run.stdout.trim().to_string();
    let offline_id = offline.split('_').nth(1).unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while get_as(&server, &offline, "/v1/events?tenant=acme")
        .await
        .status
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "the key made offline was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut args = vec!["keys", "revoke", offline_id.as_str()];
    match &backend {
        Backend::Sqlite => args.extend(data_args),
        Backend::Postgres(_) => args.extend(store_args.iter().map(String::as_str)),
    }
    stele(&args).assert_ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while get_as(&server, &offline, "/v1/events?tenant=acme")
        .await
        .status
        != 401
    {
        assert!(
            Instant::now() < deadline,
            "the key revoked offline still works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Over HTTP, with the admin key: list shows both.
    let run = stele(&[
        "keys",
        "list",
        "--json",
        "--url",
        &server.url,
        "--api-key",
        &admin,
    ]);
    run.assert_ok();
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"offline") && names.contains(&"bootstrap admin"),
        "{names:?}"
    );
    server.stop();
}

async fn the_bootstrap_key_is_written_once_and_never_logged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_secured(&backend, dir.path(), None);
    use std::os::unix::fs::PermissionsExt;
    let file = dir.path().join("bootstrap-admin.key");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    server.stop();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("bootstrap-admin.key"), "{log}");
    assert!(!log.contains(&admin[20..]), "the key is in the log");
    // A restart makes no second key.
    std::fs::remove_file(&file).unwrap();
    let server = Server::start_secured(dir.path(), backend.config(None).as_deref());
    assert!(server.admin_key.is_none());
    assert!(!file.exists());
    assert_eq!(
        get_as(&server, &admin, "/v1/keys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Public routes need no key; the others answer nothing without one.
    assert_eq!(anonymous(&server, "/health/live").await, 200);
    assert_eq!(anonymous(&server, "/openapi.json").await, 200);
    assert_eq!(anonymous(&server, "/v1/logs").await, 401);
    server.stop();
}

async fn public_proofs_need_no_key(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{CONFIG}[auth]\npublic_proofs = [\"acme\"]\n");
    let (server, admin) = start_secured(&backend, dir.path(), Some(&config));
    populate(&server, &admin).await;
    assert_eq!(anonymous(&server, "/v1/logs/acme/checkpoint").await, 200);
    assert_eq!(
        anonymous(&server, "/v1/logs/acme/tile/0/000.p/2").await,
        200
    );
    assert_eq!(anonymous(&server, "/v1/logs/globex/checkpoint").await, 401);
    assert_eq!(anonymous(&server, "/v1/events?tenant=acme").await, 401);
    server.stop();
}

async fn a_key_over_its_rate_gets_429_then_recovers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = "[auth]\nrequests_per_second = 2\nburst = 3\n";
    let (server, admin) = start_secured(&backend, dir.path(), Some(config));
    let mut limited = None;
    for _ in 0..10 {
        let answer = get_as(&server, &admin, "/v1/logs").await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status, 200);
    }
    let limited = limited.expect("never limited");
    assert_eq!(limited.body["code"], "rate_limited");
    let wait: u64 = limited.retry_after.unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(get_as(&server, &admin, "/v1/logs").await.status, 200);
    // Another key has a bucket of its own.
    server.stop();
}

async fn secrets_appear_nowhere(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_secured(&backend, dir.path(), Some(CONFIG));
    populate(&server, &admin).await;
    let (reader, id) = create_key(
        &server,
        &admin,
        json!({"name": "r", "role": "reader", "scope": ["acme"]}),
    )
    .await;
    let mut secrets = vec![admin.clone(), reader.clone()];
    let mut said = String::new();
    for path in [
        "/v1/events?tenant=acme",
        "/v1/events?tenant=globex",
        "/v1/logs",
        "/v1/keys",
    ] {
        said.push_str(&get_as(&server, &reader, path).await.body.to_string());
    }
    // A wrong secret for a real id, a key pasted in a query, a revoked key.
    let wrong = format!("stl_{id}_{}", "cd".repeat(32));
    secrets.push(wrong.clone());
    said.push_str(&get_as(&server, &wrong, "/v1/logs").await.body.to_string());
    said.push_str(
        &get_as(
            &server,
            &admin,
            &format!("/v1/events?tenant=acme&actor_id={reader}"),
        )
        .await
        .body
        .to_string(),
    );
    call(
        &server,
        Some(&admin),
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        None,
    )
    .await;
    said.push_str(&get_as(&server, &reader, "/v1/logs").await.body.to_string());
    said.push_str(&get_as(&server, &admin, "/v1/keys").await.body.to_string());
    said.push_str(&metrics_text(&server).await);
    let meta = find_meta(&server, &admin, |e| {
        e["details"]["filters"]["actor_id"] == "[redacted]"
    })
    .await;
    said.push_str(&meta.to_string());
    said.push_str(
        &get_as(&server, &admin, "/v1/events?tenant=_stele&limit=1000")
            .await
            .body
            .to_string(),
    );
    server.stop();
    said.push_str(&std::fs::read_to_string(dir.path().join("server.log")).unwrap());
    // Everything the store holds, as bytes.
    let mut stored = Vec::new();
    match &backend {
        Backend::Sqlite => {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("stele.db")
                {
                    stored.extend(std::fs::read(path).unwrap());
                }
            }
        }
        Backend::Postgres(schema) => {
            let url = schema.url.clone();
            stored = tokio::task::spawn_blocking(move || {
                let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
                let mut stored = Vec::new();
                for table in ["records", "settings", "events", "checkpoints"] {
                    let sql = format!("SELECT t::text FROM {table} t");
                    for row in client.query(&sql, &[]).unwrap() {
                        stored.extend(row.get::<_, String>(0).into_bytes());
                    }
                }
                stored
            })
            .await
            .unwrap();
        }
    }
    assert!(!stored.is_empty());
    for secret in &secrets {
        let hex = secret.rsplit('_').next().unwrap();
        assert!(!said.contains(hex), "a secret was said");
        assert!(
            !stored.windows(hex.len()).any(|w| w == hex.as_bytes()),
            "a secret was stored"
        );
    }
}

/// One raw HTTP/1.1 request over TLS that trusts only `cert`; answers the whole response.
async fn https_request(url: &str, cert: &[u8], request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let addr = url.strip_prefix("https://").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn tls_serves_https_and_keys_still_apply(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let config = format!(
        "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let data = dir.path().join("data");
    let (server, admin) = start_secured(&backend, &data, Some(&config));
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let der = certified.cert.der().to_vec();
    let live = https_request(
        &server.url,
        &der,
        "GET /health/live HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let denied = https_request(
        &server.url,
        &der,
        "GET /v1/logs HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let request = format!(
        "GET /v1/logs HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {admin}\r\nconnection: close\r\n\r\n"
    );
    let listed = https_request(&server.url, &der, &request).await;
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = client()
        .get(server.url.replace("https://", "http://") + "/health/live")
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    server.stop();
}

/// The size of the `_stele` log, read with `admin` (a read that is itself recorded, after
/// the answer's size is taken).
async fn meta_size(server: &Server, admin: &str) -> u64 {
    let logs = get_as(server, admin, "/v1/logs").await;
    logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["tenant"] == "_stele")
        .map_or(0, |l| l["size"].as_u64().unwrap())
}

async fn failed_authentications_cannot_flood_the_meta_log(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_secured(&backend, dir.path(), None);
    let before = meta_size(&server, &admin).await;
    let bad = format!("stl_{}_{}", "1".repeat(16), "2".repeat(64));
    for _ in 0..150 {
        assert_eq!(get_as(&server, &bad, "/v1/logs").await.status, 401);
    }
    // The read that took `before` is one record; the rest are failures recorded.
    let recorded = meta_size(&server, &admin).await - before - 1;
    assert!(
        (100..150).contains(&recorded),
        "{recorded} of 150 failures recorded"
    );
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains("stele_auth_failures_unrecorded_total"),
        "{metrics}"
    );
    server.stop();
}

async fn a_key_has_few_heavy_reads_at_once_and_its_last_use_is_kept(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // The index commits only after a minute, so a `min_seq` read waits its 5 s.
    let config = "[index]\nmax_commit_interval_ms = 60000\nquiet_interval_ms = 60000\n[auth]\nmax_concurrent_reads = 1\n";
    let (server, admin) = start_secured(&backend, dir.path(), Some(config));
    let (reader, id) = create_key(
        &server,
        &admin,
        json!({"name": "r", "role": "reader", "scope": "all"}),
    )
    .await;
    let events: Vec<Value> = (0..3).map(sample_event).collect();
    let answer = call(
        &server,
        Some(&admin),
        Method::POST,
        "/v1/events",
        Some(&json!(events)),
    )
    .await;
    assert_eq!(answer.status, 201);
    let spawn_slow = || {
        let (url, key) = (server.endpoint("/v1/events?min_seq=2"), reader.clone());
        tokio::spawn(async move {
            client()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // The slow read holds the key's one place for 5 s; a probe then gets 429. (A probe in
    // flight when the slow read arrives sends the slow read away instead: start it again.)
    let mut slow = spawn_slow();
    let deadline = Instant::now() + Duration::from_secs(20);
    let limited = loop {
        if slow.is_finished() {
            assert_eq!(slow.await.unwrap(), 429);
            slow = spawn_slow();
        }
        let answer = get_as(&server, &reader, "/v1/traces/none").await;
        if answer.status == 429 {
            break answer;
        }
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert!(Instant::now() < deadline, "never limited");
    };
    assert_eq!(limited.body["code"], "rate_limited");
    assert_eq!(limited.retry_after.as_deref(), Some("1"));
    // Another key is not held up, and other routes are not limited.
    assert_eq!(get_as(&server, &admin, "/v1/events").await.status, 200);
    assert_eq!(get_as(&server, &reader, "/v1/logs").await.status, 200);
    assert_eq!(slow.await.unwrap(), 200);
    server.stop();
    // The last use was written at the stop.
    let server = Server::start_secured(dir.path(), backend.config(Some(config)).as_deref());
    let key = get_as(&server, &admin, &format!("/v1/keys/{id}")).await;
    assert!(key.body["last_used_at"].is_string(), "{}", key.body);
    server.stop();
}

crate::on_both_backends!(
    a_key_has_few_heavy_reads_at_once_and_its_last_use_is_kept,
    failed_authentications_cannot_flood_the_meta_log,
    tls_serves_https_and_keys_still_apply,
    every_route_answers_each_role_as_documented,
    no_route_crosses_tenants,
    reads_and_refusals_are_meta_audited_and_verifiable,
    revocation_is_immediate_on_the_node_and_keys_made_offline_work,
    the_bootstrap_key_is_written_once_and_never_logged,
    public_proofs_need_no_key,
    a_key_over_its_rate_gets_429_then_recovers,
    secrets_appear_nowhere,
);
