//! Micro-benchmarks of the hot pure functions: canonical encoding, sealing, leaf hashing,
//! tile updates and proof construction. `cargo bench -p stele-core`.

use divan::{Bencher, black_box};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use stele_core::merkle::NodeHash;
use stele_core::tiles::{Tile, TileBuilder, TileId, TileReader, build_tiles};
use stele_core::{
    IngestDefaults, Limits, Presealed, SealTime, Timestamp, leaf_hash, prepare, prepare_json,
};

fn main() {
    divan::main();
}

/// A typical audit event of about 600 canonical bytes.
fn event() -> Value {
    json!({
        "occurred_at": "2026-03-04T05:06:07.123456Z",
        "actor": {"id": "user-4711", "type": "user", "ip": "10.1.2.3", "name": "Person 4711"},
        "action": "document.update",
        "category": "audit",
        "level": "info",
        "outcome": "success",
        "resource": {"type": "document", "id": "doc-99"},
        "correlation_id": "op-1f2e",
        "request_id": "req-00000000deadbeef",
        "details": {
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
            "reason": "scheduled review of access rights",
            "ticket": "T-123456",
            "bytes": 81920
        }
    })
}

fn presealed() -> Presealed {
    let defaults = IngestDefaults {
        tenant: "default",
        occurred_at: Timestamp::MIN,
    };
    prepare(event(), &defaults, &Limits::default(), uuid::Uuid::now_v7)
        .expect("valid")
        .1
}

#[divan::bench]
fn canonical_encoding(bencher: Bencher) {
    let value = event();
    bencher.bench(|| stele_core::canonical::to_vec(black_box(&value)).expect("encodes"));
}

#[divan::bench]
fn prepare_event(bencher: Bencher) {
    let defaults = IngestDefaults {
        tenant: "default",
        occurred_at: Timestamp::MIN,
    };
    bencher.with_inputs(event).bench_values(|v| {
        prepare(v, &defaults, &Limits::default(), uuid::Uuid::now_v7).expect("valid")
    });
}

#[divan::bench]
fn prepare_event_text(bencher: Bencher) {
    let defaults = IngestDefaults {
        tenant: "default",
        occurred_at: Timestamp::MIN,
    };
    let text = event().to_string();
    bencher.bench(|| {
        prepare_json(
            black_box(&text),
            &defaults,
            &Limits::default(),
            uuid::Uuid::now_v7,
        )
        .expect("valid")
    });
}

#[divan::bench]
fn seal_and_hash(bencher: Bencher) {
    let pre = presealed();
    let time = SealTime::new(Timestamp::from_micros(1_767_225_600_000_000).expect("time"));
    let mut seq = 0u64;
    bencher.bench_local(|| {
        seq += 1;
        let bytes = pre.seal(seq, &time);
        leaf_hash(black_box(&bytes))
    });
}

#[divan::bench]
fn leaf_hash_600_bytes(bencher: Bencher) {
    let bytes = vec![b'x'; 600];
    bencher.bench(|| leaf_hash(black_box(&bytes)));
}

fn leaves(n: u64) -> Vec<NodeHash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes()).into()).collect()
}

/// Appending 1,000 leaves to a tree and taking the tiles to store: the writer's per-batch
/// Merkle work.
#[divan::bench]
fn tile_updates_per_1000_leaves(bencher: Bencher) {
    let batch = leaves(1_000);
    bencher
        .with_inputs(TileBuilder::new)
        .bench_local_values(|mut tree| {
            for &leaf in &batch {
                tree.push(leaf);
            }
            tree.take_writes()
        });
}

fn tile_store(n: u64) -> HashMap<(u8, u64), Tile> {
    build_tiles(&leaves(n))
        .into_iter()
        .map(|t| ((t.level, t.index), t))
        .collect()
}

fn read(tiles: &HashMap<(u8, u64), Tile>) -> impl FnMut(TileId) -> Result<Tile, Infallible> + '_ {
    |id| {
        let t = &tiles[&(id.level, id.index)];
        Ok(Tile {
            level: id.level,
            index: id.index,
            hashes: t.hashes[..32 * usize::from(id.width)].to_vec(),
        })
    }
}

/// An inclusion proof from tiles in a tree of 1,000,000 leaves (tiles in memory: this is
/// the computation, not the store reads).
#[divan::bench]
fn inclusion_proof_from_tiles(bencher: Bencher) {
    const SIZE: u64 = 1_000_000;
    let tiles = tile_store(SIZE);
    let mut index = 0u64;
    bencher.bench_local(|| {
        index = (index + 7_919) % SIZE;
        TileReader::new(SIZE, read(&tiles))
            .inclusion_proof(index)
            .expect("proof")
    });
}

#[divan::bench]
fn consistency_proof_from_tiles(bencher: Bencher) {
    const SIZE: u64 = 1_000_000;
    let tiles = tile_store(SIZE);
    let mut from = 1u64;
    bencher.bench_local(|| {
        from = (from + 7_919) % SIZE + 1;
        TileReader::new(SIZE, read(&tiles))
            .consistency_proof(from)
            .expect("proof")
    });
}
