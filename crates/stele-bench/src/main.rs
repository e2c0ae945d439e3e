//! `stele-bench`: Stele's performance and load scenarios. Every figure that makes a claim
//! is reported next to a baseline measured in the same run on the same machine, as a ratio;
//! the last line printed is one JSON object with all the figures.

mod auth;
mod crash;
mod heavy;
mod ingest;
mod query;
mod report;
mod server;
mod soak;
mod verify;
mod verify_logs;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "stele-bench", about = "Benchmarks and load tests for Stele")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Durable and searchable ingest rate of batches over HTTP, against a raw store append.
    IngestBatch(ingest::BatchArgs),
    /// One event per request, against an HTTP server that only parses the JSON.
    IngestSingle(ingest::SingleArgs),
    /// Query latency percentiles of a fixed mix on a loaded store.
    Query(query::QueryArgs),
    /// `stele verify` throughput and proof latency on a loaded store.
    Verify(verify::VerifyArgs),
    /// A long run at a fixed rate, sampling memory and latency.
    Soak(soak::SoakArgs),
    /// Kill -9 cycles under concurrent ingest.
    Crash(crash::CrashArgs),
    /// `stele verify` over many small logs, against the same events in one log.
    VerifyLogs(verify_logs::VerifyLogsArgs),
    /// `/health/live` latency while clients read maximum-size traces and listings.
    HeavyReads(heavy::HeavyArgs),
    /// One event per request with an ingest key, against the same without keys.
    Auth(auth::AuthArgs),
}

/// Options every scenario shares.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Seed of the event generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run the server on PostgreSQL (`postgres://…`); the baseline is then a COPY.
    #[arg(long, env = "STELE_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Share of events (per mille) in multi-step traces.
    #[arg(long, default_value_t = 100)]
    pub trace_permille: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = match cli.scenario {
        Scenario::IngestBatch(args) => runtime.block_on(ingest::batch(args))?,
        Scenario::IngestSingle(args) => runtime.block_on(ingest::single(args))?,
        Scenario::Query(args) => runtime.block_on(query::run(args))?,
        Scenario::Verify(args) => runtime.block_on(verify::run(args))?,
        Scenario::Soak(args) => runtime.block_on(soak::run(args))?,
        Scenario::Crash(args) => runtime.block_on(crash::run(args))?,
        Scenario::VerifyLogs(args) => runtime.block_on(verify_logs::run(args))?,
        Scenario::HeavyReads(args) => runtime.block_on(heavy::run(args))?,
        Scenario::Auth(args) => runtime.block_on(auth::run(args))?,
    };
    report.print();
    Ok(())
}
