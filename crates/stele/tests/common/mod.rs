//! Test harness: runs the real `stele` binary on port 0 in a temporary data directory.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod tampering;
pub use tampering::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// Where a test server keeps its log. API tests run once per backend (see
/// `on_both_backends!`); PostgreSQL ones get a scratch schema of their own.
#[derive(Clone)]
pub enum Backend {
    Sqlite,
    Postgres(std::sync::Arc<stele_testkit::PgSchema>),
}

impl Backend {
    /// A PostgreSQL backend, or `None` (said loudly) when no database is reachable.
    pub fn postgres() -> Option<Backend> {
        stele_testkit::PgSchema::create().map(|s| Backend::Postgres(std::sync::Arc::new(s)))
    }

    /// The server configuration for this backend, with `extra` TOML.
    pub fn config(&self, extra: Option<&str>) -> Option<String> {
        match self {
            Backend::Sqlite => extra.map(str::to_string),
            Backend::Postgres(schema) => Some(format!(
                "database_url = \"{}\"\n{}",
                schema.url,
                extra.unwrap_or("")
            )),
        }
    }

    /// Arguments that point `stele verify` or `stele reindex` at this backend's store.
    pub fn store_args(&self) -> Vec<String> {
        match self {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres(schema) => vec!["--database-url".into(), schema.url.clone()],
        }
    }
}

/// Starts a server on `backend` with its data directory (search index, key) in `data`.
pub fn start(backend: &Backend, data: &Path, extra: Option<&str>) -> Server {
    Server::start(data, backend.config(extra).as_deref())
}

/// Runs each named `async fn(Backend)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = super::common::Backend::postgres() {
                        super::$name(backend).await
                    }
                }
            )+
        }
    };
}

#[allow(unused_imports)]
pub use stele_testkit::{Server, sample_event, tenant_event};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Posts a JSON body; answers (status, body).
pub async fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(server.endpoint(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = client().get(server.endpoint(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Posts events and expects them stored; answers the receipts.
pub async fn ingest(server: &Server, events: &[Value]) -> Vec<Value> {
    let (status, body) = post(server, "/v1/events", &json!(events)).await;
    assert_eq!(status, 201, "ingest failed: {}", short(&body));
    body["receipts"].as_array().unwrap().clone()
}

/// Posts an NDJSON body; answers (status, body).
pub async fn post_ndjson(server: &Server, body: &str) -> (u16, Value) {
    post_events_as(server, "application/x-ndjson", body).await
}

/// Posts `body` to `/v1/events` as `content_type`; answers (status, body).
pub async fn post_events_as(server: &Server, content_type: &str, body: &str) -> (u16, Value) {
    let response = client()
        .post(server.endpoint("/v1/events"))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The text of `/metrics`.
pub async fn metrics_text(server: &Server) -> String {
    client()
        .get(server.endpoint("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Stores `n` sample events in requests of `chunk`.
pub async fn load_samples(server: &Server, n: usize, chunk: usize) {
    let events: Vec<Value> = (0..n).map(sample_event).collect();
    for part in events.chunks(chunk) {
        ingest(server, part).await;
    }
}

/// Every event of a listing, following cursors; `query` without `limit`/`cursor`.
pub async fn list_all(server: &Server, query: &str, page: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/events?{query}&limit={page}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = get(server, &path).await;
        assert_eq!(status, 200, "{path}: {}", short(&body));
        let events = body["events"].as_array().unwrap();
        assert!(events.len() <= page);
        out.extend(events.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

pub fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

/// Waits until the index has `tenant` through `seq` (or panics after `limit`).
pub async fn wait_indexed(server: &Server, tenant: &str, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get(
            server,
            &format!("/v1/events?tenant={tenant}&limit=1&min_seq={seq}"),
        )
        .await;
        if body["indexed_through"].as_u64().is_some_and(|s| s >= seq) {
            return;
        }
        assert!(Instant::now() < deadline, "index did not reach {seq}");
    }
}

/// A JSON value, shortened for assertion messages.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 600 {
        format!("{}…", &s[..600])
    } else {
        s
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The latest checkpoint note of `tenant`, if it has one.
pub async fn checkpoint_note(server: &Server, tenant: &str) -> Option<String> {
    let response = client()
        .get(server.endpoint(&format!("/v1/logs/{tenant}/checkpoint")))
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return None;
    }
    Some(response.text().await.unwrap())
}

/// Waits (polling, with a deadline) until `tenant` has a checkpoint of exactly `size`
/// events, and answers its note.
pub async fn wait_checkpoint(server: &Server, tenant: &str, size: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let note = checkpoint_note(server, tenant).await;
        let now: Option<u64> = note.as_deref().and_then(|n| n.lines().nth(1)?.parse().ok());
        if now.is_some_and(|s| s >= size) {
            assert_eq!(now, Some(size), "checkpoint of {tenant} overshot");
            return note.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{tenant} never got a checkpoint of {size} (latest {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The outcome of one `stele` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The problem lines (`log <tenant>, <place>: <detail>`) of a text run.
    pub fn problems(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("log "))
            .collect()
    }

    /// Whether some problem line starts with `prefix` (`log acme, seq 5: …`).
    pub fn names(&self, prefix: &str) -> bool {
        self.problems().iter().any(|p| p.starts_with(prefix))
    }

    /// The one line of a `--json` run.
    pub fn json(&self) -> Value {
        let line = self.stdout.trim();
        assert_eq!(line.lines().count(), 1, "not one line: {line}");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.code, 0, "{self:#?}");
    }

    /// Asserts exit code 1 and that a problem line starts with each of `prefixes`.
    pub fn assert_fails_naming(&self, prefixes: &[&str]) {
        assert_eq!(self.code, 1, "expected problems, got {self:#?}");
        assert!(
            self.stdout.starts_with("FAILED: "),
            "stdout: {}",
            self.stdout
        );
        for prefix in prefixes {
            assert!(
                self.names(prefix),
                "no problem starts with `{prefix}`; problems:\n{}",
                self.problems().join("\n")
            );
        }
    }
}

/// Runs the `stele` binary with `args` to the end.
pub fn stele(args: &[&str]) -> Run {
    let output = Command::new(BIN).args(args).output().unwrap();
    Run {
        code: output.status.code().expect("exited, not signalled"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The verifier key of the server whose data directory is `data`.
pub fn verifier_key(data: &Path) -> String {
    let run = stele(&["keys", "public", "--data", path(data)]);
    run.assert_ok();
    run.stdout.trim().to_string()
}
