//! The real `stele` binary for a scenario (spawned through `stele-testkit`), started only
//! after the page cache has settled.

use std::process::Command;
pub use stele_testkit::Server;

/// Starts `stele serve` on `data` with the TOML `config`, once the disk has settled.
pub fn start(data: &std::path::Path, config: Option<&str>) -> anyhow::Result<Server> {
    settle();
    Server::try_start(data, config).map_err(anyhow::Error::msg)
}

/// Runs `stele` with `args`; answers (success, stdout, stderr).
pub fn run_stele(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = stele_testkit::run_stele(args).map_err(anyhow::Error::msg)?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The verifier key of the signing key the server made in `data` on its first start.
pub fn verifier_key(data: &std::path::Path) -> anyhow::Result<String> {
    let data = data
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the data directory is not UTF-8"))?;
    let (ok, out, err) = run_stele(&["keys", "public", "--data", data])?;
    anyhow::ensure!(ok, "stele keys public failed: {err}");
    Ok(out.trim().to_string())
}

/// Flushes the page cache's dirty pages to disk, so that a measurement does not pay for
/// the write-back of the one before it (a run writes hundreds of megabytes).
pub fn settle() {
    let _ = Command::new("sync").status();
}
