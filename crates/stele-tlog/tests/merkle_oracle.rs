//! Stele's RFC 6962 Merkle tree and C2SP tlog tiles, checked against an independent
//! implementation: Cloudflare's `tlog_tiles` crate (a port of Go's
//! golang.org/x/mod/sumdb/tlog), used here only as an oracle.
//!
//! The two crates differ in format, not in math, in two places, and the tests bridge both:
//! - the oracle writes the older sumdb tile paths, `tile/<H>/<L>/<N>[.p/<W>]`, which carry
//!   the tile height H, and names entry bundles `tile/<H>/data/<N>`; C2SP tlog-tiles fixes
//!   H = 8, leaves it out, and names bundles `tile/entries/<N>`;
//! - the oracle refuses a consistency proof from the empty tree (it wants 1 ≤ from ≤ to),
//!   where ours is the empty proof.

use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap};
use stele_tlog::leaf_hash;
use stele_tlog::merkle::{self, CompactRange, EMPTY_ROOT, NodeHash};
use stele_tlog::tiles::{self, TILE_HEIGHT, Tile, TileBuilder, TileId, TilePath, TileReader};
use tlog_tiles as oracle;
use tlog_tiles::HashReader as _;

// ---------------------------------------------------------------------------------------
// Conversions and fixtures

fn to_oracle(h: NodeHash) -> oracle::Hash {
    oracle::Hash(h.0)
}

fn from_oracle(h: oracle::Hash) -> NodeHash {
    NodeHash(h.0)
}

fn to_oracle_proof(proof: &[NodeHash]) -> Vec<oracle::Hash> {
    proof.iter().copied().map(to_oracle).collect()
}

fn from_oracle_proof(proof: Vec<oracle::Hash>) -> Vec<NodeHash> {
    proof.into_iter().map(from_oracle).collect()
}

fn hx(s: &str) -> NodeHash {
    assert_eq!(s.len(), 64, "{s}");
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    NodeHash(out)
}

fn flip(h: NodeHash, bit: usize) -> NodeHash {
    let mut b = h.0;
    b[bit / 8] ^= 1 << (bit % 8);
    NodeHash(b)
}

/// Distinct leaf hashes: leaf i is the leaf hash of i as 8 big-endian bytes.
fn leaves(n: u64) -> Vec<NodeHash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes()).into()).collect()
}

/// The oracle's own storage: every hash it asks to store, at its stored-hash index.
#[derive(Default)]
struct StoredHashes {
    records: u64,
    hashes: Vec<oracle::Hash>,
}

