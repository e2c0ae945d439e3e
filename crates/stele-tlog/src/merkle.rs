//! The RFC 9162 (RFC 6962) Merkle tree over the log's leaf hashes: tree heads, inclusion
//! and consistency proofs, and their verification.
//!
//! Nodes are addressed as in C2SP tlog-tiles: the node at `level` L and `index` i is the
//! root of the perfect subtree over leaves `[i·2^L, (i+1)·2^L)`; level 0 holds the leaf
//! hashes. Only such complete nodes are ever stored: every other hash the RFC needs (the
//! ragged right edge of a tree) is recomputed from at most 64 of them, so a store can answer
//! proofs for any tree size from O(log n) lookups and never rewrites a node.

use crate::hash::LeafHash;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::fmt;

/// A leaf or interior hash. Distinct from [`LeafHash`] so that a node can only be made
/// from a leaf by an explicit conversion, never by mixing up the two domains.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeHash(pub [u8; 32]);

impl fmt::Debug for NodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::hash::write_hex(f, &self.0)
    }
}

impl NodeHash {
    /// Standard padded base64, the form of hashes in checkpoints and proofs.
    pub fn to_base64(&self) -> String {
        crate::hash::to_base64(&self.0)
    }

    /// Parses standard padded base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<NodeHash> {
        crate::hash::from_base64(text).map(NodeHash)
    }
}

impl From<LeafHash> for NodeHash {
    fn from(leaf: LeafHash) -> Self {
        NodeHash(leaf.0)
    }
}

impl From<&LeafHash> for NodeHash {
    fn from(leaf: &LeafHash) -> Self {
        NodeHash(leaf.0)
    }
}

/// MTH of the empty tree, SHA-256 of the empty string: it has no leaf to hash, and the
/// 0x00/0x01 prefixes keep it from colliding with any leaf or interior node.
pub const EMPTY_ROOT: NodeHash = NodeHash([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

/// Interior node: SHA-256(0x01 ‖ left ‖ right). The 0x01 prefix (leaves use 0x00) stops a
/// forger from presenting an interior node as a leaf (second-preimage attack).
pub fn node_hash(left: &NodeHash, right: &NodeHash) -> NodeHash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    NodeHash(h.finalize().into())
}

/// The largest power of two strictly below `n` (n ≥ 2): where RFC 9162 splits a tree, so
/// the left part is always a perfect subtree.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D\[n\]), RFC 9162 §2.1.1. Recursion depth is at most 64; `n - 1` hashes in all.
pub fn root(leaves: &[NodeHash]) -> NodeHash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(index, D\[n\]), RFC 9162 §2.1.3.1, sibling nearest the leaf first.
///
/// # Panics
/// If `index` is not below `leaves.len()`: no proof exists, so callers check first.
pub fn inclusion_proof(leaves: &[NodeHash], index: u64) -> Vec<NodeHash> {
    let Ok(proof) = inclusion_proof_from_nodes(leaves.len() as u64, index, from_slice(leaves));
    proof
}

/// PROOF(from, D\[n\]) = SUBPROOF(from, D\[n\], true), RFC 9162 §2.1.4.1. Empty when
/// `from` is 0 or `n`, where the RFC needs no proof.
///
/// # Panics
/// If `from` exceeds `leaves.len()`.
pub fn consistency_proof(leaves: &[NodeHash], from: u64) -> Vec<NodeHash> {
    let Ok(proof) = consistency_proof_from_nodes(from, leaves.len() as u64, from_slice(leaves));
    proof
}

/// Complete nodes of a tree held in memory; the slice functions share the stored-node code
/// so that there is one implementation of each proof to get right.
fn from_slice(leaves: &[NodeHash]) -> impl FnMut(u8, u64) -> Result<NodeHash, Infallible> {
    move |level, index| {
        let lo = (index << level) as usize;
        Ok(root(&leaves[lo..lo + (1usize << level)]))
    }
}

/// RFC 9162 §2.1.3.2: does `proof` lead from `leaf` at `index` to `root` of a tree of `size`?
///
/// A proof does not commit to `size`: sizes that give the leaf the same path shape accept
/// the same proof. That is harmless, since `root` (signed with its size) is what binds it.
pub fn verify_inclusion(
    leaf: NodeHash,
    index: u64,
    size: u64,
    proof: &[NodeHash],
    root: NodeHash,
) -> bool {
    if index >= size {
        return false;
    }
    // fn_ and sn: the positions of the path node and of the tree's last node, per level.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            // On the right edge, skip the levels where the node has no sibling.
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == root
}

/// RFC 9162 §2.1.4.2: is the tree of size `to` with `to_root` an append-only extension of
/// the one of size `from` with `from_root`?
///
/// Equal sizes need an empty proof and equal roots. Every tree extends the empty one, but
/// only its true root, [`EMPTY_ROOT`], is accepted for size 0, with an empty proof: the RFC
/// defines no proof there, and a caller holding another "root" for size 0 is confused.
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: NodeHash,
    to_root: NodeHash,
    proof: &[NodeHash],
) -> bool {
    if from > to {
        return false;
    }
    if from == to {
        return proof.is_empty() && from_root == to_root;
    }
    if from == 0 {
        return proof.is_empty() && from_root == EMPTY_ROOT;
    }
    let mut path = proof.iter();
    // The old root is not sent when it is itself a node of the new tree (from = 2^k).
    let first = if from.is_power_of_two() {
        if proof.is_empty() {
            return false;
        }
        from_root
    } else {
        match path.next() {
            Some(&h) => h,
            None => return false,
        }
    };
    let (mut fn_, mut sn) = (from - 1, to - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == from_root && sr == to_root
}

/// A complete interior node, reported by [`CompactRange::push`] so it can be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// Height above the leaves; at least 1.
    pub level: u8,
    /// Covers leaves `[index·2^level, (index+1)·2^level)`.
    pub index: u64,
    pub hash: NodeHash,
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest (leftmost)
/// first, one per set bit of the size. Appending costs amortised one hash and needs no
/// earlier leaf, so the sequencer can keep the tree head current without reading back.
#[derive(Clone, Debug, Default)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<NodeHash>,
    /// Reused for the nodes completed by the last push, so pushing does not allocate.
    completed: Vec<Node>,
}

