//! `stele verify`: a store written by the real server, then tampered with the way someone
//! with write access to it would (disable the append-only triggers, edit rows), must fail
//! verification with each discrepancy named by its place. Every scenario runs on both
//! backends (see `on_both_backends!` at the end): SQLite (`<data>/stele.db`, checked with
//! `--data`) and PostgreSQL (a scratch schema, checked with `--database-url`), written once
//! against the [`Tamper`] trait.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use stele_tlog::merkle::NodeHash;
use stele_tlog::note::{Checkpoint, Note, SignerKey};
use stele_tlog::tiles::TileBuilder;
use tempfile::TempDir;
use uuid::Uuid;

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

/// A stopped server's store and data directory, and the verifier key of its checkpoints.
struct Fixture {
    dir: TempDir,
    data: PathBuf,
    key: String,
    backend: Backend,
}

impl Fixture {
    /// Runs a server on `backend`, stores the events of [`PLAN`] (each request
    /// checkpointed), waits for the index, stops it gracefully and reads its verifier key.
    async fn build(backend: Backend) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = start(&backend, &data, Some(CONFIG));
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
        let key = verifier_key(&data);
        Fixture {
            dir,
            data,
            key,
            backend,
        }
    }

    /// `stele verify --data <data> <store…> --key <key> <extra…>`.
    fn verify(&self, extra: &[&str]) -> Run {
        let mut args = vec!["--key", &self.key];
        args.extend_from_slice(extra);
        self.verify_unkeyed(&args)
    }

    /// `stele verify --data <data> <store…> <extra…>`: without `--key` in `extra`, the key
    /// in the data directory is used.
    fn verify_unkeyed(&self, extra: &[&str]) -> Run {
        verify_at(&self.data, &self.backend, extra)
    }

    /// Opens the store for writing like a tamperer would and runs `f` on it. The sync
    /// PostgreSQL client may not be used (or dropped) on a runtime thread, so `f` runs on a
    /// blocking thread, where the connection is closed too.
    async fn tamper<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Tamper) -> R + Send + 'static,
    ) -> R {
        tamper(&self.backend, &self.data, f).await
    }
}

