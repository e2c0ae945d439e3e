//! The real `stele serve` as a child process on port 0, with its data directory, its log
//! in `DATA/server.log`, and the address read from the one line it prints.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `stele` executable of the same build: `STELE_BIN` if set, else beside the running
/// executable (a test binary lives in `target/<profile>/deps`, a tool in
/// `target/<profile>`), else built with cargo in the same profile.
pub fn stele_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("STELE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("the executable has no directory")?;
    for candidate in [dir.join("stele"), dir.join("../stele")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    eprintln!("building the stele binary…");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "-p", "stele"]);
    if release {
        cargo.arg("--release");
    }
    let built = profile_dir.join("stele");
    let status = cargo.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() || !built.exists() {
        return Err(format!("could not build {}", built.display()));
    }
    Ok(built)
}

/// A running `stele serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub data: PathBuf,
    /// The bootstrap admin key of a server started with access control (`None` without,
    /// or when the store had keys already).
    pub admin_key: Option<String>,
}

impl Server {
    /// Starts `stele serve --insecure-no-auth` on `data` (created if missing) with the
    /// TOML `config`, if any; panics if it does not start.
    pub fn start(data: &Path, config: Option<&str>) -> Server {
        Server::try_start(data, config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `stele serve` with access control; its bootstrap admin key, if it made one,
    /// is in `admin_key`.
    pub fn start_secured(data: &Path, config: Option<&str>) -> Server {
        Server::launch(data, config, true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Server::start_secured`], answering why it did not start.
    pub fn launch_secured(data: &Path, config: Option<&str>) -> Result<Server, String> {
        Server::launch(data, config, true)
    }

    /// As [`Server::start`], answering why it did not start (with the server's log).
    pub fn try_start(data: &Path, config: Option<&str>) -> Result<Server, String> {
        Server::launch(data, config, false)
    }

    fn launch(data: &Path, config: Option<&str>, secured: bool) -> Result<Server, String> {
        std::fs::create_dir_all(data).map_err(|e| format!("creating {}: {e}", data.display()))?;
        let mut cmd = Command::new(stele_binary()?);
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg("127.0.0.1:0");
        if !secured {
            cmd.arg("--insecure-no-auth");
        }
        if let Some(config) = config {
            let path = data.join("test-config.toml");
            std::fs::write(&path, config).map_err(|e| e.to_string())?;
            cmd.arg("--config").arg(path);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("server.log"))
            .map_err(|e| e.to_string())?;
        cmd.env("STELE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("starting stele: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no standard output")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let Some(url) = line.trim().strip_prefix("stele listening on ") else {
            let _ = child.wait();
            let log = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
            return Err(format!("the server did not start; its log:\n{log}"));
        };
        let admin_key = std::fs::read_to_string(data.join("bootstrap-admin.key"))
            .ok()
            .filter(|_| secured)
            .map(|k| k.trim().to_string());
        Ok(Server {
            child,
            url: url.to_string(),
            data: data.to_path_buf(),
            admin_key,
        })
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
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

    /// SIGTERM, then waits; panics unless the exit is clean.
    pub fn stop(self) {
        self.try_stop().unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGTERM, then waits: a graceful stop, which must exit 0.
    pub fn try_stop(mut self) -> Result<(), String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("kill -TERM failed".into());
        }
        let exit = self.child.wait().map_err(|e| e.to_string())?;
        if exit.success() {
            Ok(())
        } else {
            Err(format!("graceful shutdown exited with {exit}"))
        }
    }

    /// SIGKILL: no chance to flush or commit anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `stele` with `args` to the end.
pub fn run_stele(args: &[&str]) -> Result<Output, String> {
    Command::new(stele_binary()?)
        .args(args)
        .output()
        .map_err(|e| format!("running stele: {e}"))
}
