//! `stele verify --data`: a store written by the real server, then tampered with the way
//! someone with write access to the data directory would (drop the append-only triggers,
//! edit rows), must fail verification with each discrepancy named by its place.

mod common;

use common::*;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use stele_core::leaf_hash;
use stele_core::merkle::NodeHash;
use stele_core::note::{Checkpoint, Note, SignerKey};
use stele_core::tiles::TileBuilder;
use tempfile::TempDir;

/// Checkpoints every 100 ms, so that each request of the fixture gets its own.
const CONFIG: &str = "[log]\ncheckpoint_interval_ms = 100\n";

/// The fixture's requests, in order: (tenant, events). acme ends at 520 events (two full
/// level-0 tiles, a partial one and a partial level-1 tile), globex at 80.
const PLAN: &[(&str, usize)] = &[
    ("acme", 200),
    ("globex", 50),
    ("acme", 200),
    ("globex", 30),
    ("acme", 120),
];
const ACME: u64 = 520;
const GLOBEX: u64 = 80;
const TOTAL: u64 = ACME + GLOBEX;

/// A stopped server's data directory and the verifier key of its checkpoints.
struct Fixture {
    dir: TempDir,
    data: PathBuf,
    key: String,
}

impl Fixture {
    /// Runs a server, stores the events of [`PLAN`] (each request checkpointed), waits for
    /// the index, stops it gracefully and reads its verifier key.
    fn build() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let server = Server::start(&data, Some(CONFIG));
            let mut sizes = std::collections::HashMap::new();
            let mut i = 0;
            for &(tenant, n) in PLAN {
                let events: Vec<Value> = (i..i + n).map(|i| tenant_event(tenant, i)).collect();
                i += n;
                let receipts = ingest(&server, &events).await;
                assert_eq!(receipts.len(), n);
                let size = sizes.entry(tenant).or_insert(0u64);
                *size += n as u64;
                wait_checkpoint(&server, tenant, *size).await;
            }
            wait_indexed(&server, "acme", ACME - 1).await;
            wait_indexed(&server, "globex", GLOBEX - 1).await;
            server.stop();
        });
        let key = stele(&["keys", "public", "--data", path(&data)]);
        assert_eq!(key.code, 0, "keys public: {}", key.stderr);
        let key = key.stdout.trim().to_string();
        Fixture { dir, data, key }
    }

    /// `stele verify --data <data> --key <key> <extra…>`.
    fn verify(&self, extra: &[&str]) -> Run {
        self.verify_dir(&self.data, extra)
    }

    fn verify_dir(&self, data: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["verify", "--data", path(data), "--key", &self.key];
        args.extend_from_slice(extra);
        stele(&args)
    }

    /// A copy of the data directory, for a second tampering of the same history.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.dir.path().join(name);
        copy_dir(&self.data, &to);
        to
    }

    fn db(&self) -> Db {
        Db::open(&self.data)
    }
}

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

/// The size line of the latest checkpoint of `tenant`, if it has one.
async fn checkpoint_size(server: &Server, tenant: &str) -> Option<u64> {
    let response = client()
        .get(server.endpoint(&format!("/v1/logs/{tenant}/checkpoint")))
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return None;
    }
    let text = response.text().await.unwrap();
    text.lines().nth(1)?.parse().ok()
}

