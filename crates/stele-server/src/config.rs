//! Configuration: one struct, loaded once from defaults, then a TOML file, then `STELE_*`
//! environment variables and command-line flags (applied by the CLI), and passed down.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory: the SQLite store (unless `database_url` is set) and the search index.
    pub data: PathBuf,
    /// `postgres://…`: keep the log in PostgreSQL, shared by every node that names it.
    pub database_url: Option<String>,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The log an event goes to when neither the event nor the request names one.
    pub default_tenant: String,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
    pub index: IndexConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
}

/// Access control: API keys on every route not declared public.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Serve without keys: every request acts as an admin and nothing is meta-audited.
    /// Only on a loopback address (`--insecure-no-auth`).
    pub insecure_no_auth: bool,
    /// Tenants whose checkpoints, proofs and tiles anyone may read (`"*"`: every tenant's),
    /// for verifiers without a key.
    pub public_proofs: Vec<String>,
    /// Requests each key may make per second, on average (a token bucket); 0: no limit.
    pub requests_per_second: u32,
    /// Requests a key may make at once above that rate.
    pub burst: u32,
    /// How often a node reloads the keys from the store, so that a key revoked on another
    /// node stops working here (milliseconds).
    pub refresh_ms: u64,
    /// Listings and traces (and exports) one key may have in progress at once; beyond,
    /// 429.
    pub max_concurrent_reads: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            insecure_no_auth: false,
            public_proofs: Vec::new(),
            requests_per_second: 20_000,
            burst: 40_000,
            refresh_ms: 500,
            max_concurrent_reads: 8,
        }
    }
}

impl AuthConfig {
    /// Whether `tenant`'s checkpoints, proofs and tiles are open to everyone.
    pub fn proofs_public(&self, tenant: &str) -> bool {
        self.public_proofs.iter().any(|t| t == "*" || t == tenant)
    }
}

