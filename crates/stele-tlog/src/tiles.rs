//! The Merkle tree stored as C2SP tlog-tiles: tile coordinates and paths, the builder that
//! turns appended leaves into tile writes, and node lookups that read O(log n) tiles.
//!
//! A tile at level L and index N holds up to 256 consecutive node hashes of Merkle level
//! 8·L: tile (0, N) holds leaf hashes, and each hash of tile (L+1, N) is the root of one
//! full tile at level L. The rightmost tile of a level is partial while the tree grows;
//! its hashes never change, it only gets longer, so any stored width of a tile serves
//! every narrower one.

use crate::merkle::{self, CompactRange, NodeHash};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Merkle levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;
/// Tile levels a tree of up to 2^64 leaves can have.
pub const MAX_TILE_LEVEL: u8 = 63;

/// A tile coordinate. `width` is 1..=256; below 256 the tile is partial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
    pub width: u16,
}

impl TileId {
    /// The tile (level, index) as it is in a tree of `size` leaves, if it exists there.
    pub fn in_tree(size: u64, level: u8, index: u64) -> Option<TileId> {
        let width = tile_width(size, level, index);
        (width > 0).then_some(TileId {
            level,
            index,
            width,
        })
    }

    /// `tile/<L>/<N>[.p/<W>]`, the path of the spec.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, index_path(self.index, self.width))
    }

    /// `tile/entries/<N>[.p/<W>]`, the entry bundle beside a level-0 tile.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", index_path(self.index, self.width))
    }

    /// First leaf covered by this tile (saturating: only level-0 indices are leaf indices
    /// without a shift that may overflow for absurd coordinates).
    pub fn first_entry(&self) -> u64 {
        self.index.saturating_mul(u64::from(TILE_WIDTH))
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Hashes in tile (level, index) of a tree of `size` leaves; 0 if the tile does not exist.
pub fn tile_width(size: u64, level: u8, index: u64) -> u16 {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    if shift >= 64 {
        return 0;
    }
    // Complete nodes at Merkle level 8·L.
    let nodes = size >> shift;
    let before = index.saturating_mul(u64::from(TILE_WIDTH));
    nodes
        .saturating_sub(before)
        .min(u64::from(TILE_WIDTH))
        .try_into()
        .expect("at most 256")
}

/// The tiles of a tree of `size` leaves that are partial: the right edge, lowest level first.
pub fn partial_tiles(size: u64) -> impl Iterator<Item = TileId> {
    (0..=MAX_TILE_LEVEL).filter_map(move |level| {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        let nodes = size.checked_shr(shift).unwrap_or(0);
        let width = (nodes % u64::from(TILE_WIDTH)) as u16;
        (width > 0).then_some(TileId {
            level,
            index: nodes / u64::from(TILE_WIDTH),
            width,
        })
    })
}

fn index_path(index: u64, width: u16) -> String {
    // Groups of three digits, all but the last prefixed with "x": 1234067 → x001/x234/067.
    let mut groups = Vec::new();
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let mut out = String::new();
    for (i, group) in groups.iter().rev().enumerate() {
        if i > 0 {
            out.push('/');
        }
        if i + 1 < groups.len() {
            out.push('x');
        }
        out.push_str(&format!("{group:03}"));
    }
    if width < TILE_WIDTH {
        out.push_str(&format!(".p/{width}"));
    }
    out
}

/// What a path below `tile/` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    Hashes(TileId),
    /// The entry bundle for level-0 tile `index`, with `width` entries.
    Entries(TileId),
}

