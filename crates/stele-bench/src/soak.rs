//! Ingest at a fixed rate for a long time, watching memory and latency.
//!
//! A short closed-loop burst first measures the peak rate of the server (the baseline).
//! Then batches go out on a fixed schedule, at half that peak unless `--rate` says
//! otherwise, and at the end of every sample interval the server's RSS and the p99 ack
//! latency of that interval are recorded. The first sample is a warm-up; the average RSS
//! and the p99 of the last third of the rest are compared with those of the first third.
//! Exceeding a bound prints the report and fails the run.

use crate::Common;
use crate::ingest::{server_config, stored, wait_searchable};
use crate::report::{Report, percentile, sorted};
use crate::server::{self, Server};
use anyhow::{Context, bail, ensure};
use clap::Args;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use stele_testkit::PgSchema;
use stele_testkit::events::Generator;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Clients of the closed-loop peak burst, as in `ingest-batch`.
const PEAK_CLIENTS: usize = 4;
/// Senders of the paced run: twice the burst's clients, so that the schedule, not a lack of
/// senders, sets the pace.
const SENDERS: usize = 8;
/// Events in the pool of request bodies, which are sent round and round.
const POOL_EVENTS: usize = 20_000;
const MB: f64 = 1024.0 * 1024.0;

#[derive(Args, Debug)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: Common,
    /// Length of the paced run, in seconds.
    #[arg(long, default_value_t = 600)]
    pub duration_s: u64,
    /// Events per second [default: half the peak rate measured first].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seconds between samples of memory and latency.
    #[arg(long, default_value_t = 10)]
    pub sample_s: u64,
    /// Largest allowed ratio of the late average RSS to the early one.
    #[arg(long, default_value_t = 1.5)]
    pub max_rss_growth: f64,
    /// Largest allowed ratio of the late p99 ack latency to the early one.
    #[arg(long, default_value_t = 3.0)]
    pub max_p99_drift: f64,
}

/// One sample interval: the server's RSS at its end, and the latencies acknowledged in it.
struct Sample {
    rss_bytes: u64,
    latencies_ms: Vec<f64>,
}

/// Posts one request body until it is stored, retrying while the server sheds load (503).
async fn post(http: &reqwest::Client, endpoint: &str, body: &[u8]) -> anyhow::Result<()> {
    loop {
        let response = http
            .post(endpoint)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await?;
        match response.status().as_u16() {
            201 => return Ok(()),
            503 => tokio::time::sleep(Duration::from_millis(5)).await,
            s => bail!("ingest answered {s}: {}", response.text().await?),
        }
    }
}

/// Closed loop: `PEAK_CLIENTS` post back to back for `length`; answers the requests stored
/// and the time they took.
async fn peak(
    http: &reqwest::Client,
    endpoint: &str,
    bodies: &Arc<Vec<Vec<u8>>>,
    length: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let end = started + length;
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<JoinHandle<anyhow::Result<u64>>> = (0..PEAK_CLIENTS)
        .map(|_| {
            let (http, endpoint) = (http.clone(), endpoint.to_string());
            let (bodies, next) = (bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut requests = 0;
                while Instant::now() < end {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    post(&http, &endpoint, &bodies[i % bodies.len()]).await?;
                    requests += 1;
                }
                Ok(requests)
            })
        })
        .collect();
    let mut requests = 0;
    for task in tasks {
        requests += task.await??;
    }
    Ok((requests, started.elapsed()))
}

