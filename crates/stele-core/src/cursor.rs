//! Opaque keyset-pagination cursors. A cursor names the last `seq` a page returned and the
//! order it was read in; the next page continues strictly after it. Never an offset.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

const VERSION: u8 = 1;

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
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is malformed or from another listing")]
pub struct CursorError;

impl Cursor {
    pub fn encode(&self) -> String {
        let mut raw = [0u8; 10];
        raw[0] = VERSION;
        raw[1] = match self.order {
            SortOrder::Asc => 0,
            SortOrder::Desc => 1,
        };
        raw[2..].copy_from_slice(&self.after.to_be_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(text: &str) -> Result<Cursor, CursorError> {
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError)?;
        let raw: [u8; 10] = raw.try_into().map_err(|_| CursorError)?;
        if raw[0] != VERSION {
            return Err(CursorError);
        }
        let order = match raw[1] {
            0 => SortOrder::Asc,
            1 => SortOrder::Desc,
            _ => return Err(CursorError),
        };
        let after = u64::from_be_bytes(raw[2..].try_into().expect("8 bytes"));
        Ok(Cursor { order, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(after in any::<u64>(), desc in any::<bool>()) {
            let order = if desc { SortOrder::Desc } else { SortOrder::Asc };
            let cursor = Cursor { order, after };
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
}
