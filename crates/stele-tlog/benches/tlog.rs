//! Micro-benchmarks of the verifiable log: leaf hashing, tile updates and proof
//! construction. `cargo bench -p stele-tlog`.

use divan::{Bencher, black_box};
use std::collections::HashMap;
use std::convert::Infallible;
use stele_tlog::leaf_hash;
use stele_tlog::merkle::NodeHash;
use stele_tlog::tiles::{Tile, TileBuilder, TileId, TileReader, build_tiles};

fn main() {
    divan::main();
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
