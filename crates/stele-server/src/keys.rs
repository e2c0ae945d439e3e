//! The log's signing key: given as a file or as the key text, or generated on first start
//! into the data directory, readable by its owner only; and the check that it is the key
//! the log belongs to.

use crate::config::Config;
use anyhow::{Context, bail};
use std::io::Write;
use std::path::Path;
use stele_store::{LogStore, settings};
use stele_tlog::note::{Note, SignerKey, VerifierKey, verify_note};

/// The prefix of a signer key in its text form.
const KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Loads the configured key, or the one in the data directory, creating it if missing.
pub fn load_or_create(config: &Config) -> anyhow::Result<SignerKey> {
    let (key, generated) = load_or_generate(config)?;
    if generated {
        save_generated(config, &key)?;
    }
    Ok(key)
}

/// The configured key, or the one in the data directory; a new one (not yet written) if
/// there is none, and whether it is new.
pub fn load_or_generate(config: &Config) -> anyhow::Result<(SignerKey, bool)> {
    match &config.log.signing_key {
        Some(source) => Ok((load(source)?, false)),
        None => {
            let path = config.key_path();
            if path.exists() {
                Ok((load_file(&path)?, false))
            } else {
                Ok((generate(&config.log.origin)?, true))
            }
        }
    }
}

/// Writes a key from [`load_or_generate`] into the data directory.
pub fn save_generated(config: &Config, key: &SignerKey) -> anyhow::Result<()> {
    let path = config.key_path();
    write_new(&path, key)?;
    tracing::info!(path = %path.display(), verifier = %key.verifier(), "signing key generated");
    Ok(())
}

/// Refuses a key that the log does not belong to: every log's latest checkpoint must
/// verify with it, and the store's record of the log's verifier key (made by the first
/// node that started on it) must name it. Blocks: call it off the async workers.
pub fn check_belongs_to_log(store: &dyn LogStore, verifier: &VerifierKey) -> anyhow::Result<()> {
    let ours = verifier.to_text();
    for stored in store.latest_checkpoints()? {
        if verify_note(&stored.note, verifier).is_ok() {
            continue;
        }
        let signers = Note::parse(&stored.note)
            .map(|n| {
                n.signatures
                    .iter()
                    .map(|s| format!("`{}` (key id {:08x})", s.name, s.key_id))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|_| "an unreadable signature".to_string());
        bail!(
            "this node's signing key does not sign this log: its verifier key is {ours}, but the \
             latest checkpoint of log `{}` is signed by {signers}. Start every node with the \
             log's signing key (--signing-key or STELE_SIGNING_KEY)",
            stored.tenant
        );
    }
    let recorded = store
        .meta()
        .init_setting(settings::VERIFIER_KEY, &ours)
        .context("recording the log's verifier key")?;
    if recorded != ours {
        bail!(
            "this node's signing key does not sign this log: its verifier key is {ours}, but \
             the log belongs to {recorded}. Start every node with the log's signing key \
             (--signing-key or STELE_SIGNING_KEY)"
        );
    }
    Ok(())
}

/// A key given as its text (`PRIVATE+KEY+…`) or as the path of a file holding it.
pub fn load(source: &str) -> anyhow::Result<SignerKey> {
    let source = source.trim();
    if source.starts_with(KEY_PREFIX) {
        return SignerKey::parse(source).context("the signing key is malformed");
    }
    load_file(Path::new(source))
}

fn load_file(path: &Path) -> anyhow::Result<SignerKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the signing key {}", path.display()))?;
    SignerKey::parse(&text)
        .with_context(|| format!("the signing key {} is malformed", path.display()))
}

/// A new Ed25519 key named `name`, from the operating system's random source.
pub fn generate(name: &str) -> anyhow::Result<SignerKey> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).context("reading the system random source")?;
    Ok(SignerKey::from_seed(name, seed)?)
}

/// Writes `key` to a new file of mode 0600, durably; never overwrites an existing one.
pub fn write_new(path: &Path, key: &SignerKey) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} already exists; not overwriting a key", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    file.write_all(format!("{}\n", key.to_text()).as_bytes())?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
