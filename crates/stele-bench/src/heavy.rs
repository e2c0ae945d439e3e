//! Liveness under heavy reads: `GET /health/live` timed every few milliseconds while
//! concurrent clients ask for maximum-size traces (10,000 events each) and maximum-size
//! listings (1,000 events a page), against the same probe on the idle server in the same
//! run. A liveness probe that stalls behind such reads would get a healthy node restarted.

use crate::Common;
use crate::query::{LIVE, Probe, client, load, measure, set_latency, warm_up};
use crate::report::{Report, sorted};
use anyhow::ensure;
use clap::Args;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct HeavyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent clients reading maximum-size traces and listings.
    #[arg(long, default_value_t = 16)]
    pub readers: usize,
    /// Events per heavy trace (the server answers at most 10,000 per trace).
    #[arg(long, default_value_t = 10_000)]
    pub trace_events: usize,
    /// Events loaded besides the heavy traces.
    #[arg(long, default_value_t = 40_000)]
    pub other_events: usize,
    /// How long the readers run.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Time between two liveness probes.
    #[arg(long, default_value_t = 10)]
    pub probe_ms: u64,
}

const TARGET_LIVE_P99_MS: u32 = 10;

pub async fn run(args: HeavyArgs) -> anyhow::Result<Report> {
    ensure!(args.readers > 0 && args.trace_events > 0, "nothing to read");
    let traces = args.readers;
    let heavy = traces * args.trace_events;
    let dir = tempfile::tempdir()?;
    // The first events form the heavy traces, one correlation id per reader.
    let loaded = load(
        &args.common,
        &dir.path().join("server"),
        heavy + args.other_events,
        5_000,
        1,
        |i, event| {
            if i < heavy {
                event["correlation_id"] = json!(format!("heavy-{}", i % traces));
            }
        },
    )
    .await?;
    let (http, url) = (client()?, loaded.server.url.clone());
    warm_up(&http, &url, 1).await?;
    let probes = (args.seconds * 1000 / args.probe_ms.max(1)).max(100) as usize;
    let idle = probe_live(&http, &url, probes / 4, args.probe_ms).await?;

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let answered = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..args.readers)
        .map(|r| {
            let (http, url, answered) = (http.clone(), url.clone(), answered.clone());
            tokio::spawn(async move {
                let reads = [
                    Probe::Get(format!("/v1/traces/heavy-{}", r % traces)),
                    Probe::Get("/v1/events?limit=1000&order=desc".into()),
                ];
                let mut i = r;
                while Instant::now() < deadline {
                    measure(&http, &url, 1, vec![reads[i % 2].clone()]).await?;
                    answered.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    // Let every reader have a request in flight before probing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    // The prober has a thread and a runtime of its own, so that the readers' work in this
    // process does not delay its timing.
    let (probe_url, every) = (url.clone(), args.probe_ms);
    let prober = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let http = client()?;
            warm_up(&http, &probe_url, 1).await?;
            probe_live(&http, &probe_url, probes, every).await
        })
    });
    let busy = tokio::task::spawn_blocking(move || prober.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the prober panicked"))??;
    for reader in readers {
        reader.await??;
    }
    let reads = answered.load(Ordering::Relaxed);
    let store = loaded.store();
    loaded.server.try_stop().map_err(anyhow::Error::msg)?;

    let mut report = Report::new("heavy-reads");
    report
        .set("store", store)
        .set("readers", args.readers)
        .set("trace_events", args.trace_events)
        .set("events", heavy + args.other_events)
        .set(
            "reads_per_s",
            reads as f64 / (started.elapsed().as_secs_f64() + 0.5),
        );
    let idle_p99 = set_latency(&mut report, "idle_live", &idle);
    let busy_p99 = set_latency(&mut report, "live", &busy);
    report
        .set("live_max_ms", busy.last().copied().unwrap_or(0.0))
        .set("ratio", busy_p99 / idle_p99)
        .set("target_live_p99_ms", TARGET_LIVE_P99_MS)
        .set("target_met", busy_p99 < f64::from(TARGET_LIVE_P99_MS));
    Ok(report)
}

/// `n` liveness probes, one every `every_ms`; answers their latencies, sorted.
async fn probe_live(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    every_ms: u64,
) -> anyhow::Result<Vec<f64>> {
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        tick.tick().await;
        latencies.extend(measure(http, url, 1, vec![Probe::Get(LIVE.into())]).await?);
    }
    Ok(sorted(latencies))
}
