//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys, and the C2SP
//! tlog-checkpoint body (<https://c2sp.org/tlog-checkpoint>) that a log signs as a note.
//!
//! These are the formats witnesses, monitors and the Go `sumdb/note` tooling already speak,
//! so a Stele tree head can be checked by software that knows nothing about Stele.
//!
//! Parsing is strict: anything the specs do not allow is an error, never a best guess,
//! because a verifier that is lenient about syntax invites two parties to disagree on
//! what was signed. Only signature type 0x01 (Ed25519) is implemented.

use crate::merkle::NodeHash;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Signature type byte of Ed25519 in the signed-note registry; it prefixes every key
/// encoding and enters the key id, so keys of other types can never be mistaken for ours.
const ED25519_TYPE: u8 = 0x01;

/// Ed25519 seeds and public keys are 32 bytes; key data is the type byte plus these.
const KEY_LEN: usize = 32;

/// Prefix of the signer key text, so a secret can never be parsed as a verifier key.
const SIGNER_PREFIX: &str = "PRIVATE+KEY+";

/// Every signature line starts with an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Most signature lines accepted in one note. The spec asks verifiers for a limit of at
/// least 16; 100 is what the Go implementation uses, and bounds the work a note can cause.
pub const MAX_SIGNATURES: usize = 100;

/// Why a key, note or checkpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// A key text is not of the form the spec gives.
    #[error("malformed key: {0}")]
    MalformedKey(String),
    /// The key data names a signature type other than Ed25519 (0x01).
    #[error("unsupported key type {0:#04x}: only ed25519 (0x01) is supported")]
    UnsupportedKeyType(u8),
    /// The key id in a key text is not the one its name and key data give.
    #[error("key id does not match the key")]
    KeyIdMismatch,
    /// A key name is empty, or holds whitespace, '+' or a control character.
    #[error(
        "invalid key name: it must be non-empty, without whitespace, '+' or control characters"
    )]
    InvalidName,
    /// The note (or the text given to sign) is not of the form the spec gives.
    #[error("malformed note: {0}")]
    MalformedNote(String),
    /// No signature line carries the verifier's name and key id.
    #[error("note has no signature by this key")]
    UnknownKey,
    /// A signature line carries the verifier's name and key id but does not verify.
    #[error("signature by this key does not verify")]
    BadSignature,
    /// The note text is not a tlog checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
}

fn malformed_key(why: &str) -> NoteError {
    NoteError::MalformedKey(why.to_owned())
}

fn malformed_note(why: &str) -> NoteError {
    NoteError::MalformedNote(why.to_owned())
}

fn malformed_checkpoint(why: &str) -> NoteError {
    NoteError::MalformedCheckpoint(why.to_owned())
}

/// Key names must be non-empty with no Unicode whitespace and no '+' (the key text
/// separator). Control characters are refused too: a note may not contain them, so a key
/// so named could never appear in a signature line.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < ' ')
}

/// Key id = first 4 bytes, big-endian, of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key): it
/// binds name, type and key, so a line by a same-named other key is told apart cheaply.
fn key_id(name: &str, public_key: &[u8; KEY_LEN]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ED25519_TYPE])
        .chain_update(public_key)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Parses the 8-hex-digit key id of a key text. Either case is accepted (as Go does);
/// `to_text` writes lowercase.
fn parse_key_id(hex: &str) -> Result<u32, NoteError> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed_key("key id must be 8 hex digits"));
    }
    u32::from_str_radix(hex, 16).map_err(|_| malformed_key("key id must be 8 hex digits"))
}

/// Splits `<name>+<id>+<base64 key data>` (the key data may itself hold '+'), checks the
/// name, and returns the name, the id and the 32 key bytes after the Ed25519 type byte.
fn split_key_text(text: &str) -> Result<(&str, u32, [u8; KEY_LEN]), NoteError> {
    let (name, rest) = text
        .split_once('+')
        .ok_or_else(|| malformed_key("expected <name>+<key id>+<key data>"))?;
    let (id_hex, data) = rest
        .split_once('+')
        .ok_or_else(|| malformed_key("expected <name>+<key id>+<key data>"))?;
    if !valid_name(name) {
        return Err(NoteError::InvalidName);
    }
    let id = parse_key_id(id_hex)?;
    let data = BASE64
        .decode(data)
        .map_err(|_| malformed_key("key data is not standard base64"))?;
    match data.split_first() {
        None => Err(malformed_key("key data is empty")),
        Some((&ED25519_TYPE, key)) => {
            let key = <[u8; KEY_LEN]>::try_from(key)
                .map_err(|_| malformed_key("ed25519 key data must be 32 bytes"))?;
            Ok((name, id, key))
        }
        Some((&other, _)) => Err(NoteError::UnsupportedKeyType(other)),
    }
}

