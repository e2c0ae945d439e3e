//! Kill -9 cycles under concurrent ingest: nothing acknowledged may be lost.
//!
//! Each cycle starts the server on the same store, has `--clients` post batches of events
//! whose ids they chose, and SIGKILLs the server at a seeded moment. Then it restarts the
//! server and checks that every acknowledged event is stored at the seq of its receipt,
//! that seq is dense (the log's size equals the distinct events listed, without a gap),
//! and, after a graceful stop, that `stele verify` passes with the verifier key read after
//! the first start. Each check lists the events appended since the previous one; the last
//! cycle lists the whole log again. A failure prints the report and fails the run.

use crate::Common;
use crate::ingest::{server_config, stored, wait_searchable};
use crate::report::Report;
use crate::server::{self, Server, run_stele};
use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use stele_api::{Event, EventPage, IngestResponse};
use stele_core::cursor::{Cursor, SortOrder, listing_digest};
use stele_testkit::PgSchema;
use stele_testkit::events::{Generator, Rng};
use uuid::Uuid;

/// Acknowledged events read back by id from the store after each restart.
const CHECKED_BY_ID: usize = 100;

#[derive(Args, Debug)]
pub struct CrashArgs {
    #[command(flatten)]
    pub common: Common,
    /// Kill and restart cycles.
    #[arg(long, default_value_t = 20)]
    pub cycles: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Events per request.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// The kill comes at a seeded moment up to this long after ingest starts.
    #[arg(long, default_value_t = 3000)]
    pub max_run_ms: u64,
}

