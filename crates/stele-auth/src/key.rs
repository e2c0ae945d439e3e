//! API keys: the token a client sends, and the record the store keeps of it.

use crate::access::{Role, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stele_core::Timestamp;
use subtle::ConstantTimeEq;

/// Every key starts with this.
const PREFIX: &str = "stl_";
/// Random bytes in a key id (16 hex digits).
const ID_BYTES: usize = 8;
/// Random bytes in a secret (64 hex digits): 256 bits.
const SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not of the form `stl_<16 hex digits>_<64 hex digits>`. Never says more: the text may
    /// be a secret.
    #[error("not an API key (expected stl_<key id>_<secret>)")]
    Malformed,
    #[error("the system random source failed: {0}")]
    Random(String),
}

/// A key as a client holds it. `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    id: String,
    secret: [u8; SECRET_BYTES],
}

impl ApiKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<ApiKey, KeyError> {
        let mut id = [0u8; ID_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::getrandom(&mut id).map_err(|e| KeyError::Random(e.to_string()))?;
        getrandom::getrandom(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(ApiKey {
            id: hex(&id),
            secret,
        })
    }

    /// Parses `stl_<key id>_<secret>` (lowercase hex), surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<ApiKey, KeyError> {
        let rest = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(KeyError::Malformed)?;
        let (id, secret) = rest.split_once('_').ok_or(KeyError::Malformed)?;
        if id.len() != 2 * ID_BYTES || unhex(id).is_none() {
            return Err(KeyError::Malformed);
        }
        let secret: [u8; SECRET_BYTES] = unhex(secret)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(KeyError::Malformed)?;
        Ok(ApiKey {
            id: id.to_string(),
            secret,
        })
    }

    /// The key id: public, names the key in listings, logs and the meta-audit.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The token to send (`Authorization: Bearer …`). Shown once, at creation.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, hex(&self.secret))
    }

    /// SHA-256 of the secret, as the store keeps it (hex).
    pub fn secret_hash(&self) -> String {
        hex(&Sha256::digest(self.secret))
    }

    /// Whether this key's secret is the one `record` was made for, in constant time.
    pub fn matches(&self, record: &KeyRecord) -> bool {
        let ours = Sha256::digest(self.secret);
        let theirs = unhex(&record.secret_sha256).unwrap_or_default();
        bool::from(ours.as_slice().ct_eq(&theirs)) && self.id == record.id
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What an administrator asks for when creating a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

impl NewKey {
    /// Checks the request: a name of 1–100 printable characters, tenants that are valid
    /// names.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err("`name` must be 1 to 100 printable characters".into());
        }
        if let Scope::Tenants(tenants) = &self.scope {
            if tenants.is_empty() {
                return Err("`scope` must name at least one tenant, or be \"all\"".into());
            }
            for tenant in tenants {
                if tenant != crate::META_TENANT {
                    stele_core::validate_tenant(tenant)?;
                }
            }
        }
        Ok(())
    }

    /// A new key for this request, and the record to store (which holds no secret).
    pub fn issue(&self, now: Timestamp) -> Result<(ApiKey, KeyRecord), KeyError> {
        let key = ApiKey::generate()?;
        let record = KeyRecord {
            id: key.id().to_string(),
            name: self.name.trim().to_string(),
            role: self.role,
            scope: self.scope.clone(),
            created_at: now,
            expires_at: self.expires_at,
            revoked_at: None,
            secret_sha256: key.secret_hash(),
        };
        Ok((key, record))
    }
}

/// A key as the store keeps it: everything but the secret, of which only a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
}

impl KeyRecord {
    /// Why this key cannot be used at `now`, if it cannot.
    pub fn unusable(&self, now: Timestamp) -> Option<&'static str> {
        if self.revoked_at.is_some_and(|at| at <= now) {
            Some("the API key is revoked")
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some("the API key has expired")
        } else {
            None
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-12-01T00:00:00Z").unwrap()
    }

    fn request() -> NewKey {
        NewKey {
            name: "ci".into(),
            role: Role::Reader,
            scope: Scope::Tenants(vec!["acme".into()]),
            expires_at: None,
        }
    }

    #[test]
    fn keys_round_trip_and_hide_their_secret() {
        let (key, record) = request().issue(now()).unwrap();
        let text = key.expose();
        assert!(text.starts_with("stl_"));
        assert_eq!(text.len(), 4 + 16 + 1 + 64);
        let parsed = ApiKey::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(parsed, key);
        assert!(parsed.matches(&record));
        let secret = text.rsplit('_').next().unwrap();
        assert!(!format!("{key:?}").contains(secret));
        assert!(!serde_json::to_string(&record).unwrap().contains(secret));
        assert_eq!(record.secret_sha256, key.secret_hash());
        assert_ne!(record.secret_sha256, secret);
    }

    #[test]
    fn a_different_secret_or_id_does_not_match() {
        let (key, record) = request().issue(now()).unwrap();
        let (other, _) = request().issue(now()).unwrap();
        assert!(!other.matches(&record));
        let text = key.expose();
        let flipped = if text.ends_with('0') { "1" } else { "0" };
        let tampered = format!("{}{flipped}", &text[..text.len() - 1]);
        assert!(!ApiKey::parse(&tampered).unwrap().matches(&record));
        let mut renamed = record.clone();
        renamed.id = other.id().to_string();
        assert!(!key.matches(&renamed));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let (key, _) = request().issue(now()).unwrap();
        let good = key.expose();
        for bad in [
            "",
            "stl_",
            "Bearer x",
            &good[4..],
            &good.replace("stl_", "stk_"),
            &good[..good.len() - 1],
            &format!("{good}0"),
            &good.to_uppercase(),
            &good.replacen('_', "-", 2),
            "stl_0123456789abcdef_zz",
        ] {
            assert_eq!(ApiKey::parse(bad), Err(KeyError::Malformed), "{bad}");
        }
    }

    #[test]
    fn expired_and_revoked_keys_are_unusable() {
        let (_, mut record) = request().issue(now()).unwrap();
        assert_eq!(record.unusable(now()), None);
        record.expires_at = Some(now());
        assert_eq!(record.unusable(now()), Some("the API key has expired"));
        record.expires_at = None;
        record.revoked_at = Some(now());
        assert_eq!(record.unusable(now()), Some("the API key is revoked"));
    }

    #[test]
    fn requests_are_checked() {
        let mut bad = request();
        bad.name = " ".into();
        assert!(bad.validate().is_err());
        bad = request();
        bad.scope = Scope::Tenants(vec![]);
        assert!(bad.validate().is_err());
        bad.scope = Scope::Tenants(vec!["Not A Tenant".into()]);
        assert!(bad.validate().is_err());
        assert!(request().validate().is_ok());
    }
}
