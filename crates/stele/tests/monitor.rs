//! `stele verify --url`: the monitor reads a running server like any tlog client, remembers
//! the last good checkpoint per log in a state file, and must notice when the history it
//! remembered is rewritten, forked or truncated, or signed by another key. The monitor
//! speaks HTTP only; each test runs once per store backend behind the server (see
//! `on_both_backends!` at the end), and the tamperer's side works on either store through
//! the [`Tamper`] trait.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Checkpoints every 100 ms.
const CONFIG: &str = "[log]\ncheckpoint_interval_ms = 100\n";

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

async fn monitor_follows_a_growing_log(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&backend, &data, Some(CONFIG));
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

/// Another, empty store of the same kind as `backend`: for PostgreSQL a schema of its own.
fn fresh(backend: &Backend) -> Backend {
    match backend {
        Backend::Sqlite => Backend::Sqlite,
        Backend::Postgres(_) => Backend::postgres().expect("PostgreSQL went away"),
    }
}

/// A copy of a stopped server: its data directory `from` goes to `to`, and the store of
/// `backend` (on SQLite, in the data directory) to a store of the same kind, answered.
async fn copy_store(backend: &Backend, from: &Path, to: &Path) -> Backend {
    copy_dir(from, to);
    let Backend::Postgres(schema) = backend else {
        return Backend::Sqlite;
    };
    let copy = fresh(backend);
    let Backend::Postgres(target) = &copy else {
        unreachable!("a fresh PostgreSQL store")
    };
    let run = stele(&["migrate", "--database-url", &target.url]);
    run.assert_ok();
    // Row for row, ids included; the months of the events need their partitions first,
    // and the identity columns must go on after the copied ids.
    let source = schema.name.clone();
    let url = target.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "INSERT INTO logs OVERRIDING SYSTEM VALUE SELECT * FROM {source}.logs;
                 SELECT stele_create_partition(m) FROM (SELECT DISTINCT
                     date_trunc('month', received_at AT TIME ZONE 'UTC')::date AS m
                     FROM {source}.events) AS months;
                 INSERT INTO events SELECT * FROM {source}.events;
                 INSERT INTO event_ids SELECT * FROM {source}.event_ids;
                 INSERT INTO tiles SELECT * FROM {source}.tiles;
                 INSERT INTO checkpoints OVERRIDING SYSTEM VALUE
                     SELECT * FROM {source}.checkpoints;
                 SELECT setval(pg_get_serial_sequence('logs', 'log_id'), max(log_id))
                     FROM logs;
                 SELECT setval(pg_get_serial_sequence('checkpoints', 'checkpoint_id'),
                     max(checkpoint_id)) FROM checkpoints;"
            ))
            .unwrap_or_else(|e| panic!("copying schema {source}: {e:?}"));
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    copy
}

/// The tamperer's side for a truncated tail: cuts `tenant` back to `size` events with a
/// consistent tree, and removes the checkpoints beyond it.
fn truncate(db: &mut dyn Tamper, tenant: &str, size: u64) {
    db.drop_triggers();
    db.cut(tenant, size);
    db.rebuild_tiles(tenant);
}

/// Rewrites one event of `tenant` and its leaf hash, and rebuilds the log's tiles, so that
/// the store agrees with itself; the stored checkpoints are left alone.
fn forge(db: &mut dyn Tamper, tenant: &str, seq: u64) {
    db.drop_triggers();
    let text = String::from_utf8(db.body(tenant, seq)).unwrap();
    assert!(text.contains("\"note\":\"sample\""), "{text}");
    let forged = text.replacen("\"note\":\"sample\"", "\"note\":\"forged\"", 1);
    db.forge_event(tenant, seq, forged.as_bytes());
    db.rebuild_tiles(tenant);
}

