//! `stele verify` throughput on a loaded store, and proof latency.
//!
//! Inclusion and consistency proofs are timed from the client against the round trip of
//! `GET /health/live` in the same run; `stele verify` (on the stopped server's store) against
//! hashing the same stored bytes straight from the store, which is the least any full check
//! has to do.

use crate::Common;
use crate::query::{LIVE, Probe, TENANT, client, load, measure, set_latency, warm_up};
use crate::report::Report;
use crate::server::run_stele;
use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use stele_testkit::events::Rng;
use stele_tlog::leaf_hash;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Events to load before verifying.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Inclusion proofs to time, and as many consistency proofs.
    #[arg(long, default_value_t = 1_000)]
    pub proofs: usize,
    /// Concurrent clients, loading and asking for proofs.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Events per request when loading.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
}

const TARGET_VERIFY_PER_S: u32 = 500_000;
const TARGET_PROOF_P99_MS: u32 = 1;

/// Waits until the server has signed a checkpoint of at least `size` events.
async fn wait_signed(http: &reqwest::Client, url: &str, size: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs: Value = http
            .get(format!("{url}/v1/logs"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let signed = logs["logs"]
            .as_array()
            .and_then(|logs| logs.iter().find(|l| l["tenant"] == TENANT))
            .and_then(|l| l["checkpoint_size"].as_u64());
        if signed.is_some_and(|s| s >= size) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "no checkpoint of {size} events was signed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `stele verify` (with `--index` if asked) on the store of the stopped server;
/// answers the seconds it took. Fails unless it checked all `events` and found no problem.
pub(crate) fn time_verify(
    data: &Path,
    key: &str,
    database_url: Option<&str>,
    index: bool,
    events: u64,
) -> anyhow::Result<(f64, Value)> {
    let data = data.to_str().context("the data directory is not UTF-8")?;
    let mut args = vec!["verify", "--data", data, "--key", key, "--json"];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    if index {
        args.push("--index");
    }
    let started = Instant::now();
    let (success, stdout, stderr) = run_stele(&args)?;
    let seconds = started.elapsed().as_secs_f64();
    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    if !success || summary["ok"] != true || summary["events"] != events {
        bail!("`stele {}` failed:\n{stdout}{stderr}", args.join(" "));
    }
    Ok((seconds, summary))
}

/// The baseline: the leaf hash (SHA-256) of every stored event's canonical bytes, read in
/// log order straight from the store; answers the seconds it took.
fn hash_baseline(data: &Path, database_url: Option<&str>, events: u64) -> anyhow::Result<f64> {
    const SELECT: &str = "SELECT body FROM events ORDER BY log_id, seq";
    let started = Instant::now();
    let hashed = match database_url {
        None => {
            let db = rusqlite::Connection::open_with_flags(
                data.join("stele.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            let mut select = db.prepare(SELECT)?;
            let mut rows = select.query([])?;
            let mut hashed = 0u64;
            while let Some(row) = rows.next()? {
                std::hint::black_box(leaf_hash(row.get_ref(0)?.as_blob()?));
                hashed += 1;
            }
            hashed
        }
        // The synchronous client runs a runtime of its own: not on one of ours.
        Some(url) => {
            let url = url.to_string();
            std::thread::spawn(move || -> anyhow::Result<u64> {
                use postgres::fallible_iterator::FallibleIterator;
                let mut db = postgres::Client::connect(&url, postgres::NoTls)?;
                let mut rows = db.query_raw(SELECT, std::iter::empty::<&str>())?;
                let mut hashed = 0;
                while let Some(row) = rows.next()? {
                    std::hint::black_box(leaf_hash(row.try_get::<_, &[u8]>(0)?));
                    hashed += 1;
                }
                Ok(hashed)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the baseline panicked"))??
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        hashed == events,
        "the store holds {hashed} events, not {events}"
    );
    Ok(seconds)
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<Report> {
    ensure!(
        args.events >= 2,
        "consistency proofs need at least 2 events"
    );
    ensure!(args.proofs > 0, "no proofs to ask for");
    let n = args.events as u64;
    // Proof parameters come from a stream of their own, so that they do not shift the events.
    let mut rng = Rng::new(args.common.seed ^ 0x7665_7269_6679);
    // The events to ask proofs of get a client-chosen id, so that they can be asked for by id.
    let mut picked = HashSet::new();
    while picked.len() < args.proofs.min(args.events) {
        picked.insert(rng.below(n) as usize);
    }
    let mut ids = Vec::with_capacity(picked.len());
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let loaded = load(
        &args.common,
        &data,
        args.events,
        args.batch,
        args.clients,
        |i, event| {
            if picked.contains(&i) {
                let id = uuid::Uuid::now_v7();
                event["id"] = json!(id);
                ids.push(id);
            }
        },
    )
    .await?;

    let (http, url) = (client()?, loaded.server.url.clone());
    wait_signed(&http, &url, n).await?;
    warm_up(&http, &url, args.clients).await?;
    let live = vec![Probe::Get(LIVE.into()); args.proofs];
    let baseline = measure(&http, &url, args.clients, live).await?;
    let inclusions = (0..args.proofs)
        .map(|_| {
            let id = ids[rng.below(ids.len() as u64) as usize];
            Probe::Get(format!("/v1/events/{id}?proof=true"))
        })
        .collect();
    let inclusion = measure(&http, &url, args.clients, inclusions).await?;
    let consistencies = (0..args.proofs)
        .map(|_| {
            let from = 1 + rng.below(n - 1);
            Probe::Get(format!(
                "/v1/logs/{TENANT}/proof/consistency?from={from}&to={n}"
            ))
        })
        .collect();
    let consistency = measure(&http, &url, args.clients, consistencies).await?;

    let mut report = Report::new("verify");
    report
        .set("store", loaded.store())
        .set("events", args.events)
        .set("clients", args.clients)
        .set("proofs", args.proofs)
        .set("load_per_s", loaded.load_per_s);
    let baseline_p99 = set_latency(&mut report, "baseline", &baseline);
    let proof_p99 = set_latency(&mut report, "inclusion", &inclusion).max(set_latency(
        &mut report,
        "consistency",
        &consistency,
    ));
    report
        .set("proof_p99_ms", proof_p99)
        .set("proof_ratio", proof_p99 / baseline_p99);

    // A graceful stop signs the final checkpoint; then the store is checked offline.
    loaded.server.try_stop().map_err(anyhow::Error::msg)?;
    let database_url = loaded.scratch.as_ref().map(|s| s.url.as_str());
    let key = crate::server::verifier_key(&data)?;
    let key = key.as_str();
    crate::server::settle();
    let (verify, _) = time_verify(&data, key, database_url, false, n)?;
    // `--index` checks the store as well, then the index against it: its rate covers both.
    let (verify_index, _) = time_verify(&data, key, database_url, true, n)?;
    let baseline = hash_baseline(&data, database_url, n)?;

    let (rate, baseline_rate) = (n as f64 / verify, n as f64 / baseline);
    report
        .set("verify_seconds", verify)
        .set("verify_events_per_s", rate)
        .set("verify_index_events_per_s", n as f64 / verify_index)
        .set("baseline_per_s", baseline_rate)
        .set("ratio", rate / baseline_rate)
        .set("target_verify_per_s", TARGET_VERIFY_PER_S)
        .set("target_proof_p99_ms", TARGET_PROOF_P99_MS)
        .set(
            "target_met",
            rate >= f64::from(TARGET_VERIFY_PER_S) && proof_p99 <= f64::from(TARGET_PROOF_P99_MS),
        );
    Ok(report)
}
