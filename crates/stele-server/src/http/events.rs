//! Reading events: filtered listings and traces run on the search index, which yields
//! `seq`s; the bodies are then read from the store, exactly as stored.

use super::AppState;
use super::problem::ApiError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use stele_core::cursor::{Cursor, SortOrder};
use stele_core::{ActorType, Category, ErrorCode, Event, Level, Outcome, StepStatus, Timestamp};
use stele_index::{ActionFilter, EventQuery, SearchPage};
use stele_store::StoredEvent;
use uuid::Uuid;

/// The longest `min_seq` waits for the index.
const MAX_INDEX_WAIT: Duration = Duration::from_secs(5);
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;
/// The most events one trace answer holds.
const MAX_TRACE_EVENTS: usize = 10_000;

pub(super) type Params = Query<Vec<(String, String)>>;

/// Query parameters, each allowed once; unknown ones are an error rather than ignored.
pub(super) struct ParamReader {
    params: HashMap<String, String>,
}

impl ParamReader {
    pub(super) fn new(
        raw: Vec<(String, String)>,
        allowed: &[&str],
    ) -> Result<ParamReader, ApiError> {
        let mut params = HashMap::new();
        for (key, value) in raw {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::invalid_query(format!(
                    "unknown parameter `{key}`; accepted: {}",
                    allowed.join(", ")
                )));
            }
            if params.insert(key.clone(), value).is_some() {
                return Err(ApiError::invalid_query(format!(
                    "parameter `{key}` is given more than once"
                )));
            }
        }
        Ok(ParamReader { params })
    }

    fn text(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.params.get(key) {
            Some(v) if v.is_empty() => Err(ApiError::invalid_query(format!("`{key}` is empty"))),
            Some(v) if v.len() > 4096 => {
                Err(ApiError::invalid_query(format!("`{key}` is too long")))
            }
            other => Ok(other.cloned()),
        }
    }

    pub(super) fn parsed<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.text(key)?
            .map(|v| parse(&v).map_err(|e| ApiError::invalid_query(format!("`{key}`: {e}"))))
            .transpose()
    }

    pub(super) fn tenant(&self, state: &AppState) -> Result<String, ApiError> {
        let tenant = self
            .text("tenant")?
            .unwrap_or_else(|| state.config.default_tenant.clone());
        stele_core::validate_tenant(&tenant)
            .map_err(|e| ApiError::new(ErrorCode::InvalidTenant, e))?;
        Ok(tenant)
    }
}

fn enum_param<T>(
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> impl Fn(&str) -> Result<T, String> {
    move |v| parse(v).ok_or_else(|| format!("`{v}` is not one of {}", expected()))
}

const LIST_PARAMS: &[&str] = &[
    "tenant",
    "from",
    "to",
    "actor_id",
    "actor_type",
    "ip",
    "action",
    "category",
    "level",
    "outcome",
    "resource_type",
    "resource_id",
    "correlation_id",
    "request_id",
    "trace_id",
    "error_code",
    "order",
    "limit",
    "cursor",
    "min_seq",
];

fn list_query(p: &ParamReader, tenant: String) -> Result<EventQuery, ApiError> {
    let mut q = EventQuery::all(&tenant, DEFAULT_LIMIT);
    q.from = p.parsed("from", Timestamp::parse)?;
    q.to = p.parsed("to", Timestamp::parse)?;
    q.actor_id = p.text("actor_id")?;
    q.actor_type = p.parsed(
        "actor_type",
        enum_param(ActorType::parse, ActorType::expected),
    )?;
    q.ip = p.parsed("ip", |v| {
        v.parse().map_err(|_| format!("`{v}` is not an IP address"))
    })?;
    q.action = p.parsed("action", parse_action)?;
    q.category = p.parsed("category", enum_param(Category::parse, Category::expected))?;
    q.min_level = p.parsed("level", enum_param(Level::parse, Level::expected))?;
    q.outcome = p.parsed("outcome", enum_param(Outcome::parse, Outcome::expected))?;
    q.resource_type = p.text("resource_type")?;
    q.resource_id = p.text("resource_id")?;
    q.correlation_id = p.text("correlation_id")?;
    q.request_id = p.text("request_id")?;
    q.trace_id = p.text("trace_id")?;
    q.error_code = p.text("error_code")?;
    q.order = p
        .parsed("order", |v| match v {
            "asc" => Ok(SortOrder::Asc),
            "desc" => Ok(SortOrder::Desc),
            _ => Err(format!("`{v}` is not one of asc, desc")),
        })?
        .unwrap_or(SortOrder::Asc);
    q.limit = p
        .parsed("limit", |v| match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
        })?
        .unwrap_or(DEFAULT_LIMIT);
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(ApiError::invalid_query("`from` is after `to`"));
    }
    if let Some(text) = p.text("cursor")? {
        let cursor = Cursor::decode(&text)
            .map_err(|e| ApiError::new(ErrorCode::InvalidCursor, e.to_string()))?;
        if cursor.order != q.order {
            return Err(ApiError::new(
                ErrorCode::InvalidCursor,
                "the cursor belongs to a listing in the other order",
            ));
        }
        q.after = Some(cursor.after);
    }
    Ok(q)
}

