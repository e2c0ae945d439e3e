//! The hashes of the verifiable log: RFC 9162 leaf hashes of stored bytes, and their text
//! forms (hex for people and test vectors, base64 on the wire as in C2SP checkpoints).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use std::fmt;

/// RFC 9162 leaf hash: SHA-256(0x00 ‖ the entry's bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeafHash(pub [u8; 32]);

impl fmt::Debug for LeafHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl LeafHash {
    /// Standard padded base64, as in receipts.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

/// The leaf hash of an entry: SHA-256(0x00 ‖ `entry`).
pub fn leaf_hash(entry: &[u8]) -> LeafHash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    LeafHash(h.finalize().into())
}

/// Writes a hash as lowercase hex, the form tools and test vectors use.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// 32 bytes from standard padded base64, or `None`.
pub(crate) fn from_base64(text: &str) -> Option<[u8; 32]> {
    BASE64.decode(text).ok()?.try_into().ok()
}

pub(crate) fn to_base64(bytes: &[u8; 32]) -> String {
    BASE64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_hash_prefixes_zero_byte() {
        // SHA-256 of the single byte 0x00: the RFC 9162 hash of an empty leaf.
        assert_eq!(
            format!("{:?}", leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            from_base64(&leaf_hash(b"").to_base64()),
            Some(leaf_hash(b"").0)
        );
        assert_eq!(from_base64("AAAA"), None);
    }
}
