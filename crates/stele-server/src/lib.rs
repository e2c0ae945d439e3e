//! The Stele server: configuration, the sequencer (single writer with group commit), the
//! indexer wiring and the HTTP API.
//!
//! Invariant: handlers never touch the store's writer; every append goes through the
//! sequencer, and every blocking call (SQLite, tantivy) runs off the async workers.

pub mod access;
pub mod config;
pub mod http;
pub mod keys;
pub mod sequencer;
pub mod tenants;
pub mod workers;

pub use config::Config;

use anyhow::Context;
use http::AppState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sequencer::Sequencer;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use stele_index::{Indexer, IndexerOptions, SearchIndex};
use stele_store::LogStore;
use stele_store::pg::PgStore;
use stele_store::sqlite::SqliteStore;
use stele_tlog::tiles::TileTrees;
use tokio::net::TcpListener;
use tokio::sync::watch;
use workers::checkpointer::{Checkpointer, Published, Signed};

/// The process-wide metrics recorder (the `metrics` facade has one global recorder).
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let seconds = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let sizes = [
        1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(Matcher::Full("stele_commit_batch_events".into()), &sizes)?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("stele-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })?;
    Ok(handle)
}

/// A server whose store, index and writer are open and whose socket is bound.
pub struct Bound {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
    indexer: Indexer,
}

/// Opens (creating or migrating) the store and index in `config.data`, starts the writer
/// and the indexer, and binds the listening socket.
pub async fn bind(config: Config) -> anyhow::Result<Bound> {
    config.validate()?;
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("creating data directory {}", config.data.display()))?;
    let store = open_store(&config).await?;
    let index_path = config.index_path();
    let index = tokio::task::spawn_blocking(move || SearchIndex::open(&index_path)).await??;
    let (key, generated) = keys::load_or_generate(&config)?;
    // Store calls block (and PostgreSQL's client may not run on an async thread).
    let reading = store.clone();
    let verifier = key.verifier();
    let max_tenants = config.ingest.max_tenants;
    let (published, dirty, tenants, writer) = tokio::task::spawn_blocking(move || {
        keys::check_belongs_to_log(reading.as_ref(), &verifier)?;
        let (published, dirty) = load_checkpoints(reading.as_ref())?;
        let logs = reading.heads()?.into_iter().map(|h| h.tenant);
        let tenants = tenants::TenantGate::new(logs, max_tenants);
        anyhow::Ok((published, dirty, tenants, reading.writer()?))
    })
    .await??;
    if generated {
        keys::save_generated(&config, &key)?;
    }
    let published = Arc::new(published);
    if config.database_url.is_some() {
        workers::follower::follow_checkpoints(
            store.clone(),
            published.clone(),
            Duration::from_millis(config.log.checkpoint_interval_ms),
        );
    }
    let checkpointer = Checkpointer::new(
        key,
        config.log.origin.clone(),
        Duration::from_millis(config.log.checkpoint_interval_ms),
        config.log.checkpoint_max_logs,
        published.clone(),
        dirty,
    );

    let (index_progress, _) = watch::channel(index.progress());
    let progress_tx = index_progress.clone();
    let opts = IndexerOptions {
        max_commit_interval: Duration::from_millis(config.index.max_commit_interval_ms),
        quiet_interval: Duration::from_millis(config.index.quiet_interval_ms),
        ..IndexerOptions::default()
    };
    let indexer = Indexer::spawn(
        index.clone(),
        store.clone(),
        opts,
        Box::new(move |progress| {
            progress_tx.send_replace(progress.clone());
        }),
    )?;
    let notifier = indexer.notifier();
    let sequencer = Sequencer::start(
        writer,
        config.ingest.queue_events,
        config.ingest.max_batch_events,
        Box::new(move || notifier.notify()),
        checkpointer,
    )?;
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => Some(http::connections::tls_acceptor(cert, key)?),
        _ => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let keys = if config.auth.insecure_no_auth {
        tracing::warn!(
            "SERVING WITHOUT API KEYS (--insecure-no-auth): anyone who reaches {} may read, write and administer every tenant, and reads are not meta-audited",
            config.listen
        );
        None
    } else {
        let (reading, data) = (store.clone(), config.data.clone());
        let made =
            tokio::task::spawn_blocking(move || access::bootstrap(reading.meta(), &data)).await??;
        if let Some(path) = made {
            tracing::warn!(
                path = %path.display(),
                "no API key existed: an admin key of every tenant was written to this file (mode 0600); keep it safe, then delete the file"
            );
        }
        let (reading, limits) = (store.clone(), config.auth.clone());
        let ring = Arc::new(
            tokio::task::spawn_blocking(move || access::KeyRing::load(reading, &limits)).await??,
        );
        ring.keep_fresh(Duration::from_millis(config.auth.refresh_ms))?;
        Some(ring)
    };
    let tile_trees = Arc::new(TileTrees::new(config.log.proof_cache_tiles));
    let state = Arc::new(AppState {
        config,
        tile_trees,
        store,
        index,
        sequencer,
        checkpoints: published,
        reads: http::reads::ReadPool::start(
            std::thread::available_parallelism().map_or(2, usize::from),
        )?,
        tenants,
        index_progress,
        metrics: metrics_handle()?,
        keys,
    });
    Ok(Bound {
        listener,
        tls,
        state,
        indexer,
    })
}

/// Opens the configured store: PostgreSQL if a database URL is set, else SQLite in the
/// data directory.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn LogStore>> {
    let store: Arc<dyn LogStore> = match config.database_url.clone() {
        Some(url) => Arc::new(
            tokio::task::spawn_blocking(move || PgStore::open(&url))
                .await?
                .context("opening the PostgreSQL store")?,
        ),
        None => {
            let path = config.store_path();
            Arc::new(
                tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                    .await?
                    .with_context(|| format!("opening the store in {}", config.data.display()))?,
            )
        }
    };
    Ok(store)
}

/// The latest stored checkpoint of each log, and the logs that grew past theirs.
fn load_checkpoints(store: &dyn LogStore) -> anyhow::Result<(Published, BTreeSet<String>)> {
    let mut latest = HashMap::new();
    for stored in store.latest_checkpoints()? {
        let signed = Signed::from_stored(&stored).map_err(|e| {
            anyhow::anyhow!("log {}: stored checkpoint unreadable: {e}", stored.tenant)
        })?;
        latest.insert(stored.tenant, signed);
    }
    let dirty = store
        .heads()?
        .into_iter()
        .filter(|head| {
            latest
                .get(&head.tenant)
                .is_none_or(|s: &Signed| s.size < head.size)
        })
        .map(|head| head.tenant)
        .collect();
    Ok((Published::new(latest), dirty))
}

impl Bound {
    /// `https` with TLS configured, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (dropping connections still open after `http.shutdown_drain_ms`), commits
    /// everything queued, signs the final checkpoints, brings the index up to date and
    /// returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Bound {
            listener,
            tls,
            state,
            indexer,
        } = self;
        tracing::info!(addr = %listener.local_addr()?, data = %state.config.data.display(), "stele listening");
        let app = http::router(state.clone());
        http::connections::serve(listener, app, &state.config.http, tls, shutdown).await;
        if let Some(ring) = state.keys.clone() {
            // Key uses since the last write, so that none is lost at a stop.
            tokio::task::spawn_blocking(move || ring.flush_uses()).await??;
        }
        tracing::info!("draining the ingest queue");
        let writer_state = state.clone();
        tokio::task::spawn_blocking(move || {
            writer_state.sequencer.shutdown();
            indexer.shutdown();
        })
        .await?;
        tracing::info!("stopped");
        Ok(())
    }
}
