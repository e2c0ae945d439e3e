//! Opaque keyset-pagination cursors. A cursor names the last `seq` a page returned, the
//! order it was read in and a digest of its listing (log and filters); the next page
//! continues strictly after it. Never an offset, and never valid for another listing.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

const VERSION: u8 = 2;
const LEN: usize = 18;

/// The order of a listing, by `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub order: SortOrder,
    /// The last `seq` already returned.
    pub after: u64,
    /// The listing's [`listing_digest`].
    pub listing: u64,
}

/// Identifies a listing: its log, its order and its filters as given (name and value;
/// paging parameters left out). Order-independent in the filters.
pub fn listing_digest(tenant: &str, order: SortOrder, filters: &[(&str, &str)]) -> u64 {
    let mut filters = filters.to_vec();
    filters.sort_unstable();
    let mut h = Sha256::new();
    let order = match order {
        SortOrder::Asc => "asc",
        SortOrder::Desc => "desc",
    };
    for part in [tenant, order] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    for (name, value) in filters {
        for part in [name, value] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is malformed or from another listing")]
pub struct CursorError;

impl Cursor {
    pub fn encode(&self) -> String {
        let mut raw = [0u8; LEN];
        raw[0] = VERSION;
        raw[1] = match self.order {
            SortOrder::Asc => 0,
            SortOrder::Desc => 1,
        };
        raw[2..10].copy_from_slice(&self.after.to_be_bytes());
        raw[10..].copy_from_slice(&self.listing.to_be_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(text: &str) -> Result<Cursor, CursorError> {
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError)?;
        let raw: [u8; LEN] = raw.try_into().map_err(|_| CursorError)?;
        if raw[0] != VERSION {
            return Err(CursorError);
        }
        let order = match raw[1] {
            0 => SortOrder::Asc,
            1 => SortOrder::Desc,
            _ => return Err(CursorError),
        };
        let after = u64::from_be_bytes(raw[2..10].try_into().expect("8 bytes"));
        let listing = u64::from_be_bytes(raw[10..].try_into().expect("8 bytes"));
        Ok(Cursor {
            order,
            after,
            listing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(after in any::<u64>(), desc in any::<bool>(), listing in any::<u64>()) {
            let order = if desc { SortOrder::Desc } else { SortOrder::Asc };
            let cursor = Cursor { order, after, listing };
            let text = cursor.encode();
            prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            prop_assert_eq!(Cursor::decode(&text), Ok(cursor));
        }

        #[test]
        fn garbage_never_panics(text in ".{0,40}") {
            let _ = Cursor::decode(&text);
        }
    }

    #[test]
    fn rejects_malformed() {
        let good = Cursor {
            order: SortOrder::Asc,
            after: 5,
            listing: 7,
        }
        .encode();
        let mut wrong_version = URL_SAFE_NO_PAD.decode(&good).unwrap();
        wrong_version[0] = 9;
        let mut wrong_order = URL_SAFE_NO_PAD.decode(&good).unwrap();
        wrong_order[1] = 7;
        for bad in [
            String::new(),
            "!!!".to_string(),
            good[..good.len() - 2].to_string(),
            format!("{good}AA"),
            URL_SAFE_NO_PAD.encode(wrong_version),
            URL_SAFE_NO_PAD.encode(wrong_order),
        ] {
            assert_eq!(Cursor::decode(&bad), Err(CursorError), "{bad}");
        }
    }

    #[test]
    fn listings_differ_by_log_order_and_filters_not_by_their_order() {
        let base = listing_digest("a", SortOrder::Asc, &[("actor_id", "x"), ("level", "warn")]);
        assert_eq!(
            base,
            listing_digest("a", SortOrder::Asc, &[("level", "warn"), ("actor_id", "x")])
        );
        for other in [
            listing_digest("b", SortOrder::Asc, &[("actor_id", "x"), ("level", "warn")]),
            listing_digest(
                "a",
                SortOrder::Desc,
                &[("actor_id", "x"), ("level", "warn")],
            ),
            listing_digest("a", SortOrder::Asc, &[("actor_id", "x")]),
            listing_digest(
                "a",
                SortOrder::Asc,
                &[("actor_id", "xl"), ("level", "warn")],
            ),
            listing_digest("a", SortOrder::Asc, &[("actor_idx", ""), ("level", "warn")]),
        ] {
            assert_ne!(base, other);
        }
    }
}
