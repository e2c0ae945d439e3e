//! `stele verify --url`: the monitor reads a running server like any tlog client, remembers
//! the last good checkpoint per log in a state file, and must notice when the history it
//! remembered is rewritten, forked or truncated, or signed by another key.

mod common;

use common::*;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use stele_core::merkle::NodeHash;
use stele_core::tiles::TileBuilder;

/// Checkpoints every 100 ms.
const CONFIG: &str = "[log]\ncheckpoint_interval_ms = 100\n";

fn tenant_event(tenant: &str, i: usize) -> Value {
    let mut event = sample_event(i);
    event["tenant"] = json!(tenant);
    event
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The latest checkpoint note of `tenant`, if it has one.
async fn checkpoint(server: &Server, tenant: &str) -> Option<String> {
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
async fn wait_checkpoint(server: &Server, tenant: &str, size: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let note = checkpoint(server, tenant).await;
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

/// Stores `n` events of `tenant` (from sample `first` on) in requests of 100, and waits
/// for the checkpoint of the log's new size `size`.
async fn grow(server: &Server, tenant: &str, first: usize, n: usize, size: u64) -> String {
    let events: Vec<Value> = (first..first + n)
        .map(|i| tenant_event(tenant, i))
        .collect();
    for chunk in events.chunks(100) {
        ingest(server, chunk).await;
    }
    wait_checkpoint(server, tenant, size).await
}

/// The outcome of one `stele` invocation.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn problems(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("log "))
            .collect()
    }

    fn json(&self) -> Value {
        let line = self.stdout.trim();
        assert_eq!(line.lines().count(), 1, "not one line: {line}");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn assert_ok(&self) {
        assert_eq!(self.code, 0, "{self:#?}");
    }

    /// Asserts exit code 1 and that some problem line starts with `prefix`.
    fn assert_fails_naming(&self, prefix: &str) {
        assert_eq!(self.code, 1, "expected problems, got {self:#?}");
        assert!(
            self.problems().iter().any(|p| p.starts_with(prefix)),
            "no problem starts with `{prefix}`: {self:#?}"
        );
    }
}

fn stele(args: &[&str]) -> Run {
    let output = Command::new(BIN).args(args).output().unwrap();
    Run {
        code: output.status.code().expect("exited, not signalled"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A monitor with a verifier key and a state file.
struct Monitor {
    key: String,
    state: PathBuf,
}

impl Monitor {
    /// `stele verify --url <server> --key <key> --state <state> <extra…>`.
    fn run(&self, server: &Server, extra: &[&str]) -> Run {
        let mut args = vec![
            "verify",
            "--url",
            &server.url,
            "--key",
            &self.key,
            "--state",
            path(&self.state),
        ];
        args.extend_from_slice(extra);
        stele(&args)
    }

    fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.state).unwrap()).unwrap()
    }

    fn state_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.state).unwrap()
    }
}

fn verifier_key(data: &Path) -> String {
    let run = stele(&["keys", "public", "--data", path(data)]);
    run.assert_ok();
    run.stdout.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_follows_a_growing_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(CONFIG));
    let note = grow(&server, "acme", 0, 300, 300).await;
    let monitor = Monitor {
        key: verifier_key(&data),
        state: dir.path().join("monitor.json"),
    };

    // First run: nothing remembered yet; the checkpoint and sampled entries check out.
    let run = monitor.run(&server, &[]);
    run.assert_ok();
    assert!(
        run.stdout.starts_with("ok: verified 1 logs, 300 events"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("inclusion proofs"), "{run:#?}");
    let state = monitor.state();
    assert_eq!(state["key"], "localhost/stele");
    assert_eq!(state["logs"]["acme"]["size"], 300);
    assert_eq!(state["logs"]["acme"]["note"], note.as_str());

    // The log grows and a second one appears: the new checkpoint must extend the old one.
    grow(&server, "acme", 300, 250, 550).await;
    grow(&server, "globex", 1000, 40, 40).await;
    let run = monitor.run(&server, &["--json", "--samples", "1000"]);
    run.assert_ok();
    let summary = run.json();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["logs"], 2);
    assert_eq!(summary["events"], 590);
    assert_eq!(summary["checkpoints"], 2);
    // With more samples than entries, every entry's inclusion is proven.
    assert_eq!(summary["proofs"], 590);
    assert_eq!(summary["problems"], 0);
    let state = monitor.state();
    assert_eq!(state["logs"]["acme"]["size"], 550);
    assert_eq!(state["logs"]["globex"]["size"], 40);

    // Nothing new: the same checkpoint is consistent with itself.
    let before = monitor.state_bytes();
    monitor.run(&server, &[]).assert_ok();
    assert_eq!(monitor.state_bytes(), before);

    // A state file kept with another key is refused outright.
    let other = dir.path().join("other.key");
    let generated = stele(&[
        "keys",
        "generate",
        "--name",
        "elsewhere.example",
        "--out",
        path(&other),
    ]);
    generated.assert_ok();
    let stranger = Monitor {
        key: generated.stdout.trim().to_string(),
        state: monitor.state.clone(),
    };
    let run = stranger.run(&server, &[]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("the state file was kept with key `localhost/stele`"),
        "{run:#?}"
    );
    server.stop();
}