fn parse_action(v: &str) -> Result<ActionFilter, String> {
    match v.strip_suffix('*') {
        Some(prefix) => {
            let ok = prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
            if ok {
                Ok(ActionFilter::Prefix(prefix.to_string()))
            } else {
                Err(format!("`{v}` is not an action prefix like `user.*`"))
            }
        }
        None => stele_core::validate_action(v).map(|_| ActionFilter::Exact(v.to_string())),
    }
}

/// Waits until the index has `tenant` through `min_seq`, or the wait limit passes.
async fn wait_for_index(state: &AppState, tenant: &str, min_seq: u64) {
    let mut progress = state.index_progress.subscribe();
    let _ = tokio::time::timeout(MAX_INDEX_WAIT, async {
        loop {
            if state
                .index
                .indexed_through(tenant)
                .is_some_and(|s| s >= min_seq)
            {
                return;
            }
            if progress.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
}

/// Runs the search and reads the bodies, on a blocking thread.
async fn search_and_read(
    state: &Arc<AppState>,
    q: EventQuery,
) -> Result<(SearchPage, Vec<StoredEvent>), ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let page = state.index.search(&q).map_err(ApiError::internal)?;
        let events = state
            .store
            .read_seqs(&q.tenant, &page.seqs)
            .map_err(ApiError::unavailable)?;
        Ok((page, events))
    })
    .await
    .map_err(ApiError::internal)?
}

pub(super) fn json_response(body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Appends `events` as a JSON array of their stored bytes, without re-encoding them.
fn push_events(out: &mut Vec<u8>, events: &[StoredEvent]) {
    out.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&e.bytes);
    }
    out.push(b']');
}

/// A page of events (the schema of `GET /v1/events`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<stele_core::Event>,
    /// Pass as `cursor` to read the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// The last `seq` of the log the search index had when answering.
    pub indexed_through: Option<u64>,
}

/// List and filter events
///
/// Filters run on the search index; `indexed_through` says how far it has caught up, and
/// `min_seq` waits (up to 5 s) until it reaches that `seq` for read-your-writes.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(
        ("tenant" = Option<String>, Query, description = "The log (default: the server's default tenant)"),
        ("from" = Option<String>, Query, description = "occurred_at >= from (RFC 3339)"),
        ("to" = Option<String>, Query, description = "occurred_at < to (RFC 3339)"),
        ("actor_id" = Option<String>, Query), ("actor_type" = Option<String>, Query), ("ip" = Option<String>, Query),
        ("action" = Option<String>, Query, description = "Exact action, or a prefix ending in `*` (`user.*`)"),
        ("category" = Option<String>, Query), ("level" = Option<String>, Query, description = "Minimum level"),
        ("outcome" = Option<String>, Query), ("resource_type" = Option<String>, Query), ("resource_id" = Option<String>, Query),
        ("correlation_id" = Option<String>, Query), ("request_id" = Option<String>, Query), ("trace_id" = Option<String>, Query),
        ("error_code" = Option<String>, Query),
        ("order" = Option<String>, Query, description = "asc (default) or desc, by seq"),
        ("limit" = Option<usize>, Query, description = "1..=1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("min_seq" = Option<u64>, Query, description = "Wait until the index reaches this seq"),
    ),
    responses(
        (status = 200, body = EventPage),
        (status = 400, body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let p = ParamReader::new(raw, LIST_PARAMS)?;
    let tenant = p.tenant(&state)?;
    let min_seq = p.parsed("min_seq", |v| {
        v.parse::<u64>()
            .map_err(|_| "must be a whole number".to_string())
    })?;
    let q = list_query(&p, tenant.clone())?;
    if let Some(min_seq) = min_seq {
        wait_for_index(&state, &tenant, min_seq).await;
    }
    let (order, limit) = (q.order, q.limit);
    let (page, events) = search_and_read(&state, q).await?;
    let next_cursor = (page.has_more && page.seqs.len() == limit)
        .then(|| {
            page.seqs
                .last()
                .map(|&after| Cursor { order, after }.encode())
        })
        .flatten();

    let mut out = Vec::with_capacity(events.iter().map(|e| e.bytes.len() + 1).sum::<usize>() + 128);
    out.extend_from_slice(b"{\"events\":");
    push_events(&mut out, &events);
    out.extend_from_slice(b",\"next_cursor\":");
    serde_json::to_writer(&mut out, &next_cursor).expect("writes to a Vec");
    out.extend_from_slice(b",\"indexed_through\":");
    serde_json::to_writer(&mut out, &page.indexed_through).expect("writes to a Vec");
    out.push(b'}');
    Ok(json_response(out))
}

/// An event with its inclusion proof (`GET /v1/events/{id}?proof=true`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProvenEvent {
    /// The event exactly as stored; its leaf hash is SHA-256(0x00 ‖ its RFC 8785 bytes).
    pub event: stele_core::Event,
    pub proof: super::logs::InclusionProof,
}

