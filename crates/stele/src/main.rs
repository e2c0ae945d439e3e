//! The `stele` command: run the server, send and query events, rebuild the search index,
//! manage the signing key, and verify a log offline or as a monitor.

mod apikeys;
mod client;
mod monitor;
mod proof;
mod report;
mod verify;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use stele_server::Config;
use stele_tlog::note::VerifierKey;

/// Requests, events and index documents are small, short-lived allocations made from
/// many threads at once: mimalloc serves them with less contention than the system
/// allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Apply pending schema migrations to a PostgreSQL store (servers also do on start).
    Migrate(MigrateArgs),
    /// Manage the checkpoint signing key and the API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Verify a log: offline from a data directory, or as a monitor of a running server.
    Verify(VerifyArgs),
    /// Work with inclusion proofs.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Print the OpenAPI document of the HTTP API (as served at /openapi.json).
    Openapi,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the verifier key (`name+id+key`) that checks this server's checkpoints.
    Public(KeySourceArgs),
    /// Generate a new signing key into a file (mode 0600) and print its verifier key.
    Generate {
        /// Key name: the server's log origin, e.g. `audit.example.com`.
        #[arg(long)]
        name: String,
        /// Where to write the key; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    #[command(flatten)]
    Api(apikeys::ApiKeyCommand),
}

#[derive(Args)]
struct KeySourceArgs {
    /// Data directory holding the generated key [default: ./stele-data]
    #[arg(long, env = "STELE_DATA")]
    data: Option<PathBuf>,
    /// TOML configuration file (for its data directory and key).
    #[arg(long, env = "STELE_CONFIG")]
    config: Option<PathBuf>,
    /// The signing key: a file, or the `PRIVATE+KEY+…` text itself.
    #[arg(long, env = "STELE_SIGNING_KEY", hide_env_values = true)]
    signing_key: Option<String>,
}

#[derive(Args)]
struct VerifyArgs {
    /// Check this data directory offline (the server may be stopped or running).
    #[arg(long, conflicts_with = "url", required_unless_present_any = ["url", "database_url"])]
    data: Option<PathBuf>,
    /// Check this PostgreSQL store (with `--data`, that node's search index too).
    #[arg(
        long,
        env = "STELE_DATABASE_URL",
        hide_env_values = true,
        conflicts_with = "url"
    )]
    database_url: Option<String>,
    /// Monitor this server: check its latest checkpoints against the remembered ones.
    #[arg(long)]
    url: Option<String>,
    /// Verifier key (`name+id+key`), or a file holding it. Offline, defaults to the key in
    /// the data directory, which a person able to tamper with the store could also replace.
    #[arg(long, env = "STELE_VERIFIER_KEY", required_unless_present = "data")]
    key: Option<String>,
    /// Also check that the search index agrees with the store (offline only).
    #[arg(long, requires = "data")]
    index: bool,
    /// Remember checkpoints here between monitor runs.
    #[arg(long, requires = "url")]
    state: Option<PathBuf>,
    /// Only this log.
    #[arg(long)]
    tenant: Option<String>,
    /// Entries per log whose inclusion the monitor checks.
    #[arg(long, default_value_t = 16, requires = "url")]
    samples: usize,
    /// API key (`stl_…`) for the monitored server, unless its proofs are public.
    #[arg(long, env = "STELE_API_KEY", hide_env_values = true, requires = "url")]
    api_key: Option<String>,
    /// Print a one-line JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ProofCommand {
    /// Verify a saved `GET /v1/events/{id}?proof=true` answer offline.
    Verify {
        /// Verifier key (`name+id+key`), or a file holding it.
        #[arg(long, env = "STELE_VERIFIER_KEY")]
        key: String,
        /// The saved answer; `-` or nothing for standard input.
        file: Option<PathBuf>,
    },
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
    /// The checkpoint signing key: a file, or the `PRIVATE+KEY+…` text itself
    /// [default: signing.key in the data directory, generated on first start]
    #[arg(long, env = "STELE_SIGNING_KEY", hide_env_values = true)]
    signing_key: Option<String>,
    /// Keep the log in PostgreSQL (`postgres://user@host/db`), shared by every node naming
    /// it; the data directory then holds only this node's search index.
    #[arg(long, env = "STELE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Serve without API keys: anyone who reaches the port is an admin, and reads are not
    /// meta-audited. Only on a loopback address; for trying Stele out.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (with `--tls-key`).
    #[arg(long, env = "STELE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "STELE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Args)]
