//! The verifiable log over HTTP, checked the way third parties would: checkpoints with the
//! `signed_note` crate, tiles, entry bundles and proofs with the `tlog_tiles` crate, and
//! saved proofs with `stele proof verify`.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use stele_tlog::merkle::{NodeHash, verify_consistency, verify_inclusion};
use stele_tlog::note::{VerifierKey, verify_checkpoint};
use stele_tlog::tiles::TileId;
use tlog_tiles as oracle;

const FAST_CHECKPOINTS: &str = "[log]\ncheckpoint_interval_ms = 50\n";

fn verifier_key(data: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .args(["keys", "public", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn get_bytes(server: &Server, path: &str) -> (u16, Vec<u8>, Option<String>) {
    let response = client().get(server.endpoint(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, response.bytes().await.unwrap().to_vec(), kind)
}

/// Polls the checkpoint until it covers `size` events; answers the note.
async fn checkpoint_of(server: &Server, tenant: &str, size: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body, _) = get_bytes(server, &format!("/v1/logs/{tenant}/checkpoint")).await;
        if status == 200 {
            let note = String::from_utf8(body).unwrap();
            let signed: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            if signed >= size {
                return note;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of {tenant} reached {size}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn decode(hashes: &Value) -> Vec<NodeHash> {
    hashes
        .as_array()
        .unwrap()
        .iter()
        .map(|h| NodeHash(B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap()))
        .collect()
}

/// Tiles fetched over HTTP, read by the oracle as a tlog client would.
#[derive(Default)]
struct FetchedTiles(HashMap<(u8, u64, u16), Vec<u8>>);

impl oracle::TileReader for FetchedTiles {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[oracle::Tile]) -> Result<Vec<Vec<u8>>, oracle::Error> {
        tiles
            .iter()
            .map(|t| {
                self.0
                    .get(&(t.level(), t.level_index(), t.width() as u16))
                    .cloned()
                    .ok_or(oracle::Error::InvalidTile)
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[oracle::Tile], _data: &[Vec<u8>]) {}
}

/// Every tile of the tree of `size` leaves, fetched at the width that size needs.
async fn fetch_tiles(server: &Server, tenant: &str, size: u64) -> FetchedTiles {
    let mut tiles = FetchedTiles::default();
    for level in 0..8u8 {
        let mut index = 0;
        while let Some(id) = TileId::in_tree(size, level, index) {
            let (status, body, kind) =
                get_bytes(server, &format!("/v1/logs/{tenant}/{}", id.path())).await;
            assert_eq!(status, 200, "{}", id.path());
            assert_eq!(kind.as_deref(), Some("application/octet-stream"));
            assert_eq!(body.len(), 32 * usize::from(id.width), "{}", id.path());
            tiles.0.insert((id.level, id.index, id.width), body);
            index += 1;
        }
    }
    tiles
}

/// The entries of the tree of `size` leaves, from the entry bundles.
async fn fetch_entries(server: &Server, tenant: &str, size: u64) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    let mut index = 0;
    while let Some(id) = TileId::in_tree(size, 0, index) {
        let (status, mut body, _) =
            get_bytes(server, &format!("/v1/logs/{tenant}/{}", id.entries_path())).await;
        assert_eq!(status, 200, "{}", id.entries_path());
        let mut count = 0;
        while !body.is_empty() {
            let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            entries.push(body[2..2 + len].to_vec());
            body.drain(..2 + len);
            count += 1;
        }
        assert_eq!(count, id.width, "{}", id.entries_path());
        index += 1;
    }
    entries
}

async fn any_tlog_client_can_check_the_log(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), Some(FAST_CHECKPOINTS));
    for part in (0..700).map(sample_event).collect::<Vec<_>>().chunks(150) {
        ingest(&server, part).await;
    }
    let vkey = verifier_key(dir.path());
    // name+id+key; the base64 key may itself hold '+'.
    let parts: Vec<&str> = vkey.splitn(3, '+').collect();
    assert_eq!(parts[0], "localhost/stele", "{vkey}");
    assert!(
        parts[1].len() == 8 && parts[1].bytes().all(|b| b.is_ascii_hexdigit()),
        "{vkey}"
    );
    assert_eq!(B64.decode(parts[2]).unwrap().len(), 33, "{vkey}");

    // The checkpoint, checked by an independent signed-note implementation.
    let note = checkpoint_of(&server, "default", 700).await;
    let verifier = signed_note::StandardVerifier::new(&vkey).unwrap();
    let parsed = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
    parsed
        .verify(&signed_note::VerifierList::new(vec![Box::new(verifier)]))
        .expect("the checkpoint verifies with the signed_note crate");
    let checkpoint = oracle::Checkpoint::from_bytes(parsed.text()).unwrap();
    assert_eq!(checkpoint.origin(), "localhost/stele/default");
    assert_eq!(checkpoint.size(), 700);
    let root = *checkpoint.hash();

    // Tiles and entries, checked by an independent tlog-tiles implementation.
    let tiles = fetch_tiles(&server, "default", 700).await;
    assert_eq!(tiles.0.len(), 4, "3 level-0 tiles and 1 level-1 tile");
    let reader = oracle::TileHashReader::new(700, root, &tiles);
    assert_eq!(oracle::tree_hash(700, &reader).unwrap(), root);
    let entries = fetch_entries(&server, "default", 700).await;
    assert_eq!(entries.len(), 700);
    for index in [0u64, 1, 255, 256, 511, 512, 699] {
        let entry: Value = serde_json::from_slice(&entries[index as usize]).unwrap();
        assert_eq!(entry["seq"], index);
        let leaf = oracle::record_hash(&entries[index as usize]);
        let proof = oracle::prove_record(700, index, &reader).unwrap();
        oracle::check_record(&proof, 700, root, index, leaf)
            .unwrap_or_else(|e| panic!("entry {index}: {e:?}"));
    }

    // Our inclusion proof of one event agrees, and verifies.
    let entry: Value = serde_json::from_slice(&entries[300]).unwrap();
    let id = entry["id"].as_str().unwrap().to_string();
    let (status, answer) = get(&server, &format!("/v1/events/{id}?proof=true")).await;
    assert_eq!(status, 200, "{}", short(&answer));
    assert_eq!(answer["event"]["id"], id.as_str());
    let proof = &answer["proof"];
    assert_eq!(proof["leaf_index"], 300);
    let size = proof["tree_size"].as_u64().unwrap();
    assert!(size >= 700);
    let key = VerifierKey::parse(&vkey).unwrap();
    let signed = verify_checkpoint(proof["checkpoint"].as_str().unwrap(), &key).unwrap();
    assert_eq!(signed.size, size);
    let leaf = stele_tlog::leaf_hash(&entries[300]).into();
    assert!(verify_inclusion(
        leaf,
        300,
        size,
        &decode(&proof["audit_path"]),
        signed.root
    ));

    // Every stored checkpoint extends the earlier ones.
    let (status, page) = get(&server, "/v1/logs/default/checkpoints").await;
    assert_eq!(status, 200);
    let stored = page["checkpoints"].as_array().unwrap();
    assert!(!stored.is_empty());
    let sizes: Vec<u64> = stored.iter().map(|c| c["size"].as_u64().unwrap()).collect();
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    let last = stored.last().unwrap();
    let last_cp = verify_checkpoint(last["note"].as_str().unwrap(), &key).unwrap();
    for cp in stored {
        let from = verify_checkpoint(cp["note"].as_str().unwrap(), &key).unwrap();
        assert_eq!(B64.encode(from.root.0), cp["root_hash"]);
        let (status, answer) = get(
            &server,
            &format!(
                "/v1/logs/default/proof/consistency?from={}&to={}",
                from.size, last_cp.size
            ),
        )
        .await;
        assert_eq!(status, 200, "{}", short(&answer));
        let path = decode(&answer["consistency"]);
        assert!(verify_consistency(
            from.size,
            last_cp.size,
            from.root,
            last_cp.root,
            &path
        ));
        if from.size > 0 && from.size < last_cp.size {
            let oracle_path: Vec<oracle::Hash> = path.iter().map(|h| oracle::Hash(h.0)).collect();
            oracle::check_tree(
                &oracle_path,
                last_cp.size,
                oracle::Hash(last_cp.root.0),
                from.size,
                oracle::Hash(from.root.0),
            )
            .expect("the oracle accepts the consistency proof");
        }
    }
    // `after` pages past what was seen.
    let (_, later) = get(
        &server,
        &format!("/v1/logs/default/checkpoints?after={}", last_cp.size),
    )
    .await;
    assert!(
        later["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["size"].as_u64().unwrap() > last_cp.size)
    );
    let (_, logs) = get(&server, "/v1/logs").await;
    assert_eq!(logs["logs"][0]["tenant"], "default");
    assert_eq!(logs["logs"][0]["size"], 700);
    server.stop();

    // The signing key was generated owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

fn proof_verify(vkey: &str, answer: &[u8]) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), answer).unwrap();
    let out = Command::new(BIN)
        .args(["proof", "verify", "--key", vkey])
        .arg(file.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn saved_proofs_verify_offline(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), Some(FAST_CHECKPOINTS));
    let receipts = ingest(&server, &(0..40).map(sample_event).collect::<Vec<_>>()).await;
    let id = receipts[17]["id"].as_str().unwrap().to_string();
    // Asked at once: the answer waits for the checkpoint that covers the event.
    let response = client()
        .get(server.endpoint(&format!("/v1/events/{id}?proof=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer = response.bytes().await.unwrap().to_vec();
    let vkey = verifier_key(dir.path());
    server.stop();

    let (ok, text) = proof_verify(&vkey, &answer);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("event {id} is entry 17")), "{text}");

    // Re-formatting the JSON changes nothing; changing a value breaks the proof.
    let value: Value = serde_json::from_slice(&answer).unwrap();
    let (ok, text) = proof_verify(
        &vkey,
        serde_json::to_string_pretty(&value).unwrap().as_bytes(),
    );
    assert!(ok, "{text}");
    let mut forged = value.clone();
    forged["event"]["actor"]["id"] = json!("someone-else");
    let (ok, text) = proof_verify(&vkey, forged.to_string().as_bytes());
    assert!(!ok);
    assert!(text.contains("does not lead to the signed root"), "{text}");
    let mut forged = value.clone();
    forged["proof"]["leaf_index"] = json!(18);
    let (ok, text) = proof_verify(&vkey, forged.to_string().as_bytes());
    assert!(!ok);
    assert!(text.contains("seq"), "{text}");
    let mut forged = value.clone();
    let path = forged["proof"]["audit_path"].as_array_mut().unwrap();
    path.swap(0, 1);
    let (ok, _) = proof_verify(&vkey, forged.to_string().as_bytes());
    assert!(!ok);
    let mut forged = value.clone();
    let note = forged["proof"]["checkpoint"]
        .as_str()
        .unwrap()
        .replace("\n40\n", "\n41\n");
    forged["proof"]["checkpoint"] = json!(note);
    let (ok, text) = proof_verify(&vkey, forged.to_string().as_bytes());
    assert!(!ok);
    assert!(text.contains("not validly signed"), "{text}");
    // Another server's key does not verify this server's checkpoint.
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["keys", "generate", "--name", "localhost/stele", "--out"])
        .arg(other.path().join("k"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let other_key = String::from_utf8(out.stdout).unwrap();
    let (ok, _) = proof_verify(other_key.trim(), &answer);
    assert!(!ok);

    // The key is found from its file or its text, and never overwritten.
    let key_file = other.path().join("k");
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    assert!(key_text.starts_with("PRIVATE+KEY+localhost/stele+"));
    for source in [key_file.to_str().unwrap(), key_text.trim()] {
        let out = Command::new(BIN)
            .args(["keys", "public", "--signing-key", source])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), other_key);
    }
    let out = Command::new(BIN)
        .env("STELE_SIGNING_KEY", key_text.trim())
        .args(["keys", "public"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), other_key);
    let out = Command::new(BIN)
        .args(["keys", "generate", "--name", "x", "--out"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_text);
}

async fn bad_requests_answer_problems_and_change_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), Some(FAST_CHECKPOINTS));
    ingest(&server, &(0..300).map(sample_event).collect::<Vec<_>>()).await;
    checkpoint_of(&server, "default", 300).await;
    let cases: &[(&str, u16, &str)] = &[
        ("/v1/logs/default/tile/0/001", 404, "not_found"),
        ("/v1/logs/default/tile/0/001.p/45", 404, "not_found"),
        ("/v1/logs/default/tile/0/001.p/44", 200, ""),
        ("/v1/logs/default/tile/0/01", 404, "not_found"),
        ("/v1/logs/default/tile/64/000", 404, "not_found"),
        ("/v1/logs/default/tile/0/000.p/0", 404, "not_found"),
        ("/v1/logs/default/tile/entries/001", 404, "not_found"),
        ("/v1/logs/default/tile/entries/001.p/44", 200, ""),
        ("/v1/logs/nope/tile/0/000", 404, "not_found"),
        ("/v1/logs/Bad%20Name/checkpoint", 400, "invalid_tenant"),
        ("/v1/logs/nope/checkpoint", 404, "not_found"),
        ("/v1/logs/default/proof/consistency", 400, "invalid_query"),
        (
            "/v1/logs/default/proof/consistency?from=5&to=4",
            400,
            "invalid_query",
        ),
        (
            "/v1/logs/default/proof/consistency?from=5&to=301",
            400,
            "invalid_query",
        ),
        (
            "/v1/logs/default/proof/consistency?from=x",
            400,
            "invalid_query",
        ),
        (
            "/v1/logs/default/proof/consistency?from=05",
            400,
            "invalid_query",
        ),
        (
            "/v1/logs/default/proof/consistency?from=1&extra=1",
            400,
            "invalid_query",
        ),
        ("/v1/logs/default/proof/consistency?from=0", 200, ""),
        ("/v1/logs/default/proof/consistency?from=300", 200, ""),
        (
            "/v1/logs/default/checkpoints?after=-1",
            400,
            "invalid_query",
        ),
        ("/v1/logs/default/checkpoints?limit=0", 400, "invalid_query"),
        ("/v1/logs/nope/proof/consistency?from=1", 404, "not_found"),
    ];
    for &(path, status, code) in cases {
        let (got, body, kind) = get_bytes(&server, path).await;
        assert_eq!(got, status, "{path}");
        if !code.is_empty() {
            assert_eq!(kind.as_deref(), Some("application/problem+json"), "{path}");
            let problem: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["code"], code, "{path}");
        }
    }
    let receipts = ingest(&server, &[sample_event(1)]).await;
    let id = receipts[0]["id"].as_str().unwrap();
    let (status, body) = get(&server, &format!("/v1/events/{id}?proof=yes")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_query"))
    );
    let (status, body) = get(&server, &format!("/v1/events/{id}?proof=false")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], id);
    // Nothing was written by any of it.
    let (_, logs) = get(&server, "/v1/logs").await;
    assert_eq!(logs["logs"][0]["size"], 301);
    server.stop();
}