/// Get one event by id
///
/// The event exactly as stored (its canonical bytes), including its `seq`. With
/// `proof=true`, the answer is a `ProvenEvent`: the event and its inclusion proof against
/// the latest signed checkpoint (waiting for the next checkpoint if none covers it yet).
#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events",
    params(("id" = Uuid, Path), ("tenant" = Option<String>, Query),
        ("proof" = Option<bool>, Query, description = "Add the inclusion proof")),
    responses(
        (status = 200, body = stele_core::Event),
        (status = 404, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let p = ParamReader::new(raw, &["tenant", "proof"])?;
    let tenant = p.tenant(&state)?;
    let proof = p
        .parsed("proof", |v| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("must be true or false".to_string()),
        })?
        .unwrap_or(false);
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::invalid_query(format!("`{id}` is not a UUID")))?;
    // With a proof asked for, build it in the same blocking call when the latest checkpoint
    // already covers the event (the usual case); otherwise wait for one below.
    let latest = state.checkpoints.latest(&tenant).filter(|_| proof);
    let reader = super::logs::ProofReader::new(&state, &tenant);
    let (found, proven) = tokio::task::spawn_blocking(move || {
        let found = reader
            .store
            .get_by_id(&reader.tenant, id)
            .map_err(ApiError::unavailable)?;
        let proven = match (&found, latest) {
            (Some(event), Some(signed)) if event.seq < signed.size => {
                Some(reader.inclusion(&signed, event.seq)?)
            }
            _ => None,
        };
        Ok::<_, ApiError>((found, proven))
    })
    .await
    .map_err(ApiError::internal)??;
    match found {
        Some(event) if proof => {
            let proof = match proven {
                Some(proof) => proof,
                None => super::logs::inclusion(&state, &tenant, event.seq).await?,
            };
            let mut out = Vec::with_capacity(event.bytes.len() + 4096);
            out.extend_from_slice(b"{\"event\":");
            out.extend_from_slice(&event.bytes);
            out.extend_from_slice(b",\"proof\":");
            serde_json::to_writer(&mut out, &proof).expect("writes to a Vec");
            out.push(b'}');
            Ok(json_response(out))
        }
        Some(event) => Ok(json_response(event.bytes)),
        None => Err(ApiError::not_found(format!(
            "no event {id} in log `{tenant}`"
        ))),
    }
}

/// One step of a traced operation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TraceStep {
    pub name: String,
    /// `step.sequence` of the step's events, when given.
    pub sequence: Option<u32>,
    /// The status of the step's last event.
    pub status: Option<StepStatus>,
    pub started_at: String,
    pub ended_at: String,
    /// The reported `duration_ms` of the step's last event, else the time between its first and last event.
    pub duration_ms: u64,
    pub events: usize,
    /// The most severe level among the step's events.
    pub level: Level,
}

/// Every event of one operation, with per-step timing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Trace {
    pub correlation_id: String,
    pub tenant: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
    /// The outcome of the last event.
    pub outcome: Option<Outcome>,
    pub steps: Vec<TraceStep>,
    /// In `seq` order.
    pub events: Vec<stele_core::Event>,
    /// More than 10,000 events share this correlation id; only the first are here.
    pub truncated: bool,
    pub indexed_through: Option<u64>,
}

