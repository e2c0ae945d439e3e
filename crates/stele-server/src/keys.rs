//! The log's signing key: given as a file or as the key text, or generated on first start
//! into the data directory, readable by its owner only.

use crate::config::Config;
use anyhow::{Context, bail};
use std::io::Write;
use std::path::Path;
use stele_core::note::SignerKey;

/// The prefix of a signer key in its text form.
const KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Loads the configured key, or the one in the data directory, creating it if missing.
pub fn load_or_create(config: &Config) -> anyhow::Result<SignerKey> {
    match &config.log.signing_key {
        Some(source) => load(source),
        None => {
            let path = config.key_path();
            if path.exists() {
                load_file(&path)
            } else {
                let key = generate(&config.log.origin)?;
                write_new(&path, &key)?;
                tracing::info!(path = %path.display(), verifier = %key.verifier(), "signing key generated");
                Ok(key)
            }
        }
    }
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