async fn stops_sign_a_final_checkpoint_and_restarts_resume_the_tree(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints at most once a minute: only the first batch is signed while running.
    let slow = "[log]\ncheckpoint_interval_ms = 60000\n";
    let server = start(&backend, dir.path(), Some(slow));
    ingest(&server, &(0..10).map(sample_event).collect::<Vec<_>>()).await;
    checkpoint_of(&server, "default", 10).await;
    ingest(&server, &(10..30).map(sample_event).collect::<Vec<_>>()).await;
    let (_, body, _) = get_bytes(&server, "/v1/logs/default/checkpoint").await;
    assert!(String::from_utf8(body).unwrap().contains("\n10\n"));
    server.stop();

    // The graceful stop signed the tree of 30.
    let server = start(&backend, dir.path(), Some(slow));
    let note = checkpoint_of(&server, "default", 30).await;
    assert!(note.contains("\n30\n"), "{note}");
    ingest(&server, &(30..45).map(sample_event).collect::<Vec<_>>()).await;
    server.kill();

    // After a crash, the grown log is signed as soon as the server is back.
    let server = start(&backend, dir.path(), Some(slow));
    let note = checkpoint_of(&server, "default", 45).await;
    let key = VerifierKey::parse(&verifier_key(dir.path())).unwrap();
    let latest = verify_checkpoint(&note, &key).unwrap();
    assert_eq!(latest.size, 45);
    let (status, answer) = get(&server, "/v1/logs/default/proof/consistency?from=10").await;
    assert_eq!(status, 200);
    let (_, first) = get(&server, "/v1/logs/default/checkpoints").await;
    let first = verify_checkpoint(first["checkpoints"][0]["note"].as_str().unwrap(), &key).unwrap();
    assert_eq!(first.size, 10);
    assert!(verify_consistency(
        10,
        45,
        first.root,
        latest.root,
        &decode(&answer["consistency"])
    ));
    server.stop();

    // And the whole store verifies offline.
    let out = Command::new(BIN)
        .args(["verify", "--json", "--key", &key.to_text(), "--data"])
        .arg(dir.path())
        .args(backend.store_args())
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{summary}");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["events"], 45);
    assert!(summary["checkpoints"].as_u64().unwrap() >= 3);
}