/// Note text must be non-empty, end with a newline and hold no control character other
/// than newline; that is exactly what makes `text ‖ "\n" ‖ signature lines` parse back to
/// the same text.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(malformed_note(
            "text must be non-empty and end with a newline",
        ));
    }
    check_no_controls(text)
}

/// Signed notes must not contain ASCII control characters other than newline (this is
/// also what refuses a bare '\r').
fn check_no_controls(s: &str) -> Result<(), NoteError> {
    if s.bytes().any(|b| b < b' ' && b != b'\n') {
        return Err(malformed_note("control character other than newline"));
    }
    Ok(())
}

/// A signing key with its name. Text form (the Go sumdb note "signer key" form):
/// `PRIVATE+KEY+<name>+<8 hex digits key id>+<base64(0x01 ‖ 32-byte Ed25519 seed)>`
///
/// Not `Clone`, and `Debug` omits the secret, so the key is not copied or logged by
/// accident; the underlying key zeroes its memory on drop.
pub struct SignerKey {
    signing: SigningKey,
    verifier: VerifierKey,
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.verifier.name)
            .field("key_id", &format_args!("{:08x}", self.verifier.key_id))
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// Makes the key named `name` from a 32-byte Ed25519 seed. The seed comes from the
    /// caller because this crate has no randomness source.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<SignerKey, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::InvalidName);
        }
        Ok(Self::new(name, SigningKey::from_bytes(&seed)))
    }

    fn new(name: &str, signing: SigningKey) -> SignerKey {
        let key = signing.verifying_key();
        let verifier = VerifierKey {
            name: name.to_owned(),
            key_id: key_id(name, key.as_bytes()),
            key,
        };
        SignerKey { signing, verifier }
    }

    /// Parses the text form, ignoring surrounding whitespace. The key id is not trusted:
    /// it must equal the id derived from the name and the seed's public key.
    pub fn parse(text: &str) -> Result<SignerKey, NoteError> {
        let rest = text
            .trim()
            .strip_prefix(SIGNER_PREFIX)
            .ok_or_else(|| malformed_key("signer key must start with PRIVATE+KEY+"))?;
        let (name, id, seed) = split_key_text(rest)?;
        let key = Self::new(name, SigningKey::from_bytes(&seed));
        if key.verifier.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(key)
    }

    /// The text form, which holds the secret: store it as a secret. No trailing newline.
    pub fn to_text(&self) -> String {
        let mut data = [0u8; 1 + KEY_LEN];
        data[0] = ED25519_TYPE;
        data[1..].copy_from_slice(self.signing.as_bytes());
        let text = format!(
            "{SIGNER_PREFIX}{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.key_id,
            BASE64.encode(data)
        );
        data.fill(0);
        text
    }

    /// The key name that goes into signature lines.
    pub fn name(&self) -> &str {
        &self.verifier.name
    }

    /// The public half, to hand to whoever verifies our notes.
    pub fn verifier(&self) -> VerifierKey {
        self.verifier.clone()
    }

    /// Signs `text` (which must be valid note text: non-empty, ends with '\n', no control
    /// characters other than '\n') and returns the whole signed note: text, blank line,
    /// one signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.signing.sign(text.as_bytes());
        let mut data = Vec::with_capacity(4 + 64);
        data.extend_from_slice(&self.verifier.key_id.to_be_bytes());
        data.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.verifier.name,
            BASE64.encode(data)
        ))
    }
}

/// Verifier key, text form `<name>+<8 hex digits key id>+<base64(0x01 ‖ 32-byte public key)>`.
/// Key id = first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), big-endian.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses the text form, ignoring surrounding whitespace. The key id must match the
    /// name and key, and small-order ("weak") public keys are refused: a signature under
    /// such a key can be made to verify for any text.
    pub fn parse(text: &str) -> Result<VerifierKey, NoteError> {
        let (name, id, bytes) = split_key_text(text.trim())?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| malformed_key("not a valid ed25519 public key"))?;
        if key.is_weak() {
            return Err(malformed_key("weak (small-order) ed25519 public key"));
        }
        if key_id(name, &bytes) != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    /// The text form, no trailing newline.
    pub fn to_text(&self) -> String {
        let mut data = [0u8; 1 + KEY_LEN];
        data[0] = ED25519_TYPE;
        data[1..].copy_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(data))
    }

    /// The key name signature lines must carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id signature lines must carry.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VerifierKey::parse(s)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// One parsed signature line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name from the line.
    pub name: String,
    /// The first 4 bytes of the decoded base64, big-endian.
    pub key_id: u32,
    /// The rest of the decoded base64 (64 bytes for Ed25519; other types differ).
    pub signature: Vec<u8>,
}

