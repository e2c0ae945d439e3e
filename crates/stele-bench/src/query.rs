//! Query latency on a loaded store: p50/p99 of a fixed query mix, each query timed from the
//! client (the full request, including the bodies read from the store), against the round
//! trip of `GET /health/live` in the same run.
//!
//! Also the loader and the timing harness the `verify` scenario shares.

use crate::Common;
use crate::ingest::{drive, server_config, stored, wait_searchable};
use crate::report::{Report, percentile, sorted};
use crate::server::{self, Server};
use anyhow::ensure;
use clap::Args;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use stele_core::Timestamp;
use stele_testkit::PgSchema;
use stele_testkit::events::{ACTIONS, ACTORS, Generator, Rng};

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Events to load before querying.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Queries of each kind.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Concurrent clients, loading and querying.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Events per request when loading.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
}

/// The tenant every scenario loads into (the server's default).
pub const TENANT: &str = "default";
/// The liveness endpoint, whose round trip is the floor every latency is compared with.
pub const LIVE: &str = "/health/live";
/// Events generated and posted at a time, so that a large load never sits in memory whole.
const CHUNK_EVENTS: usize = 100_000;
/// Pages followed through `next_cursor` by each deep-paging query.
const DEEP_PAGES: usize = 20;
/// The time window of the time-range queries.
const WINDOW_MICROS: i64 = 3_600 * 1_000_000;
/// The latency objective of every query kind, at p99: 50 ms up to 1,000,000 events,
/// 100 ms up to 10,000,000 (keyset pages seek, so depth and match counts do not grow the
/// cost).
fn target_p99_ms(events: usize) -> u32 {
    if events <= 1_000_000 { 50 } else { 100 }
}

/// A server loaded with generated events, searchable through the last one.
pub struct Loaded {
    pub server: Server,
    /// The scratch PostgreSQL schema the server runs on, if any; dropped after the server.
    pub scratch: Option<PgSchema>,
    /// Events acknowledged per second of posting.
    pub load_per_s: f64,
}