/// Parses the part of a tile path after `tile/`: `<L>/<N>[.p/<W>]` or
/// `entries/<N>[.p/<W>]`. Strict, so that every tile has exactly one path.
pub fn parse_tile_path(path: &str) -> Option<TilePath> {
    let (first, rest) = path.split_once('/')?;
    let entries = first == "entries";
    let level = if entries { 0 } else { parse_decimal(first, 2)? };
    if level > u64::from(MAX_TILE_LEVEL) {
        return None;
    }
    let (digits, width) = match rest.split_once(".p/") {
        Some((digits, w)) => {
            let w = parse_decimal(w, 3)?;
            if !(1..u64::from(TILE_WIDTH)).contains(&w) {
                return None;
            }
            (digits, w as u16)
        }
        None => (rest, TILE_WIDTH),
    };
    let groups: Vec<&str> = digits.split('/').collect();
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let group = if last {
            *group
        } else {
            group.strip_prefix('x')?
        };
        if group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // No leading zero groups: 000/001 is not a spelling of 1.
        if i == 0 && groups.len() > 1 && group == "000" {
            return None;
        }
        let value: u64 = group.parse().ok()?;
        index = index.checked_mul(1000)?.checked_add(value)?;
    }
    let id = TileId {
        level: level as u8,
        index,
        width,
    };
    Some(if entries {
        TilePath::Entries(id)
    } else {
        TilePath::Hashes(id)
    })
}

/// A decimal without sign or leading zeros, of at most `max_len` digits.
fn parse_decimal(s: &str, max_len: usize) -> Option<u64> {
    let ok = !s.is_empty()
        && s.len() <= max_len
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if ok { s.parse().ok() } else { None }
}

/// A tile's hashes, concatenated, as stored and served.
#[derive(Clone, PartialEq, Eq)]
pub struct Tile {
    pub level: u8,
    pub index: u64,
    pub hashes: Vec<u8>,
}

impl Tile {
    pub fn width(&self) -> u16 {
        (self.hashes.len() / 32) as u16
    }

    pub fn id(&self) -> TileId {
        TileId {
            level: self.level,
            index: self.index,
            width: self.width(),
        }
    }

    pub fn is_full(&self) -> bool {
        self.width() == TILE_WIDTH
    }

    /// The `i`th hash.
    pub fn hash(&self, i: usize) -> NodeHash {
        NodeHash(
            self.hashes[32 * i..32 * i + 32]
                .try_into()
                .expect("32-byte slice"),
        )
    }
}

impl fmt::Debug for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tile({})", self.id())
    }
}

/// The tree's right edge and its open tiles, fed one leaf at a time. A log's writer keeps
/// one in memory and, per batch, stores what [`TileBuilder::take_writes`] returns in the
/// same transaction as the events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TileBuilder {
    range: CompactRange,
    /// Per tile level, the hashes of its rightmost tile while it is not full.
    open: Vec<Vec<u8>>,
    /// Full tiles completed since the last `take_writes`.
    full: Vec<Tile>,
    /// Tile levels whose open tile grew since the last `take_writes`.
    touched: u64,
}

impl TileBuilder {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes a tree of `size` leaves from its stored tiles; `read` must answer the
    /// exact tile asked for. Reads the partial tiles of the right edge and at most a few
    /// full tiles per level, so a restart costs O(log n) reads.
    pub fn resume<E>(size: u64, read: impl FnMut(TileId) -> Result<Tile, E>) -> Result<Self, E> {
        let mut reader = TileReader::new(size, read);
        let mut open = Vec::new();
        for id in partial_tiles(size) {
            open.resize(usize::from(id.level) + 1, Vec::new());
            open[usize::from(id.level)] = reader.tile(id.level, id.index)?.hashes.clone();
        }
        let range = CompactRange::from_nodes(size, |level, index| reader.node(level, index))?;
        Ok(TileBuilder {
            range,
            open,
            full: Vec::new(),
            touched: 0,
        })
    }

    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// MTH of the whole tree.
    pub fn root(&self) -> NodeHash {
        self.range.root()
    }

    /// Appends the next leaf hash.
    pub fn push(&mut self, leaf: NodeHash) {
        let index = self.range.size();
        self.add(0, index, leaf);
        // `push` lends its completed nodes; take the tile-level ones (level 8·L) by value.
        let mut completed = [None; 8];
        for node in self.range.push(leaf) {
            if node.level % TILE_HEIGHT == 0 {
                let slot = usize::from(node.level / TILE_HEIGHT) - 1;
                completed[slot] = Some((node.level / TILE_HEIGHT, node.index, node.hash));
            }
        }
        for (level, index, hash) in completed.into_iter().flatten() {
            self.add(level, index, hash);
        }
    }