/// Trace one operation
///
/// Every event sharing `correlation_id`, in `seq` order, with the steps they report
/// (`step.name`, `step.status`, `step.sequence`) and each step's timing.
#[utoipa::path(
    get, path = "/v1/traces/{correlation_id}", tag = "events",
    params(("correlation_id" = String, Path), ("tenant" = Option<String>, Query), ("min_seq" = Option<u64>, Query)),
    responses(
        (status = 200, body = Trace),
        (status = 404, body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn trace(
    State(state): State<Arc<AppState>>,
    Path(correlation_id): Path<String>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let p = ParamReader::new(raw, &["tenant", "min_seq"])?;
    let tenant = p.tenant(&state)?;
    if correlation_id.is_empty() || correlation_id.len() > 4096 {
        return Err(ApiError::invalid_query(
            "the correlation id must be 1-4096 bytes",
        ));
    }
    if let Some(min_seq) = p.parsed("min_seq", |v| {
        v.parse::<u64>()
            .map_err(|_| "must be a whole number".to_string())
    })? {
        wait_for_index(&state, &tenant, min_seq).await;
    }
    let mut q = EventQuery::all(&tenant, MAX_TRACE_EVENTS);
    q.correlation_id = Some(correlation_id.clone());
    let (page, stored) = search_and_read(&state, q).await?;
    if stored.is_empty() {
        return Err(ApiError::not_found(format!(
            "no events with correlation id `{correlation_id}` in log `{tenant}`"
        )));
    }
    let events: Vec<Event> = stored
        .iter()
        .map(|s| Event::from_stored(&s.bytes))
        .collect::<Result<_, _>>()
        .map_err(ApiError::internal)?;
    let trace = build_trace(
        correlation_id,
        tenant,
        events,
        page.has_more,
        page.indexed_through,
    );
    Ok(axum::Json(trace).into_response())
}

fn occurred(e: &Event) -> Timestamp {
    e.occurred_at.or(e.received_at).unwrap_or(Timestamp::MIN)
}

fn span_ms(from: Timestamp, to: Timestamp) -> u64 {
    u64::try_from((to.as_micros() - from.as_micros()) / 1000).unwrap_or(0)
}

fn build_trace(
    correlation_id: String,
    tenant: String,
    events: Vec<Event>,
    truncated: bool,
    indexed_through: Option<u64>,
) -> Trace {
    struct Acc {
        name: String,
        sequence: Option<u32>,
        status: Option<StepStatus>,
        first: Timestamp,
        last: Timestamp,
        reported_ms: Option<u64>,
        events: usize,
        level: Level,
    }
    let mut accs: Vec<Acc> = Vec::new();
    for e in &events {
        let Some(step) = &e.step else { continue };
        let at = occurred(e);
        let level = e.level.unwrap_or(Level::Info);
        match accs.iter_mut().find(|a| a.name == step.name) {
            Some(a) => {
                a.events += 1;
                a.status = step.status.or(a.status);
                a.sequence = a.sequence.or(step.sequence);
                a.level = a.level.max(level);
                a.first = a.first.min(at);
                a.last = a.last.max(at);
                a.reported_ms = e.duration_ms.or(a.reported_ms);
            }
            None => accs.push(Acc {
                name: step.name.clone(),
                sequence: step.sequence,
                status: step.status,
                first: at,
                last: at,
                reported_ms: e.duration_ms,
                events: 1,
                level,
            }),
        }
    }
    // Steps with a sequence number in that order; the others after them, as first seen.
    accs.sort_by_key(|a| a.sequence.unwrap_or(u32::MAX));
    let steps = accs
        .into_iter()
        .map(|a| TraceStep {
            duration_ms: a.reported_ms.unwrap_or_else(|| span_ms(a.first, a.last)),
            name: a.name,
            sequence: a.sequence,
            status: a.status,
            started_at: a.first.to_string(),
            ended_at: a.last.to_string(),
            events: a.events,
            level: a.level,
        })
        .collect();
    let started = events.iter().map(occurred).min().unwrap_or(Timestamp::MIN);
    let ended = events.iter().map(occurred).max().unwrap_or(Timestamp::MIN);
    Trace {
        correlation_id,
        tenant,
        started_at: started.to_string(),
        ended_at: ended.to_string(),
        duration_ms: span_ms(started, ended),
        outcome: events.last().and_then(|e| e.outcome),
        steps,
        truncated,
        indexed_through,
        events,
    }
}
