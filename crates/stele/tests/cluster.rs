//! Several Stele nodes on one PostgreSQL database, and PostgreSQL going away under load.
//! These need PostgreSQL; without one they are skipped loudly (or fail under
//! `STELE_REQUIRE_POSTGRES=1`).

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stele_testkit::PgSchema;

type Acked = Arc<Mutex<HashMap<String, u64>>>;

async fn schema() -> Option<Arc<PgSchema>> {
    tokio::task::spawn_blocking(PgSchema::create)
        .await
        .unwrap()
        .map(Arc::new)
}

fn node_config(url: &str, key: Option<&std::path::Path>) -> String {
    let mut config = format!("database_url = \"{url}\"\n[log]\ncheckpoint_interval_ms = 100\n");
    if let Some(key) = key {
        config.push_str(&format!("signing_key = \"{}\"\n", key.display()));
    }
    config
}

/// Makes the schema's owner role (which migrates) and a runtime role with the README's
/// grants; answers (the runtime role's name, its URL).
fn runtime_role(schema: &PgSchema) -> (String, String) {
    let owner = format!("{}_owner", schema.name);
    let app = format!("{}_app", schema.name);
    schema.admin_execute(&format!(
        "CREATE ROLE {owner} LOGIN; ALTER SCHEMA {s} OWNER TO {owner};
         CREATE ROLE {app} LOGIN; GRANT USAGE ON SCHEMA {s} TO {app};",
        s = schema.name
    ));
    let out = Command::new(BIN)
        .args(["migrate", "--database-url", &schema.url_as(&owner)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    schema.admin_execute(&format!(
        "SET ROLE {owner};
         GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {s} TO {app};
         GRANT UPDATE ON {s}.logs TO {app};
         GRANT DELETE ON {s}.tiles TO {app};
         GRANT UPDATE ON {s}.records TO {app};
         RESET ROLE;",
        s = schema.name
    ));
    let url = schema.url_as(&app);
    (app, url)
}

/// Posts batches of events with client-chosen ids until `stop`; records what was
/// acknowledged, and counts the answers that were not.
async fn client_loop(
    server_url: String,
    tenant: &'static str,
    acked: Acked,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    batch: usize,
) {
    let http = client();
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let events: Vec<Value> = (0..batch)
            .map(|k| {
                let mut e = sample_event(i + k);
                e["id"] = json!(uuid::Uuid::now_v7());
                e["tenant"] = json!(tenant);
                e
            })
            .collect();
        i += batch;
        let response = http
            .post(format!("{server_url}/v1/events"))
            .json(&events)
            .send()
            .await;
        let Ok(response) = response else {
            refused.fetch_add(1, Ordering::SeqCst);
            continue;
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            201 => {
                let mut acked = acked.lock().unwrap();
                for r in body["receipts"].as_array().unwrap() {
                    acked.insert(
                        r["id"].as_str().unwrap().to_string(),
                        r["seq"].as_u64().unwrap(),
                    );
                }
            }
            503 => {
                assert!(retry_after, "a 503 without Retry-After");
                assert_eq!(body["code"], "unavailable", "{}", short(&body));
                refused.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("unexpected {other}: {}", short(&body)),
        }
    }
}

/// Every stored event of `tenant` through a node, in seq order, once its index has them.
async fn all_events(server: &Server, tenant: &str) -> Vec<Value> {
    let (_, logs) = get(server, "/v1/logs").await;
    let size = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["tenant"] == tenant)
        .map_or(0, |l| l["size"].as_u64().unwrap());
    if size > 0 {
        wait_indexed(server, tenant, size - 1).await;
    }
    let events = list_all(server, &format!("tenant={tenant}"), 1000).await;
    assert_eq!(
        events.len() as u64,
        size,
        "{tenant}: the listing misses stored events"
    );
    events
}

/// The stored log matches what was acknowledged: dense, each acked id once, at its seq.
fn assert_log(events: &[Value], acked: &HashMap<String, u64>) {
    assert_eq!(
        seqs(events),
        (0..events.len() as u64).collect::<Vec<_>>(),
        "seq is not dense"
    );
    let mut seen = HashMap::new();
    for e in events {
        *seen
            .entry(e["id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "an id is stored twice");
    let missing = acked
        .iter()
        .filter(|(id, seq)| {
            events
                .get(**seq as usize)
                .is_none_or(|e| e["id"] != id.as_str())
        })
        .count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged events are missing",
        acked.len()
    );
}

fn verify(url: &str, key: &str, data: Option<&std::path::Path>) -> Value {
    let mut cmd = Command::new(BIN);
    cmd.args(["verify", "--json", "--database-url", url, "--key", key]);
    if let Some(data) = data {
        cmd.arg("--data").arg(data).arg("--index");
    }
    let out = cmd.output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no summary: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{}", short(&summary));
    summary
}

fn verifier_key(data: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .args(["keys", "public", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_append_to_one_log() {
    let Some(schema) = schema().await else {
        return;
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(a_dir.path(), Some(&node_config(&schema.url, None)));
    // The nodes share one signing key, as one log.
    let key_file = a_dir.path().join("signing.key");
    let b = Server::start(
        b_dir.path(),
        Some(&node_config(&schema.url, Some(&key_file))),
    );

    let acked: Acked = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (n, url) in [&a.url, &b.url, &a.url, &b.url, &a.url, &b.url]
        .into_iter()
        .enumerate()
    {
        // Mostly one shared log, and a second one both nodes also write to.
        let tenant = if n < 4 { "shared" } else { "other" };
        clients.push(tokio::spawn(client_loop(
            url.clone(),
            tenant,
            acked.clone(),
            refused.clone(),
            stop.clone(),
            25,
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 4_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(refused.load(Ordering::SeqCst), 0, "ingest was refused");
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 1_000,
        "only {} events acknowledged",
        acked.len()
    );

    // Both nodes answer with the whole log, whichever node stored an event.
    for tenant in ["shared", "other"] {
        let mine: HashMap<String, u64> = acked
            .iter()
            .filter(|(id, _)| !id.is_empty())
            .map(|(id, seq)| (id.clone(), *seq))
            .collect();
        let through_a = all_events(&a, tenant).await;
        let through_b = all_events(&b, tenant).await;
        assert_eq!(seqs(&through_a), seqs(&through_b), "{tenant}");
        let ids_here: HashMap<String, u64> = through_a
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_string(),
                    e["seq"].as_u64().unwrap(),
                )
            })
            .collect();
        let acked_here: HashMap<String, u64> = mine
            .into_iter()
            .filter(|(id, _)| ids_here.contains_key(id))
            .collect();
        assert_log(&through_a, &acked_here);
        let query = format!("tenant={tenant}&actor_id=u3&outcome=failure");
        assert_eq!(
            seqs(&list_all(&a, &query, 100).await),
            seqs(&list_all(&b, &query, 100).await),
            "{query}"
        );
    }
    // Every acknowledged event is in one of the two logs.
    let mut stored = 0;
    for tenant in ["shared", "other"] {
        stored += all_events(&a, tenant).await.len();
    }
    assert!(
        stored >= acked.len(),
        "{stored} stored, {} acknowledged",
        acked.len()
    );
    let (_, logs) = get(&a, "/v1/logs").await;
    let sizes: BTreeMap<String, u64> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["tenant"].as_str().unwrap().into(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sizes.values().sum::<u64>(), acked.len() as u64);

    a.stop();
    b.stop();
    let vkey = verifier_key(a_dir.path());
    let summary = verify(&schema.url, &vkey, Some(a_dir.path()));
    assert_eq!(summary["events"].as_u64(), Some(acked.len() as u64));
    verify(&schema.url, &vkey, Some(b_dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_survives_the_database_going_away() {
    let Some(schema) = schema().await else {
        return;
    };
    // The schema's owner migrates; the server runs as a role that may only add and read.
    let (app, app_url) = runtime_role(&schema);
    // Partitions are made ahead by the migration owner here; the app may not create tables.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(&node_config(&app_url, None)));

    // The runtime role cannot rewrite history.
    let raw = app_url.clone();
    let refused_sql = tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&raw, postgres::NoTls).unwrap();
        [
            "UPDATE events SET body = 'x'",
            "DELETE FROM events",
            "TRUNCATE events",
            "DROP TABLE events",
        ]
        .iter()
        .filter(|sql| c.batch_execute(sql).is_err())
        .count()
    })
    .await
    .unwrap();
    assert_eq!(refused_sql, 4);

    let acked: Acked = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(client_loop(
                server.url.clone(),
                "default",
                acked.clone(),
                refused.clone(),
                stop.clone(),
                20,
            ))
        })
        .collect();
    let wait_for = |n: usize| {
        let acked = acked.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while acked.lock().unwrap().len() < n {
                assert!(Instant::now() < deadline, "ingest did not reach {n}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(500).await;

    // The database goes away: no new connections, and every open one is cut.
    schema.admin_execute(&format!(
        "ALTER ROLE {app} NOLOGIN;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{app}';"
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut saw_unready = false;
    while !(saw_unready && refused.load(Ordering::SeqCst) > 0) {
        let (status, _) = get(&server, "/health/ready").await;
        saw_unready |= status == 503;
        assert!(Instant::now() < deadline, "the outage was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = acked.lock().unwrap().len();

    // It comes back; the node recovers by itself.
    schema.admin_execute(&format!("ALTER ROLE {app} LOGIN;"));
    wait_for(during + 500).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let (status, _) = get(&server, "/health/ready").await;
    assert_eq!(status, 200);
    let acked = acked.lock().unwrap().clone();
    let events = all_events(&server, "default").await;
    assert_log(&events, &acked);
    server.stop();
    verify(&app_url, &verifier_key(dir.path()), Some(dir.path()));
}

/// A second node started without the log's signing key would sign the shared log with a
/// key of its own, and no verifier could check its checkpoints: it refuses to start, naming
/// both keys. The log records which verifier key it belongs to on the first start, so
/// even before the first checkpoint a foreign key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_key_refuses_to_start() {
    let Some(schema) = schema().await else {
        return;
    };
    let (a_dir, b_dir, c_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = Server::start(a_dir.path(), Some(&node_config(&schema.url, None)));
    let a_key = verifier_key(a_dir.path());

    // Before any checkpoint: the recorded key decides.
    let refused = Server::try_start(b_dir.path(), Some(&node_config(&schema.url, None)))
        .err()
        .expect("a node with another key started");
    assert!(refused.contains("does not sign this log"), "{refused}");
    assert!(
        refused.contains(&a_key),
        "the log's key is not named: {refused}"
    );
    assert!(
        !b_dir.path().join("signing.key").exists(),
        "the refused node kept a generated key"
    );

    // After checkpoints: their signer is named too.
    ingest(&a, &[sample_event(1), sample_event(2)]).await;
    wait_checkpoint(&a, "default", 2).await;
    let other = c_dir.path().join("other.key");
    let made = stele(&[
        "keys",
        "generate",
        "--name",
        "localhost/stele",
        "--out",
        path(&other),
    ]);
    made.assert_ok();
    let other_verifier = made.stdout.trim().to_string();
    let refused = Server::try_start(c_dir.path(), Some(&node_config(&schema.url, Some(&other))))
        .err()
        .expect("a node with another key started");
    assert!(
        refused.contains(&other_verifier),
        "its own key is not named: {refused}"
    );
    assert!(
        refused.contains("latest checkpoint of log `default`"),
        "{refused}"
    );
    let signer_id = a_key.split('+').nth(1).unwrap();
    assert!(
        refused.contains(signer_id),
        "the signer's key id is not named: {refused}"
    );

    // With the log's key, a second node starts and serves the same log.
    let b = Server::start(
        b_dir.path(),
        Some(&node_config(
            &schema.url,
            Some(&a_dir.path().join("signing.key")),
        )),
    );
    let (status, _) = get(&b, "/v1/logs/default/checkpoint").await;
    assert_eq!(status, 200);
    b.stop();
    a.stop();
}

/// A key revoked on one node stops working on another within a second, and a key made on
/// one works on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_node_within_a_second() {
    let Some(schema) = schema().await else { return };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_secured(a_dir.path(), Some(&node_config(&schema.url, None)));
    let admin = a
        .admin_key
        .clone()
        .expect("the first node makes the bootstrap key");
    let key_file = a_dir.path().join("signing.key");
    let b = Server::start_secured(
        b_dir.path(),
        Some(&node_config(&schema.url, Some(&key_file))),
    );
    assert!(
        b.admin_key.is_none(),
        "the second node made a second bootstrap key"
    );
    let http = client();
    let made = http
        .post(a.endpoint("/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "reader", "role": "reader", "scope": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let (reader, id) = (
        made["key"].as_str().unwrap().to_string(),
        made["record"]["id"].as_str().unwrap().to_string(),
    );
    let status_on_b = |key: String| {
        let (http, url) = (http.clone(), b.endpoint("/v1/logs"));
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_on_b(reader.clone()).await != 200 {
        assert!(
            Instant::now() < deadline,
            "node b never accepted the new key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let revoked = http
        .delete(a.endpoint(&format!("/v1/keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let revoked_at = Instant::now();
    while status_on_b(reader.clone()).await != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "node b still accepts the key a second after its revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.stop();
    a.stop();
}

/// A read whose meta-audit record cannot be written is not answered: here the runtime
/// role loses the right to append, so reads still work in the database but not through
/// Stele.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_cannot_be_recorded_is_not_answered() {
    let Some(schema) = schema().await else { return };
    // The grants the README gives the runtime role.
    let (app, app_url) = runtime_role(&schema);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secured(dir.path(), Some(&node_config(&app_url, None)));
    let admin = server.admin_key.clone().unwrap();
    let http = client();
    let read = || {
        let (http, url, admin) = (http.clone(), server.endpoint("/v1/events"), admin.clone());
        async move {
            let response = http.get(url).bearer_auth(admin).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let sent = http
        .post(server.endpoint("/v1/events"))
        .bearer_auth(&admin)
        .json(&json!([{ "action": "user.login" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    let (status, page) = read().await;
    assert_eq!(status, 200, "{page}");
    // Keys made and revoked by the runtime role work with the README's grants.
    let made: Value = http
        .post(server.endpoint("/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "r", "role": "reader", "scope": "all"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["record"]["id"].as_str().unwrap();
    let revoked = http
        .delete(server.endpoint(&format!("/v1/keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    schema.admin_execute(&format!(
        "REVOKE INSERT ON {s}.events FROM {app};",
        s = schema.name
    ));
    let (status, answer) = read().await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.get("events").is_none(), "{answer}");
    server.kill();
}

/// A full ingest queue does not refuse reads: their meta-audit records wait in a queue of
/// their own. Here the writer is held up by a lock on the log's row, with the one-event
/// ingest queue full behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_recorded_while_the_ingest_queue_is_full() {
    let Some(schema) = schema().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[ingest]\nqueue_events = 1\nmax_events_per_request = 1\n",
        node_config(&schema.url, None)
    );
    let server = Server::start_secured(dir.path(), Some(&config));
    let admin = server.admin_key.clone().unwrap();
    let http = client();
    let post = |http: reqwest::Client| {
        let (url, admin) = (server.endpoint("/v1/events"), admin.clone());
        async move {
            http.post(url)
                .bearer_auth(admin)
                .json(&json!([{ "action": "user.login" }]))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(http.clone()).await, 201);

    // Another session locks the log's row: the writer's next batch waits for it.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let url = schema.url.clone();
    let holder = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = c.transaction().unwrap();
        tx.execute(
            "SELECT 1 FROM logs WHERE tenant = 'default' FOR UPDATE",
            &[],
        )
        .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        tx.commit().unwrap();
    });
    locked_rx.recv().unwrap();
    // Posts until one is refused: the one before it waits in the full queue behind the
    // writer (whichever of them got there first).
    let mut waiting = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut posted = tokio::spawn(post(http.clone()));
        match tokio::time::timeout(Duration::from_millis(500), &mut posted).await {
            Ok(status) => match status.unwrap() {
                503 => break,
                other => assert_eq!(other, 201, "before the queue filled"),
            },
            Err(_) => waiting.push(posted),
        }
        assert!(Instant::now() < deadline, "the ingest queue never filled");
    }
    assert!(!waiting.is_empty(), "refused with nothing waiting");
    // A read is recorded behind the writer, not refused with the ingest.
    let read = {
        let (http, url, admin) = (http.clone(), server.endpoint("/v1/logs"), admin.clone());
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!read.is_finished(), "the read did not wait for its record");
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(read.await.unwrap(), 200);
    for posted in waiting {
        assert_eq!(posted.await.unwrap(), 201);
    }
    server.stop();
}
