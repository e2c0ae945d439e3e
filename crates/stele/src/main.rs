//! The `stele` command: run the server, send and query events, rebuild the search index.

mod client;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use stele_server::Config;

#[derive(Parser)]
#[command(
    name = "stele",
    version,
    about = "A self-hosted, tamper-evident audit log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Send events from a JSON or NDJSON file (or standard input) to a server.
    Send(client::SendArgs),
    /// Query a server's events.
    Query(Box<client::QueryArgs>),
    /// Rebuild the search index of a data directory from its store (server stopped).
    Reindex(ReindexArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Data directory [default: ./stele-data]
    #[arg(long, env = "STELE_DATA")]
    data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7700]
    #[arg(long, env = "STELE_LISTEN")]
    listen: Option<SocketAddr>,
    /// TOML configuration file; flags and STELE_* variables override it.
    #[arg(long, env = "STELE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ReindexArgs {
    /// Data directory [default: ./stele-data]
    #[arg(long, env = "STELE_DATA")]
    data: Option<PathBuf>,
    /// TOML configuration file (for its data directory).
    #[arg(long, env = "STELE_CONFIG")]
    config: Option<PathBuf>,
}

fn load_config(file: Option<&PathBuf>, data: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = match file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(data) = data {
        config.data = data;
    }
    Ok(config)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STELE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tantivy=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            init_tracing();
            let mut config = load_config(args.config.as_ref(), args.data)?;
            if let Some(listen) = args.listen {
                config.listen = listen;
            }
            runtime.block_on(serve(config))
        }
        Command::Send(args) => runtime.block_on(client::send(args)),
        Command::Query(args) => runtime.block_on(client::query(*args)),
        Command::Reindex(args) => {
            init_tracing();
            let config = load_config(args.config.as_ref(), args.data)?;
            reindex(&config)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bound = stele_server::bind(config).await?;
    // The one line on standard output: scripts and tests read the address from it.
    println!("stele listening on http://{}", bound.local_addr());
    bound.serve(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

fn reindex(config: &Config) -> anyhow::Result<()> {
    let store_path = config.store_path();
    anyhow::ensure!(store_path.exists(), "no store at {}", store_path.display());
    let store: Arc<dyn stele_store::LogStore> = Arc::new(
        stele_store::sqlite::SqliteStore::open(&store_path)
            .with_context(|| format!("opening {}", store_path.display()))?,
    );
    let dir = config.index_path();
    stele_index::SearchIndex::ensure_unused(&dir)
        .context("is the server running? stop it first")?;
    stele_index::SearchIndex::wipe(&dir)?;
    let index = stele_index::SearchIndex::open(&dir)?;
    let started = std::time::Instant::now();
    let n = stele_index::catch_up(index, store, &stele_index::IndexerOptions::default())?;
    println!(
        "reindexed {n} events in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
