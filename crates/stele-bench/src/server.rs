//! Runs the real `stele` binary: found beside this tool's own executable (cargo builds
//! both into the same target directory), or built on demand with the same profile.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `stele` executable of the same build.
pub fn stele_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("the executable has no directory")?;
    let candidate = dir.join("stele");
    if candidate.exists() {
        return Ok(candidate);
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    eprintln!("building the stele binary…");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "-p", "stele"]);
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status().context("running cargo build -p stele")?;
    if !status.success() || !candidate.exists() {
        bail!("could not build {}", candidate.display());
    }
    Ok(candidate)
}

/// A running `stele serve`.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// Starts `stele serve` on port 0 with `data` and the TOML `config` (if any).
    pub fn start(data: &Path, config: Option<&str>) -> anyhow::Result<Server> {
        settle();
        std::fs::create_dir_all(data)?;
        let mut cmd = Command::new(stele_binary()?);
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg("127.0.0.1:0");
        if let Some(config) = config {
            let path = data.join("bench-config.toml");
            std::fs::write(&path, config)?;
            cmd.arg("--config").arg(path);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("server.log"))?;
        cmd.env("STELE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .stdin(Stdio::null());
        let mut child = cmd.spawn().context("starting stele")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("stele listening on ") else {
            let log = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
            bail!("the server did not start:\n{log}");
        };
        Ok(Server {
            child,
            url: url.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the server exited with {status}");
        }
        Ok(())
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `stele` with `args`; answers (success, stdout, stderr).
pub fn run_stele(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(stele_binary()?).args(args).output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Flushes the page cache's dirty pages to disk, so that a measurement does not pay for
/// the write-back of the one before it (a run writes hundreds of megabytes).
pub fn settle() {
    let _ = Command::new("sync").status();
}