/// Open loop: request `i` is due at `start + i × interval`, however fast the server
/// answers, until `end` (a backlog left then is not sent: the achieved rate shows it). Each
/// latency is measured from when its request was due, so a server falling behind shows as
/// latency, not only as a lower rate. Each sender answers the requests it had stored.
fn paced(
    http: &reqwest::Client,
    endpoint: &str,
    bodies: &Arc<Vec<Vec<u8>>>,
    start: Instant,
    interval: Duration,
    end: Instant,
    latencies: &UnboundedSender<f64>,
) -> Vec<JoinHandle<anyhow::Result<u64>>> {
    let next = Arc::new(AtomicUsize::new(0));
    (0..SENDERS)
        .map(|_| {
            let (http, endpoint) = (http.clone(), endpoint.to_string());
            let (bodies, next, latencies) = (bodies.clone(), next.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut requests = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let due = start + interval.mul_f64(i as f64);
                    if due >= end || Instant::now() >= end {
                        return Ok(requests);
                    }
                    tokio::time::sleep_until(due).await;
                    post(&http, &endpoint, &bodies[i % bodies.len()]).await?;
                    // The receiver lives until every sender is done.
                    let _ = latencies.send(due.elapsed().as_secs_f64() * 1000.0);
                    requests += 1;
                }
            })
        })
        .collect()
}

/// Every latency received so far.
fn drain(latencies: &mut UnboundedReceiver<f64>) -> Vec<f64> {
    std::iter::from_fn(|| latencies.try_recv().ok()).collect()
}

/// The average RSS of `samples`, in bytes.
fn mean_rss(samples: &[Sample]) -> f64 {
    samples.iter().map(|s| s.rss_bytes as f64).sum::<f64>() / samples.len() as f64
}

/// The p99 of all latencies of `samples`, in milliseconds.
fn p99(samples: &[Sample]) -> f64 {
    let all = samples
        .iter()
        .flat_map(|s| s.latencies_ms.iter().copied())
        .collect();
    percentile(&sorted(all), 99.0)
}

/// The paced run at `rate`, sampled every `--sample-s` for `--duration-s`: answers the
/// samples, the requests stored and the time taken.
async fn soak(
    server: &Server,
    http: &reqwest::Client,
    bodies: &Arc<Vec<Vec<u8>>>,
    rate: f64,
    args: &SoakArgs,
) -> anyhow::Result<(Vec<Sample>, u64, Duration)> {
    let count = args.duration_s / args.sample_s;
    let (latency_tx, mut latency_rx) = unbounded_channel();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(args.batch as f64 / rate);
    let sample = Duration::from_secs(args.sample_s);
    let end = start + sample * u32::try_from(count)?;
    let endpoint = format!("{}/v1/events", server.url);
    let senders = paced(http, &endpoint, bodies, start, interval, end, &latency_tx);
    drop(latency_tx);
    let mut samples = Vec::new();
    for k in 1..=count {
        tokio::time::sleep_until(start + sample * u32::try_from(k)?).await;
        let rss_bytes = server
            .rss_bytes()
            .context("the server's memory is unreadable: has it exited?")?;
        let latencies_ms = drain(&mut latency_rx);
        eprintln!(
            "sample {k}/{count}: rss {:.1} MB, {} requests, p99 {:.1} ms",
            rss_bytes as f64 / MB,
            latencies_ms.len(),
            percentile(&sorted(latencies_ms.clone()), 99.0)
        );
        samples.push(Sample {
            rss_bytes,
            latencies_ms,
        });
    }
    let mut requests = 0;
    for sender in senders {
        requests += sender.await??;
    }
    let elapsed = start.elapsed();
    // Requests still in flight at the last sample belong to it.
    let late = drain(&mut latency_rx);
    samples
        .last_mut()
        .context("no samples")?
        .latencies_ms
        .extend(late);
    Ok((samples, requests, elapsed))
}