/// `stele verify --data <data> <the store of backend…> <extra…>`.
fn verify_at(data: &Path, backend: &Backend, extra: &[&str]) -> Run {
    let store = backend.store_args();
    let mut args = vec!["verify", "--data", path(data)];
    args.extend(store.iter().map(String::as_str));
    args.extend_from_slice(extra);
    stele(&args)
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

async fn untouched_store_verifies(backend: Backend) {
    let f = Fixture::build(backend).await;
    let (events, tiles, checkpoints) = f
        .tamper(|db| {
            (
                db.count("events"),
                db.count("tiles"),
                db.count("checkpoints"),
            )
        })
        .await;
    assert_eq!(events, TOTAL);
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
    let run = f.verify_unkeyed(&[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr.contains("note: checked with the key in"),
        "stderr: {}",
        run.stderr
    );

    // A log the store does not have is a problem.
    let run = f.verify(&["--tenant", "initech"]);
    run.assert_fails_naming(&["log initech, log: no such log"]);

    // A missing store cannot be checked: on SQLite a data directory without one, on
    // PostgreSQL a schema without Stele's tables.
    let (empty, says) = match &f.backend {
        Backend::Sqlite => (Backend::Sqlite, "no store"),
        Backend::Postgres(_) => (
            Backend::postgres().expect("PostgreSQL went away"),
            "schema version 0",
        ),
    };
    let missing = f.dir.path().join("nowhere");
    let run = verify_at(&missing, &empty, &["--key", &f.key]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains(says), "stderr: {}", run.stderr);
}

async fn changed_byte_of_an_event_is_named_by_its_seq(backend: Backend) {
    let f = Fixture::build(backend).await;
    let (later, earlier) = f
        .tamper(|db| {
            db.drop_triggers();
            let body = db.body("acme", 300);
            let leaf = db.leaf("acme", 300);
            let changed = replace(&body, "\"note\":\"sample\"", "\"note\":\"Sample\"");
            assert_eq!(changed.len(), body.len());
            db.set_event("acme", 300, &changed, &leaf);
            let later = db.checkpoint_at("acme", 400);
            let earlier = db.checkpoint_at("acme", 200);
            (
                db.checkpoint_place("acme", later.id),
                db.checkpoint_place("acme", earlier.id),
            )
        })
        .await;

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

async fn deleted_event_is_named_as_missing(backend: Backend) {
    let f = Fixture::build(backend).await;
    f.tamper(|db| {
        // The store refuses, until the triggers are gone.
        let refused = db.try_delete_events("acme", 300..301).unwrap_err();
        assert!(refused.contains("append-only"), "{refused}");
        db.drop_triggers();
        assert_eq!(db.try_delete_events("acme", 300..301), Ok(1));
    })
    .await;

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
async fn deleted_event_is_the_only_one_reported_missing(backend: Backend) {
    let f = Fixture::build(backend).await;
    f.tamper(|db| {
        db.drop_triggers();
        assert_eq!(db.try_delete_events("acme", 300..301), Ok(1));
    })
    .await;

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

async fn swapped_events_are_named(backend: Backend) {
    let f = Fixture::build(backend).await;
    let place = f
        .tamper(|db| {
            db.drop_triggers();
            let (a, b) = (db.body("acme", 100), db.body("acme", 101));
            let (la, lb) = (db.leaf("acme", 100), db.leaf("acme", 101));
            db.set_event("acme", 100, &b, &lb);
            db.set_event("acme", 101, &a, &la);
            let cp = db.checkpoint_at("acme", 200);
            db.checkpoint_place("acme", cp.id)
        })
        .await;

    let run = f.verify(&[]);
    run.assert_fails_naming(&[
        "log acme, seq 100: the event's bytes say seq Some(101)",
        "log acme, seq 101: the event's bytes say seq Some(100)",
        "log acme, tile/0/000: hash 100 is ",
        &format!("{place}: signed root "),
    ]);
    assert!(!run.names("log globex"), "{run:#?}");
}

async fn inserted_forged_event_is_caught(backend: Backend) {
    let f = Fixture::build(backend).await;

    // 1. Room made at seq 300 for a forged event, consistent with its position; the later
    //    events are shifted as they are: their bytes still say their old seq.
    let place = f
        .tamper(|db| {
            db.drop_triggers();
            db.shift_events("acme", 300);
            let model = db.body("acme", 299);
            let event: Value = serde_json::from_slice(&model).unwrap();
            let old_id = event["id"].as_str().unwrap();
            let new_id = Uuid::now_v7();
            let forged = replace(&model, "\"seq\":299,", "\"seq\":300,");
            let forged = replace(&forged, old_id, &new_id.to_string());
            let forged = replace(&forged, "\"name\":\"Test User\"", "\"name\":\"Mallory\"");
            db.insert_event("acme", 300, new_id, &forged);
            let cp = db.checkpoint_at("acme", 400);
            db.checkpoint_place("acme", cp.id)
        })
        .await;
    let run = f.verify(&[]);
    run.assert_fails_naming(&[
        "log acme, seq 301: the event's bytes say seq Some(300)",
        "log acme, seq 520: the event's bytes say seq Some(519)",
        &format!("{place}: signed root "),
    ]);

    // 2. Then every later event renumbered in its bytes too, with leaf hashes to match:
    //    the events agree with themselves, but not with the stored tree or the signed
    //    roots.
    f.tamper(|db| {
        db.drop_triggers();
        for seq in (301..=ACME).rev() {
            let body = db.body("acme", seq);
            let body = replace(
                &body,
                &format!("\"seq\":{},", seq - 1),
                &format!("\"seq\":{seq},"),
            );
            db.forge_event("acme", seq, &body);
        }
    })
    .await;
    let run = f.verify(&[]);
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

async fn truncated_tail_is_caught_by_the_checkpoint_beyond_it(backend: Backend) {
    let f = Fixture::build(backend).await;
    let (beyond, last) = f
        .tamper(|db| {
            db.drop_triggers();
            assert_eq!(db.try_delete_events("acme", 500..u64::MAX), Ok(20));
            db.set_log_size("acme", 500);
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
            (beyond, db.checkpoint_place("acme", last.id))
        })
        .await;

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

async fn replaced_tile_hash_is_named_by_its_tile_path(backend: Backend) {
    let f = Fixture::build(backend).await;
    f.tamper(|db| {
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
    })
    .await;

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

async fn edited_checkpoints_are_named(backend: Backend) {
    let f = Fixture::build(backend).await;
    let places = f
        .tamper(|db| {
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
            db.set_checkpoint_size(column.id, 81);
            [
                db.checkpoint_place("acme", acme.id),
                db.checkpoint_place("globex", globex.id),
                db.checkpoint_place("globex", column.id),
            ]
        })
        .await;
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

async fn checkpoint_signed_by_another_key_is_named(backend: Backend) {
    let f = Fixture::build(backend).await;
    let (attacker, _) = other_key(f.dir.path());
    let place = f
        .tamper(move |db| {
            db.drop_triggers();
            let cp = db.checkpoint_at("acme", 400);
            // The same tree head, signed by a key of the same name.
            let text = parse_checkpoint(&cp.note).to_text();
            let forged = attacker.sign(&text).unwrap();
            assert_ne!(forged, cp.note);
            db.set_note(cp.id, &forged);
            db.checkpoint_place("acme", cp.id)
        })
        .await;

    let run = f.verify(&[]);
    run.assert_fails_naming(&[&format!("{place}: not signed by localhost/stele")]);
    assert_eq!(run.problems().len(), 1, "{run:#?}");
}

async fn replaced_signing_key_fools_only_a_check_without_key(backend: Backend) {
    let f = Fixture::build(backend).await;
    let (attacker, attacker_verifier) = other_key(f.dir.path());
    // Rewrite an event, the tree, and every checkpoint, re-signed with the attacker's key.
    let all = f
        .tamper(move |db| {
            db.drop_triggers();
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
            all
        })
        .await;
    std::fs::copy(f.dir.path().join("other.key"), f.data.join("signing.key")).unwrap();

    // The data directory's own key now vouches for the forgery…
    let run = f.verify_unkeyed(&[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.starts_with("ok:"), "stdout: {}", run.stdout);
    assert!(
        run.stderr.contains("note: checked with the key in"),
        "stderr: {}",
        run.stderr
    );
    let run = f.verify_unkeyed(&["--key", &attacker_verifier]);
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

async fn consistent_forgery_is_caught_by_the_signed_roots(backend: Backend) {
    let f = Fixture::build(backend).await;
    let places = f
        .tamper(|db| {
            db.drop_triggers();
            // Rewrite one event, its leaf hash and every tile it affects: the store is
            // consistent in itself, and only the signatures tell.
            let body = db.body("acme", 300);
            let forged = replace(&body, "\"note\":\"sample\"", "\"note\":\"SAMPLE\"");
            db.forge_event("acme", 300, &forged);
            db.rebuild_tiles("acme");
            db.checkpoints("acme")
                .iter()
                .filter(|c| c.size > 300)
                .map(|c| db.checkpoint_place("acme", c.id))
                .collect::<Vec<String>>()
        })
        .await;
    assert!(places.len() >= 2, "{places:?}");

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

async fn index_missing_a_document_is_caught_only_with_index(backend: Backend) {
    // Its own server: seq 7 of acme is committed to the index alone, in a segment of its
    // own, which is then dropped from the index's list of segments. (tantivy is not a
    // dependency of this crate, and the index offers no way to delete a document.) The
    // index is the node's own, in its data directory, whichever store holds the log.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&backend, &data, Some(CONFIG));
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
    let lone = new[0].0.clone();
    ingest(&server, &events[8..]).await;
    wait_indexed(&server, "acme", 39).await;
    wait_checkpoint(&server, "acme", 40).await;
    server.stop();
    let key = verifier_key(&data);
    let verify = |extra: &[&str]| {
        let mut args = vec!["--key", &key];
        args.extend_from_slice(extra);
        verify_at(&data, &backend, &args)
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

async fn index_that_hides_an_events_fields_is_caught_only_with_index(backend: Backend) {
    // An index built (with `stele reindex`) while one event of the store was unreadable:
    // its document has a position but none of the event's fields, so searches never find
    // it. The event's bytes are then put back as they were.
    let f = Fixture::build(backend).await;
    let (data, store) = (f.data.clone(), f.backend.store_args());
    f.tamper(move |db| {
        db.drop_triggers();
        let (body, leaf) = (db.body("acme", 123), db.leaf("acme", 123));
        db.set_event("acme", 123, b"not an event", &[0; 32]);
        let mut args = vec!["reindex", "--data", path(&data)];
        args.extend(store.iter().map(String::as_str));
        let run = stele(&args);
        assert_eq!(run.code, 0, "{run:#?}");
        db.set_event("acme", 123, &body, &leaf);
    })
    .await;

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
/// in the store, unreferenced): a trigger refuses it, and with the triggers (and foreign
/// keys) out of the way the orphaned rows are named.
async fn deleted_log_row_is_caught(backend: Backend) {
    let f = Fixture::build(backend).await;
    let log = f
        .tamper(|db| {
            let refused = db.try_delete_log("globex").unwrap_err();
            assert!(refused.contains("append-only"), "{refused}");
            let log = db.log_id("globex");
            db.drop_triggers();
            assert_eq!(db.try_delete_log("globex"), Ok(1));
            log
        })
        .await;
    let run = f.verify(&[]);
    run.assert_fails_naming(&[&format!(
        "log #{log}, log: events, tiles or checkpoints of a log"
    )]);
}

/// A checkpoint of size 0 is never issued, so a stored one is forged: it is read and named
/// like any other.
async fn forged_checkpoint_of_size_zero_is_caught(backend: Backend) {
    let f = Fixture::build(backend).await;
    f.tamper(|db| {
        // Checkpoints are only ever added: no trigger stands in the way.
        db.insert_checkpoint("acme", 0, "forged");
        assert_eq!(db.checkpoints("acme")[0].size, 0);
    })
    .await;
    let run = f.verify(&[]);
    run.assert_fails_naming(&["log acme, checkpoint #1 (size 0): "]);
}

crate::on_both_backends!(
    untouched_store_verifies,
    changed_byte_of_an_event_is_named_by_its_seq,
    deleted_event_is_named_as_missing,
    deleted_event_is_the_only_one_reported_missing,
    swapped_events_are_named,
    inserted_forged_event_is_caught,
    truncated_tail_is_caught_by_the_checkpoint_beyond_it,
    replaced_tile_hash_is_named_by_its_tile_path,
    edited_checkpoints_are_named,
    checkpoint_signed_by_another_key_is_named,
    replaced_signing_key_fools_only_a_check_without_key,
    consistent_forgery_is_caught_by_the_signed_roots,
    index_missing_a_document_is_caught_only_with_index,
    index_that_hides_an_events_fields_is_caught_only_with_index,
    deleted_log_row_is_caught,
    forged_checkpoint_of_size_zero_is_caught,
);
