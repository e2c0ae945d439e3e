//! Reading events: filtered listings run on the search index, which yields `seq`s; the
//! bodies are then read from the store and answered exactly as stored, unparsed.

use super::AppState;
use super::error::{ApiError, blocking};
use super::params::{ParamReader, Params, boolean, enum_param, whole};
use super::proofs::{self, ProofReader};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use stele_api::{ErrorCode, MinSeqWait};
use stele_core::cursor::{Cursor, SortOrder, listing_digest};
use stele_core::{ActorType, Category, Level, Outcome, Timestamp};
use stele_index::{ActionFilter, EventQuery, SearchPage};
use stele_store::StoredEvent;
use uuid::Uuid;

/// The longest `min_seq` waits for the index.
const MAX_INDEX_WAIT: Duration = Duration::from_secs(5);
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

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
    "step",
    "min_duration_ms",
    "max_duration_ms",
    "received_from",
    "received_to",
    "text",
    "order",
    "limit",
    "cursor",
    "min_seq",
];

/// The query a listing asks for, and its digest for cursors.
fn list_query(p: &ParamReader, tenant: String) -> Result<(EventQuery, u64), ApiError> {
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
    q.step = p.text("step")?;
    q.min_duration_ms = p.parsed("min_duration_ms", whole)?;
    q.max_duration_ms = p.parsed("max_duration_ms", whole)?;
    q.received_from = p.parsed("received_from", Timestamp::parse)?;
    q.received_to = p.parsed("received_to", Timestamp::parse)?;
    q.text = p.text("text")?;
    q.order = p
        .parsed("order", |v| match v {
            "asc" => Ok(SortOrder::Asc),
            "desc" => Ok(SortOrder::Desc),
            _ => Err(format!("`{v}` is not one of asc, desc")),
        })?
        .unwrap_or(SortOrder::Asc);
    q.limit = p.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(ApiError::invalid_query("`from` is after `to`"));
    }
    if let (Some(from), Some(to)) = (q.received_from, q.received_to)
        && from > to
    {
        return Err(ApiError::invalid_query(
            "`received_from` is after `received_to`",
        ));
    }
    let listing = listing_digest(
        &q.tenant,
        q.order,
        &p.given_except(&["tenant", "order", "limit", "cursor", "min_seq"]),
    );
    if let Some(text) = p.text("cursor")? {
        let cursor = Cursor::decode(&text)
            .map_err(|e| ApiError::new(ErrorCode::InvalidCursor, e.to_string()))?;
        if cursor.listing != listing || cursor.order != q.order {
            return Err(ApiError::new(
                ErrorCode::InvalidCursor,
                "the cursor belongs to another listing (another log, other filters or the other order); page with the parameters that gave it",
            ));
        }
        q.after = Some(cursor.after);
    }
    Ok((q, listing))
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

/// Waits until the index has `tenant` through `min_seq`, or the wait limit passes; answers
/// at once if the log has no event at `min_seq` yet.
pub(super) async fn wait_for_index(
    state: &Arc<AppState>,
    tenant: &str,
    min_seq: u64,
) -> Result<MinSeqWait, ApiError> {
    let reached = || {
        state
            .index
            .indexed_through(tenant)
            .is_some_and(|s| s >= min_seq)
    };
    if reached() {
        return Ok(MinSeqWait::Reached);
    }
    let reading = state.clone();
    let log = tenant.to_string();
    let assigned =
        blocking(move || Ok(!reading.store.read_range(&log, min_seq, 1)?.is_empty())).await?;
    if !assigned {
        return Ok(MinSeqWait::NotAssigned);
    }
    let mut progress = state.index_progress.subscribe();
    let waited = tokio::time::timeout(MAX_INDEX_WAIT, async {
        while !reached() {
            if progress.changed().await.is_err() {
                return reached();
            }
        }
        true
    })
    .await;
    Ok(match waited {
        Ok(true) => MinSeqWait::Reached,
        Ok(false) | Err(_) => MinSeqWait::TimedOut,
    })
}

