//! Sealing: the canonical bytes of an event and its RFC 9162 leaf hash. An event is
//! encoded once, before sequencing, with two gaps where the sequencer writes `received_at`
//! and `seq`; sealing splices them in, so the writer copies bytes instead of re-encoding.

use crate::canonical::{self, CanonicalError};
use crate::event::Event;
use crate::timestamp::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

/// A position in a log's Merkle tree (0-based leaf index).
pub type Seq = u64;

/// `"received_at":"2026-01-02T03:04:05.000006Z",`
const RECEIVED_AT_LEN: usize = r#""received_at":"","#.len() + 27;
/// `"seq":18446744073709551615,` at its longest.
const SEQ_MAX_LEN: usize = r#""seq":,"#.len() + 20;

/// RFC 9162 leaf hash: SHA-256(0x00 ‖ canonical event bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeafHash(pub [u8; 32]);

impl fmt::Debug for LeafHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Writes a hash as lowercase hex, the form tools and test vectors use.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

pub fn leaf_hash(canonical: &[u8]) -> LeafHash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(canonical);
    LeafHash(h.finalize().into())
}

/// A server time formatted once for a whole batch: the writer seals many events with the
/// same `received_at`, and formatting it per event would be work on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealTime {
    at: Timestamp,
    text: String,
}

impl SealTime {
    pub fn new(at: Timestamp) -> SealTime {
        SealTime {
            at,
            text: at.to_string(),
        }
    }

    pub fn timestamp(&self) -> Timestamp {
        self.at
    }
}

/// An event's canonical bytes with the places where `received_at` and `seq` go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presealed {
    bytes: Vec<u8>,
    received_at_at: usize,
    seq_at: usize,
}

impl Presealed {
    /// Encodes a validated event that has a tenant but neither `seq` nor `received_at`.
    pub fn new(event: &Event) -> Result<Self, CanonicalError> {
        debug_assert!(event.seq.is_none() && event.received_at.is_none());
        debug_assert!(
            event.tenant.is_some(),
            "tenant sorts after seq and closes both gaps"
        );
        let Ok(Value::Object(map)) = serde_json::to_value(event) else {
            unreachable!("an Event always serializes to a JSON object")
        };
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_by(|a, b| canonical::compare_keys(a.0, b.0));

        let mut bytes = Vec::with_capacity(512);
        let (mut received_at_at, mut seq_at) = (None, None);
        bytes.push(b'{');
        for (i, (key, value)) in entries.into_iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            if received_at_at.is_none() && key.as_str() > "received_at" {
                received_at_at = Some(bytes.len());
            }
            if seq_at.is_none() && key.as_str() > "seq" {
                seq_at = Some(bytes.len());
            }
            canonical::write_string(&mut bytes, key);
            bytes.push(b':');
            canonical::write_value(&mut bytes, value)?;
        }
        bytes.push(b'}');
        let end = bytes.len() - 1;
        Ok(Presealed {
            received_at_at: received_at_at.unwrap_or(end),
            seq_at: seq_at.unwrap_or(end),
            bytes,
        })
    }

    /// The length of the sealed bytes at their longest (largest possible `seq`).
    pub fn max_sealed_len(&self) -> usize {
        self.bytes.len() + RECEIVED_AT_LEN + SEQ_MAX_LEN
    }

    /// The canonical bytes of the event at `seq`, received at `received_at`.
    pub fn seal(&self, seq: Seq, received_at: &SealTime) -> Vec<u8> {
        let b = &self.bytes;
        let mut out = Vec::with_capacity(b.len() + RECEIVED_AT_LEN + SEQ_MAX_LEN);
        out.extend_from_slice(&b[..self.received_at_at]);
        out.extend_from_slice(b"\"received_at\":\"");
        out.extend_from_slice(received_at.text.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(&b[self.received_at_at..self.seq_at]);
        out.extend_from_slice(b"\"seq\":");
        out.extend_from_slice(seq.to_string().as_bytes());
        out.push(b',');
        out.extend_from_slice(&b[self.seq_at..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use serde_json::json;

    fn event(value: Value) -> Event {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn sealing_equals_encoding_the_whole_event() {
        let samples = [
            json!({"tenant": "acme", "action": "user.login"}),
            json!({"tenant": "t", "action": "a", "request_id": "r", "resource": {"id": "x"}}),
            json!({"tenant": "t", "action": "a", "occurred_at": "2026-01-01T00:00:00Z",
                   "outcome": "denied", "details": {"z": 1, "é": [1.5, null]}}),
        ];
        for sample in samples {
            let ev = event(sample);
            let pre = Presealed::new(&ev).unwrap();
            let received = Timestamp::parse("2026-11-22T13:53:55.123456Z").unwrap();
            for seq in [0, 7, u64::MAX] {
                let sealed = pre.seal(seq, &SealTime::new(received));
                let mut full = ev.clone();
                full.seq = Some(seq);
                full.received_at = Some(received);
                let mut value = serde_json::to_value(&full).unwrap();
                if seq > canonical::MAX_SAFE_INTEGER {
                    // Too large for JCS itself; compare with the value encoded as text.
                    value["seq"] = json!(0);
                    let expect = String::from_utf8(canonical::to_vec(&value).unwrap())
                        .unwrap()
                        .replace("\"seq\":0", &format!("\"seq\":{seq}"));
                    assert_eq!(String::from_utf8(sealed.clone()).unwrap(), expect);
                    assert_eq!(sealed.len(), pre.max_sealed_len());
                } else {
                    assert_eq!(sealed, canonical::to_vec(&value).unwrap());
                    assert!(sealed.len() <= pre.max_sealed_len());
                }
            }
        }
    }

    #[test]
    fn leaf_hash_prefixes_zero_byte() {
        // SHA-256 of the single byte 0x00: the RFC 9162 hash of an empty leaf.
        assert_eq!(
            format!("{:?}", leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