impl PartialEq for CompactRange {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.nodes == other.nodes
    }
}

impl Eq for CompactRange {}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes at `size` from stored nodes (see [`root_from_nodes`]): one lookup per set
    /// bit of `size`, so a restart need not replay the log.
    pub fn from_nodes<E>(
        size: u64,
        mut node: impl FnMut(u8, u64) -> Result<NodeHash, E>,
    ) -> Result<Self, E> {
        let mut nodes = Vec::with_capacity(size.count_ones() as usize);
        for level in (0..64u8).rev() {
            if (size >> level) & 1 == 1 {
                // The subtree just left of the part below `level`: bit `level` cleared.
                nodes.push(node(level, (size >> level) - 1)?);
            }
        }
        Ok(CompactRange {
            size,
            nodes,
            completed: Vec::new(),
        })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// MTH of all leaves pushed so far: the subtree roots folded right to left.
    pub fn root(&self) -> NodeHash {
        let mut rest = self.nodes.iter().rev();
        match rest.next() {
            None => EMPTY_ROOT,
            Some(&last) => rest.fold(last, |acc, left| node_hash(left, &acc)),
        }
    }

    /// Appends the leaf at index `size()` and returns the interior nodes it completed,
    /// lowest first; this is the only moment their hashes are at hand.
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf: NodeHash) -> &[Node] {
        let index = self.size;
        self.size = index
            .checked_add(1)
            .expect("Merkle tree size overflows u64");
        self.completed.clear();
        let mut hash = leaf;
        // Each trailing one of the old size is a subtree that now gets its equal sibling.
        for level in 1..=index.trailing_ones() as u8 {
            let left = self.nodes.pop().expect("one subtree per set bit of size");
            hash = node_hash(&left, &hash);
            self.completed.push(Node {
                level,
                index: index >> level,
                hash,
            });
        }
        self.nodes.push(hash);
        &self.completed
    }
}