struct ReindexArgs {
    /// Data directory [default: ./stele-data]
    #[arg(long, env = "STELE_DATA")]
    data: Option<PathBuf>,
    /// TOML configuration file (for its data directory).
    #[arg(long, env = "STELE_CONFIG")]
    config: Option<PathBuf>,
    /// The PostgreSQL store, if the log is kept there.
    #[arg(long, env = "STELE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Args)]
struct MigrateArgs {
    /// The PostgreSQL store to migrate.
    #[arg(long, env = "STELE_DATABASE_URL", hide_env_values = true)]
    database_url: String,
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

/// The server's configuration: defaults, the file, then flags and `STELE_*` variables.
fn serve_config(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = load_config(args.config.as_ref(), args.data)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.signing_key.is_some() {
        config.log.signing_key = args.signing_key;
    }
    if args.database_url.is_some() {
        config.database_url = args.database_url;
    }
    if args.insecure_no_auth {
        config.auth.insecure_no_auth = true;
    }
    if args.tls_cert.is_some() {
        config.http.tls_cert = args.tls_cert;
        config.http.tls_key = args.tls_key;
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

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            init_tracing();
            let config = serve_config(args)?;
            runtime.block_on(serve(config)).map(|()| ExitCode::SUCCESS)
        }
        Command::Send(args) => runtime
            .block_on(client::send(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Query(args) => runtime
            .block_on(client::query(*args))
            .map(|()| ExitCode::SUCCESS),
        Command::Reindex(args) => {
            init_tracing();
            let mut config = load_config(args.config.as_ref(), args.data)?;
            if args.database_url.is_some() {
                config.database_url = args.database_url;
            }
            if config.database_url.is_none() {
                let store_path = config.store_path();
                anyhow::ensure!(store_path.exists(), "no store at {}", store_path.display());
            }
            let store = runtime.block_on(stele_server::open_store(&config))?;
            reindex(&config, store).map(|()| ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            init_tracing();
            stele_store::pg::PgStore::open(&args.database_url)
                .context("migrating the PostgreSQL store")?;
            println!("the PostgreSQL store is at the current schema");
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Public(args)) => {
            let key = signer_key(&args, false)?;
            println!("{}", key.verifier());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Api(command)) => runtime
            .block_on(apikeys::run(command))
            .map(|()| ExitCode::SUCCESS),
        Command::Keys(KeysCommand::Generate { name, out }) => {
            let key = stele_server::keys::generate(&name)?;
            stele_server::keys::write_new(&out, &key)?;
            println!("{}", key.verifier());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let ok = match &args.url {
                Some(url) => runtime.block_on(verify_url(url, &args))?,
                None => verify_data(&args)?,
            };
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Openapi => {
            println!("{}", stele_server::http::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Proof(ProofCommand::Verify { key, file }) => verify_proof(&key, file.as_deref()),
    }
}

/// `stele proof verify`: exit 0 and say what the proof establishes, or 1 and why not.
fn verify_proof(key: &str, file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let key = verifier_key(key)?;
    let answer = read_input(file)?;
    match proof::verify(&answer, &key) {
        Ok(v) => {
            let id = v.id.map(|id| format!("event {id} is ")).unwrap_or_default();
            println!(
                "ok: {id}entry {} of {} in the tree of {} signed by {}",
                v.seq,
                v.origin,
                v.tree_size,
                key.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("FAILED: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(path) if path != Path::new("-") => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        }
        _ => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
            Ok(buf)
        }
    }
}

/// A verifier key given as its text or as a file holding it.
fn verifier_key(source: &str) -> anyhow::Result<VerifierKey> {
    let source = source.trim();
    if let Ok(key) = VerifierKey::parse(source) {
        return Ok(key);
    }
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("`{source}` is neither a verifier key nor a readable file"))?;
    VerifierKey::parse(&text).with_context(|| format!("{source} does not hold a verifier key"))
}

/// The signing key a server with these settings uses; `create` makes it if missing.
fn signer_key(args: &KeySourceArgs, create: bool) -> anyhow::Result<stele_tlog::note::SignerKey> {
    let mut config = load_config(args.config.as_ref(), args.data.clone())?;
    if args.signing_key.is_some() {
        config.log.signing_key = args.signing_key.clone();
    }
    if config.log.signing_key.is_none() && !create {
        let path = config.key_path();
        anyhow::ensure!(
            path.exists(),
            "no signing key at {} (the server creates it on first start)",
            path.display()
        );
    }
    stele_server::keys::load_or_create(&config)
}

fn verify_data(args: &VerifyArgs) -> anyhow::Result<bool> {
    let mut config = load_config(None, args.data.clone())?;
    config.database_url = args.database_url.clone();
    let mut summary = report::Summary::default();
    let key = match &args.key {
        Some(k) => verifier_key(k)?,
        None => {
            let path = config.key_path();
            let key = stele_server::keys::load(&path.to_string_lossy())
                .context("no --key given and no signing key in the data directory")?;
            summary.notes.push(format!(
                "checked with the key in {}; pass --key for a check independent of the data directory",
                path.display()
            ));
            key.verifier()
        }
    };
    let store: Box<dyn stele_store::LogStore> = match &config.database_url {
        Some(url) => Box::new(
            stele_store::pg::PgStore::open_read_only(url)
                .context("opening the PostgreSQL store")?,
        ),
        None => {
            let store_path = config.store_path();
            anyhow::ensure!(store_path.exists(), "no store at {}", store_path.display());
            Box::new(
                stele_store::sqlite::SqliteStore::open_read_only(&store_path)
                    .with_context(|| format!("opening {}", store_path.display()))?,
            )
        }
    };
    let store = store.as_ref();
    let mut problems = report::Problems::default();
    verify::verify_store(
        store,
        &key,
        args.tenant.as_deref(),
        &mut problems,
        &mut summary,
    )?;
    if args.index {
        verify_index(
            &config,
            store,
            args.tenant.as_deref(),
            &mut problems,
            &mut summary,
        )?;
    }
    Ok(report::print(problems, summary, args.json))
}

fn verify_index(
    config: &Config,
    store: &dyn stele_store::LogStore,
    tenant: Option<&str>,
    problems: &mut report::Problems,
    summary: &mut report::Summary,
) -> anyhow::Result<()> {
    let index = stele_index::SearchIndex::open_read_only(&config.index_path())
        .context("opening the search index")?;
    // Every log the store or the index knows: documents planted under a tenant the store
    // lacks must be found too.
    let sizes: std::collections::BTreeMap<String, u64> = store
        .heads()?
        .into_iter()
        .map(|h| (h.tenant, h.size))
        .collect();
    let mut tenants: std::collections::BTreeSet<String> = sizes.keys().cloned().collect();
    tenants.extend(index.progress().into_keys());
    tenants.extend(index.indexed_tenants()?);
    for log in tenants {
        if tenant.is_some_and(|t| t != log) {
            continue;
        }
        let size = sizes.get(&log).copied().unwrap_or(0);
        let bar = verify::progress_bar(size);
        bar.set_message(format!("index {log}"));
        let audit = index.audit(store, &log, &mut |n| bar.set_position(n))?;
        bar.finish_and_clear();
        for p in &audit.problems {
            let place = p
                .seq
                .map_or_else(|| "index".to_string(), |s| format!("index, seq {s}"));
            problems.add(&p.tenant, &place, p.detail.clone());
        }
        if audit.indexed_through < size {
            summary.notes.push(format!(
                "log {log}: the index covers {} of {size} events; the server indexes the rest on start",
                audit.indexed_through
            ));
        }
    }
    Ok(())
}

async fn verify_url(url: &str, args: &VerifyArgs) -> anyhow::Result<bool> {
    let key = verifier_key(args.key.as_deref().expect("clap requires --key with --url"))?;
    let http = client::http_client(args.api_key.as_deref())?;
    let monitor = monitor::Monitor::new(url, key.clone(), args.samples.max(1), http);
    let mut state = match &args.state {
        Some(path) => monitor::State::load(path)?,
        None => monitor::State::default(),
    };
    if let Some(name) = &state.key {
        anyhow::ensure!(
            name == key.name(),
            "the state file was kept with key `{name}`, not `{}`",
            key.name()
        );
    }
    let mut problems = report::Problems::default();
    let mut summary = report::Summary::default();
    for tenant in monitor.tenants(args.tenant.as_deref()).await? {
        let previous = state.logs.get(&tenant).cloned();
        if let Some(now) = monitor
            .check_log(&tenant, previous.as_ref(), &mut problems, &mut summary)
            .await?
        {
            state.logs.insert(tenant, now);
        }
    }
    // Logs remembered from earlier runs must not vanish.
    if args.tenant.is_none() {
        let listed = monitor.tenants(None).await?;
        for tenant in state.logs.keys() {
            if !listed.contains(tenant) {
                problems.add(tenant, "log", "the server no longer lists this log");
            }
        }
    }
    let ok = problems.is_empty();
    if ok && let Some(path) = &args.state {
        state.key = Some(key.name().to_string());
        state.save(path)?;
    }
    Ok(report::print(problems, summary, args.json))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bound = stele_server::bind(config).await?;
    // Handlers first: a SIGTERM right after the line below must stop gracefully.
    let shutdown = shutdown_signal()?;
    // The one line on standard output: scripts and tests read the address from it.
    println!(
        "stele listening on {}://{}",
        bound.scheme(),
        bound.local_addr()
    );
    bound.serve(shutdown).await
}

/// Completes on SIGTERM or Ctrl-C; the handlers are installed when this returns.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutdown requested");
    })
}

fn reindex(
    config: &Config,
    store: std::sync::Arc<dyn stele_store::LogStore>,
) -> anyhow::Result<()> {
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
