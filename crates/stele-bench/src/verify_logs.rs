//! `stele verify` over many small logs against the same events in one log, in the same
//! run: the cost of a log (its reads, tiles and checkpoints) must stay small next to the
//! cost of its events.

use crate::Common;
use crate::ingest::{drive, server_config};
use crate::report::Report;
use crate::server::{self, verifier_key};
use crate::verify::time_verify;
use anyhow::ensure;
use clap::Args;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use stele_testkit::events::Generator;

#[derive(Args, Debug)]
pub struct VerifyLogsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Events in each store.
    #[arg(long, default_value_t = 150_000)]
    pub events: usize,
    /// Logs the events are spread over in the second store.
    #[arg(long, default_value_t = 20_000)]
    pub logs: usize,
    /// Events per request when loading (each request spans many logs).
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
}

/// Verify throughput over many logs, as a share of the one-log throughput.
const TARGET_RATIO: f64 = 0.5;

pub async fn run(args: VerifyLogsArgs) -> anyhow::Result<Report> {
    ensure!(args.events > 0 && args.logs > 0, "nothing to load");
    ensure!(
        args.common.database_url.is_none(),
        "this scenario runs on SQLite"
    );
    let dir = tempfile::tempdir()?;
    let one = dir.path().join("one");
    let many = dir.path().join("many");
    load(&args, &one, 1).await?;
    load(&args, &many, args.logs).await?;
    server::settle();
    let n = args.events as u64;
    let (one_s, _) = time_verify(&one, &verifier_key(&one)?, None, false, n)?;
    let (many_s, summary) = time_verify(&many, &verifier_key(&many)?, None, false, n)?;
    let (one_rate, many_rate) = (n as f64 / one_s, n as f64 / many_s);
    let mut report = Report::new("verify-logs");
    report
        .set("store", "sqlite")
        .set("events", args.events)
        .set("logs", args.logs)
        .set("checkpoints", summary["checkpoints"].clone())
        .set("verify_seconds", many_s)
        .set("verify_events_per_s", many_rate)
        .set("baseline_seconds", one_s)
        .set("baseline_per_s", one_rate)
        .set("ratio", many_rate / one_rate)
        .set("target_ratio", TARGET_RATIO)
        .set("target_met", many_rate / one_rate >= TARGET_RATIO);
    Ok(report)
}

/// Loads the generated events into a server on `data`, event `i` into log `i % logs`, and
/// stops it (which signs the final checkpoints).
async fn load(args: &VerifyLogsArgs, data: &Path, logs: usize) -> anyhow::Result<()> {
    let server = server::start(data, Some(&server_config(None, args.batch, 1)))?;
    let mut generator = Generator::new(args.common.seed, args.common.trace_permille);
    let mut bodies = Vec::new();
    let mut i = 0;
    while i < args.events {
        let mut request = generator.batch(args.batch.min(args.events - i));
        for event in &mut request {
            if logs > 1 {
                event["tenant"] = json!(format!("log-{:06}", i % logs));
            }
            i += 1;
        }
        bodies.push(serde_json::to_vec(&request)?);
    }
    drive(&server.url, Arc::new(bodies), 1).await?;
    server.try_stop().map_err(anyhow::Error::msg)
}