/// A parsed (not yet verified) note: do not trust `text` until [`verify_note`] says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline but not the blank separator line.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Splits a signed note into text and signature lines, checking the syntax only. The
    /// text ends at the last blank line; every line after it must be a signature line
    /// ending in '\n', and there must be 1 to [`MAX_SIGNATURES`] of them.
    pub fn parse(note: &str) -> Result<Note, NoteError> {
        check_no_controls(note)?;
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| malformed_note("no blank line before the signature block"))?;
        let (text, block) = (&note[..=split], &note[split + 2..]);
        let block = block
            .strip_suffix('\n')
            .ok_or_else(|| malformed_note("signature block must end with a newline"))?;
        // `block` is non-empty here: an empty block would have put the last "\n\n" later.
        let mut signatures = Vec::new();
        for line in block.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(malformed_note("too many signatures"));
            }
            signatures.push(parse_signature_line(line)?);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }
}

/// `— <name> <base64(key id ‖ signature)>`, without the newline.
fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| malformed_note("signature line must start with an em dash and a space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| malformed_note("signature line must be: em dash, name, base64"))?;
    if !valid_name(name) {
        return Err(malformed_note("invalid key name in signature line"));
    }
    let mut data = BASE64
        .decode(b64)
        .map_err(|_| malformed_note("signature is not standard base64"))?;
    if data.len() < 5 {
        return Err(malformed_note(
            "signature must be a key id and at least one byte",
        ));
    }
    let signature = data.split_off(4);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
        signature,
    })
}

/// Verifies `note` with `key`: some signature line must carry key's name and id and a valid
/// Ed25519 signature over the text. Lines by other keys are ignored (UnknownKey if none is by this key;
/// BadSignature if one by this key does not verify). Returns the verified text.
///
/// Every line by this key must verify, not just one: a note carrying a forged line under
/// a trusted key is evidence of tampering and is refused whole. Verification is RFC 8032
/// strict (canonical encodings, no small-order points), so no other text or encoding of
/// the signature is accepted.
pub fn verify_note(note: &str, key: &VerifierKey) -> Result<String, NoteError> {
    let parsed = Note::parse(note)?;
    let mut found = false;
    for line in &parsed.signatures {
        if line.name != key.name || line.key_id != key.key_id {
            continue;
        }
        found = true;
        let signature =
            Signature::from_slice(&line.signature).map_err(|_| NoteError::BadSignature)?;
        key.key
            .verify_strict(parsed.text.as_bytes(), &signature)
            .map_err(|_| NoteError::BadSignature)?;
    }
    if !found {
        return Err(NoteError::UnknownKey);
    }
    Ok(parsed.text)
}

/// C2SP tlog-checkpoint body: the tree head a log signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `example.com/log42`; non-empty, no newline.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 Merkle tree hash at `size`.
    pub root: NodeHash,
    /// Opaque, non-empty extension lines (without their newlines); normally none.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, decimal size, base64 root, then each extension, each line
    /// ending in '\n'. It does not validate: a checkpoint built with an empty origin or a
    /// newline inside a field yields text that [`Checkpoint::parse`] refuses.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root.0)
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        text
    }

    /// Parses checkpoint text strictly, so one tree head has exactly one text: a non-empty
    /// origin, the size in decimal without leading zeros (except "0"), the root as
    /// standard padded base64 of exactly 32 bytes, optional non-empty extension lines,
    /// and a final newline. Control characters other than newline are refused, as in
    /// any note text.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed_checkpoint("text must end with a newline"))?;
        if text.bytes().any(|b| b < b' ' && b != b'\n') {
            return Err(malformed_checkpoint("control character other than newline"));
        }
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed_checkpoint("expected origin, size and root lines"));
        };
        if origin.is_empty() {
            return Err(malformed_checkpoint("empty origin"));
        }
        let size = parse_size(size)?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| malformed_checkpoint("root must be standard base64 of 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(malformed_checkpoint("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root: NodeHash(root),
            extensions,
        })
    }
}

/// ASCII decimal, no sign, no leading zeros unless the value is 0, fits in a u64.
fn parse_size(s: &str) -> Result<u64, NoteError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed_checkpoint("size must be decimal digits"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(malformed_checkpoint("size has leading zeros"));
    }
    s.parse()
        .map_err(|_| malformed_checkpoint("size does not fit in 64 bits"))
}