/// A random (version 4) UUID from the seeded generator.
fn uuid(rng: &mut Rng) -> Uuid {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Posts batches of fresh events with ids of its own choosing until the server goes away;
/// answers every (id, seq) a receipt acknowledged. Any answer but 201 or 503 is an error.
async fn client(
    http: reqwest::Client,
    endpoint: String,
    mut events: Generator,
    mut ids: Rng,
    batch: usize,
) -> anyhow::Result<Vec<(Uuid, u64)>> {
    let mut acked = Vec::new();
    loop {
        let batch: Vec<Value> = (0..batch)
            .map(|_| {
                let mut event = events.event();
                event["id"] = json!(uuid(&mut ids));
                event
            })
            .collect();
        let body = serde_json::to_vec(&batch)?;
        let answer: IngestResponse = loop {
            let sent = http
                .post(&endpoint)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            // A failed request or answer is the kill: it acknowledged nothing.
            let Ok(response) = sent else {
                return Ok(acked);
            };
            match response.status().as_u16() {
                201 => match response.json().await {
                    Ok(answer) => break answer,
                    Err(_) => return Ok(acked),
                },
                503 => tokio::time::sleep(Duration::from_millis(5)).await,
                s => bail!("ingest answered {s}: {}", response.text().await?),
            }
        };
        acked.extend(answer.receipts.into_iter().map(|r| (r.id, r.seq)));
    }
}

/// Every event of the default log from seq `from` on, in seq order.
async fn list_from(http: &reqwest::Client, url: &str, from: u64) -> anyhow::Result<Vec<Event>> {
    let mut cursor = from.checked_sub(1).map(|after| {
        Cursor {
            order: SortOrder::Asc,
            after,
            listing: listing_digest("default", SortOrder::Asc, &[]),
        }
        .encode()
    });
    let mut out = Vec::new();
    loop {
        let mut request = http
            .get(format!("{url}/v1/events"))
            .query(&[("limit", "1000")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let response = request.send().await?;
        ensure!(
            response.status() == 200,
            "listing answered {}: {}",
            response.status(),
            response.text().await?
        );
        let page: EventPage = response.json().await?;
        out.extend(page.events);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Has `--clients` post to `server` until it is SIGKILLed after `kill_after`: answers every
/// (id, seq) acknowledged and how long ingest ran.
async fn ingest_until_killed(
    server: Server,
    http: &reqwest::Client,
    rng: &mut Rng,
    kill_after: Duration,
    args: &CrashArgs,
) -> anyhow::Result<(Vec<(Uuid, u64)>, Duration)> {
    let endpoint = format!("{}/v1/events", server.url);
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let events = Generator::new(rng.next_u64(), args.common.trace_permille);
            let ids = Rng::new(rng.next_u64());
            tokio::spawn(client(
                http.clone(),
                endpoint.clone(),
                events,
                ids,
                args.batch,
            ))
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(kill_after).await;
    server.kill();
    let ran = started.elapsed();
    let mut acked = Vec::new();
    for task in clients {
        acked.extend(task.await??);
    }
    Ok((acked, ran))
}

/// What a check after a restart found.
struct Check {
    /// Acknowledged events not at the seq of their receipt.
    lost: usize,
    problems: Vec<String>,
}

/// Checks the restarted server at `url`: lists the log from `from` into `log` (the id at
/// each seq; `None` where the listing skipped one), then checks density and every
/// acknowledged event against it, and reads a seeded sample of them back by id.
async fn check(
    http: &reqwest::Client,
    url: &str,
    log: &mut Vec<Option<Uuid>>,
    from: usize,
    acked: &[(Uuid, u64)],
    rng: &mut Rng,
) -> anyhow::Result<Check> {
    let size = stored(url, "default").await?;
    if size > 0 {
        wait_searchable(url, "default", size - 1).await?;
    }
    log.truncate(from);
    for event in list_from(http, url, from as u64).await? {
        let (Some(id), Some(seq)) = (event.id, event.seq) else {
            bail!("a listed event has no id or seq");
        };
        let seq = usize::try_from(seq)?;
        if seq >= log.len() {
            log.resize(seq + 1, None);
        }
        log[seq] = Some(id);
    }
    let mut problems = Vec::new();
    if log.len() as u64 != size {
        problems.push(format!(
            "the log holds {size} events but the listing ends at {}",
            log.len()
        ));
    }
    let gaps = log[from..].iter().filter(|id| id.is_none()).count();
    if gaps > 0 {
        problems.push(format!("{gaps} seqs are missing from the listing"));
    }
    let distinct = log.iter().flatten().collect::<HashSet<_>>().len();
    if distinct as u64 != size {
        problems.push(format!(
            "the log holds {size} events, {distinct} of them distinct"
        ));
    }
    let is_at = |id: Uuid, seq: u64| {
        usize::try_from(seq).is_ok_and(|seq| log.get(seq).copied().flatten() == Some(id))
    };
    let lost = acked.iter().filter(|&&(id, seq)| !is_at(id, seq)).count();
    if lost > 0 {
        problems.push(format!(
            "{lost} of {} acknowledged events are not at their seq",
            acked.len()
        ));
    }
    let mut misread = 0;
    for _ in 0..CHECKED_BY_ID.min(acked.len()) {
        let (id, seq) = acked[rng.below(acked.len() as u64) as usize];
        let response = http.get(format!("{url}/v1/events/{id}")).send().await?;
        let found = response.status() == 200 && response.json::<Event>().await?.seq == Some(seq);
        misread += usize::from(!found);
    }
    if misread > 0 {
        problems.push(format!(
            "{misread} acknowledged events read by id are missing or at another seq"
        ));
    }
    Ok(Check { lost, problems })
}

/// `stele verify` of the stopped server's store with `key`: a problem, if any.
fn verify(
    data: &str,
    key: &str,
    database_url: Option<&str>,
    size: usize,
) -> anyhow::Result<Option<String>> {
    let mut args = vec!["verify", "--data", data, "--key", key, "--json"];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let (ok, out, err) = run_stele(&args)?;
    let summary: Value = out
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    Ok(if !ok || summary["ok"] != true {
        Some(format!(
            "stele verify failed: {} {}",
            out.trim(),
            err.trim()
        ))
    } else if summary["events"] != size {
        Some(format!(
            "stele verify checked {} events of {size}",
            summary["events"]
        ))
    } else {
        None
    })
}

pub async fn run(args: CrashArgs) -> anyhow::Result<Report> {
    ensure!(
        args.cycles > 0 && args.clients > 0 && args.batch > 0 && args.max_run_ms > 0,
        "--cycles, --clients, --batch and --max-run-ms must be positive"
    );
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("server");
    let data = data_dir
        .to_str()
        .context("the data directory is not UTF-8")?;
    let scratch = match &args.common.database_url {
        Some(admin) => Some(PgSchema::create_at(admin)?),
        None => None,
    };
    let database_url = scratch.as_ref().map(|s| s.url.as_str());
    let config = server_config(database_url, args.batch, args.clients);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut rng = Rng::new(args.common.seed);

    let mut key: Option<String> = None;
    // Every acknowledged (id, seq), and the log's id at each seq as last listed.
    let mut acked: Vec<(Uuid, u64)> = Vec::new();
    let mut log: Vec<Option<Uuid>> = Vec::new();
    let mut run_time = Duration::ZERO;
    let (mut cycles_passed, mut verify_passed, mut events_lost) = (0, 0, 0);
    let mut failures = Vec::new();
    for cycle in 1..=args.cycles {
        let server = server::start(Path::new(data), Some(&config))
            .with_context(|| format!("cycle {cycle}: starting the server"))?;
        // The first start made the signing key; its verifier key checks every cycle.
        let key = match key {
            Some(ref key) => key,
            None => key.insert(server::verifier_key(Path::new(data))?),
        };
        let kill_after = Duration::from_millis(1 + rng.below(args.max_run_ms));
        let (new, ran) = ingest_until_killed(server, &http, &mut rng, kill_after, &args)
            .await
            .with_context(|| format!("cycle {cycle}: ingesting"))?;
        run_time += ran;
        let fresh = new.len();
        acked.extend(new);

        let server = server::start(Path::new(data), Some(&config))
            .with_context(|| format!("cycle {cycle}: restarting after the kill"))?;
        // What this cycle acknowledged lies beyond the log listed so far: each check lists
        // only the new part, the last one all of it again.
        let from = if cycle == args.cycles { 0 } else { log.len() };
        let mut found = check(&http, &server.url, &mut log, from, &acked, &mut rng)
            .await
            .with_context(|| format!("cycle {cycle}: checking after the restart"))?;
        server.try_stop().map_err(anyhow::Error::msg)?;
        match verify(data, key, database_url, log.len())? {
            Some(problem) => found.problems.push(problem),
            None => verify_passed += 1,
        }
        events_lost = events_lost.max(found.lost);
        eprintln!(
            "cycle {cycle}/{}: killed after {} ms, {} acknowledged, log of {}: {}",
            args.cycles,
            kill_after.as_millis(),
            fresh,
            log.len(),
            if found.problems.is_empty() {
                "ok".to_string()
            } else {
                found.problems.join("; ")
            }
        );
        if found.problems.is_empty() {
            cycles_passed += 1;
        } else {
            failures.push(format!("cycle {cycle}: {}", found.problems.join("; ")));
        }
    }
    drop(scratch);

    let mut report = Report::new("crash");
    report
        .set(
            "store",
            if args.common.database_url.is_some() {
                "postgres"
            } else {
                "sqlite"
            },
        )
        .set("cycles", args.cycles)
        .set("clients", args.clients)
        .set("batch", args.batch)
        .set("cycles_passed", cycles_passed)
        .set("acknowledged", acked.len())
        .set("events_stored", log.len())
        .set("events_lost", events_lost)
        .set("verify_passed", verify_passed)
        .set("run_s", run_time.as_secs_f64())
        .set("acked_per_s", acked.len() as f64 / run_time.as_secs_f64());
    if !failures.is_empty() {
        report.print();
        bail!(
            "{} of {} cycles failed:\n{}",
            failures.len(),
            args.cycles,
            failures.join("\n")
        );
    }
    Ok(report)
}
