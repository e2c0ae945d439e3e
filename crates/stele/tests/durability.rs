//! Crash safety and the derived index: SIGKILL in the middle of concurrent ingest loses no
//! acknowledged event, and the search index is resumed or rebuilt to the same answers.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits until the server reports no index lag.
async fn wait_index_caught_up(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ready) = get(server, "/health/ready").await;
        if status == 200 && ready["index_lag"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "index never caught up: {}",
            short(&ready)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sigkill_during_concurrent_ingest_loses_no_acknowledged_event(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // Every acknowledged (id → seq), over all cycles.
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let counter = Arc::new(AtomicUsize::new(0));
    for cycle in 0..3u64 {
        let server = start(&backend, dir.path(), None);
        let before = acked.lock().unwrap().len();
        let mut clients = Vec::new();
        for c in 0..6u64 {
            let url = server.endpoint("/v1/events");
            let acked = acked.clone();
            let counter = counter.clone();
            clients.push(tokio::spawn(async move {
                let client = client();
                for round in 0u64.. {
                    let size = 1 + ((c * 31 + round * 17) % 120) as usize;
                    let events: Vec<Value> = (0..size)
                        .map(|_| {
                            let n = counter.fetch_add(1, Ordering::SeqCst);
                            json!({"id": format!("00000000-0000-4000-8000-{n:012}"), "action": "crash.test",
                                   "details": {"cycle": cycle, "client": c}})
                        })
                        .collect();
                    let Ok(response) = client.post(&url).json(&events).send().await else { return };
                    if response.status() != 201 {
                        continue;
                    }
                    let Ok(body) = response.json::<Value>().await else { return };
                    let mut acked = acked.lock().unwrap();
                    for r in body["receipts"].as_array().unwrap() {
                        acked.insert(r["id"].as_str().unwrap().to_string(), r["seq"].as_u64().unwrap());
                    }
                }
            }));
        }
        // Kill once a few batches were acknowledged, at a point that differs per cycle.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().len() < before + 500 + cycle as usize * 700 {
            assert!(Instant::now() < deadline, "ingest made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        for client in clients {
            client.await.unwrap();
        }
    }

    let server = start(&backend, dir.path(), None);
    wait_index_caught_up(&server).await;
    let stored = list_all(&server, "", 1000).await;
    let n = stored.len() as u64;
    assert_eq!(
        seqs(&stored),
        (0..n).collect::<Vec<_>>(),
        "seq is not dense"
    );
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 500 * 3,
        "too few acknowledged events to mean anything"
    );
    let mut missing = 0;
    for (id, &seq) in acked.iter() {
        if stored
            .get(seq as usize)
            .is_none_or(|e| e["id"] != id.as_str())
        {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} acknowledged events are missing of {}",
        acked.len()
    );
    // Also by id, straight from the store, for a sample.
    for (id, &seq) in acked.iter().take(50) {
        let (status, event) = get(&server, &format!("/v1/events/{id}")).await;
        assert_eq!((status, event["seq"].as_u64()), (200, Some(seq)));
    }
    server.stop();

    // The crashes left a tree, tiles and checkpoints that verify end to end.
    let out = std::process::Command::new(BIN)
        .args(["verify", "--index", "--json", "--data"])
        .arg(dir.path())
        .args(backend.store_args())
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{}", short(&summary));
    assert_eq!(summary["events"].as_u64(), Some(stored.len() as u64));
}

const QUERIES: &[&str] = &[
    "",
    "order=desc",
    "action=user.*",
    "actor_id=u3&order=desc",
    "ip=10.0.0.2&level=warn",
    "correlation_id=op-12",
    "from=2026-01-01T00:02:00Z&to=2026-01-01T00:05:00Z&outcome=failure",
    "error_code=E2",
];

async fn answers(server: &Server) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(seqs(&list_all(server, q, 97).await));
    }
    out
}

async fn index_is_rebuilt_after_deletion_and_by_reindex(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    load_samples(&server, 1200, 400).await;
    wait_index_caught_up(&server).await;
    let expected = answers(&server).await;
    assert_eq!(expected[0].len(), 1200);
    assert!(expected.iter().all(|a| !a.is_empty()));
    server.stop();

    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let server = start(&backend, dir.path(), None);
    wait_index_caught_up(&server).await;
    assert_eq!(answers(&server).await, expected, "after deleting the index");
    server.stop();

    let out = Command::new(BIN)
        .arg("reindex")
        .arg("--data")
        .arg(dir.path())
        .args(backend.store_args())
        .env("STELE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reindex failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("reindexed 1200 events"));
    let server = start(&backend, dir.path(), None);
    let (_, page) = get(&server, "/v1/events?limit=1").await;
    assert_eq!(
        page["indexed_through"], 1199,
        "reindex committed everything before the server started"
    );
    assert_eq!(answers(&server).await, expected, "after stele reindex");

    // Reindexing under a running server is refused rather than pulling the index away.
    let out = Command::new(BIN)
        .arg("reindex")
        .arg("--data")
        .arg(dir.path())
        .args(backend.store_args())
        .env("STELE_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    server.stop();
}

async fn index_resumes_after_sigkill(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    load_samples(&server, 1200, 300).await;
    server.kill();
    let server = start(&backend, dir.path(), None);
    wait_index_caught_up(&server).await;
    let resumed = answers(&server).await;
    server.stop();
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let server = start(&backend, dir.path(), None);
    wait_index_caught_up(&server).await;
    assert_eq!(
        answers(&server).await,
        resumed,
        "a resumed index answers like a rebuilt one"
    );
    assert_eq!(resumed[0].len(), 1200);
    server.stop();
}

async fn cli_send_and_query(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    let file = dir.path().join("events.ndjson");
    let lines: Vec<String> = (0..25).map(|i| sample_event(i).to_string()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = Command::new(BIN)
        .args(["send", "--url", &server.url])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "stored 25 events (0 already present)"
    );
    wait_indexed(&server, "default", 24).await;

    let expected: Vec<u64> = (0..25u64).filter(|i| i % 5 < 2).collect();
    let filter = ["--action", "user.*", "--limit", "1000"];
    assert_eq!(query_seqs(&server, &filter), expected);
    // Full text and a duration range: the events whose error says "timeout" (every sixth)
    // and that took at least 70 ms (seq × 7 for every third).
    let filter = ["--text", "Timeout", "--min-duration-ms", "70"];
    assert_eq!(query_seqs(&server, &filter), [12, 18, 24]);

    let out = Command::new(BIN)
        .args(["query", "--url", &server.url, "--desc", "--limit", "3"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().count(), 4, "a header and three rows");
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with("24 ")
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"action":"ok"},{"action":"Not Ok"}]"#).unwrap();
    let out = Command::new(BIN)
        .args(["send", "--url", &server.url])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_event"));
    server.stop();
}

/// A SIGTERM the moment the server says it listens is a graceful stop, not a kill.
async fn a_stop_right_after_start_is_graceful(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        start(&backend, dir.path(), None).stop();
    }
}

crate::on_both_backends!(
    a_stop_right_after_start_is_graceful,
    sigkill_during_concurrent_ingest_loses_no_acknowledged_event,
    index_is_rebuilt_after_deletion_and_by_reindex,
    index_resumes_after_sigkill,
    cli_send_and_query,
);

/// The seqs `stele query` prints (as NDJSON) for `filter`.
fn query_seqs(server: &Server, filter: &[&str]) -> Vec<u64> {
    let out = Command::new(BIN)
        .args(["query", "--url", &server.url, "--format", "ndjson"])
        .args(filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    seqs(&printed)
}
