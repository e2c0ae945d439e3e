//! Ingest scenarios. `ingest-batch`: N clients post batches to a real server; the baseline
//! is the raw append ceiling of the same store for the same canonical rows. `ingest-single`:
//! one event per request; the baseline is an HTTP server that only parses the JSON.

use crate::Common;
use crate::report::{Report, percentile, sorted};
use crate::server;
use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use stele_core::{IngestDefaults, Limits, SealTime, Timestamp, prepare};
use stele_testkit::PgSchema;
use stele_testkit::events::Generator;
use stele_tlog::leaf_hash;

#[derive(Args, Debug)]
pub struct BatchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Events to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
}

#[derive(Args, Debug)]
pub struct SingleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Requests (one event each) in all.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
}

/// A stored row as the baseline writes it: id, leaf hash, canonical bytes.
type Row = (uuid::Uuid, [u8; 32], Vec<u8>);

/// One measured ingest run and its same-run baseline.
struct Run {
    events: usize,
    elapsed: Duration,
    baseline: Duration,
    latencies: Vec<f64>,
    stored: u64,
}

impl Run {
    /// The figures both ingest scenarios report.
    fn figures(self, report: &mut Report, common: &Common) {
        let n = self.events as f64;
        let rate = n / self.elapsed.as_secs_f64();
        let baseline_rate = n / self.baseline.as_secs_f64();
        let latencies = sorted(self.latencies);
        let store = if common.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        report
            .set("store", store)
            .set("events", self.events)
            .set("seconds", self.elapsed.as_secs_f64())
            .set("events_per_s", rate)
            .set("baseline_per_s", baseline_rate)
            .set("ratio", rate / baseline_rate)
            .set("p50_ms", percentile(&latencies, 50.0))
            .set("p99_ms", percentile(&latencies, 99.0))
            .set(
                "events_lost",
                (self.events as u64).saturating_sub(self.stored),
            );
    }
}

/// Server configuration for a load of `clients` × `batch`.
pub fn server_config(database_url: Option<&str>, batch: usize, clients: usize) -> String {
    let mut config = String::new();
    if let Some(url) = database_url {
        config.push_str(&format!("database_url = \"{url}\"\n"));
    }
    let queue = (batch * clients * 4).max(200_000);
    config.push_str(&format!(
        "[ingest]\nmax_events_per_request = {}\nqueue_events = {queue}\n",
        batch.max(10_000)
    ));
    config
}

/// Posts pre-serialized request bodies from `clients` concurrent tasks; answers the wall
/// time and every request's latency in milliseconds. A 503 is retried after a pause.
pub async fn drive(
    url: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    clients: usize,
) -> anyhow::Result<(Duration, Vec<f64>)> {
    drive_as(url, bodies, clients, None).await
}

/// As [`drive`], sending `api_key` as a bearer token.
pub async fn drive_as(
    url: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    clients: usize,
    api_key: Option<&str>,
) -> anyhow::Result<(Duration, Vec<f64>)> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = api_key {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {key}").parse()?,
        );
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(120))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, bodies, next) = (http.clone(), bodies.clone(), next.clone());
            let endpoint = format!("{url}/v1/events");
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return anyhow::Ok(latencies);
                    };
                    loop {
                        let t = Instant::now();
                        let response = http
                            .post(&endpoint)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await?;
                        match response.status().as_u16() {
                            201 => {
                                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                                break;
                            }
                            503 => tokio::time::sleep(Duration::from_millis(5)).await,
                            s => bail!("ingest answered {s}: {}", response.text().await?),
                        }
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((started.elapsed(), all))
}

/// Waits until the server's index has `tenant` through `last`; answers when that was.
pub async fn wait_searchable(url: &str, tenant: &str, last: u64) -> anyhow::Result<Instant> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let page: Value = http
            .get(format!(
                "{url}/v1/events?tenant={tenant}&limit=1&min_seq={last}"
            ))
            .send()
            .await?
            .json()
            .await?;
        if page["indexed_through"].as_u64().is_some_and(|s| s >= last) {
            return Ok(Instant::now());
        }
        ensure!(Instant::now() < deadline, "the index never reached {last}");
    }
}