async fn monitor_catches_rewritten_truncated_and_foreign_histories(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let server = start(&backend, &original, Some(CONFIG));
    grow(&server, "acme", 0, 300, 300).await;
    let monitor = Monitor {
        key: verifier_key(&original),
        state: dir.path().join("monitor.json"),
    };
    monitor.run(&server, &[]).assert_ok();
    let remembered = monitor.state_bytes();
    server.stop();
    let copy = dir.path().join("truncated");
    let copied = copy_store(&backend, &original, &copy).await;

    // 1. Another history of the log (in a store of its own), signed with the same key:
    //    first as long as the remembered one, then longer.
    let key_file = original.join("signing.key");
    let forked = dir.path().join("forked");
    let forked_store = fresh(&backend);
    let config = format!("{CONFIG}signing_key = \"{}\"\n", path(&key_file));
    let server = start(&forked_store, &forked, Some(&config));
    grow(&server, "acme", 5000, 300, 300).await;
    let run = monitor.run(&server, &[]);
    run.assert_fails_naming(&[
        "log acme, checkpoint 300 → 300: the new checkpoint does not extend the remembered one: history was rewritten or forked",
    ]);
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

    // 2. The original history (a copy of its store) with its tail cut off and re-signed at
    //    the new size.
    tamper(&copied, &copy, |db| truncate(db, "acme", 250)).await;
    std::fs::remove_dir_all(copy.join("index")).unwrap();
    let server = start(&copied, &copy, Some(CONFIG));
    wait_checkpoint(&server, "acme", 250).await;
    let run = monitor.run(&server, &[]);
    run.assert_fails_naming(&[
        "log acme, checkpoint 300 → 250: the log shrank from 300 to 250 events: history was truncated or rewritten",
    ]);
    assert_eq!(monitor.state_bytes(), remembered);
    server.stop();

    // 3. A server with a store and a key of its own (same key name, as a default install
    //    has).
    let foreign = dir.path().join("foreign");
    let foreign_store = fresh(&backend);
    let server = start(&foreign_store, &foreign, Some(CONFIG));
    grow(&server, "acme", 0, 400, 400).await;
    let run = monitor.run(&server, &[]);
    run.assert_fails_naming(&["log acme, checkpoint: not signed by localhost/stele"]);
    assert_eq!(monitor.state_bytes(), remembered);
    server.stop();

    // The true server, grown meanwhile, still checks out against the remembered state.
    let server = start(&backend, &original, Some(CONFIG));
    grow(&server, "acme", 300, 100, 400).await;
    let run = monitor.run(&server, &[]);
    run.assert_ok();
    assert_eq!(monitor.state()["logs"]["acme"]["size"], 400);
    server.stop();
}

async fn monitor_catches_a_store_forged_behind_the_servers_back(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&backend, &data, Some(CONFIG));
    grow(&server, "acme", 0, 300, 300).await;
    let monitor = Monitor {
        key: verifier_key(&data),
        state: dir.path().join("monitor.json"),
    };
    monitor.run(&server, &[]).assert_ok();
    server.stop();

    // Someone with write access to the store rewrites an old event and the whole tree.
    tamper(&backend, &data, |db| forge(db, "acme", 100)).await;
    std::fs::remove_dir_all(data.join("index")).unwrap();

    // The server, unaware, signs the forged tree with the real key as the log grows.
    let server = start(&backend, &data, Some(CONFIG));
    grow(&server, "acme", 300, 100, 400).await;
    // Every entry is included in the tree the server now signs…
    let fresh = Monitor {
        key: monitor.key.clone(),
        state: dir.path().join("fresh.json"),
    };
    fresh.run(&server, &["--samples", "1000"]).assert_ok();
    // …but that tree does not extend the one the monitor remembered.
    let run = monitor.run(&server, &[]);
    run.assert_fails_naming(&[
        "log acme, checkpoint 300 → 400: the new checkpoint does not extend the remembered one",
    ]);
    server.stop();

    // Offline, the checkpoint signed before the forgery gives it away as well.
    let store = backend.store_args();
    let mut args = vec!["verify", "--data", path(&data), "--key", &monitor.key];
    args.extend(store.iter().map(String::as_str));
    let run = stele(&args);
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
async fn monitor_does_not_fail_on_a_log_not_signed_yet(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The first checkpoint is signed at once; the next not before ten minutes.
    let config = "[log]\ncheckpoint_interval_ms = 600000\n";
    let server = start(&backend, &data, Some(config));
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

crate::on_both_backends!(
    monitor_follows_a_growing_log,
    monitor_catches_rewritten_truncated_and_foreign_histories,
    monitor_catches_a_store_forged_behind_the_servers_back,
    monitor_does_not_fail_on_a_log_not_signed_yet,
);