    /// Adds the node at Merkle level 8·`level`, position `index`, to its tile.
    fn add(&mut self, level: u8, index: u64, hash: NodeHash) {
        let l = usize::from(level);
        if self.open.len() <= l {
            self.open.resize(l + 1, Vec::new());
        }
        let open = &mut self.open[l];
        debug_assert_eq!(open.len() / 32, (index % u64::from(TILE_WIDTH)) as usize);
        open.extend_from_slice(&hash.0);
        if open.len() == 32 * usize::from(TILE_WIDTH) {
            self.full.push(Tile {
                level,
                index: index / u64::from(TILE_WIDTH),
                hashes: std::mem::take(open),
            });
            self.touched &= !(1 << level);
        } else {
            self.touched |= 1 << level;
        }
    }

    /// The tiles to store for the leaves pushed since the last call: every tile completed,
    /// then the open tile of each level that grew, at its new width. Storing them makes
    /// the stored tiles describe the tree of `size()` leaves.
    pub fn take_writes(&mut self) -> Vec<Tile> {
        let mut out = std::mem::take(&mut self.full);
        let size = self.size();
        for (level, open) in self.open.iter().enumerate() {
            if self.touched & (1 << level) != 0 && !open.is_empty() {
                let shift = level as u32 * u32::from(TILE_HEIGHT);
                out.push(Tile {
                    level: level as u8,
                    index: (size >> shift) / u64::from(TILE_WIDTH),
                    hashes: open.clone(),
                });
            }
        }
        self.touched = 0;
        out
    }
}

/// Every tile of the tree over `leaves` (full ones and the partial right edge), built
/// level by level with no incremental state: the reference the builder is checked against.
pub fn build_tiles(leaves: &[NodeHash]) -> Vec<Tile> {
    let mut out = Vec::new();
    let mut level_nodes: Vec<NodeHash> = leaves.to_vec();
    let mut level = 0u8;
    while !level_nodes.is_empty() {
        for (index, chunk) in level_nodes.chunks(usize::from(TILE_WIDTH)).enumerate() {
            out.push(Tile {
                level,
                index: index as u64,
                hashes: chunk.iter().flat_map(|h| h.0).collect(),
            });
        }
        level_nodes = level_nodes
            .chunks_exact(usize::from(TILE_WIDTH))
            .map(merkle::root)
            .collect();
        level += 1;
    }
    out
}

/// Every complete node of one tile's subtree: the tile's hashes and each node above them
/// that they complete, up to the tile's top (for a full tile, 256 + 128 + … + 1 nodes).
#[derive(Debug, Clone)]
pub struct TileTree {
    tile: Tile,
    /// `heights[h][i]`: the node `h` levels above the tile's hashes, `i`-th at that height.
    heights: Vec<Vec<NodeHash>>,
}

impl TileTree {
    pub fn new(tile: Tile) -> TileTree {
        let bottom: Vec<NodeHash> = (0..usize::from(tile.width()))
            .map(|i| tile.hash(i))
            .collect();
        let mut heights = vec![bottom];
        while let Some(below) = heights.last().filter(|b| b.len() >= 2) {
            let above = below
                .chunks_exact(2)
                .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                .collect();
            heights.push(above);
        }
        TileTree { tile, heights }
    }

    pub fn tile(&self) -> &Tile {
        &self.tile
    }

    /// The node `height` levels above the tile's hashes, `index`-th at that height, if the
    /// tile's hashes complete it.
    pub fn node(&self, height: u32, index: usize) -> Option<NodeHash> {
        self.heights.get(height as usize)?.get(index).copied()
    }
}