/// Convenience: verify the note with key and parse its text as a checkpoint.
///
/// It does not compare the origin with the key name (the spec only recommends they
/// match); callers that know which log they expect should check `origin` themselves.
pub fn verify_checkpoint(note: &str, key: &VerifierKey) -> Result<Checkpoint, NoteError> {
    Checkpoint::parse(&verify_note(note, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        let cases: &[(&str, bool)] = &[
            ("PeterNeumann", true),
            ("example.com/log42", true),
            ("quasimodo.example/salvatore", true),
            ("é—名", true),
            ("a\u{200b}b", true), // zero-width space is not White_Space
            ("", false),
            ("a b", false),
            ("a+b", false),
            ("a\tb", false),
            ("a\u{a0}b", false),   // no-break space
            ("a\u{85}b", false),   // next line
            ("a\u{2003}b", false), // em space
            ("a\u{3000}b", false), // ideographic space
            ("a\u{1}b", false),
            ("a\u{1f}b", false),
        ];
        for &(name, ok) in cases {
            assert_eq!(valid_name(name), ok, "{name:?}");
            assert_eq!(SignerKey::from_seed(name, [7; 32]).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn key_id_hashes_name_newline_type_and_key() {
        // sha256("n" ‖ 0x0a ‖ 0x01 ‖ 32 zero bytes), computed independently.
        let mut input = b"n\n\x01".to_vec();
        input.extend_from_slice(&[0; 32]);
        let digest = Sha256::digest(&input);
        assert_eq!(
            key_id("n", &[0; 32]),
            u32::from_be_bytes(digest[..4].try_into().unwrap())
        );
        assert_ne!(key_id("n", &[0; 32]), key_id("m", &[0; 32]));
    }

    #[test]
    fn key_id_hex() {
        assert_eq!(parse_key_id("c74f20a3"), Ok(0xc74f_20a3));
        assert_eq!(parse_key_id("C74F20A3"), Ok(0xc74f_20a3));
        assert_eq!(parse_key_id("00000000"), Ok(0));
        for bad in [
            "c74f20a",
            "c74f20a30",
            "+74f20a3",
            "-74f20a3",
            "c74f20ag",
            " 74f20a3",
        ] {
            assert!(
                matches!(parse_key_id(bad), Err(NoteError::MalformedKey(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_hides_the_seed() {
        let key = SignerKey::from_seed("n", [0xab; 32]).unwrap();
        let debug = format!("{key:?}");
        let secret = key.to_text();
        let secret_b64 = &secret["PRIVATE+KEY+n+".len() + 9..];
        assert!(debug.contains("SignerKey"), "{debug}");
        assert!(debug.contains("\"n\""), "{debug}");
        assert!(!debug.contains(secret_b64), "{debug}");
        assert!(!debug.to_lowercase().contains("abababab"), "{debug}");
        assert!(!debug.contains("171, 171"), "{debug}"); // the seed as decimal bytes
    }

    #[test]
    fn signature_lines() {
        let ok = parse_signature_line("\u{2014} a AAAAAAE=").unwrap();
        assert_eq!(
            ok,
            NoteSignature {
                name: "a".into(),
                key_id: 0,
                signature: vec![1]
            }
        );
        for bad in [
            "",
            "- a AAAAAAE=",               // hyphen, not em dash
            "\u{2014}a AAAAAAE=",         // no space after the dash
            "\u{2014} a",                 // no signature
            "\u{2014} a ",                // empty signature
            "\u{2014}  AAAAAAE=",         // empty name
            "\u{2014} a  AAAAAAE=",       // two spaces
            "\u{2014} a AAAAAAE= ",       // trailing space
            "\u{2014} a AAAAAA==",        // 4 bytes: key id only
            "\u{2014} a AAAAAAE",         // missing padding
            "\u{2014} a AAAAAAF=",        // non-canonical trailing bits
            "\u{2014} a+b AAAAAAE=",      // '+' in name
            "\u{2014} a\u{a0}b AAAAAAE=", // Unicode space in name
            "\u{2014} a AAAA-_E=",        // URL-safe alphabet
        ] {
            assert!(
                matches!(parse_signature_line(bad), Err(NoteError::MalformedNote(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn note_text_rules() {
        for ok in ["\n", "a\n", "a\n\n", "\n\na\n", "é\u{2014}\u{85}\n"] {
            assert_eq!(check_text(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "a", "a\n\r", "a\r\n", "\ta\n", "a\u{0}\n", "a\u{1b}\n"] {
            assert!(
                matches!(check_text(bad), Err(NoteError::MalformedNote(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("10"), Ok(10));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1e3",
            "0x1",
            "18446744073709551616",
            "١",
        ] {
            assert!(
                matches!(parse_size(bad), Err(NoteError::MalformedCheckpoint(_))),
                "{bad:?}"
            );
        }
    }
}