/// The tamperer's side for a truncated tail: cuts `tenant` back to `size` events with a
/// consistent tree, and removes the checkpoints beyond it.
fn truncate(data: &Path, tenant: &str, size: u64) {
    let conn = Connection::open(data.join("stele.db")).unwrap();
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for name in triggers {
        conn.execute_batch(&format!("DROP TRIGGER \"{name}\""))
            .unwrap();
    }
    let log: i64 = conn
        .query_row("SELECT log_id FROM logs WHERE tenant = ?1", [tenant], |r| {
            r.get(0)
        })
        .unwrap();
    let size = size as i64;
    conn.execute(
        "DELETE FROM events WHERE log_id = ?1 AND seq >= ?2",
        params![log, size],
    )
    .unwrap();
    conn.execute(
        "DELETE FROM checkpoints WHERE log_id = ?1 AND size > ?2",
        params![log, size],
    )
    .unwrap();
    conn.execute(
        "UPDATE logs SET size = ?2 WHERE log_id = ?1",
        params![log, size],
    )
    .unwrap();
    conn.execute("DELETE FROM tiles WHERE log_id = ?1", [log])
        .unwrap();
    let mut tree = TileBuilder::new();
    let leaves: Vec<Vec<u8>> = conn
        .prepare("SELECT leaf_hash FROM events WHERE log_id = ?1 ORDER BY seq")
        .unwrap()
        .query_map([log], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for leaf in leaves {
        tree.push(NodeHash(leaf.try_into().unwrap()));
    }
    for tile in tree.take_writes() {
        let id = tile.id();
        conn.execute(
            "INSERT INTO tiles (log_id, level, idx, width, hashes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![log, id.level, id.index as i64, id.width, tile.hashes],
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_catches_rewritten_truncated_and_foreign_histories() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let server = Server::start(&original, Some(CONFIG));
    grow(&server, "acme", 0, 300, 300).await;
    let monitor = Monitor {
        key: verifier_key(&original),
        state: dir.path().join("monitor.json"),
    };
    monitor.run(&server, &[]).assert_ok();
    let remembered = monitor.state_bytes();
    server.stop();
    let copy = dir.path().join("truncated");
    copy_dir(&original, &copy);

    // 1. Another history of the log, signed with the same key: first as long as the
    //    remembered one, then longer.
    let key_file = original.join("signing.key");
    let forked = dir.path().join("forked");
    let config = format!("{CONFIG}signing_key = \"{}\"\n", path(&key_file));
    let server = Server::start(&forked, Some(&config));
    grow(&server, "acme", 5000, 300, 300).await;
    let run = monitor.run(&server, &[]);
    run.assert_fails_naming(
        "log acme, checkpoint 300 → 300: the new checkpoint does not extend the remembered one: history was rewritten or forked",
    );
    grow(&server, "acme", 5300, 50, 350).await;
    let run = monitor.run(&server, &["--json"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let summary = run.json();
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["problems"], 1, "{summary}");
    assert_eq!(
        summary["details"],
        json!([
            "log acme, checkpoint 300 → 350: the new checkpoint does not extend the remembered one: history was rewritten or forked"
        ])
    );
    // The monitor keeps what it trusted.
    assert_eq!(monitor.state_bytes(), remembered);
    server.stop();

    // 2. The original history with its tail cut off and re-signed at the new size.
    truncate(&copy, "acme", 250);
    std::fs::remove_dir_all(copy.join("index")).unwrap();
    let server = Server::start(&copy, Some(CONFIG));
    wait_checkpoint(&server, "acme", 250).await;
    let run = monitor.run(&server, &[]);
    run.assert_fails_naming(
        "log acme, checkpoint 300 → 250: the log shrank from 300 to 250 events: history was truncated or rewritten",
    );
    assert_eq!(monitor.state_bytes(), remembered);
    server.stop();

    // 3. A server with a key of its own (same key name, as a default install has).
    let foreign = dir.path().join("foreign");
    let server = Server::start(&foreign, Some(CONFIG));
    grow(&server, "acme", 0, 400, 400).await;
    let run = monitor.run(&server, &[]);
    run.assert_fails_naming("log acme, checkpoint: not signed by localhost/stele");
    assert_eq!(monitor.state_bytes(), remembered);
    server.stop();

    // The true server, grown meanwhile, still checks out against the remembered state.
    let server = Server::start(&original, Some(CONFIG));
    grow(&server, "acme", 300, 100, 400).await;
    let run = monitor.run(&server, &[]);
    run.assert_ok();
    assert_eq!(monitor.state()["logs"]["acme"]["size"], 400);
    server.stop();
}

/// Rewrites one event of `tenant` and its leaf hash, and rebuilds the log's tiles, so that
/// the store agrees with itself; the stored checkpoints are left alone.
fn forge(data: &Path, tenant: &str, seq: u64) {
    let conn = Connection::open(data.join("stele.db")).unwrap();
    for trigger in ["events_no_update", "tiles_no_delete"] {
        conn.execute_batch(&format!("DROP TRIGGER {trigger}"))
            .unwrap();
    }
    let log: i64 = conn
        .query_row("SELECT log_id FROM logs WHERE tenant = ?1", [tenant], |r| {
            r.get(0)
        })
        .unwrap();
    let body: Vec<u8> = conn
        .query_row(
            "SELECT body FROM events WHERE log_id = ?1 AND seq = ?2",
            params![log, seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("\"note\":\"sample\""), "{text}");
    let forged = text
        .replacen("\"note\":\"sample\"", "\"note\":\"forged\"", 1)
        .into_bytes();
    conn.execute(
        "UPDATE events SET body = ?3, leaf_hash = ?4 WHERE log_id = ?1 AND seq = ?2",
        params![
            log,
            seq as i64,
            &forged,
            &stele_core::leaf_hash(&forged).0[..]
        ],
    )
    .unwrap();
    let size: i64 = conn
        .query_row("SELECT size FROM logs WHERE log_id = ?1", [log], |r| {
            r.get(0)
        })
        .unwrap();
    drop(conn);
    // Cutting back to the full size rebuilds the tiles from the (forged) leaf hashes.
    truncate(data, tenant, size as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_catches_a_store_forged_behind_the_servers_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(CONFIG));
    grow(&server, "acme", 0, 300, 300).await;
    let monitor = Monitor {
        key: verifier_key(&data),
        state: dir.path().join("monitor.json"),
    };
    monitor.run(&server, &[]).assert_ok();
    server.stop();

    // Someone with write access to the store rewrites an old event and the whole tree.
    forge(&data, "acme", 100);
    std::fs::remove_dir_all(data.join("index")).unwrap();

    // The server, unaware, signs the forged tree with the real key as the log grows.
    let server = Server::start(&data, Some(CONFIG));
    grow(&server, "acme", 300, 100, 400).await;
    // Every entry is included in the tree the server now signs…
    let fresh = Monitor {
        key: monitor.key.clone(),
        state: dir.path().join("fresh.json"),
    };
    fresh.run(&server, &["--samples", "1000"]).assert_ok();
    // …but that tree does not extend the one the monitor remembered.
    let run = monitor.run(&server, &[]);
    run.assert_fails_naming(
        "log acme, checkpoint 300 → 400: the new checkpoint does not extend the remembered one",
    );
    server.stop();

    // Offline, the checkpoint signed before the forgery gives it away as well.
    let run = stele(&["verify", "--data", path(&data), "--key", &monitor.key]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.problems()
            .iter()
            .any(|p| p.starts_with("log acme, checkpoint #") && p.contains(": signed root ")),
        "{run:#?}"
    );
    assert!(
        !run.problems()
            .iter()
            .any(|p| p.contains(", seq ") || p.contains(", tile/")),
        "{run:#?}"
    );
}

/// A log that has events but no checkpoint yet (created less than a checkpoint interval
/// ago) is not a problem: the run passes, says so, and remembers the other logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_does_not_fail_on_a_log_not_signed_yet() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The first checkpoint is signed at once; the next not before ten minutes.
    let config = "[log]\ncheckpoint_interval_ms = 600000\n";
    let server = Server::start(&data, Some(config));
    grow(&server, "acme", 0, 10, 10).await;
    ingest(&server, &[tenant_event("globex", 10)]).await;
    let (status, logs) = get(&server, "/v1/logs").await;
    assert_eq!(status, 200);
    assert_eq!(
        logs["logs"],
        json!([
            {"tenant": "acme", "size": 10, "checkpoint_size": 10},
            {"tenant": "globex", "size": 1, "checkpoint_size": null},
        ])
    );
    let monitor = Monitor {
        key: verifier_key(&data),
        state: dir.path().join("monitor.json"),
    };
    let run = monitor.run(&server, &[]);
    run.assert_ok();
    assert_eq!(monitor.state()["logs"]["acme"]["size"], 10);
    server.stop();
}