/// The trees of tiles, shared by every reader of the logs: a tile at a given width never
/// changes, so its nodes are hashed once instead of at every proof. Bounded; when full, an
/// arbitrary bottom-level tile makes room (the few upper-level tiles are the ones every
/// proof uses).
#[derive(Debug)]
pub struct TileTrees {
    capacity: usize,
    trees: std::sync::Mutex<HashMap<(String, TileId), Arc<TileTree>>>,
}

impl TileTrees {
    /// At most `capacity` tiles (about 16 KiB each).
    pub fn new(capacity: usize) -> TileTrees {
        TileTrees {
            capacity,
            trees: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, log: &str, id: TileId) -> Option<Arc<TileTree>> {
        let trees = self.trees.lock().expect("tile trees poisoned");
        trees.get(&(log.to_string(), id)).cloned()
    }

    fn put(&self, log: &str, tree: Arc<TileTree>) {
        if self.capacity == 0 {
            return;
        }
        let mut trees = self.trees.lock().expect("tile trees poisoned");
        if trees.len() >= self.capacity {
            let victim = trees
                .keys()
                .find(|(_, id)| id.level == 0)
                .or_else(|| trees.keys().next())
                .cloned();
            if let Some(victim) = victim {
                trees.remove(&victim);
            }
        }
        trees.insert((log.to_string(), tree.tile.id()), tree);
    }

    /// Tiles held now.
    pub fn len(&self) -> usize {
        self.trees.lock().expect("tile trees poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the nodes of a tree of `size` leaves from its tiles, each tile read at most once.
pub struct TileReader<F> {
    size: u64,
    read: F,
    cache: HashMap<(u8, u64), Arc<TileTree>>,
    shared: Option<(Arc<TileTrees>, String)>,
}

impl<F, E> TileReader<F>
where
    F: FnMut(TileId) -> Result<Tile, E>,
{
    /// `read` must answer the exact tile asked for (the store's problem if it cannot).
    pub fn new(size: u64, read: F) -> Self {
        TileReader {
            size,
            read,
            cache: HashMap::new(),
            shared: None,
        }
    }

    /// Takes the trees of tiles from `trees` (and leaves there the ones it builds);
    /// `log` names this tree among the others there.
    pub fn sharing(mut self, trees: Arc<TileTrees>, log: &str) -> Self {
        self.shared = Some((trees, log.to_string()));
        self
    }

    /// Distinct tiles read so far.
    pub fn tiles_read(&self) -> usize {
        self.cache.len()
    }

    /// Tile (level, index) at its width in this tree.
    ///
    /// # Panics
    /// If the tile is not in the tree.
    pub fn tile(&mut self, level: u8, index: u64) -> Result<&Tile, E> {
        Ok(self.tree(level, index)?.tile())
    }

    fn tree(&mut self, level: u8, index: u64) -> Result<&TileTree, E> {
        if !self.cache.contains_key(&(level, index)) {
            let id = TileId::in_tree(self.size, level, index).unwrap_or_else(|| {
                panic!("tile {level}/{index} is not in a tree of {}", self.size)
            });
            let shared = self.shared.as_ref();
            let tree = match shared.and_then(|(trees, log)| trees.get(log, id)) {
                Some(tree) => tree,
                None => {
                    let tile = (self.read)(id)?;
                    assert_eq!(tile.id(), id, "the tile reader answered another tile");
                    let tree = Arc::new(TileTree::new(tile));
                    if let Some((trees, log)) = shared {
                        trees.put(log, tree.clone());
                    }
                    tree
                }
            };
            self.cache.insert((level, index), tree);
        }
        Ok(&self.cache[&(level, index)])
    }

    /// The complete node at Merkle `level`, `index`: a node of one tile's tree.
    pub fn node(&mut self, level: u8, index: u64) -> Result<NodeHash, E> {
        let tile_level = level / TILE_HEIGHT;
        let height = u32::from(level % TILE_HEIGHT);
        // The node covers 2^height hashes of its tile level, starting here.
        let first = index << height;
        let tree = self.tree(tile_level, first / u64::from(TILE_WIDTH))?;
        let at = (first % u64::from(TILE_WIDTH)) >> height;
        Ok(tree
            .node(height, at as usize)
            .expect("a complete node of the tree lies in one tile at its width"))
    }

    /// MTH of the tree.
    pub fn root(&mut self) -> Result<NodeHash, E> {
        let size = self.size;
        merkle::root_from_nodes(size, |l, i| self.node(l, i))
    }

    /// Inclusion proof of leaf `index`.
    ///
    /// # Panics
    /// If `index` is not below the tree size.
    pub fn inclusion_proof(&mut self, index: u64) -> Result<Vec<NodeHash>, E> {
        let size = self.size;
        merkle::inclusion_proof_from_nodes(size, index, |l, i| self.node(l, i))
    }

    /// Consistency proof from the tree of `from` leaves to this one.
    ///
    /// # Panics
    /// If `from` exceeds the tree size.
    pub fn consistency_proof(&mut self, from: u64) -> Result<Vec<NodeHash>, E> {
        let size = self.size;
        merkle::consistency_proof_from_nodes(from, size, |l, i| self.node(l, i))
    }
}

/// A C2SP entry bundle: each entry behind its length as a big-endian uint16. `None` if an
/// entry is longer than 65,535 bytes (it cannot be bundled).
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut bundle = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).ok()?;
        bundle.extend_from_slice(&len.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Some(bundle)
}

/// Splits a C2SP entry bundle into its entries; `None` if it is malformed.
pub fn split_entry_bundle(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
        let entry = bytes.get(2..2 + len)?;
        out.push(entry.to_vec());
        bytes = &bytes[2 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use proptest::prelude::*;
    use std::convert::Infallible;

    fn leaves(n: u64) -> Vec<NodeHash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes()).into()).collect()
    }

    #[test]
    fn paths_follow_the_spec() {
        let cases = [
            ((0, 0, 256), "tile/0/000", "tile/entries/000"),
            (
                (0, 1234067, 256),
                "tile/0/x001/x234/067",
                "tile/entries/x001/x234/067",
            ),
            ((1, 1, 7), "tile/1/001.p/7", "tile/entries/001.p/7"),
            (
                (3, 1000, 255),
                "tile/3/x001/000.p/255",
                "tile/entries/x001/000.p/255",
            ),
            ((63, 999, 1), "tile/63/999.p/1", "tile/entries/999.p/1"),
        ];
        for ((level, index, width), path, entries) in cases {
            let id = TileId {
                level,
                index,
                width,
            };
            assert_eq!(id.path(), path);
            assert_eq!(id.entries_path(), entries);
            let rest = path.strip_prefix("tile/").unwrap();
            assert_eq!(parse_tile_path(rest), Some(TilePath::Hashes(id)), "{path}");
            let rest = entries.strip_prefix("tile/").unwrap();
            if level == 0 {
                assert_eq!(parse_tile_path(rest), Some(TilePath::Entries(id)));
            }
        }
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in [
            "",
            "0",
            "0/",
            "0/1",
            "0/01",
            "0/0001",
            "00/000",
            "64/000",
            "0/x000/001",
            "0/001/002",
            "0/x001",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/07",
            "0/000.p/",
            "-1/000",
            "0/+01",
            "data/000",
            "entries/000.p/300",
            "0/x99999999999999/000",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn widths_and_partial_tiles() {
        assert_eq!(tile_width(0, 0, 0), 0);
        assert_eq!(tile_width(1, 0, 0), 1);
        assert_eq!(tile_width(256, 0, 0), 256);
        assert_eq!(tile_width(256, 1, 0), 1);
        assert_eq!(tile_width(257, 0, 1), 1);
        assert_eq!(tile_width(u64::MAX, 7, 0), 255);
        assert_eq!(tile_width(u64::MAX, 8, 0), 0);
        let edge: Vec<_> = partial_tiles(65_536 + 256 + 3).collect();
        let ids: Vec<_> = edge.iter().map(|t| (t.level, t.index, t.width)).collect();
        assert_eq!(ids, [(0, 257, 3), (1, 1, 1), (2, 0, 1)]);
        assert_eq!(partial_tiles(0).count(), 0);
        assert_eq!(partial_tiles(256).count(), 1, "level 1 holds one hash");
    }

    fn store(tiles: &mut HashMap<(u8, u64), Tile>, writes: Vec<Tile>) {
        for tile in writes {
            let key = (tile.level, tile.index);
            if let Some(old) = tiles.get(&key) {
                assert!(old.width() < tile.width(), "a tile only grows");
                assert_eq!(old.hashes[..], tile.hashes[..old.hashes.len()], "a prefix");
            }
            tiles.insert(key, tile);
        }
    }

    fn read_from(
        tiles: &HashMap<(u8, u64), Tile>,
    ) -> impl FnMut(TileId) -> Result<Tile, Infallible> + '_ {
        |id| {
            let t = &tiles[&(id.level, id.index)];
            Ok(Tile {
                level: id.level,
                index: id.index,
                hashes: t.hashes[..32 * usize::from(id.width)].to_vec(),
            })
        }
    }

    #[test]
    fn builder_matches_rebuild_across_a_tile_level() {
        let all = leaves(65_536 + 300);
        let mut builder = TileBuilder::new();
        let mut tiles = HashMap::new();
        for chunk in all.chunks(999) {
            chunk.iter().for_each(|&l| builder.push(l));
            store(&mut tiles, builder.take_writes());
        }
        let mut expected: Vec<_> = build_tiles(&all);
        let mut got: Vec<_> = tiles.into_values().collect();
        expected.sort_by_key(Tile::id);
        got.sort_by_key(Tile::id);
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "tiles differ from a rebuild");
        assert_eq!(builder.root(), merkle::root(&all));
    }

    /// Readers sharing tile trees answer the same proofs and read a shared tile from the
    /// store once.
    #[test]
    fn shared_tile_trees_give_the_same_proofs() {
        let all = leaves(3 * 256 * 256 + 77);
        let mut tiles = HashMap::new();
        store(&mut tiles, build_tiles(&all));
        let size = all.len() as u64;
        let trees = Arc::new(TileTrees::new(1_000));
        let reads = std::cell::Cell::new(0);
        let counted = |id: TileId| {
            reads.set(reads.get() + 1);
            read_from(&tiles)(id)
        };
        for index in [0, 5, 256 * 256, size - 1, 5] {
            let alone = TileReader::new(size, read_from(&tiles)).inclusion_proof(index);
            let mut shared = TileReader::new(size, counted).sharing(trees.clone(), "log");
            assert_eq!(shared.inclusion_proof(index).unwrap(), alone.unwrap());
            assert_eq!(
                shared.inclusion_proof(index).unwrap(),
                merkle::inclusion_proof(&all, index)
            );
        }
        let before = reads.get();
        TileReader::new(size, counted)
            .sharing(trees.clone(), "log")
            .inclusion_proof(5)
            .unwrap();
        assert_eq!(reads.get(), before, "a tile read again");
        for from in [1, 300, 256 * 256 + 1, size - 1] {
            let mut shared = TileReader::new(size, counted).sharing(trees.clone(), "log");
            assert_eq!(
                shared.consistency_proof(from).unwrap(),
                merkle::consistency_proof(&all, from)
            );
        }
        // Another log's tiles are not this one's.
        let other = leaves(256);
        let mut other_tiles = HashMap::new();
        store(&mut other_tiles, build_tiles(&other));
        let mut reader =
            TileReader::new(256, read_from(&other_tiles)).sharing(trees.clone(), "other");
        assert_eq!(reader.root().unwrap(), merkle::root(&other));
        // A bounded cache stays bounded.
        let small = Arc::new(TileTrees::new(2));
        for index in [0, 300, 600, 900] {
            TileReader::new(size, read_from(&tiles))
                .sharing(small.clone(), "log")
                .inclusion_proof(index)
                .unwrap();
        }
        assert!(small.len() <= 2);
    }

    /// A proof reads a few tiles per tile level (the path's own and the right edge's),
    /// never a number that grows with the tree: 65,536 times more leaves add one level.
    #[test]
    fn a_proof_reads_a_few_tiles_per_level() {
        let all = leaves(65_536 + 4_321);
        let mut tiles = HashMap::new();
        store(&mut tiles, build_tiles(&all));
        let size = all.len() as u64;
        for index in [0, 1, 300, 65_535, 65_536, size - 1] {
            let mut reader = TileReader::new(size, read_from(&tiles));
            reader.inclusion_proof(index).unwrap();
            assert!(
                reader.tiles_read() <= 5,
                "{} tiles for {index}",
                reader.tiles_read()
            );
        }
        for from in [1, 257, 65_536, 65_537, size - 1] {
            let mut reader = TileReader::new(size, read_from(&tiles));
            reader.consistency_proof(from).unwrap();
            assert!(
                reader.tiles_read() <= 6,
                "{} tiles from {from}",
                reader.tiles_read()
            );
        }
    }

    proptest! {
        #[test]
        fn incremental_tiles_equal_a_rebuild(
            size in 0u64..2_000,
            cuts in proptest::collection::vec(1usize..600, 1..20),
        ) {
            let all = leaves(size);
            let mut builder = TileBuilder::new();
            let mut tiles = HashMap::new();
            let mut at = 0usize;
            let mut cuts = cuts.into_iter().cycle();
            while at < all.len() {
                let end = (at + cuts.next().unwrap()).min(all.len());
                all[at..end].iter().for_each(|&l| builder.push(l));
                store(&mut tiles, builder.take_writes());
                // A restart anywhere resumes the same state from the stored tiles.
                let resumed = TileBuilder::resume(end as u64, read_from(&tiles)).unwrap();
                prop_assert_eq!(&resumed, &builder);
                at = end;
            }
            let mut expected = build_tiles(&all);
            let mut got: Vec<_> = tiles.into_values().collect();
            expected.sort_by_key(Tile::id);
            got.sort_by_key(Tile::id);
            prop_assert!(got == expected);
            prop_assert_eq!(builder.root(), merkle::root(&all));
        }

        #[test]
        fn proofs_from_tiles_equal_proofs_from_leaves(
            size in 1u64..1_500,
            pick in any::<u64>(),
            from_pick in any::<u64>(),
        ) {
            let all = leaves(size);
            let mut builder = TileBuilder::new();
            all.iter().for_each(|&l| builder.push(l));
            let mut tiles = HashMap::new();
            store(&mut tiles, builder.take_writes());
            let index = pick % size;
            let from = from_pick % (size + 1);
            let mut reader = TileReader::new(size, read_from(&tiles));
            prop_assert_eq!(reader.root().unwrap(), merkle::root(&all));
            prop_assert_eq!(
                reader.inclusion_proof(index).unwrap(),
                merkle::inclusion_proof(&all, index)
            );
            prop_assert_eq!(
                reader.consistency_proof(from).unwrap(),
                merkle::consistency_proof(&all, from)
            );
            // A few tiles per level, never one per node.
            prop_assert!(reader.tiles_read() <= 8, "{} tiles", reader.tiles_read());
        }
    }

    #[test]
    fn entry_bundles_round_trip() {
        let entries: Vec<&[u8]> = vec![b"", b"a", &[7u8; 300]];
        let bundle = entry_bundle(entries.iter().copied()).unwrap();
        assert_eq!(&bundle[..3], &[0, 0, 0]);
        assert_eq!(split_entry_bundle(&bundle).unwrap(), entries);
        assert_eq!(split_entry_bundle(&bundle[..bundle.len() - 1]), None);
        assert_eq!(split_entry_bundle(&[0]), None);
        assert_eq!(entry_bundle([&vec![0u8; 65_536][..]]), None);
    }
}