impl Loaded {
    /// The store the server runs on, as the reports name it.
    pub fn store(&self) -> &'static str {
        if self.scratch.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

/// Starts a server in `data` (on a scratch PostgreSQL schema when `common.database_url` is
/// set), posts `events` generated events to it in requests of `batch` from `clients`
/// concurrent clients, and waits until all are stored and searchable. `observe` sees each
/// event (with its position in generation order) before it is sent, and may change it.
pub async fn load(
    common: &Common,
    data: &Path,
    events: usize,
    batch: usize,
    clients: usize,
    mut observe: impl FnMut(usize, &mut Value),
) -> anyhow::Result<Loaded> {
    ensure!(events > 0 && batch > 0 && clients > 0, "nothing to load");
    let scratch = match &common.database_url {
        Some(admin) => Some(PgSchema::create_at(admin)?),
        None => None,
    };
    let config = server_config(scratch.as_ref().map(|s| s.url.as_str()), batch, clients);
    let server = server::start(data, Some(&config))?;

    let mut generator = Generator::new(common.seed, common.trace_permille);
    let requests_per_chunk = (CHUNK_EVENTS / batch).max(clients);
    let mut posting = Duration::ZERO;
    let mut generated = 0;
    while generated < events {
        let mut bodies = Vec::with_capacity(requests_per_chunk);
        while bodies.len() < requests_per_chunk && generated < events {
            let mut request = generator.batch(batch.min(events - generated));
            for event in &mut request {
                observe(generated, event);
                generated += 1;
            }
            bodies.push(serde_json::to_vec(&request)?);
        }
        let (elapsed, _) = drive(&server.url, Arc::new(bodies), clients).await?;
        posting += elapsed;
    }
    wait_searchable(&server.url, TENANT, events as u64 - 1).await?;
    let stored = stored(&server.url, TENANT).await?;
    ensure!(
        stored == events as u64,
        "the server stored {stored} of {events} events"
    );
    Ok(Loaded {
        server,
        scratch,
        load_per_s: events as f64 / posting.as_secs_f64(),
    })
}

/// One timed unit of work; paths are relative to the server's URL.
#[derive(Clone, Debug)]
pub enum Probe {
    /// One GET: one latency.
    Get(String),
    /// A listing followed through `next_cursor` for up to this many pages: one latency a page.
    Pages(String, usize),
}

/// An HTTP client for timing: kept-alive connections, and a timeout well above any latency
/// worth measuring.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// GETs `url` and reads the whole body; answers the latency in milliseconds and the body.
/// Any status but 200 is an error.
async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<(f64, Vec<u8>)> {
    let started = Instant::now();
    let response = http.get(url).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    ensure!(
        status == reqwest::StatusCode::OK,
        "GET {url} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok((ms, body.to_vec()))
}

/// Runs `probes` from `clients` concurrent tasks against the server at `url`; answers every
/// request's latency in milliseconds, sorted.
pub async fn measure(
    http: &reqwest::Client,
    url: &str,
    clients: usize,
    probes: Vec<Probe>,
) -> anyhow::Result<Vec<f64>> {
    let probes = Arc::new(probes);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (http, probes, next) = (http.clone(), probes.clone(), next.clone());
            let url = url.to_string();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while let Some(probe) = probes.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match probe {
                        Probe::Get(path) => {
                            latencies.push(get(&http, &format!("{url}{path}")).await?.0)
                        }
                        Probe::Pages(path, pages) => {
                            let mut page_url = format!("{url}{path}");
                            for _ in 0..*pages {
                                let (ms, body) = get(&http, &page_url).await?;
                                latencies.push(ms);
                                let page: Value = serde_json::from_slice(&body)?;
                                let Some(cursor) = page["next_cursor"].as_str() else {
                                    break;
                                };
                                // Cursors are URL-safe base64: no escaping needed.
                                page_url = format!("{url}{path}&cursor={cursor}");
                            }
                        }
                    }
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(sorted(all))
}

/// Opens a connection per client, so that no measured request pays for a connect.
pub async fn warm_up(http: &reqwest::Client, url: &str, clients: usize) -> anyhow::Result<()> {
    measure(http, url, clients, vec![Probe::Get(LIVE.into()); clients]).await?;
    Ok(())
}

/// Sets `{kind}_p50_ms` and `{kind}_p99_ms` from sorted latencies; answers the p99.
pub fn set_latency(report: &mut Report, kind: &str, sorted_ms: &[f64]) -> f64 {
    let p99 = percentile(sorted_ms, 99.0);
    report
        .set(&format!("{kind}_p50_ms"), percentile(sorted_ms, 50.0))
        .set(&format!("{kind}_p99_ms"), p99);
    p99
}

/// A uniform sample of up to `k` of the values offered (reservoir sampling).
struct Reservoir<T> {
    k: usize,
    offered: u64,
    kept: Vec<T>,
}

impl<T> Reservoir<T> {
    fn new(k: usize) -> Reservoir<T> {
        Reservoir {
            k,
            offered: 0,
            kept: Vec::with_capacity(k),
        }
    }

    /// Offers the value `make` makes, making it only if it is kept.
    fn offer(&mut self, rng: &mut Rng, make: impl FnOnce() -> T) {
        self.offered += 1;
        if self.kept.len() < self.k {
            self.kept.push(make());
        } else {
            let i = rng.below(self.offered) as usize;
            if i < self.k {
                self.kept[i] = make();
            }
        }
    }
}

/// Values seen in the loaded events, to query for what exists.
struct Seen {
    /// Correlation ids, one per trace.
    correlation_ids: Vec<String>,
    /// `occurred_at` of events.
    times: Vec<Timestamp>,
}

/// The query mix: each kind's name and its probes, parameters drawn with `rng` from the
/// generator's value space and from what was loaded.
fn mix(rng: &mut Rng, queries: usize, seen: &Seen) -> Vec<(&'static str, Vec<Probe>)> {
    let mut prefixes: Vec<&str> = ACTIONS.iter().filter_map(|a| a.split('.').next()).collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    let mut kind = |f: &mut dyn FnMut(&mut Rng, usize) -> Probe| -> Vec<Probe> {
        (0..queries).map(|i| f(rng, i)).collect()
    };
    // The samples are random already, so each query takes the next value: queries of a kind
    // do not repeat while there are values enough. Correlation listings and traces take
    // alternate ids, so that neither finds the other's results cached.
    let (ids, times) = (&seen.correlation_ids, &seen.times);
    let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
    let listing = |filter: String| Probe::Get(format!("/v1/events?{filter}&limit=100"));
    vec![
        (
            "actor",
            kind(&mut |r, _| listing(format!("actor_id={}", Generator::actor(r.skewed(ACTORS)).0))),
        ),
        (
            "action_prefix",
            kind(&mut |r, _| listing(format!("action={}.*", prefixes[pick(r, prefixes.len())]))),
        ),
        (
            "ip",
            kind(&mut |r, _| listing(format!("ip={}", Generator::actor(r.skewed(ACTORS)).1))),
        ),
        (
            "correlation",
            kind(&mut |_, i| {
                let id = &ids[(2 * i) % ids.len()];
                listing(format!("correlation_id={id}"))
            }),
        ),
        (
            "time_range",
            kind(&mut |_, i| {
                let from = times[i % times.len()];
                let to = Timestamp::from_micros(from.as_micros() + WINDOW_MICROS).unwrap_or(from);
                listing(format!("from={from}&to={to}&outcome=failure"))
            }),
        ),
        (
            "deep_page",
            kind(&mut |r, _| {
                let prefix = prefixes[pick(r, prefixes.len())];
                let order = if r.below(2) == 0 { "asc" } else { "desc" };
                Probe::Pages(
                    format!("/v1/events?action={prefix}.*&order={order}&limit=100"),
                    DEEP_PAGES,
                )
            }),
        ),
        (
            "trace",
            kind(&mut |_, i| {
                let id = &ids[(2 * i + 1) % ids.len()];
                Probe::Get(format!("/v1/traces/{id}"))
            }),
        ),
    ]
}

pub async fn run(args: QueryArgs) -> anyhow::Result<Report> {
    ensure!(args.queries > 0, "no queries to run");
    ensure!(
        args.common.trace_permille > 0,
        "correlation and trace queries need traced events: --trace-permille must be above 0"
    );
    // Query parameters come from a stream of their own, so that they do not shift the events.
    let mut rng = Rng::new(args.common.seed ^ 0x5175_6572_7900);
    let mut traces = Reservoir::new(2 * args.queries);
    let mut times = Reservoir::new(args.queries);
    let dir = tempfile::tempdir()?;
    let loaded = load(
        &args.common,
        &dir.path().join("server"),
        args.events,
        args.batch,
        args.clients,
        |_, event| {
            // Offer each trace once, at its first step.
            if event["step"]["sequence"] == 0
                && let Some(id) = event["correlation_id"].as_str()
            {
                traces.offer(&mut rng, || id.to_string());
            }
            if let Some(t) = event["occurred_at"].as_str() {
                times.offer(&mut rng, || t.to_string());
            }
        },
    )
    .await?;
    ensure!(
        !traces.kept.is_empty(),
        "no traced events were loaded: raise --trace-permille or --events"
    );
    let seen = Seen {
        correlation_ids: traces.kept,
        times: times
            .kept
            .iter()
            .map(|t| Timestamp::parse(t))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?,
    };

    let (http, url) = (client()?, loaded.server.url.clone());
    warm_up(&http, &url, args.clients).await?;
    let baseline = measure(
        &http,
        &url,
        args.clients,
        vec![Probe::Get(LIVE.into()); args.queries],
    )
    .await?;
    let mut report = Report::new("query");
    report
        .set("store", loaded.store())
        .set("events", args.events)
        .set("clients", args.clients)
        .set("queries", args.queries)
        .set("load_per_s", loaded.load_per_s);
    let baseline_p99 = set_latency(&mut report, "baseline", &baseline);
    let mut worst = 0.0_f64;
    for (kind, probes) in mix(&mut rng, args.queries, &seen) {
        let latencies = measure(&http, &url, args.clients, probes).await?;
        worst = worst.max(set_latency(&mut report, kind, &latencies));
    }
    loaded.server.try_stop().map_err(anyhow::Error::msg)?;
    report
        .set("p99_ms", worst)
        .set("ratio", worst / baseline_p99)
        .set("target_p99_ms", target_p99_ms(args.events))
        .set("target_met", worst <= f64::from(target_p99_ms(args.events)));
    Ok(report)
}