/// Runs the search and reads the bodies (blocking: call it on a reader thread).
pub(super) fn search_and_read(
    state: &AppState,
    q: &EventQuery,
) -> Result<(SearchPage, Vec<StoredEvent>), ApiError> {
    let page = state.index.search(q)?;
    let events = state.store.read_seqs(&q.tenant, &page.seqs)?;
    Ok((page, events))
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

/// List and filter events
///
/// Filters run on the search index; `indexed_through` says how far it has caught up, and
/// `min_seq` waits (up to 5 s) until it reaches that `seq` for read-your-writes;
/// `min_seq_wait` then says whether it did, timed out, or found no such `seq` yet (which
/// answers at once). A cursor is valid only for the listing (log, filters, order) that
/// gave it.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "list_events",
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
        ("step" = Option<String>, Query, description = "`step.name`"),
        ("min_duration_ms" = Option<u64>, Query, description = "duration_ms >= this"),
        ("max_duration_ms" = Option<u64>, Query, description = "duration_ms <= this"),
        ("received_from" = Option<String>, Query, description = "received_at >= this (RFC 3339)"),
        ("received_to" = Option<String>, Query, description = "received_at < this (RFC 3339)"),
        ("text" = Option<String>, Query, description = "Words that must all occur (any case) in the action, actor and resource names, error message, or the strings and numbers of `details`"),
        ("order" = Option<String>, Query, description = "asc (default) or desc, by seq"),
        ("limit" = Option<usize>, Query, description = "1..=1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("min_seq" = Option<u64>, Query, description = "Wait (up to 5 s) until the index reaches this seq; see `min_seq_wait`"),
    ),
    responses(
        (status = 200, body = stele_api::EventPage),
        (status = 400, description = "A parameter or the cursor is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let p = ParamReader::new(raw, LIST_PARAMS)?;
    let tenant = p.tenant(&state)?;
    let min_seq = p.min_seq()?;
    let (q, listing) = list_query(&p, tenant.clone())?;
    let waited = match min_seq {
        Some(min_seq) => Some(wait_for_index(&state, &tenant, min_seq).await?),
        None => None,
    };
    let (order, limit) = (q.order, q.limit);
    let reading = state.clone();
    let (page, events) = state
        .reads
        .run(move || search_and_read(&reading, &q))
        .await?;
    let next_cursor = (page.has_more && page.seqs.len() == limit)
        .then(|| {
            page.seqs.last().map(|&after| {
                Cursor {
                    order,
                    after,
                    listing,
                }
                .encode()
            })
        })
        .flatten();

    let mut out = Vec::with_capacity(events.iter().map(|e| e.bytes.len() + 1).sum::<usize>() + 128);
    out.extend_from_slice(b"{\"events\":");
    push_events(&mut out, &events);
    out.extend_from_slice(b",\"next_cursor\":");
    serde_json::to_writer(&mut out, &next_cursor).expect("writes to a Vec");
    out.extend_from_slice(b",\"indexed_through\":");
    serde_json::to_writer(&mut out, &page.indexed_through).expect("writes to a Vec");
    if let Some(waited) = waited {
        out.extend_from_slice(b",\"min_seq_wait\":");
        serde_json::to_writer(&mut out, &waited).expect("writes to a Vec");
    }
    out.push(b'}');
    Ok(counted(json_response(out), events.len()))
}

/// Notes how many results an answer holds, for the meta-audit.
pub(super) fn counted(mut response: Response, n: usize) -> Response {
    response
        .extensions_mut()
        .insert(super::audit::ResultCount(n as u64));
    response
}

/// Get one event by id
///
/// The event exactly as stored (its canonical bytes), including its `seq`. With
/// `proof=true`, the answer is a `ProvenEvent`: the event and its inclusion proof against
/// the latest signed checkpoint (waiting for the next checkpoint if none covers it yet).
#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events", operation_id = "get_event",
    params(("id" = Uuid, Path), ("tenant" = Option<String>, Query),
        ("proof" = Option<bool>, Query, description = "Add the inclusion proof")),
    responses(
        (status = 200, description = "The event; with `proof=true`, the event and its proof", body = stele_api::EventAnswer),
        (status = 400, description = "The id is not a UUID, or a parameter is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event in the log", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable, or no checkpoint covers the event yet (`checkpoint_pending`); retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let p = ParamReader::new(raw, &["tenant", "proof"])?;
    let tenant = p.tenant(&state)?;
    let proof = p.parsed("proof", boolean)?.unwrap_or(false);
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::invalid_query(format!("`{id}` is not a UUID")))?;
    // With a proof asked for, build it in the same blocking call when the latest checkpoint
    // already covers the event (the usual case); otherwise wait for one below.
    let latest = state.checkpoints.latest(&tenant).filter(|_| proof);
    let reader = ProofReader::new(&state, &tenant);
    let (found, proven) = blocking(move || {
        let found = reader.store.get_by_id(&reader.tenant, id)?;
        let proven = match (&found, latest) {
            (Some(event), Some(signed)) if event.seq < signed.size => {
                Some(reader.inclusion(&signed, event.seq)?)
            }
            _ => None,
        };
        Ok((found, proven))
    })
    .await?;
    match found {
        Some(event) if proof => {
            let proof = match proven {
                Some(proof) => proof,
                None => proofs::inclusion(&state, &tenant, event.seq).await?,
            };
            let mut out = Vec::with_capacity(event.bytes.len() + 4096);
            out.extend_from_slice(b"{\"event\":");
            out.extend_from_slice(&event.bytes);
            out.extend_from_slice(b",\"proof\":");
            serde_json::to_writer(&mut out, &proof).expect("writes to a Vec");
            out.push(b'}');
            Ok(counted(json_response(out), 1))
        }
        Some(event) => Ok(counted(json_response(event.bytes), 1)),
        None => Err(ApiError::not_found(format!(
            "no event {id} in log `{tenant}`"
        ))),
    }
}