async fn a_tick_signs_a_bounded_number_of_logs_waited_on_first(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // One log per tick, a tick every 3 s: the first request's log is signed at once, the
    // next four wait, in the order they grew.
    let config = "[log]\ncheckpoint_interval_ms = 3000\ncheckpoint_max_logs = 1\n";
    let server = start(&backend, dir.path(), Some(config));
    let tenants = ["t1", "t2", "t3", "t4", "t5"];
    let mut ids = Vec::new();
    for tenant in tenants {
        let mut event = sample_event(0);
        event["tenant"] = json!(tenant);
        ids.push(ingest(&server, &[event]).await[0]["id"].clone());
    }
    wait_checkpoint(&server, "t1", 1).await;
    for tenant in &tenants[1..] {
        assert_eq!(checkpoint_note(&server, tenant).await, None, "{tenant}");
    }
    // A proof of t5's event is waited on: the next tick signs t5 before t2, which grew
    // first.
    let id = ids[4].as_str().unwrap();
    let (status, answer) = get(&server, &format!("/v1/events/{id}?tenant=t5&proof=true")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["proof"]["tree_size"], 1, "{answer}");
    for tenant in ["t2", "t3", "t4"] {
        assert_eq!(checkpoint_note(&server, tenant).await, None, "{tenant}");
    }
    // The others follow one per tick; a stop signs whatever is left.
    wait_checkpoint(&server, "t2", 1).await;
    server.stop();
    let server = start(&backend, dir.path(), Some(config));
    for tenant in tenants {
        assert!(checkpoint_note(&server, tenant).await.is_some(), "{tenant}");
    }
    server.stop();
}

crate::on_both_backends!(
    a_tick_signs_a_bounded_number_of_logs_waited_on_first,
    any_tlog_client_can_check_the_log,
    saved_proofs_verify_offline,
    bad_requests_answer_problems_and_change_nothing,
    stops_sign_a_final_checkpoint_and_restarts_resume_the_tree,
);