/// Events stored in `tenant`'s log, as the server reports.
pub async fn stored(url: &str, tenant: &str) -> anyhow::Result<u64> {
    let logs: Value = reqwest::get(format!("{url}/v1/logs")).await?.json().await?;
    Ok(logs["logs"]
        .as_array()
        .context("no logs")?
        .iter()
        .find(|l| l["tenant"] == tenant)
        .and_then(|l| l["size"].as_u64())
        .unwrap_or(0))
}

/// The rows the server would store for `events`: canonical bytes as sealed, id, leaf hash.
fn canonical_rows(events: &[Value]) -> anyhow::Result<Vec<Row>> {
    let defaults = IngestDefaults {
        tenant: "default",
        occurred_at: Timestamp::from_micros(1_767_225_600_000_000).context("time")?,
    };
    let time = SealTime::new(Timestamp::from_micros(1_767_225_600_000_000).context("time")?);
    events
        .iter()
        .enumerate()
        .map(|(seq, e)| {
            let prepared = prepare(e.clone(), &defaults, &Limits::default(), uuid::Uuid::now_v7)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let bytes = prepared.presealed.seal(seq as u64, &time);
            Ok((prepared.id, leaf_hash(&bytes).0, bytes))
        })
        .collect()
}

/// The raw append ceiling of SQLite for these rows: prepared inserts into the same table
/// shape (rows in append order, position and id indexes), `batch` rows per transaction,
/// WAL with `synchronous=FULL`.
fn sqlite_baseline(rows: &[Row], batch: usize, dir: &std::path::Path) -> anyhow::Result<Duration> {
    let mut conn = rusqlite::Connection::open(dir.join("baseline.db"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE events (log_id INTEGER NOT NULL, seq INTEGER NOT NULL, id BLOB NOT NULL,
             leaf_hash BLOB NOT NULL, body BLOB NOT NULL);
         CREATE UNIQUE INDEX events_by_seq ON events (log_id, seq);
         CREATE UNIQUE INDEX events_by_id ON events (log_id, id);",
    )?;
    let started = Instant::now();
    for (n, chunk) in rows.chunks(batch).enumerate() {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (log_id, seq, id, leaf_hash, body) VALUES (1, ?1, ?2, ?3, ?4)",
            )?;
            for (i, (id, hash, body)) in chunk.iter().enumerate() {
                let seq = (n * batch + i) as i64;
                insert.execute(rusqlite::params![seq, id.as_bytes(), &hash[..], body])?;
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed())
}

/// The raw append ceiling of PostgreSQL for these rows: a binary COPY per batch into the
/// same table shape, each batch one transaction.
fn postgres_baseline(rows: Arc<Vec<Row>>, batch: usize, admin: &str) -> anyhow::Result<Duration> {
    let scratch = PgSchema::create_at(admin)?;
    let url = scratch.url.clone();
    let elapsed = std::thread::spawn(move || -> anyhow::Result<Duration> {
        use postgres::binary_copy::BinaryCopyInWriter;
        use postgres::types::Type;
        let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
        c.batch_execute(
            "CREATE TABLE events (log_id BIGINT NOT NULL, seq BIGINT NOT NULL, id UUID NOT NULL,
                 leaf_hash BYTEA NOT NULL, body BYTEA NOT NULL, PRIMARY KEY (log_id, seq));
             CREATE UNIQUE INDEX events_by_id ON events (log_id, id);",
        )?;
        let started = Instant::now();
        for (n, chunk) in rows.chunks(batch).enumerate() {
            let mut tx = c.transaction()?;
            let sink =
                tx.copy_in("COPY events (log_id, seq, id, leaf_hash, body) FROM STDIN BINARY")?;
            let types = [Type::INT8, Type::INT8, Type::UUID, Type::BYTEA, Type::BYTEA];
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for (i, (id, hash, body)) in chunk.iter().enumerate() {
                let seq = (n * batch + i) as i64;
                writer.write(&[&1i64, &seq, id, &&hash[..], &body.as_slice()])?;
            }
            writer.finish()?;
            tx.commit()?;
        }
        Ok(started.elapsed())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the baseline panicked"))??;
    drop(scratch);
    Ok(elapsed)
}

pub async fn batch(args: BatchArgs) -> anyhow::Result<Report> {
    ensure!(
        args.events > 0 && args.batch > 0 && args.clients > 0,
        "nothing to send"
    );
    let mut generator = Generator::new(args.common.seed, args.common.trace_permille);
    let events = generator.batch(args.events);
    let bodies: Vec<Vec<u8>> = events
        .chunks(args.batch)
        .map(serde_json::to_vec)
        .collect::<Result<_, _>>()?;
    let bodies = Arc::new(bodies);
    let dir = tempfile::tempdir()?;

    let scratch = match &args.common.database_url {
        Some(admin) => Some(PgSchema::create_at(admin)?),
        None => None,
    };
    let config = server_config(
        scratch.as_ref().map(|s| s.url.as_str()),
        args.batch,
        args.clients,
    );
    let server = server::start(&dir.path().join("server"), Some(&config))?;
    let started = Instant::now();
    let (elapsed, latencies) = drive(&server.url, bodies, args.clients).await?;
    let searchable_at = wait_searchable(&server.url, "default", args.events as u64 - 1).await?;
    let stored = stored(&server.url, "default").await?;
    server.try_stop().map_err(anyhow::Error::msg)?;
    drop(scratch);

    let rows = canonical_rows(&events)?;
    crate::server::settle();
    let baseline = match &args.common.database_url {
        Some(admin) => postgres_baseline(Arc::new(rows), args.batch, admin)?,
        None => sqlite_baseline(&rows, args.batch, dir.path())?,
    };

    let mut report = Report::new("ingest-batch");
    report.set("clients", args.clients).set("batch", args.batch);
    let run = Run {
        events: args.events,
        elapsed,
        baseline,
        latencies,
        stored,
    };
    run.figures(&mut report, &args.common);
    report.set(
        "searchable_per_s",
        args.events as f64 / (searchable_at - started).as_secs_f64(),
    );
    Ok(report)
}

/// The HTTP ceiling: parses each request's JSON like the ingest endpoint and answers 201,
/// storing nothing.
async fn parse_only(body: axum::body::Bytes) -> (axum::http::StatusCode, axum::Json<Value>) {
    use axum::http::StatusCode;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(event)) => {
            let receipt =
                json!({"receipts": [{"id": event.get("id"), "seq": 0, "duplicate": false}]});
            (StatusCode::CREATED, axum::Json(receipt))
        }
        _ => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": "invalid_json"})),
        ),
    }
}