/// Waits (polling, with a deadline) until `tenant` has a checkpoint of `size` events.
async fn wait_checkpoint(server: &Server, tenant: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = checkpoint_size(server, tenant).await;
        if now.is_some_and(|s| s >= size) {
            assert_eq!(now, Some(size), "checkpoint of {tenant} overshot");
            return;
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
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The problem lines (`log <tenant>, <place>: <detail>`) of a text run.
    fn problems(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("log "))
            .collect()
    }

    /// Whether some problem line starts with `prefix` (`log acme, seq 5: …`).
    fn names(&self, prefix: &str) -> bool {
        self.problems().iter().any(|p| p.starts_with(prefix))
    }

    fn json(&self) -> Value {
        let line = self.stdout.trim();
        assert_eq!(line.lines().count(), 1, "not one line: {line}");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Asserts exit code 1 and that a problem line starts with each of `prefixes`.
    fn assert_fails_naming(&self, prefixes: &[&str]) {
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

fn stele(args: &[&str]) -> Run {
    let output = Command::new(BIN).args(args).output().unwrap();
    Run {
        code: output.status.code().expect("exited, not signalled"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A stored checkpoint row.
#[derive(Debug, Clone)]
struct CheckpointRow {
    id: i64,
    size: u64,
    note: String,
}

/// The stopped server's SQLite store, opened for writing like a tamperer would.
struct Db {
    conn: Connection,
}

impl Db {
    fn open(data: &Path) -> Db {
        let conn = Connection::open(data.join("stele.db")).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        Db { conn }
    }

    /// What a tamperer does first: drop every append-only trigger.
    fn drop_triggers(&self) {
        let names: Vec<String> = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            names.iter().any(|n| n == "events_no_update"),
            "expected the append-only triggers, found {names:?}"
        );
        for name in names {
            self.conn
                .execute_batch(&format!("DROP TRIGGER \"{name}\""))
                .unwrap();
        }
    }

    fn log_id(&self, tenant: &str) -> i64 {
        self.conn
            .query_row("SELECT log_id FROM logs WHERE tenant = ?1", [tenant], |r| {
                r.get(0)
            })
            .unwrap()
    }

    fn body(&self, tenant: &str, seq: u64) -> Vec<u8> {
        self.conn
            .query_row(
                "SELECT body FROM events WHERE log_id = ?1 AND seq = ?2",
                params![self.log_id(tenant), seq as i64],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn leaf(&self, tenant: &str, seq: u64) -> Vec<u8> {
        self.conn
            .query_row(
                "SELECT leaf_hash FROM events WHERE log_id = ?1 AND seq = ?2",
                params![self.log_id(tenant), seq as i64],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Rewrites the bytes and leaf hash of one event (needs the update trigger gone).
    fn set_event(&self, tenant: &str, seq: u64, body: &[u8], leaf: &[u8]) {
        let n = self
            .conn
            .execute(
                "UPDATE events SET body = ?3, leaf_hash = ?4 WHERE log_id = ?1 AND seq = ?2",
                params![self.log_id(tenant), seq as i64, body, leaf],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    /// Rewrites an event consistently: its leaf hash is recomputed from the new bytes.
    fn forge_event(&self, tenant: &str, seq: u64, body: &[u8]) {
        self.set_event(tenant, seq, body, &leaf_hash(body).0);
    }

    /// The stored leaf hashes of a log, in seq order.
    fn leaves(&self, tenant: &str) -> Vec<NodeHash> {
        self.conn
            .prepare("SELECT leaf_hash FROM events WHERE log_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([self.log_id(tenant)], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|h| NodeHash(h.unwrap().try_into().unwrap()))
            .collect()
    }

    /// Replaces every tile row of a log with the tiles of its stored leaf hashes, so that
    /// the tree agrees with the (tampered) events.
    fn rebuild_tiles(&self, tenant: &str) {
        let log = self.log_id(tenant);
        self.conn
            .execute("DELETE FROM tiles WHERE log_id = ?1", [log])
            .unwrap();
        let mut tree = TileBuilder::new();
        for leaf in self.leaves(tenant) {
            tree.push(leaf);
        }
        for tile in tree.take_writes() {
            let id = tile.id();
            self.conn
                .execute(
                    "INSERT INTO tiles (log_id, level, idx, width, hashes) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![log, id.level, id.index as i64, id.width, tile.hashes],
                )
                .unwrap();
        }
    }

    /// The tile row (level, index) of a log: (width, hashes).
    fn tile(&self, tenant: &str, level: u8, index: u64) -> (u16, Vec<u8>) {
        self.conn
            .query_row(
                "SELECT width, hashes FROM tiles WHERE log_id = ?1 AND level = ?2 AND idx = ?3",
                params![self.log_id(tenant), level, index as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    fn set_tile(&self, tenant: &str, level: u8, index: u64, hashes: &[u8]) {
        let n = self
            .conn
            .execute(
                "UPDATE tiles SET hashes = ?4 WHERE log_id = ?1 AND level = ?2 AND idx = ?3",
                params![self.log_id(tenant), level, index as i64, hashes],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    /// A log's checkpoints in the order `stele verify` numbers them (by size, then id).
    fn checkpoints(&self, tenant: &str) -> Vec<CheckpointRow> {
        self.conn
            .prepare(
                "SELECT checkpoint_id, size, note FROM checkpoints WHERE log_id = ?1
                 ORDER BY size, checkpoint_id",
            )
            .unwrap()
            .query_map([self.log_id(tenant)], |r| {
                Ok(CheckpointRow {
                    id: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    note: r.get(2)?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The checkpoint of `tenant` at `size` (the fixture has one per size).
    fn checkpoint_at(&self, tenant: &str, size: u64) -> CheckpointRow {
        let all = self.checkpoints(tenant);
        let found: Vec<_> = all.iter().filter(|c| c.size == size).collect();
        assert_eq!(found.len(), 1, "checkpoints of {tenant}: {all:?}");
        found[0].clone()
    }

    /// How `stele verify` names the checkpoint row `id` of `tenant`.
    fn checkpoint_place(&self, tenant: &str, id: i64) -> String {
        let all = self.checkpoints(tenant);
        let i = all.iter().position(|c| c.id == id).expect("a stored row");
        format!("log {tenant}, checkpoint #{} (size {})", i + 1, all[i].size)
    }

    fn set_note(&self, id: i64, note: &str) {
        let n = self
            .conn
            .execute(
                "UPDATE checkpoints SET note = ?2 WHERE checkpoint_id = ?1",
                params![id, note],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn count(&self, table: &str) -> u64 {
        self.conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
    }
}

/// `body` with the first occurrence of `from` replaced by `to`.
fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.contains(from), "`{from}` not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

/// The checkpoint a signed note carries.
fn parse_checkpoint(note: &str) -> Checkpoint {
    Checkpoint::parse(&Note::parse(note).unwrap().text).unwrap()
}

/// A second key of the same name, made with `stele keys generate`: (signer, verifier text).
fn other_key(dir: &Path) -> (SignerKey, String) {
    let file = dir.join("other.key");
    let run = stele(&[
        "keys",
        "generate",
        "--name",
        "localhost/stele",
        "--out",
        path(&file),
    ]);
    assert_eq!(run.code, 0, "keys generate: {}", run.stderr);
    let signer = SignerKey::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(signer.verifier().to_text(), run.stdout.trim());
    (signer, run.stdout.trim().to_string())
}

/// The root of the first `size` leaves.
fn root_at(leaves: &[NodeHash], size: u64) -> NodeHash {
    let mut tree = TileBuilder::new();
    for leaf in &leaves[..size as usize] {
        tree.push(*leaf);
    }
    tree.root()
}

#[test]
fn untouched_store_verifies() {
    let f = Fixture::build();
    let (tiles, checkpoints) = {
        let db = f.db();
        assert_eq!(db.count("events"), TOTAL);
        (db.count("tiles"), db.count("checkpoints"))
    };
    // acme: tile/0/000, tile/0/001, tile/0/002.p/8, tile/1/000.p/2; globex: tile/0/000.p/80.
    assert_eq!(tiles, 5);
    assert!(
        checkpoints >= PLAN.len() as u64,
        "{checkpoints} checkpoints"
    );

    let run = f.verify(&[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.starts_with("ok:"), "stdout: {}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "2 logs, {TOTAL} events, {tiles} tiles, {checkpoints} checkpoints"
        )),
        "stdout: {}",
        run.stdout
    );
    assert!(run.problems().is_empty(), "{run:#?}");

    let run = f.verify(&["--json"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let summary = run.json();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["logs"], 2);
    assert_eq!(summary["events"], TOTAL);
    assert_eq!(summary["tiles"], tiles);
    assert_eq!(summary["checkpoints"], checkpoints);
    assert_eq!(summary["problems"], 0);
    assert!(summary.get("details").is_none(), "{summary}");

    let run = f.verify(&["--index"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.starts_with("ok:"), "stdout: {}", run.stdout);

    let run = f.verify(&["--tenant", "globex", "--json"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let summary = run.json();
    assert_eq!(
        (summary["logs"].as_u64(), summary["events"].as_u64()),
        (Some(1), Some(GLOBEX))
    );

    // Without --key, the key in the data directory is used, and the output says so.
    let run = stele(&["verify", "--data", path(&f.data)]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr.contains("note: checked with the key in"),
        "stderr: {}",
        run.stderr
    );

    // A log the store does not have is a problem; a missing store cannot be checked.
    let run = f.verify(&["--tenant", "initech"]);
    run.assert_fails_naming(&["log initech, log: no such log"]);
    let missing = f.dir.path().join("nowhere");
    let run = f.verify_dir(&missing, &[]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("no store"), "stderr: {}", run.stderr);
}

#[test]
fn changed_byte_of_an_event_is_named_by_its_seq() {
    let f = Fixture::build();
    let db = f.db();
    db.conn
        .execute_batch("DROP TRIGGER events_no_update")
        .unwrap();
    let body = db.body("acme", 300);
    let leaf = db.leaf("acme", 300);
    let changed = replace(&body, "\"note\":\"sample\"", "\"note\":\"Sample\"");
    assert_eq!(changed.len(), body.len());
    db.set_event("acme", 300, &changed, &leaf);
    let later = db.checkpoint_at("acme", 400);
    let earlier = db.checkpoint_at("acme", 200);
    let (later, earlier) = (
        db.checkpoint_place("acme", later.id),
        db.checkpoint_place("acme", earlier.id),
    );
    drop(db);

    let run = f.verify(&[]);
    run.assert_fails_naming(&[
        "log acme, seq 300: stored leaf hash ",
        // The tree is recomputed from the bytes, so the tile and later roots differ too.
        "log acme, tile/0/001: hash 44 is ",
        &format!("{later}: signed root "),
    ]);
    assert!(!run.names(&earlier), "{run:#?}");
    assert!(!run.names("log globex"), "{run:#?}");

    let summary = f.verify(&["--json"]).json();
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["problems"], run.problems().len());
    let details: Vec<&str> = summary["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("log acme, seq 300: stored leaf hash")),
        "{details:?}"
    );
}

#[test]
fn deleted_event_is_named_as_missing() {
    let f = Fixture::build();
    let db = f.db();
    db.drop_triggers();
    let n = db
        .conn
        .execute(
            "DELETE FROM events WHERE log_id = ?1 AND seq = 300",
            [db.log_id("acme")],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(db);

    let run = f.verify(&[]);
    run.assert_fails_naming(&[
        "log acme, seq 300: missing: the next stored event is seq 301",
        &format!(
            "log acme, log: the log records {ACME} events but {} are stored",
            ACME - 1
        ),
    ]);
    assert!(!run.names("log globex"), "{run:#?}");
}

/// One missing event is reported once: the events after it are stored and must not be
/// reported missing too (a flood could push real problems past the 1,000 printed).
#[test]
fn deleted_event_is_the_only_one_reported_missing() {
    let f = Fixture::build();
    let db = f.db();
    db.drop_triggers();
    db.conn
        .execute(
            "DELETE FROM events WHERE log_id = ?1 AND seq = 300",
            [db.log_id("acme")],
        )
        .unwrap();
    drop(db);

    let run = f.verify(&[]);
    let missing: Vec<&str> = run
        .problems()
        .into_iter()
        .filter(|p| p.contains(": missing: "))
        .collect();
    assert_eq!(
        missing,
        ["log acme, seq 300: missing: the next stored event is seq 301"],
        "{} problems in all",
        run.problems().len()
    );
}

#[test]
fn swapped_events_are_named() {
    let f = Fixture::build();
    let db = f.db();
    db.drop_triggers();
    let (a, b) = (db.body("acme", 100), db.body("acme", 101));
    let (la, lb) = (db.leaf("acme", 100), db.leaf("acme", 101));
    db.set_event("acme", 100, &b, &lb);
    db.set_event("acme", 101, &a, &la);
    let cp = db.checkpoint_at("acme", 200);
    let place = db.checkpoint_place("acme", cp.id);
    drop(db);

    let run = f.verify(&[]);
    run.assert_fails_naming(&[
        "log acme, seq 100: the event's bytes say seq Some(101)",
        "log acme, seq 101: the event's bytes say seq Some(100)",
        "log acme, tile/0/000: hash 100 is ",
        &format!("{place}: signed root "),
    ]);
    assert!(!run.names("log globex"), "{run:#?}");
}

#[test]
fn inserted_forged_event_is_caught() {
    let f = Fixture::build();
    let renumbered = f.copy("renumbered");

    // Make room at seq 300 and put a forged event there, consistent with its position.
    let shift = |db: &Db, log: i64| {
        db.conn
            .execute(
                "UPDATE events SET seq = seq + 1000000 WHERE log_id = ?1 AND seq >= 300",
                [log],
            )
            .unwrap();
        db.conn
            .execute(
                "UPDATE events SET seq = seq - 999999 WHERE log_id = ?1 AND seq >= 1000000",
                [log],
            )
            .unwrap();
        db.conn
            .execute("UPDATE logs SET size = size + 1 WHERE log_id = ?1", [log])
            .unwrap();
    };
    let insert_forged = |db: &Db, log: i64| {
        let model = db.body("acme", 299);
        let event: Value = serde_json::from_slice(&model).unwrap();
        let old_id = event["id"].as_str().unwrap();
        let new_id = uuid::Uuid::now_v7();
        let forged = replace(&model, "\"seq\":299,", "\"seq\":300,");
        let forged = replace(&forged, old_id, &new_id.to_string());
        let forged = replace(&forged, "\"name\":\"Test User\"", "\"name\":\"Mallory\"");
        db.conn
            .execute(
                "INSERT INTO events (log_id, seq, id, leaf_hash, body) VALUES (?1, 300, ?2, ?3, ?4)",
                params![log, &new_id.as_bytes()[..], &leaf_hash(&forged).0[..], forged],
            )
            .unwrap();
    };

    // 1. Later events shifted as they are: their bytes still say their old seq.
    let db = f.db();
    db.drop_triggers();
    let log = db.log_id("acme");
    shift(&db, log);
    insert_forged(&db, log);
    let cp = db.checkpoint_at("acme", 400);
    let place = db.checkpoint_place("acme", cp.id);
    drop(db);
    let run = f.verify(&[]);
    run.assert_fails_naming(&[
        "log acme, seq 301: the event's bytes say seq Some(300)",
        "log acme, seq 520: the event's bytes say seq Some(519)",
        &format!("{place}: signed root "),
    ]);

    // 2. Every later event renumbered in its bytes too, with leaf hashes to match: the
    //    events agree with themselves, but not with the stored tree or the signed roots.
    let db = Db::open(&renumbered);
    db.drop_triggers();
    let log = db.log_id("acme");
    shift(&db, log);
    for seq in (301..=ACME).rev() {
        let body = db.body("acme", seq);
        let body = replace(
            &body,
            &format!("\"seq\":{},", seq - 1),
            &format!("\"seq\":{seq},"),
        );
        db.forge_event("acme", seq, &body);
    }
    insert_forged(&db, log);
    drop(db);
    let run = f.verify_dir(&renumbered, &[]);
    run.assert_fails_naming(&[
        "log acme, tile/0/001: hash 44 is ",
        &format!("{place}: signed root "),
    ]);
    assert!(
        !run.problems()
            .iter()
            .any(|p| p.starts_with("log acme, seq ")),
        "{run:#?}"
    );
}

#[test]
fn truncated_tail_is_caught_by_the_checkpoint_beyond_it() {
    let f = Fixture::build();
    let db = f.db();
    db.drop_triggers();
    let log = db.log_id("acme");
    let n = db
        .conn
        .execute("DELETE FROM events WHERE log_id = ?1 AND seq >= 500", [log])
        .unwrap();
    assert_eq!(n, 20);
    db.conn
        .execute("UPDATE logs SET size = 500 WHERE log_id = ?1", [log])
        .unwrap();
    // The tree is cut back too, so that the events and tiles agree with each other.
    db.rebuild_tiles("acme");
    // The checkpoints beyond 500 events (the fixture's last one, of 520, among them).
    let beyond: Vec<String> = db
        .checkpoints("acme")
        .iter()
        .filter(|c| c.size > 500)
        .map(|c| {
            let place = db.checkpoint_place("acme", c.id);
            format!(
                "{place}: signed for {} events but the log holds 500",
                c.size
            )
        })
        .collect();
    let last = db.checkpoint_at("acme", ACME);
    let last = db.checkpoint_place("acme", last.id);
    drop(db);

    let run = f.verify(&["--json"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let summary = run.json();
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["events"], TOTAL - 20);
    assert_eq!(summary["details"], json!(beyond), "{summary}");
    let run = f.verify(&[]);
    run.assert_fails_naming(&[&format!(
        "{last}: signed for {ACME} events but the log holds 500"
    )]);
}

#[test]
fn replaced_tile_hash_is_named_by_its_tile_path() {
    let f = Fixture::build();
    let db = f.db();
    db.drop_triggers();
    let (width, mut hashes) = db.tile("acme", 0, 0);
    assert_eq!(width, 256);
    hashes[5 * 32] ^= 1;
    db.set_tile("acme", 0, 0, &hashes);
    let (width, mut hashes) = db.tile("acme", 1, 0);
    assert_eq!(width, 2);
    hashes[32 + 31] ^= 0x80;
    db.set_tile("acme", 1, 0, &hashes);
    let (width, mut hashes) = db.tile("globex", 0, 0);
    assert_eq!(width, 80);
    hashes[79 * 32] ^= 1;
    db.set_tile("globex", 0, 0, &hashes);
    drop(db);

    let run = f.verify(&["--json"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let summary = run.json();
    let details: Vec<&str> = summary["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    // The tree is recomputed from the events, so a bad stored tile is all that is wrong.
    assert_eq!(details.len(), 3, "{details:#?}");
    assert!(
        details[0].starts_with("log acme, tile/0/000: hash 5 is "),
        "{details:#?}"
    );
    assert!(
        details[1].starts_with("log acme, tile/1/000.p/2: hash 1 is "),
        "{details:#?}"
    );
    assert!(
        details[2].starts_with("log globex, tile/0/000.p/80: hash 79 is "),
        "{details:#?}"
    );
    f.verify(&[])
        .assert_fails_naming(&["log acme, tile/0/000: hash 5 is "]);
}

#[test]
fn edited_checkpoints_are_named() {
    let f = Fixture::build();
    let db = f.db();
    db.drop_triggers();
    // acme: the size in the note text.
    let acme = db.checkpoint_at("acme", 400);
    db.set_note(acme.id, &acme.note.replacen("\n400\n", "\n401\n", 1));
    // globex: the root in the note text.
    let globex = db.checkpoint_at("globex", 50);
    let root = parse_checkpoint(&globex.note).root;
    let mut other = root;
    other.0[0] ^= 1;
    let b64 = |h: &NodeHash| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(h.0)
    };
    db.set_note(
        globex.id,
        &globex.note.replacen(&b64(&root), &b64(&other), 1),
    );
    // globex: the size column beside an intact note.
    let column = db.checkpoint_at("globex", GLOBEX);
    db.conn
        .execute(
            "UPDATE checkpoints SET size = 81 WHERE checkpoint_id = ?1",
            [column.id],
        )
        .unwrap();
    let places = [
        db.checkpoint_place("acme", acme.id),
        db.checkpoint_place("globex", globex.id),
        db.checkpoint_place("globex", column.id),
    ];
    drop(db);
    assert!(places[0].ends_with("(size 400)"));
    assert!(places[2].ends_with("(size 81)"));

    let run = f.verify(&[]);
    run.assert_fails_naming(&[
        &format!("{}: not signed by localhost/stele", places[0]),
        &format!("{}: not signed by localhost/stele", places[1]),
        &format!("{}: the note is for size {GLOBEX}, stored as 81", places[2]),
    ]);
    assert_eq!(run.problems().len(), 3, "{run:#?}");
}

#[test]
fn checkpoint_signed_by_another_key_is_named() {
    let f = Fixture::build();
    let (attacker, _) = other_key(f.dir.path());
    let db = f.db();
    db.drop_triggers();
    let cp = db.checkpoint_at("acme", 400);
    // The same tree head, signed by a key of the same name.
    let text = parse_checkpoint(&cp.note).to_text();
    let forged = attacker.sign(&text).unwrap();
    assert_ne!(forged, cp.note);
    db.set_note(cp.id, &forged);
    let place = db.checkpoint_place("acme", cp.id);
    drop(db);

    let run = f.verify(&[]);
    run.assert_fails_naming(&[&format!("{place}: not signed by localhost/stele")]);
    assert_eq!(run.problems().len(), 1, "{run:#?}");
}

#[test]
fn replaced_signing_key_fools_only_a_check_without_key() {
    let f = Fixture::build();
    let (attacker, attacker_verifier) = other_key(f.dir.path());
    let db = f.db();
    db.drop_triggers();
    // Rewrite an event, the tree, and every checkpoint, re-signed with the attacker's key.
    let body = db.body("acme", 300);
    db.forge_event(
        "acme",
        300,
        &replace(&body, "\"note\":\"sample\"", "\"note\":\"forged\""),
    );
    db.rebuild_tiles("acme");
    let mut all = 0;
    for tenant in ["acme", "globex"] {
        let leaves = db.leaves(tenant);
        for cp in db.checkpoints(tenant) {
            let mut checkpoint = parse_checkpoint(&cp.note);
            checkpoint.root = root_at(&leaves, cp.size);
            db.set_note(cp.id, &attacker.sign(&checkpoint.to_text()).unwrap());
            all += 1;
        }
    }
    drop(db);
    std::fs::copy(f.dir.path().join("other.key"), f.data.join("signing.key")).unwrap();

    // The data directory's own key now vouches for the forgery…
    let run = stele(&["verify", "--data", path(&f.data)]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.starts_with("ok:"), "stdout: {}", run.stdout);
    assert!(
        run.stderr.contains("note: checked with the key in"),
        "stderr: {}",
        run.stderr
    );
    let run = stele(&[
        "verify",
        "--data",
        path(&f.data),
        "--key",
        &attacker_verifier,
    ]);
    assert_eq!(run.code, 0, "{run:#?}");

    // …but the verifier key kept apart from it rejects every checkpoint.
    let run = f.verify(&["--json"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let summary = run.json();
    assert_eq!(summary["problems"], all);
    for detail in summary["details"].as_array().unwrap() {
        let detail = detail.as_str().unwrap();
        assert!(
            detail.contains(", checkpoint #") && detail.contains(": not signed by localhost/stele"),
            "{detail}"
        );
    }
}

#[test]
fn consistent_forgery_is_caught_by_the_signed_roots() {
    let f = Fixture::build();
    let db = f.db();
    db.drop_triggers();
    // Rewrite one event, its leaf hash and every tile it affects: the store is consistent
    // in itself, and only the signatures tell.
    let body = db.body("acme", 300);
    let forged = replace(&body, "\"note\":\"sample\"", "\"note\":\"SAMPLE\"");
    db.forge_event("acme", 300, &forged);
    db.rebuild_tiles("acme");
    let places: Vec<String> = db
        .checkpoints("acme")
        .iter()
        .filter(|c| c.size > 300)
        .map(|c| db.checkpoint_place("acme", c.id))
        .collect();
    assert!(places.len() >= 2, "{places:?}");
    drop(db);

    let run = f.verify(&[]);
    let expected: Vec<String> = places
        .iter()
        .map(|p| format!("{p}: signed root "))
        .collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    run.assert_fails_naming(&expected);
    assert_eq!(run.problems().len(), places.len(), "{run:#?}");
    // Each names the signed root against the recomputed one.
    for p in run.problems() {
        assert!(p.contains(" but the events give "), "{p}");
    }
}

/// Reads the segments listed in the index's `meta.json`: (segment id, documents).
fn segments(data: &Path) -> Vec<(String, u64)> {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(data.join("index/meta.json")).unwrap()).unwrap();
    meta["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["segment_id"].as_str().unwrap().to_string(),
                s["max_doc"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn index_missing_a_document_is_caught_only_with_index() {
    // Its own server: seq 7 of acme is committed to the index alone, in a segment of its
    // own, which is then dropped from the index's list of segments. (tantivy is not a
    // dependency of this crate, and the index offers no way to delete a document.)
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lone = runtime.block_on(async {
        let server = Server::start(&data, Some(CONFIG));
        let events: Vec<Value> = (0..40).map(|i| tenant_event("acme", i)).collect();
        ingest(&server, &events[..7]).await;
        wait_indexed(&server, "acme", 6).await;
        let before = segments(&data);
        ingest(&server, &events[7..8]).await;
        wait_indexed(&server, "acme", 7).await;
        let new: Vec<_> = segments(&data)
            .into_iter()
            .filter(|s| !before.contains(s))
            .collect();
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0].1, 1, "seq 7 is not alone in its segment: {new:?}");
        ingest(&server, &events[8..]).await;
        wait_indexed(&server, "acme", 39).await;
        wait_checkpoint(&server, "acme", 40).await;
        server.stop();
        new[0].0.clone()
    });
    let key = stele(&["keys", "public", "--data", path(&data)]);
    let key = key.stdout.trim().to_string();
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--data", path(&data), "--key", &key];
        args.extend_from_slice(extra);
        stele(&args)
    };
    let run = verify(&["--index"]);
    assert_eq!(run.code, 0, "{run:#?}");

    let meta_path = data.join("index/meta.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    let list = meta["segments"].as_array_mut().unwrap();
    let before = list.len();
    list.retain(|s| s["segment_id"] != lone.as_str());
    assert_eq!(list.len() + 1, before, "segment {lone} was merged away");
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();

    let run = verify(&["--index"]);
    run.assert_fails_naming(&["log acme, index, seq 7: "]);
    assert_eq!(run.problems().len(), 1, "{run:#?}");
    let run = verify(&["--index", "--json"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["problems"], 1);
    // The store itself is intact.
    let run = verify(&[]);
    assert_eq!(run.code, 0, "{run:#?}");
}

#[test]
fn index_that_hides_an_events_fields_is_caught_only_with_index() {
    // An index built (with `stele reindex`) from a copy of the store in which one event is
    // unreadable: its document has a position but none of the event's fields, so searches
    // never find it. The real store is untouched.
    let f = Fixture::build();
    let scratch = f.copy("scratch");
    let db = Db::open(&scratch);
    db.drop_triggers();
    db.set_event("acme", 123, b"not an event", &[0; 32]);
    drop(db);
    let run = stele(&["reindex", "--data", path(&scratch)]);
    assert_eq!(run.code, 0, "{run:#?}");
    std::fs::remove_dir_all(f.data.join("index")).unwrap();
    copy_dir(&scratch.join("index"), &f.data.join("index"));

    let run = f.verify(&["--index"]);
    run.assert_fails_naming(&["log acme, index, seq 123: "]);
    assert!(
        run.problems()
            .iter()
            .all(|p| p.starts_with("log acme, index, seq 123: ")),
        "{run:#?}"
    );
    assert!(run.stderr.contains("field action"), "{}", run.stderr);
    assert_eq!(f.verify(&[]).code, 0);
}

/// Deleting a `logs` row would hide a whole log (its events, tiles and checkpoints stay
/// in the file, unreferenced): a trigger refuses it, and with the triggers dropped the
/// orphaned rows are named.
#[test]
fn deleted_log_row_is_caught() {
    let f = Fixture::build();
    let db = f.db();
    // SQLite enforces the foreign keys here, but that is the tamperer's choice.
    db.conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let refused = db
        .conn
        .execute("DELETE FROM logs WHERE tenant = 'globex'", [])
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    let log = db.log_id("globex");
    db.drop_triggers();
    let n = db
        .conn
        .execute("DELETE FROM logs WHERE tenant = 'globex'", [])
        .unwrap();
    assert_eq!(n, 1);
    drop(db);
    let run = f.verify(&[]);
    run.assert_fails_naming(&[&format!(
        "log #{log}, log: events, tiles or checkpoints of a log"
    )]);
}

/// A checkpoint of size 0 is never issued, so a stored one is forged: it is read and named
/// like any other.
#[test]
fn forged_checkpoint_of_size_zero_is_caught() {
    let f = Fixture::build();
    let db = f.db();
    let log = db.log_id("acme");
    db.conn
        .execute(
            "INSERT INTO checkpoints (log_id, size, signed_at, note) VALUES (?1, 0, 0, 'forged')",
            [log],
        )
        .unwrap();
    assert!(
        db.conn
            .query_row(
                "SELECT 1 FROM checkpoints WHERE log_id = ?1 AND size = 0",
                [log],
                |r| r.get::<_, i64>(0)
            )
            .optional()
            .unwrap()
            .is_some()
    );
    drop(db);
    let run = f.verify(&[]);
    run.assert_fails_naming(&["log acme, checkpoint #1 (size 0): "]);
}