/// Connection limits and timeouts: what a slow or hostile client may hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request's header must arrive within this long of its first byte (milliseconds);
    /// otherwise the connection is closed.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive within this long (milliseconds); otherwise 408.
    pub body_read_timeout_ms: u64,
    /// A connection with no request in progress is closed after this long (milliseconds).
    pub idle_timeout_ms: u64,
    /// Open connections; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// After SIGTERM, connections still open after this long (milliseconds) are dropped;
    /// the queue is then committed and the final checkpoints signed.
    pub shutdown_drain_ms: u64,
    /// A read or administrative request still unanswered after this long (milliseconds)
    /// answers 503 `timeout` (ingest is bounded by the body-read timeout and the queue).
    pub request_timeout_ms: u64,
    /// Serve HTTPS with this PEM certificate chain (and `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Names this server's logs: checkpoints carry the origin line `<origin>/<tenant>`, and
    /// a generated signing key is named after it. A schema-less URL, e.g. `audit.example.com`.
    pub origin: String,
    /// Sign a checkpoint after a batch grows a log, but at most this often (milliseconds).
    pub checkpoint_interval_ms: u64,
    /// Logs signed at most per interval; the others wait their turn (waited-on logs
    /// first, then in the order they grew). Bounds the signing work when events are
    /// spread over many tenants.
    pub checkpoint_max_logs: usize,
    /// The signing key: a file holding a `PRIVATE+KEY+…` key, or that text itself. Unset:
    /// `signing.key` in the data directory, generated on first start.
    pub signing_key: Option<String>,
    /// Full tiles whose hashed trees are kept in memory for proofs (about 16 KiB each).
    pub proof_cache_tiles: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_events_per_request: usize,
    /// Events queued or being committed; beyond this, ingest answers 503.
    pub queue_events: usize,
    /// Most events the writer commits in one transaction.
    pub max_batch_events: usize,
    /// Most logs (tenants) the server holds; an event for a new log beyond it is refused.
    pub max_tenants: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Commit the search index at least this often while events arrive (milliseconds).
    pub max_commit_interval_ms: u64,
    /// Commit once no new event has arrived for this long (milliseconds).
    #[serde(alias = "min_commit_interval_ms")]
    pub quiet_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: PathBuf::from("./stele-data"),
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            default_tenant: "default".to_string(),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            index: IndexConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            idle_timeout_ms: 75_000,
            max_connections: 4_096,
            shutdown_drain_ms: 20_000,
            request_timeout_ms: 60_000,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            origin: "localhost/stele".to_string(),
            checkpoint_interval_ms: 1_000,
            checkpoint_max_logs: 1_000,
            signing_key: None,
            proof_cache_tiles: 2_048,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 16 << 20,
            max_events_per_request: 10_000,
            queue_events: 200_000,
            max_batch_events: 20_000,
            max_tenants: 100_000,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            max_commit_interval_ms: 1_000,
            quiet_interval_ms: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults overlaid with the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        stele_core::validate_tenant(&self.default_tenant).map_err(ConfigError::Invalid)?;
        let i = &self.ingest;
        if i.max_events_per_request == 0
            || i.max_batch_events == 0
            || i.queue_events == 0
            || i.max_tenants == 0
        {
            return Err(ConfigError::Invalid(
                "ingest limits must be positive".into(),
            ));
        }
        if i.queue_events < i.max_events_per_request {
            return Err(ConfigError::Invalid(
                "ingest.queue_events must be at least ingest.max_events_per_request".into(),
            ));
        }
        if i.queue_events > u32::MAX as usize {
            return Err(ConfigError::Invalid(
                "ingest.queue_events is too large".into(),
            ));
        }
        let h = &self.http;
        if h.header_read_timeout_ms == 0
            || h.body_read_timeout_ms == 0
            || h.request_timeout_ms == 0
            || h.idle_timeout_ms == 0
            || h.max_connections == 0
        {
            return Err(ConfigError::Invalid(
                "http timeouts and max_connections must be positive".into(),
            ));
        }
        let origin = &self.log.origin;
        if origin.is_empty()
            || origin.len() > 200
            || origin
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        {
            return Err(ConfigError::Invalid(format!(
                "log.origin `{origin}` must be 1 to 200 characters, without spaces or `+`"
            )));
        }
        if self.log.checkpoint_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "log.checkpoint_interval_ms must be positive".into(),
            ));
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "http.tls_cert and http.tls_key go together".into(),
            ));
        }
        if self.auth.insecure_no_auth && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "--insecure-no-auth serves only on a loopback address, not {}",
                self.listen
            )));
        }
        if self.auth.refresh_ms == 0 || (self.auth.requests_per_second > 0 && self.auth.burst == 0)
        {
            return Err(ConfigError::Invalid(
                "auth.refresh_ms and auth.burst must be positive".into(),
            ));
        }
        if self.log.checkpoint_max_logs == 0 {
            return Err(ConfigError::Invalid(
                "log.checkpoint_max_logs must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The signing key generated on first start when none is configured.
    pub fn key_path(&self) -> PathBuf {
        self.data.join("signing.key")
    }

    pub fn store_path(&self) -> PathBuf {
        self.data.join("stele.db")
    }

    pub fn index_path(&self) -> PathBuf {
        self.data.join("index")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stele.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[ingest]\nqueue_events = 5\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.ingest.queue_events, 5);
        assert_eq!(config.ingest.max_events_per_request, 10_000);
        assert_eq!(config.data, PathBuf::from("./stele-data"));

        std::fs::write(&path, "listn = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field `listn`"), "{err}");
    }

    #[test]
    fn validation() {
        assert!(Config::default().validate().is_ok());
        let c = Config {
            default_tenant: "_stele".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.ingest.queue_events = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn serving_without_keys_is_for_loopback_only() {
        let mut c = Config::default();
        c.auth.insecure_no_auth = true;
        assert!(c.validate().is_ok());
        for open in ["0.0.0.0:7700", "192.0.2.7:7700", "[::]:7700"] {
            c.listen = open.parse().unwrap();
            let refused = c.validate().unwrap_err().to_string();
            assert!(refused.contains("loopback"), "{open}: {refused}");
        }
        c.listen = "[::1]:7700".parse().unwrap();
        assert!(c.validate().is_ok());
        let mut c = Config::default();
        c.http.tls_cert = Some("cert.pem".into());
        assert!(c.validate().is_err(), "a certificate without its key");
    }
}