impl oracle::HashReader for StoredHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<oracle::Hash>, oracle::Error> {
        indexes
            .iter()
            .map(|&i| {
                let i = usize::try_from(i).map_err(|_| oracle::Error::IndexesNotInTree)?;
                self.hashes
                    .get(i)
                    .copied()
                    .ok_or(oracle::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl StoredHashes {
    fn new(leaves: &[NodeHash]) -> Self {
        let mut s = Self::default();
        for &leaf in leaves {
            s.append(leaf);
        }
        s
    }

    /// Appends a record by its leaf hash; returns the hashes the oracle stored for it.
    fn append(&mut self, leaf: NodeHash) -> Vec<oracle::Hash> {
        let new =
            oracle::stored_hashes_for_record_hash(self.records, to_oracle(leaf), &*self).unwrap();
        self.append_stored(new.clone());
        new
    }

    fn append_stored(&mut self, new: Vec<oracle::Hash>) {
        assert_eq!(
            oracle::stored_hash_index(0, self.records),
            self.hashes.len() as u64
        );
        self.hashes.extend(new);
        self.records += 1;
        assert_eq!(
            oracle::stored_hash_count(self.records),
            self.hashes.len() as u64
        );
    }

    fn tree_hash(&self, size: u64) -> NodeHash {
        from_oracle(oracle::tree_hash(size, self).unwrap())
    }
}

/// Our tiles as a store keeps them: one entry per (level, index), at its widest, serving any
/// narrower width as a prefix. Serves both our `TileReader` and the oracle's.
#[derive(Default, Clone)]
struct TileStore(HashMap<(u8, u64), Tile>);

impl TileStore {
    fn write(&mut self, writes: Vec<Tile>) {
        for tile in writes {
            let key = (tile.level, tile.index);
            if let Some(old) = self.0.get(&key) {
                assert!(old.width() < tile.width(), "{:?} rewritten", tile.id());
                assert_eq!(
                    old.hashes[..],
                    tile.hashes[..old.hashes.len()],
                    "not a prefix"
                );
            }
            self.0.insert(key, tile);
        }
    }

    fn get(&self, level: u8, index: u64, width: usize) -> Option<&[u8]> {
        let tile = self.0.get(&(level, index))?;
        tile.hashes.get(..32 * width)
    }

    fn read(&self) -> impl FnMut(TileId) -> Result<Tile, TileId> + '_ {
        |id| {
            let hashes = self
                .get(id.level, id.index, usize::from(id.width))
                .ok_or(id)?;
            Ok(Tile {
                level: id.level,
                index: id.index,
                hashes: hashes.to_vec(),
            })
        }
    }

    fn sorted(&self) -> Vec<(TileId, Vec<u8>)> {
        let mut out: Vec<_> = self
            .0
            .values()
            .map(|t| (t.id(), t.hashes.clone()))
            .collect();
        out.sort();
        out
    }
}

impl oracle::TileReader for TileStore {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }

    fn read_tiles(&self, tiles: &[oracle::Tile]) -> Result<Vec<Vec<u8>>, oracle::Error> {
        tiles
            .iter()
            .map(|t| {
                assert!(!t.is_data(), "the oracle asked for an entry bundle");
                self.get(t.level(), t.level_index(), t.width() as usize)
                    .map(<[u8]>::to_vec)
                    .ok_or(oracle::Error::InvalidTile)
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[oracle::Tile], _data: &[Vec<u8>]) {}
}

fn sorted_tiles(tiles: Vec<Tile>) -> Vec<(TileId, Vec<u8>)> {
    let mut out: Vec<_> = tiles.into_iter().map(|t| (t.id(), t.hashes)).collect();
    out.sort();
    out
}

/// The oracle's tile (height 8) at the same coordinates as ours.
fn oracle_tile(id: TileId) -> oracle::Tile {
    oracle::Tile::new(TILE_HEIGHT, id.level, id.index, u32::from(id.width), false)
}

fn oracle_coords(t: &oracle::Tile) -> (u8, u64, u32) {
    assert_eq!(t.height(), TILE_HEIGHT);
    (t.level(), t.level_index(), t.width())
}

fn our_coords(id: TileId) -> (u8, u64, u32) {
    (id.level, id.index, u32::from(id.width))
}

// ---------------------------------------------------------------------------------------
// 1. Published RFC 6962 vectors

/// The leaves of the RFC 6962 test tree (certificate-transparency / transparency-dev
/// `testonly.LeafInputs`).
const RFC6962_LEAVES: [&[u8]; 8] = [
    b"",
    &[0x00],
    &[0x10],
    &[0x20, 0x21],
    &[0x30, 0x31],
    &[0x40, 0x41, 0x42, 0x43],
    &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
    &[
        0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e,
        0x6f,
    ],
];

/// MTH of the first n of them, n = 0..=8 (transparency-dev `testonly.RootHashes`).
const RFC6962_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn rfc6962_roots_for_the_standard_leaves() {
    let leaves: Vec<NodeHash> = RFC6962_LEAVES.iter().map(|d| leaf_hash(d).into()).collect();
    // The oracle hashes the raw records itself here (`stored_hashes` on the data).
    let mut stored = StoredHashes::default();
    assert_eq!(EMPTY_ROOT, hx(RFC6962_ROOTS[0]));
    assert_eq!(from_oracle(oracle::EMPTY_HASH), EMPTY_ROOT);
    let mut range = CompactRange::new();
    for (size, want) in RFC6962_ROOTS.iter().enumerate() {
        if size > 0 {
            let data = RFC6962_LEAVES[size - 1];
            let leaf = leaves[size - 1];
            assert_eq!(to_oracle(leaf), oracle::record_hash(data), "leaf {data:x?}");
            let new = oracle::stored_hashes(size as u64 - 1, data, &stored).unwrap();
            stored.append_stored(new);
            range.push(leaf);
        }
        let want = hx(want);
        assert_eq!(merkle::root(&leaves[..size]), want, "our MTH(D[{size}])");
        assert_eq!(range.root(), want, "our CompactRange at {size}");
        assert_eq!(stored.tree_hash(size as u64), want, "oracle MTH(D[{size}])");
    }
    // Interior nodes agree too (0x01 prefix, left then right).
    let (a, b) = (leaves[6], leaves[7]);
    assert_eq!(
        to_oracle(merkle::node_hash(&a, &b)),
        oracle::node_hash(to_oracle(a), to_oracle(b))
    );
}

// ---------------------------------------------------------------------------------------
// 2. Exhaustive proofs for every size up to 64

#[test]
fn inclusion_proofs_match_the_oracle_for_every_index_and_size_up_to_64() {
    let all = leaves(64);
    let stored = StoredHashes::new(&all);
    let mut builder = TileBuilder::new();
    let mut store = TileStore::default();
    let mut checked = 0;
    for size in 1..=64u64 {
        let d = &all[..size as usize];
        builder.push(d[d.len() - 1]);
        store.write(builder.take_writes());
        assert_eq!(store.sorted(), sorted_tiles(tiles::build_tiles(d)));

        let root = merkle::root(d);
        assert_eq!(stored.tree_hash(size), root, "MTH(D[{size}])");
        assert_eq!(builder.root(), root);
        let mut reader = TileReader::new(size, store.read());
        assert_eq!(reader.root().unwrap(), root);

        // The oracle has no proof for an index outside the tree either.
        assert!(oracle::prove_record(size, size, &stored).is_err());
        for index in 0..size {
            let leaf = d[index as usize];
            let ours = merkle::inclusion_proof(d, index);
            let theirs = from_oracle_proof(oracle::prove_record(size, index, &stored).unwrap());
            assert_eq!(ours, theirs, "PATH({index}, D[{size}])");
            assert!(
                merkle::verify_inclusion(leaf, index, size, &ours, root),
                "PATH({index}, D[{size}]) fails our verifier"
            );
            if let Err(e) = oracle::check_record(
                &to_oracle_proof(&ours),
                size,
                to_oracle(root),
                index,
                to_oracle(leaf),
            ) {
                panic!("PATH({index}, D[{size}]) fails the oracle's check_record: {e}");
            }
            assert_eq!(
                reader.inclusion_proof(index).unwrap(),
                ours,
                "PATH({index}, D[{size}]) from tiles"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 64 * 65 / 2);
}

#[test]
fn consistency_proofs_match_the_oracle_for_every_pair_up_to_64() {
    let all = leaves(64);
    let stored = StoredHashes::new(&all);
    let tile_store = {
        let mut store = TileStore::default();
        store.write(tiles::build_tiles(&all));
        store
    };
    let roots: Vec<NodeHash> = (0..=64).map(|n| merkle::root(&all[..n])).collect();
    let mut checked = 0;
    for to in 1..=64u64 {
        let d = &all[..to as usize];
        let to_root = roots[to as usize];
        assert_eq!(stored.tree_hash(to), to_root);
        // The stored tiles are those of the 64-leaf tree: each smaller tree reads prefixes.
        let mut reader = TileReader::new(to, tile_store.read());
        assert_eq!(reader.root().unwrap(), to_root);

        // From the empty tree: ours is the empty proof; the oracle has none (1 ≤ from).
        assert!(merkle::consistency_proof(d, 0).is_empty());
        assert!(merkle::verify_consistency(0, to, EMPTY_ROOT, to_root, &[]));
        assert!(matches!(
            oracle::prove_tree(to, 0, &stored),
            Err(oracle::Error::InvalidInput(_))
        ));

        for from in 1..=to {
            let from_root = roots[from as usize];
            let ours = merkle::consistency_proof(d, from);
            let theirs = from_oracle_proof(oracle::prove_tree(to, from, &stored).unwrap());
            assert_eq!(ours, theirs, "PROOF({from}, D[{to}])");
            assert!(
                merkle::verify_consistency(from, to, from_root, to_root, &ours),
                "PROOF({from}, D[{to}]) fails our verifier"
            );
            if let Err(e) = oracle::check_tree(
                &to_oracle_proof(&ours),
                to,
                to_oracle(to_root),
                from,
                to_oracle(from_root),
            ) {
                panic!("PROOF({from}, D[{to}]) fails the oracle's check_tree: {e}");
            }
            assert_eq!(
                reader.consistency_proof(from).unwrap(),
                ours,
                "PROOF({from}, D[{to}]) from tiles"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 64 * 65 / 2);
}

/// Our complete nodes are exactly the oracle's stored hashes, so the oracle's storage can
/// serve as our node store, and our `*_from_nodes` proofs over it equal the oracle's.
#[test]
fn compact_range_and_node_lookups_agree_with_the_oracles_stored_hashes() {
    const N: u64 = 300;
    let all = leaves(N);
    let mut stored = StoredHashes::default();
    let mut range = CompactRange::new();
    for (n, &leaf) in all.iter().enumerate() {
        let n = n as u64;
        let theirs = stored.append(leaf);
        let completed = range.push(leaf).to_vec();
        // The oracle stores the leaf, then every node the leaf completes, lowest first.
        assert_eq!(from_oracle(theirs[0]), leaf);
        assert_eq!(
            completed.len(),
            theirs.len() - 1,
            "nodes completed by leaf {n}"
        );
        for (i, node) in completed.iter().enumerate() {
            assert_eq!(from_oracle(theirs[i + 1]), node.hash, "{node:?}");
            let at = oracle::stored_hash_index(node.level, node.index);
            assert_eq!(at, oracle::stored_hash_index(0, n) + i as u64 + 1);
            assert_eq!(
                oracle::split_stored_hash_index(at),
                (node.level, node.index)
            );
        }
        assert_eq!(range.root(), stored.tree_hash(n + 1));
    }

    let node = |level: u8, index: u64| {
        stored
            .read_hashes(&[oracle::stored_hash_index(level, index)])
            .map(|h| from_oracle(h[0]))
    };
    for size in 0..=N {
        let th = stored.tree_hash(size);
        assert_eq!(merkle::root_from_nodes(size, node).unwrap(), th);
        assert_eq!(CompactRange::from_nodes(size, node).unwrap().root(), th);
        for index in 0..size {
            let ours = merkle::inclusion_proof_from_nodes(size, index, node).unwrap();
            let theirs = oracle::prove_record(size, index, &stored).unwrap();
            assert_eq!(ours, from_oracle_proof(theirs), "PATH({index}, D[{size}])");
        }
        for from in 1..=size {
            let ours = merkle::consistency_proof_from_nodes(from, size, node).unwrap();
            let theirs = oracle::prove_tree(size, from, &stored).unwrap();
            assert_eq!(ours, from_oracle_proof(theirs), "PROOF({from}, D[{size}])");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Tiles

#[test]
fn tile_paths_match_the_oracle_with_height_8() {
    let cases: [(u8, u64, u16); 22] = [
        (0, 0, 256),
        (0, 0, 1),
        (0, 0, 255),
        (0, 1, 7),
        (0, 999, 256),
        (0, 999, 128),
        (0, 1000, 256),
        (0, 1000, 1),
        (0, 1001, 256),
        (1, 1234067, 256),
        (1, 1234067, 17),
        (2, 999_999, 256),
        (2, 1_000_000, 3),
        (3, 123_456_789, 256),
        (0, 10u64.pow(18), 200),
        (5, 999_999_999_999_999_999, 256),
        (0, u64::MAX / 256, 255),
        (7, 1 << 56, 256),
        (0, u64::MAX - 1, 256),
        (62, u64::MAX, 1),
        (63, u64::MAX, 255),
        (63, u64::MAX, 256),
    ];
    for (level, index, width) in cases {
        let ours = TileId {
            level,
            index,
            width,
        };
        let theirs = oracle_tile(ours);
        let their_path = theirs.path();
        let rest = their_path
            .strip_prefix("tile/8/")
            .unwrap_or_else(|| panic!("{their_path} has no height 8"));
        assert_eq!(ours.path(), format!("tile/{rest}"), "{ours:?}");
        assert_eq!(ours.to_string(), ours.path());
        // Our parser (which takes the part after `tile/`) reads the oracle's path...
        assert_eq!(
            tiles::parse_tile_path(rest),
            Some(TilePath::Hashes(ours)),
            "{their_path}"
        );
        // ...and the oracle reads ours back as the same tile.
        let our_rest = ours.path()["tile/".len()..].to_owned();
        let back = oracle::Tile::from_path(&format!("tile/8/{our_rest}"))
            .unwrap_or_else(|e| panic!("oracle refuses {}: {e}", ours.path()));
        assert_eq!(back, theirs);
        assert_eq!(oracle_coords(&back), our_coords(ours));

        // Entry bundles: the oracle's `data` tiles, C2SP's `entries`.
        if level == 0 {
            let mut data = theirs;
            data.set_is_data();
            let data_path = data.path();
            let rest = data_path
                .strip_prefix("tile/8/data/")
                .unwrap_or_else(|| panic!("{data_path}"));
            assert_eq!(ours.entries_path(), format!("tile/entries/{rest}"));
            assert_eq!(
                tiles::parse_tile_path(&format!("entries/{rest}")),
                Some(TilePath::Entries(ours))
            );
            let back = oracle::Tile::from_path(&data_path).unwrap();
            assert!(back.is_data());
            assert_eq!(oracle_coords(&back), our_coords(ours));
        }
    }
}

/// Both parsers accept exactly the canonical spellings. Two strings are left out because
/// the oracle panics on them instead of refusing (`Tile::new` asserts): level 64
/// (`64/000`) and width 0 (`0/000.p/0`); ours refuses both (checked here).
#[test]
fn tile_path_parsing_agrees_with_the_oracle() {
    assert_eq!(tiles::parse_tile_path("64/000"), None);
    assert_eq!(tiles::parse_tile_path("0/000.p/0"), None);
    let candidates = [
        // canonical
        "0/000",
        "0/001.p/1",
        "0/999.p/255",
        "0/x001/000",
        "1/x001/x234/067",
        "1/x001/x234/067.p/9",
        "63/x018/x446/x744/x073/x709/x551/615",
        "63/x018/x446/x744/x073/x709/x551/615.p/255",
        "10/123",
        // not canonical or not a tile
        "",
        "0",
        "0/",
        "0/1",
        "0/01",
        "0/0001",
        "00/000",
        "01/000",
        "+1/000",
        "-1/000",
        "0/+01",
        "0/x000/001",
        "0/x000/x001/000",
        "0/001/002",
        "0/x001",
        "0/x01/000",
        "0/000.p/256",
        "0/000.p/07",
        "0/000.p/",
        "0/000.p/-1",
        "0/000.p/1/",
        "0/000/",
        "0/x99999999999999/000",
        "0/x018/x446/x744/x073/x709/x551/616",
        "256/000",
        "0/000.P/5",
        "0/000.p/5.p/5",
        "0/00a",
    ];
    let mut accepted = 0;
    for s in candidates {
        let ours = match tiles::parse_tile_path(s) {
            Some(TilePath::Hashes(id)) => Some(our_coords(id)),
            Some(TilePath::Entries(id)) => panic!("{s} parsed as entries {id:?}"),
            None => None,
        };
        let theirs = oracle::Tile::from_path(&format!("tile/8/{s}"))
            .ok()
            .map(|t| oracle_coords(&t));
        assert_eq!(ours, theirs, "tile/{s}");
        accepted += usize::from(ours.is_some());
    }
    assert_eq!(accepted, 9);
}

#[test]
fn tiles_of_a_70000_leaf_tree_match_the_oracle() {
    const SIZE: u64 = 70_000;
    let all = leaves(SIZE);
    let stored = StoredHashes::new(&all);

    // The whole tree at once: the same tiles, with the same hashes.
    let built = tiles::build_tiles(&all);
    let ids: BTreeSet<_> = built.iter().map(|t| our_coords(t.id())).collect();
    assert_eq!(ids.len(), built.len());
    let oracle_ids: BTreeSet<_> = oracle::Tile::new_tiles(TILE_HEIGHT, 0, SIZE)
        .iter()
        .map(oracle_coords)
        .collect();
    assert_eq!(ids, oracle_ids);
    // 70_000 = 273·256 + 112 leaves; 273 = 256 + 17 level-8 nodes; one level-16 node.
    assert_eq!(ids.len(), 273 + 1 + 1 + 1 + 1);
    for edge in [
        (0, 0, 256),
        (0, 272, 256),
        (0, 273, 112),
        (1, 0, 256),
        (1, 1, 17),
        (2, 0, 1),
    ] {
        assert!(ids.contains(&edge), "{edge:?}");
    }
    for tile in &built {
        let theirs = oracle_tile(tile.id()).read_data(&stored).unwrap();
        assert!(
            tile.hashes == theirs,
            "{:?} differs from the oracle's",
            tile.id()
        );
    }

    // Incrementally: each batch writes exactly the tiles the oracle says to publish going
    // from the old size to the new one (`Tile::new_tiles`), with the oracle's contents.
    let mut builder = TileBuilder::new();
    let mut store = TileStore::default();
    let mut size = 0u64;
    let mut batches = 0;
    let mut cuts = [1u64, 254, 1, 256, 257, 999, 3000, 1, 7777, 255]
        .into_iter()
        .cycle();
    while size < SIZE {
        let new = (size + cuts.next().unwrap()).min(SIZE);
        for &leaf in &all[size as usize..new as usize] {
            builder.push(leaf);
        }
        let writes = builder.take_writes();
        let got: BTreeSet<_> = writes.iter().map(|t| our_coords(t.id())).collect();
        assert_eq!(
            got.len(),
            writes.len(),
            "a tile written twice, {size} -> {new}"
        );
        let want: BTreeSet<_> = oracle::Tile::new_tiles(TILE_HEIGHT, size, new)
            .iter()
            .map(oracle_coords)
            .collect();
        assert_eq!(got, want, "tiles written going from {size} to {new}");
        for tile in &writes {
            let theirs = oracle_tile(tile.id()).read_data(&stored).unwrap();
            assert!(
                tile.hashes == theirs,
                "{:?} differs from the oracle's",
                tile.id()
            );
        }
        store.write(writes);
        assert_eq!(builder.root(), stored.tree_hash(new));
        size = new;
        batches += 1;
    }
    assert!(batches > 30, "{batches} batches");
    assert_eq!(store.sorted(), sorted_tiles(built));
}

/// The oracle's `TileHashReader` reads our stored tiles and proves from them exactly what we
/// prove from them, and what it proves from its own stored hashes.
#[test]
fn oracle_proves_from_our_stored_tiles() {
    const SIZE: u64 = 70_000;
    let all = leaves(SIZE);
    let stored = StoredHashes::new(&all);
    let mut store = TileStore::default();
    store.write(tiles::build_tiles(&all));

    let sizes = [
        1, 2, 3, 255, 256, 257, 511, 512, 4097, 65_535, 65_536, 65_537, 66_049, 69_999, 70_000,
    ];
    for size in sizes {
        let mut reader = TileReader::new(size, store.read());
        let root = reader.root().unwrap();
        assert_eq!(root, stored.tree_hash(size), "MTH(D[{size}])");
        let thr = oracle::TileHashReader::new(size, to_oracle(root), &store);
        assert_eq!(
            from_oracle(oracle::tree_hash(size, &thr).unwrap()),
            root,
            "oracle MTH(D[{size}]) from our tiles"
        );

        let mut indexes = vec![0, 1, 255, 256, 257, 65_535, 65_536, size / 2, size / 3];
        indexes.extend([size.saturating_sub(2), size - 1]);
        for index in indexes.into_iter().filter(|&i| i < size) {
            let ours = reader.inclusion_proof(index).unwrap();
            let from_tiles = oracle::prove_record(size, index, &thr).unwrap();
            let from_hashes = oracle::prove_record(size, index, &stored).unwrap();
            assert_eq!(
                ours,
                from_oracle_proof(from_tiles),
                "PATH({index}, D[{size}])"
            );
            assert_eq!(
                ours,
                from_oracle_proof(from_hashes),
                "PATH({index}, D[{size}])"
            );
            assert!(merkle::verify_inclusion(
                all[index as usize],
                index,
                size,
                &ours,
                root
            ));
        }

        let mut froms = vec![1, 2, 3, 255, 256, 257, 65_536, 65_537, size / 2];
        froms.extend([size - 1, size]);
        for from in froms.into_iter().filter(|&f| 1 <= f && f <= size) {
            let ours = reader.consistency_proof(from).unwrap();
            let from_tiles = oracle::prove_tree(size, from, &thr).unwrap();
            let from_hashes = oracle::prove_tree(size, from, &stored).unwrap();
            assert_eq!(
                ours,
                from_oracle_proof(from_tiles),
                "PROOF({from}, D[{size}])"
            );
            assert_eq!(
                ours,
                from_oracle_proof(from_hashes),
                "PROOF({from}, D[{size}])"
            );
            let from_root = stored.tree_hash(from);
            assert!(merkle::verify_consistency(
                from, size, from_root, root, &ours
            ));
        }
        assert!(
            reader.tiles_read() <= 12,
            "{} tiles read for size {size}",
            reader.tiles_read()
        );
    }

    // The oracle does check tiles: corrupt the hash of leaf 260, a sibling in the proof of
    // leaf 261, and it refuses the tile. At 65_792 leaves the tiles it reads are
    // authenticated. At 70_000 they would not be: its `TileHashReader::read_hashes` starts
    // authenticating at `tiles[stx.len()]`, but it drops duplicate tiles from `stx` (the
    // root's subtrees), so when they share tiles the first few proof tiles go unchecked.
    // (The original Go code has the same loop.) So the proof comparisons above are what
    // show our tiles are right, not the oracle's check of them.
    const CHECKED: u64 = 65_536 + 256;
    let root = stored.tree_hash(CHECKED);
    let good = oracle::TileHashReader::new(CHECKED, to_oracle(root), &store);
    assert!(oracle::prove_record(CHECKED, 261, &good).is_ok());
    let mut bad = store.clone();
    bad.0.get_mut(&(0, 1)).unwrap().hashes[32 * 4] ^= 1;
    let thr = oracle::TileHashReader::new(CHECKED, to_oracle(root), &bad);
    assert!(matches!(
        oracle::prove_record(CHECKED, 261, &thr),
        Err(oracle::Error::InconsistentTile)
    ));
}

// ---------------------------------------------------------------------------------------
// 4. Random trees: proofs verify, and every tampering is refused by both verifiers

/// Runs our verifier and the oracle's on one inclusion claim; they must agree.
fn check_inclusion(
    leaf: NodeHash,
    index: u64,
    size: u64,
    proof: &[NodeHash],
    root: NodeHash,
) -> Result<bool, TestCaseError> {
    let ours = merkle::verify_inclusion(leaf, index, size, proof, root);
    let theirs = oracle::check_record(
        &to_oracle_proof(proof),
        size,
        to_oracle(root),
        index,
        to_oracle(leaf),
    )
    .is_ok();
    prop_assert_eq!(ours, theirs, "verifiers disagree");
    Ok(ours)
}

/// Runs our verifier and the oracle's on one consistency claim; they must agree.
fn check_consistency(
    from: u64,
    to: u64,
    from_root: NodeHash,
    to_root: NodeHash,
    proof: &[NodeHash],
) -> Result<bool, TestCaseError> {
    let ours = merkle::verify_consistency(from, to, from_root, to_root, proof);
    let theirs = oracle::check_tree(
        &to_oracle_proof(proof),
        to,
        to_oracle(to_root),
        from,
        to_oracle(from_root),
    )
    .is_ok();
    prop_assert_eq!(ours, theirs, "verifiers disagree");
    Ok(ours)
}

proptest! {
    #[test]
    fn random_inclusion_proofs_verify_and_any_tampering_fails(
        size in 1u64..=3000,
        pick in any::<u64>(),
        which in any::<prop::sample::Index>(),
        bit in 0usize..256,
        extra in any::<[u8; 32]>(),
    ) {
        let all = leaves(size);
        let index = pick % size;
        let leaf = all[index as usize];
        let root = merkle::root(&all);
        let proof = merkle::inclusion_proof(&all, index);
        let stored = StoredHashes::new(&all);
        prop_assert_eq!(stored.tree_hash(size), root);
        prop_assert_eq!(
            &proof,
            &from_oracle_proof(oracle::prove_record(size, index, &stored).unwrap())
        );
        prop_assert!(check_inclusion(leaf, index, size, &proof, root)?);

        if !proof.is_empty() {
            let i = which.index(proof.len());
            let mut flipped = proof.clone();
            flipped[i] = flip(flipped[i], bit);
            prop_assert!(!check_inclusion(leaf, index, size, &flipped, root)?, "hash {} bit {}", i, bit);
            let mut dropped = proof.clone();
            dropped.remove(i);
            prop_assert!(!check_inclusion(leaf, index, size, &dropped, root)?, "dropped {}", i);
        }
        prop_assert!(!check_inclusion(flip(leaf, bit), index, size, &proof, root)?);
        prop_assert!(!check_inclusion(leaf, index, size, &proof, flip(root, bit))?);
        let mut appended = proof.clone();
        appended.push(NodeHash(extra));
        prop_assert!(!check_inclusion(leaf, index, size, &appended, root)?);
        let mut inserted = proof.clone();
        inserted.insert(which.index(proof.len() + 1), NodeHash(extra));
        prop_assert!(!check_inclusion(leaf, index, size, &inserted, root)?);
    }

    #[test]
    fn random_consistency_proofs_verify_and_any_tampering_fails(
        size in 1u64..=3000,
        pick in any::<u64>(),
        which in any::<prop::sample::Index>(),
        bit in 0usize..256,
        extra in any::<[u8; 32]>(),
    ) {
        let all = leaves(size);
        let from = 1 + pick % size;
        let from_root = merkle::root(&all[..from as usize]);
        let to_root = merkle::root(&all);
        let proof = merkle::consistency_proof(&all, from);
        let stored = StoredHashes::new(&all);
        prop_assert_eq!(stored.tree_hash(from), from_root);
        prop_assert_eq!(stored.tree_hash(size), to_root);
        prop_assert_eq!(
            &proof,
            &from_oracle_proof(oracle::prove_tree(size, from, &stored).unwrap())
        );
        prop_assert!(check_consistency(from, size, from_root, to_root, &proof)?);

        if !proof.is_empty() {
            let i = which.index(proof.len());
            let mut flipped = proof.clone();
            flipped[i] = flip(flipped[i], bit);
            prop_assert!(!check_consistency(from, size, from_root, to_root, &flipped)?, "hash {} bit {}", i, bit);
            let mut dropped = proof.clone();
            dropped.remove(i);
            prop_assert!(!check_consistency(from, size, from_root, to_root, &dropped)?, "dropped {}", i);
        }
        prop_assert!(!check_consistency(from, size, flip(from_root, bit), to_root, &proof)?);
        prop_assert!(!check_consistency(from, size, from_root, flip(to_root, bit), &proof)?);
        let mut appended = proof.clone();
        appended.push(NodeHash(extra));
        prop_assert!(!check_consistency(from, size, from_root, to_root, &appended)?);
        let mut inserted = proof.clone();
        inserted.insert(which.index(proof.len() + 1), NodeHash(extra));
        prop_assert!(!check_consistency(from, size, from_root, to_root, &inserted)?);
    }
}