/// MTH of the first `size` leaves from complete nodes, `node(level, index)` (level 0 being
/// the leaf hashes): at most one lookup per set bit of `size`.
///
/// The lookup is fallible so a store can pass its I/O errors through unchanged.
pub fn root_from_nodes<E>(
    size: u64,
    mut node: impl FnMut(u8, u64) -> Result<NodeHash, E>,
) -> Result<NodeHash, E> {
    if size == 0 {
        return Ok(EMPTY_ROOT);
    }
    range_root(0, size, &mut node)
}

/// [`inclusion_proof`] for the tree of `size`, from at most 2·64 complete nodes.
///
/// # Panics
/// If `index` is not below `size`.
pub fn inclusion_proof_from_nodes<E>(
    size: u64,
    index: u64,
    mut node: impl FnMut(u8, u64) -> Result<NodeHash, E>,
) -> Result<Vec<NodeHash>, E> {
    assert!(index < size, "leaf {index} is not in a tree of size {size}");
    let mut proof = Vec::with_capacity(64);
    // The RFC recursion, unrolled: [lo, hi) is the subtree holding the leaf.
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            proof.push(range_root(mid, hi, &mut node)?);
            hi = mid;
        } else {
            proof.push(range_root(lo, mid, &mut node)?);
            lo = mid;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// [`consistency_proof`] between sizes `from` and `to`, from at most 2·64+1 complete nodes.
///
/// # Panics
/// If `from` exceeds `to`.
pub fn consistency_proof_from_nodes<E>(
    from: u64,
    to: u64,
    mut node: impl FnMut(u8, u64) -> Result<NodeHash, E>,
) -> Result<Vec<NodeHash>, E> {
    assert!(
        from <= to,
        "tree of size {from} is not a prefix of size {to}"
    );
    let mut proof = Vec::new();
    if from == 0 || from == to {
        return Ok(proof);
    }
    // SUBPROOF unrolled: [lo, hi) holds the old tree's right edge at `from`; `whole` is the
    // RFC's b, true while [lo, hi) is a prefix whose old part is the old tree itself.
    let (mut lo, mut hi, mut whole) = (0, to, true);
    while from < hi {
        let mid = lo + split(hi - lo);
        if from <= mid {
            proof.push(range_root(mid, hi, &mut node)?);
            hi = mid;
        } else {
            proof.push(range_root(lo, mid, &mut node)?);
            lo = mid;
            whole = false;
        }
    }
    if !whole {
        // [lo, from) is perfect here: `hi` only ever moves to a split point.
        proof.push(range_root(lo, hi, &mut node)?);
    }
    proof.reverse();
    Ok(proof)
}

/// MTH of leaves `[lo, hi)` for a range the RFC recursion visits: either a perfect subtree
/// or a tail of the tree whose start is aligned to a power of two above its length. Either
/// way it is a run of perfect subtrees of decreasing size, folded right to left.
fn range_root<E>(
    lo: u64,
    hi: u64,
    node: &mut impl FnMut(u8, u64) -> Result<NodeHash, E>,
) -> Result<NodeHash, E> {
    debug_assert!(lo < hi);
    let (mut end, mut rest) = (hi, hi - lo);
    let mut acc: Option<NodeHash> = None;
    while rest != 0 {
        // The smallest subtree is the rightmost one.
        let level = rest.trailing_zeros();
        let start = end - (1 << level);
        debug_assert_eq!(start % (1 << level), 0, "unaligned range [{lo}, {hi})");
        let h = node(level as u8, start >> level)?;
        acc = Some(match acc {
            None => h,
            Some(right) => node_hash(&h, &right),
        });
        end = start;
        rest &= rest - 1;
    }
    Ok(acc.expect("a non-empty range has a subtree"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn hx(s: &str) -> NodeHash {
        assert_eq!(s.len(), 64);
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        NodeHash(out)
    }

    const VECTOR_LEAVES: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];

    const VECTOR_ROOTS: [&str; 9] = [
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

    fn vector_leaves() -> Vec<NodeHash> {
        VECTOR_LEAVES.iter().map(|d| leaf_hash(d).into()).collect()
    }

    /// Distinct leaves for the exhaustive tests.
    fn leaves(n: usize) -> Vec<NodeHash> {
        (0..n as u32)
            .map(|i| leaf_hash(&i.to_be_bytes()).into())
            .collect()
    }

    // Literal transcriptions of RFC 9162 §2.1, independent of the code under test.

    fn ref_k(n: usize) -> usize {
        let mut k = 1;
        while 2 * k < n {
            k *= 2;
        }
        k
    }

    fn ref_mth(d: &[NodeHash]) -> NodeHash {
        match d.len() {
            0 => NodeHash(Sha256::digest(b"").into()),
            1 => d[0],
            n => {
                let k = ref_k(n);
                node_hash(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
            }
        }
    }

    fn ref_path(m: usize, d: &[NodeHash]) -> Vec<NodeHash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = ref_k(n);
        let (mut p, sibling) = if m < k {
            (ref_path(m, &d[..k]), ref_mth(&d[k..]))
        } else {
            (ref_path(m - k, &d[k..]), ref_mth(&d[..k]))
        };
        p.push(sibling);
        p
    }

    fn ref_subproof(m: usize, d: &[NodeHash], b: bool) -> Vec<NodeHash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![ref_mth(d)] };
        }
        let k = ref_k(n);
        let (mut p, sibling) = if m <= k {
            (ref_subproof(m, &d[..k], b), ref_mth(&d[k..]))
        } else {
            (ref_subproof(m - k, &d[k..], false), ref_mth(&d[..k]))
        };
        p.push(sibling);
        p
    }

    /// The sides of PATH(m, D[n])'s siblings (true: right), which is all a verifier sees of
    /// the size: two sizes with the same shape accept the same proofs.
    fn path_shape(m: usize, n: usize) -> Vec<bool> {
        if n == 1 {
            return vec![];
        }
        let k = ref_k(n);
        let mut s = if m < k {
            path_shape(m, k)
        } else {
            path_shape(m - k, n - k)
        };
        s.push(m < k);
        s
    }

    /// Like [`path_shape`] for SUBPROOF, plus whether the old root is implied.
    fn subproof_shape(m: usize, n: usize, b: bool) -> (Vec<bool>, bool) {
        if m == n {
            return (vec![], b);
        }
        let k = ref_k(n);
        let mut s = if m <= k {
            subproof_shape(m, k, b)
        } else {
            subproof_shape(m - k, n - k, false)
        };
        s.0.push(m <= k);
        s
    }

    /// The proof with one bit flipped at each of a few positions per element; the
    /// positions rotate with `seed` so the suite as a whole flips every bit position.
    fn bit_flips(proof: &[NodeHash], seed: usize) -> impl Iterator<Item = Vec<NodeHash>> + '_ {
        (0..proof.len()).flat_map(move |e| {
            (0..8).map(move |j| {
                let bit = (seed * 7 + e * 13 + j * 32) % 256;
                let mut p = proof.to_vec();
                p[e].0[bit / 8] ^= 1 << (bit % 8);
                p
            })
        })
    }

    fn flip(h: NodeHash, bit: usize) -> NodeHash {
        let mut h = h;
        h.0[bit / 8] ^= 1 << (bit % 8);
        h
    }

    /// Proofs that differ from `proof` by one element more or less.
    fn resized(proof: &[NodeHash], extra: NodeHash) -> Vec<Vec<NodeHash>> {
        let mut out = vec![[proof, &[extra]].concat(), [&[extra], proof].concat()];
        if let Some(last) = proof.last() {
            out.push([proof, &[*last]].concat());
            out.push(proof[1..].to_vec());
            out.push(proof[..proof.len() - 1].to_vec());
        }
        out
    }

    /// The tile store a caller would keep: leaves at level 0, the rest as pushes report
    /// them. Missing nodes come back as errors naming them.
    fn store(leaves: &[NodeHash]) -> HashMap<(u8, u64), NodeHash> {
        let mut store = HashMap::new();
        let mut range = CompactRange::new();
        for (i, leaf) in leaves.iter().enumerate() {
            store.insert((0, i as u64), *leaf);
            for n in range.push(*leaf) {
                assert!(store.insert((n.level, n.index), n.hash).is_none());
            }
        }
        store
    }

    fn lookup<'a>(
        store: &'a HashMap<(u8, u64), NodeHash>,
        calls: &'a mut usize,
    ) -> impl FnMut(u8, u64) -> Result<NodeHash, (u8, u64)> + 'a {
        move |level, index| {
            *calls += 1;
            store.get(&(level, index)).copied().ok_or((level, index))
        }
    }

    fn bit_length(n: u64) -> usize {
        (64 - n.leading_zeros()) as usize
    }

    #[test]
    fn hashes_and_split() {
        assert_eq!(EMPTY_ROOT, NodeHash(Sha256::digest(b"").into()));
        assert_eq!(format!("{EMPTY_ROOT:?}"), VECTOR_ROOTS[0]);
        let l = vector_leaves();
        assert_eq!(node_hash(&l[0], &l[1]), hx(VECTOR_ROOTS[2]));
        for n in 2..2000u64 {
            assert_eq!(split(n), ref_k(n as usize) as u64, "n={n}");
        }
        assert_eq!(split(u64::MAX), 1 << 63);
        assert_eq!(split((1 << 63) + 1), 1 << 63);
    }

    #[test]
    fn rfc_6962_reference_roots() {
        let leaves = vector_leaves();
        let mut range = CompactRange::new();
        assert_eq!(range.root(), hx(VECTOR_ROOTS[0]));
        for (size, want) in VECTOR_ROOTS.iter().enumerate() {
            let want = hx(want);
            assert_eq!(root(&leaves[..size]), want, "root({size})");
            if size > 0 {
                range.push(leaves[size - 1]);
            }
            assert_eq!(range.size(), size as u64);
            assert_eq!(range.root(), want, "CompactRange at {size}");
        }
    }

    #[test]
    fn rfc_6962_reference_proofs() {
        let leaves = vector_leaves();
        let inclusion: [(u64, u64, &[&str]); 5] = [
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, want) in inclusion {
            let want: Vec<NodeHash> = want.iter().map(|h| hx(h)).collect();
            let got = inclusion_proof(&leaves[..size as usize], index);
            assert_eq!(got, want, "PATH({index}, D[{size}])");
            let root = hx(VECTOR_ROOTS[size as usize]);
            assert!(verify_inclusion(
                leaves[index as usize],
                index,
                size,
                &want,
                root
            ));
        }
        let consistency: [(u64, u64, &[&str]); 4] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (from, to, want) in consistency {
            let want: Vec<NodeHash> = want.iter().map(|h| hx(h)).collect();
            let got = consistency_proof(&leaves[..to as usize], from);
            assert_eq!(got, want, "PROOF({from}, D[{to}])");
            let (r1, r2) = (
                hx(VECTOR_ROOTS[from as usize]),
                hx(VECTOR_ROOTS[to as usize]),
            );
            assert!(verify_consistency(from, to, r1, r2, &want));
        }
    }

    #[test]
    fn inclusion_proofs_verify_and_tampering_fails() {
        let all = leaves(64);
        let decoy = hx(VECTOR_ROOTS[8]);
        for size in 1..=64usize {
            let d = &all[..size];
            let root = root(d);
            for i in 0..size {
                let (leaf, index, n) = (d[i], i as u64, size as u64);
                let proof = inclusion_proof(d, index);
                assert_eq!(proof, ref_path(i, d), "PATH({i}, D[{size}])");
                assert!(verify_inclusion(leaf, index, n, &proof, root));

                for bad in bit_flips(&proof, size * 64 + i) {
                    assert!(!verify_inclusion(leaf, index, n, &bad, root));
                }
                for bit in [0, 100, 255] {
                    assert!(!verify_inclusion(flip(leaf, bit), index, n, &proof, root));
                    assert!(!verify_inclusion(leaf, index, n, &proof, flip(root, bit)));
                }
                for bad in resized(&proof, decoy) {
                    assert!(!verify_inclusion(leaf, index, n, &bad, root));
                }
                for other in (0..size + 2).filter(|&j| j != i) {
                    assert!(!verify_inclusion(leaf, other as u64, n, &proof, root));
                    if other < size {
                        assert!(!verify_inclusion(d[other], index, n, &proof, root));
                    }
                }
                // A different size is caught exactly when it changes the path's shape.
                for other in (0..=2 * size + 2).filter(|&s| s != size) {
                    let same_shape = i < other && path_shape(i, other) == path_shape(i, size);
                    assert_eq!(
                        verify_inclusion(leaf, index, other as u64, &proof, root),
                        same_shape,
                        "PATH({i}, D[{size}]) checked as size {other}"
                    );
                }
                assert!(!verify_inclusion(leaf, index, n * 2, &proof, root));
                assert!(!verify_inclusion(leaf, index, n / 2, &proof, root));
            }
        }
        // The shape coincidence is real: PATH(0, D[3]) also proves leaf 0 under size 4.
        let d = &all[..3];
        assert!(verify_inclusion(
            d[0],
            0,
            4,
            &inclusion_proof(d, 0),
            root(d)
        ));
        assert!(!verify_inclusion(EMPTY_ROOT, 0, 0, &[], EMPTY_ROOT));
        assert!(verify_inclusion(decoy, 0, 1, &[], decoy));
    }

    #[test]
    fn consistency_proofs_verify_and_tampering_fails() {
        let all = leaves(64);
        let roots: Vec<NodeHash> = (0..=64).map(|n| root(&all[..n])).collect();
        let decoy = hx(VECTOR_ROOTS[8]);
        for to in 1..=64usize {
            let d = &all[..to];
            for from in 0..=to {
                let (m, n) = (from as u64, to as u64);
                let (r1, r2) = (roots[from], roots[to]);
                let proof = consistency_proof(d, m);
                assert!(verify_consistency(m, n, r1, r2, &proof), "{from}->{to}");
                if from == 0 || from == to {
                    assert!(proof.is_empty());
                    assert!(!verify_consistency(m, n, flip(r1, 3), r2, &proof));
                    if from == to {
                        assert!(!verify_consistency(m, n, r1, flip(r2, 3), &proof));
                    }
                    for bad in [vec![r1], vec![r2], vec![decoy]] {
                        assert!(!verify_consistency(m, n, r1, r2, &bad));
                    }
                    continue;
                }
                assert_eq!(proof, ref_subproof(from, d, true), "PROOF({from}, D[{to}])");

                for bad in bit_flips(&proof, to * 65 + from) {
                    assert!(!verify_consistency(m, n, r1, r2, &bad));
                }
                for bit in [0, 100, 255] {
                    assert!(!verify_consistency(m, n, flip(r1, bit), r2, &proof));
                    assert!(!verify_consistency(m, n, r1, flip(r2, bit), &proof));
                }
                assert!(!verify_consistency(m, n, r2, r1, &proof));
                assert!(!verify_consistency(m, n, r1, r2, &[]));
                for bad in resized(&proof, decoy) {
                    assert!(!verify_consistency(m, n, r1, r2, &bad));
                }
                // Wrong sizes are caught exactly when they change the proof's shape.
                let shape = subproof_shape(from, to, true);
                for other in (0..=to + 2).filter(|&f| f != from) {
                    let same = 0 < other && other < to && subproof_shape(other, to, true) == shape;
                    assert_eq!(
                        verify_consistency(other as u64, n, r1, r2, &proof),
                        same,
                        "PROOF({from}, D[{to}]) checked from {other}"
                    );
                }
                for other in (0..=2 * to + 2).filter(|&t| t != to) {
                    let same = from < other && subproof_shape(from, other, true) == shape;
                    assert_eq!(
                        verify_consistency(m, other as u64, r1, r2, &proof),
                        same,
                        "PROOF({from}, D[{to}]) checked to {other}"
                    );
                }
                assert!(!verify_consistency(m, n * 2, r1, r2, &proof));
            }
        }
        // As for inclusion, the proof binds sizes only through the roots: 2 -> 3 as 2 -> 4.
        let proof = consistency_proof(&all[..3], 2);
        assert!(verify_consistency(2, 4, roots[2], roots[3], &proof));
        assert!(verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, &[]));
        assert!(!verify_consistency(1, 0, roots[1], EMPTY_ROOT, &[]));
        assert!(!verify_consistency(2, 1, roots[2], roots[1], &[]));
        assert!(!verify_consistency(0, 5, decoy, roots[5], &[]));
    }

    #[test]
    fn proofs_from_stored_nodes_equal_slice_proofs() {
        let all = leaves(100);
        let store = store(&all);
        for size in 0..=all.len() {
            let d = &all[..size];
            let n = size as u64;
            let mut calls = 0;
            assert_eq!(root_from_nodes(n, lookup(&store, &mut calls)), Ok(root(d)));
            assert_eq!(calls, n.count_ones() as usize);

            let mut calls = 0;
            let range = CompactRange::from_nodes(n, lookup(&store, &mut calls)).unwrap();
            assert_eq!(calls, n.count_ones() as usize);
            let mut pushed = CompactRange::new();
            for leaf in d {
                pushed.push(*leaf);
            }
            assert_eq!(range, pushed);
            assert_eq!(range.root(), root(d));

            for i in 0..n {
                let mut calls = 0;
                let got = inclusion_proof_from_nodes(n, i, lookup(&store, &mut calls));
                assert_eq!(got, Ok(inclusion_proof(d, i)), "PATH({i}, D[{size}])");
                assert!(calls <= 2 * bit_length(n), "{calls} lookups");
            }
            for from in 0..=n {
                let mut calls = 0;
                let got = consistency_proof_from_nodes(from, n, lookup(&store, &mut calls));
                assert_eq!(
                    got,
                    Ok(consistency_proof(d, from)),
                    "PROOF({from}, D[{size}])"
                );
                assert!(calls <= 2 * bit_length(n) + 1, "{calls} lookups");
            }
        }
        // A store's error comes back untouched.
        let empty = HashMap::new();
        let mut calls = 0;
        assert_eq!(
            inclusion_proof_from_nodes(6, 0, lookup(&empty, &mut calls)),
            Err((1, 2))
        );
    }

    #[test]
    fn resumed_range_keeps_reporting_the_same_nodes() {
        let all = leaves(40);
        let store = store(&all);
        for size in 0..all.len() {
            let mut resumed =
                CompactRange::from_nodes(size as u64, |l, i| store.get(&(l, i)).copied().ok_or(()))
                    .unwrap();
            for (i, leaf) in all.iter().enumerate().skip(size) {
                for n in resumed.push(*leaf) {
                    assert_eq!(store.get(&(n.level, n.index)), Some(&n.hash));
                    assert_eq!(((n.index + 1) << n.level) - 1, i as u64);
                }
            }
            assert_eq!(resumed.root(), root(&all));
        }
    }

    #[test]
    #[should_panic(expected = "not in a tree")]
    fn inclusion_proof_beyond_size_panics() {
        inclusion_proof(&leaves(3), 3);
    }

    #[test]
    #[should_panic(expected = "not a prefix")]
    fn consistency_proof_beyond_size_panics() {
        consistency_proof(&leaves(3), 4);
    }

    proptest! {
        #[test]
        fn compact_range_matches_root_and_reports_every_node(
            raw in proptest::collection::vec(any::<[u8; 32]>(), 0..300)
        ) {
            let leaves: Vec<NodeHash> = raw.into_iter().map(NodeHash).collect();
            let mut range = CompactRange::new();
            let mut reported = Vec::new();
            for leaf in &leaves {
                reported.extend_from_slice(range.push(*leaf));
            }
            prop_assert_eq!(range.size(), leaves.len() as u64);
            prop_assert_eq!(range.root(), ref_mth(&leaves));
            prop_assert_eq!(root(&leaves), ref_mth(&leaves));

            let reported_set: HashSet<Node> = reported.iter().copied().collect();
            prop_assert_eq!(reported_set.len(), reported.len(), "a node reported twice");
            let mut expected = HashSet::new();
            for level in 1..64u8 {
                let width = 1usize << level;
                for index in 0..leaves.len() / width {
                    let hash = ref_mth(&leaves[index * width..(index + 1) * width]);
                    expected.insert(Node { level, index: index as u64, hash });
                }
            }
            prop_assert_eq!(reported_set, expected);
        }
    }
}