pub async fn run(args: SoakArgs) -> anyhow::Result<Report> {
    ensure!(
        args.batch > 0 && args.sample_s > 0,
        "--batch and --sample-s must be positive"
    );
    ensure!(
        args.duration_s / args.sample_s >= 3,
        "--duration-s must hold at least 3 samples of --sample-s: a warm-up, an early and a late one"
    );
    if let Some(rate) = args.rate {
        ensure!(rate.is_finite() && rate > 0.0, "--rate must be positive");
    }
    let mut generator = Generator::new(args.common.seed, args.common.trace_permille);
    let bodies: Vec<Vec<u8>> = (0..POOL_EVENTS.div_ceil(args.batch))
        .map(|_| serde_json::to_vec(&generator.batch(args.batch)))
        .collect::<Result<_, _>>()?;
    let bodies = Arc::new(bodies);
    let batch = args.batch as u64;

    let dir = tempfile::tempdir()?;
    let scratch = match &args.common.database_url {
        Some(admin) => Some(PgSchema::create_at(admin)?),
        None => None,
    };
    let config = server_config(
        scratch.as_ref().map(|s| s.url.as_str()),
        args.batch,
        SENDERS,
    );
    let server = server::start(&dir.path().join("server"), Some(&config))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(SENDERS)
        .timeout(Duration::from_secs(120))
        .build()?;
    let endpoint = format!("{}/v1/events", server.url);

    // The baseline: the peak rate of this server, for a tenth of the run (1 to 10 s).
    let burst = Duration::from_secs((args.duration_s / 10).clamp(1, 10));
    let (peak_requests, peak_time) = peak(&http, &endpoint, &bodies, burst).await?;
    let peak_events = peak_requests * batch;
    let peak_per_s = peak_events as f64 / peak_time.as_secs_f64();
    // Start the paced run on a quiet server: the index has caught up with the burst.
    wait_searchable(&server.url, "default", peak_events - 1).await?;
    let rate = args.rate.unwrap_or(peak_per_s / 2.0);
    eprintln!("peak {peak_per_s:.0} events/s; soaking at {rate:.0} events/s");

    let (samples, requests, elapsed) = soak(&server, &http, &bodies, rate, &args).await?;
    let stored = stored(&server.url, "default").await?;
    server.try_stop().map_err(anyhow::Error::msg)?;
    drop(scratch);

    // The first sample is a warm-up; then the first third against the last.
    let measured = &samples[1..];
    let third = (measured.len() / 3).max(1);
    let (early, late) = (&measured[..third], &measured[measured.len() - third..]);
    ensure!(
        early.iter().chain(late).all(|s| !s.latencies_ms.is_empty()),
        "some samples saw no acknowledgement: raise --rate or --sample-s"
    );
    let (rss_start, rss_end) = (mean_rss(early), mean_rss(late));
    let (p99_first, p99_last) = (p99(early), p99(late));
    let rss_growth = rss_end / rss_start;
    let p99_drift = p99_last / p99_first;
    let events = requests * batch;
    let events_lost = (peak_events + events).saturating_sub(stored);
    let achieved = events as f64 / elapsed.as_secs_f64();
    let mut failed = Vec::new();
    if rss_growth > args.max_rss_growth {
        failed.push(format!(
            "RSS grew {rss_growth:.2}× (at most {})",
            args.max_rss_growth
        ));
    }
    if p99_drift > args.max_p99_drift {
        failed.push(format!(
            "p99 drifted {p99_drift:.2}× (at most {})",
            args.max_p99_drift
        ));
    }
    if events_lost > 0 {
        failed.push(format!("{events_lost} acknowledged events are not stored"));
    }

    let mut report = Report::new("soak");
    report
        .set(
            "store",
            if args.common.database_url.is_some() {
                "postgres"
            } else {
                "sqlite"
            },
        )
        .set("batch", args.batch)
        .set("rate", rate)
        .set("achieved_per_s", achieved)
        .set("peak_per_s", peak_per_s)
        .set("ratio", achieved / peak_per_s)
        .set("duration_s", elapsed.as_secs_f64())
        .set("samples", samples.len())
        .set("rss_start_mb", rss_start / MB)
        .set("rss_end_mb", rss_end / MB)
        .set("rss_growth", rss_growth)
        .set("p99_first_ms", p99_first)
        .set("p99_last_ms", p99_last)
        .set("p99_drift", p99_drift)
        .set("events", events)
        .set("events_lost", events_lost)
        .set("passed", failed.is_empty());
    if !failed.is_empty() {
        report.print();
        bail!("soak failed: {}", failed.join("; "));
    }
    Ok(report)
}