/// Runs the parse-only server on its own runtime (as a separate server would be); answers
/// its URL and a handle that stops it when dropped.
fn start_parse_only() -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let _ = url_tx.send(format!("http://{}", listener.local_addr().expect("addr")));
            let app = axum::Router::new().route("/v1/events", axum::routing::post(parse_only));
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    let url = url_rx.recv_timeout(Duration::from_secs(10))?;
    Ok((url, stop_tx))
}

/// `n` generated events, each serialized as the body of a request of its own.
pub fn single_event_bodies(common: &Common, n: usize) -> anyhow::Result<Arc<Vec<Vec<u8>>>> {
    let mut generator = Generator::new(common.seed, common.trace_permille);
    let bodies: Vec<Vec<u8>> = generator
        .batch(n)
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(bodies))
}

pub async fn single(args: SingleArgs) -> anyhow::Result<Report> {
    ensure!(args.events > 0 && args.connections > 0, "nothing to send");
    let bodies = single_event_bodies(&args.common, args.events)?;

    let (baseline_url, stop) = start_parse_only()?;
    let (baseline, _) = drive(&baseline_url, bodies.clone(), args.connections).await?;
    let _ = stop.send(());

    let dir = tempfile::tempdir()?;
    let scratch = match &args.common.database_url {
        Some(admin) => Some(PgSchema::create_at(admin)?),
        None => None,
    };
    let config = server_config(
        scratch.as_ref().map(|s| s.url.as_str()),
        1,
        args.connections,
    );
    let server = server::start(&dir.path().join("server"), Some(&config))?;
    let (elapsed, latencies) = drive(&server.url, bodies, args.connections).await?;
    let stored = stored(&server.url, "default").await?;
    server.try_stop().map_err(anyhow::Error::msg)?;
    drop(scratch);

    let mut report = Report::new("ingest-single");
    report.set("connections", args.connections);
    let run = Run {
        events: args.events,
        elapsed,
        baseline,
        latencies,
        stored,
    };
    run.figures(&mut report, &args.common);
    Ok(report)
}
