//! `GET /v1/traces/{correlation_id}`: every event of one operation in `seq` order, with
//! the steps they report and each step's timing.

use super::AppState;
use super::error::ApiError;
use super::events::{json_response, search_and_read, wait_for_index};
use super::params::{ParamReader, Params};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Arc;
use stele_api::{Trace, TraceStep};
use stele_core::{Event, Level, StepStatus, Timestamp};
use stele_index::EventQuery;

/// The most events one trace answer holds.
const MAX_TRACE_EVENTS: usize = 10_000;

/// Trace one operation
///
/// Every event sharing `correlation_id`, in `seq` order, with the steps they report
/// (`step.name`, `step.status`, `step.sequence`) and each step's timing.
#[utoipa::path(
    get, path = "/v1/traces/{correlation_id}", tag = "events", operation_id = "get_trace",
    params(("correlation_id" = String, Path), ("tenant" = Option<String>, Query), ("min_seq" = Option<u64>, Query)),
    responses(
        (status = 200, body = stele_api::Trace),
        (status = 400, description = "A parameter is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No event has this correlation id", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
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
    let waited = match p.min_seq()? {
        Some(min_seq) => Some(wait_for_index(&state, &tenant, min_seq).await?),
        None => None,
    };
    let mut q = EventQuery::all(&tenant, MAX_TRACE_EVENTS);
    q.correlation_id = Some(correlation_id.clone());
    // Searching, reading, parsing, grouping and encoding up to 10,000 events: one job on
    // a reader thread.
    let reading = state.clone();
    let body = state
        .reads
        .run(move || {
            let (page, stored) = search_and_read(&reading, &q)?;
            if stored.is_empty() {
                return Err(ApiError::not_found(format!(
                    "no events with correlation id `{correlation_id}` in log `{tenant}`"
                )));
            }
            let events: Vec<Event> = stored
                .iter()
                .map(|s| Event::from_stored(&s.bytes))
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    ApiError::corrupt(format!("log {tenant}: unreadable stored event: {e}"))
                })?;
            let mut trace = build_trace(
                correlation_id,
                tenant,
                events,
                page.has_more,
                page.indexed_through,
            );
            trace.min_seq_wait = waited;
            let n = stored.len();
            Ok((serde_json::to_vec(&trace).map_err(ApiError::internal)?, n))
        })
        .await?;
    let (body, n) = body;
    Ok(super::events::counted(json_response(body), n))
}

fn occurred(e: &Event) -> Timestamp {
    e.occurred_at.or(e.received_at).unwrap_or(Timestamp::MIN)
}

fn span_ms(from: Timestamp, to: Timestamp) -> u64 {
    u64::try_from((to.as_micros() - from.as_micros()) / 1000).unwrap_or(0)
}

/// Groups the events' steps (in time linear in the events) and times the operation.
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
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        let Some(step) = &e.step else { continue };
        let at = occurred(e);
        let level = e.level.unwrap_or(Level::Info);
        match by_name.get(step.name.as_str()) {
            Some(&i) => {
                let a = &mut accs[i];
                a.events += 1;
                a.status = step.status.or(a.status);
                a.sequence = a.sequence.or(step.sequence);
                a.level = a.level.max(level);
                a.first = a.first.min(at);
                a.last = a.last.max(at);
                a.reported_ms = e.duration_ms.or(a.reported_ms);
            }
            None => {
                by_name.insert(&step.name, accs.len());
                accs.push(Acc {
                    name: step.name.clone(),
                    sequence: step.sequence,
                    status: step.status,
                    first: at,
                    last: at,
                    reported_ms: e.duration_ms,
                    events: 1,
                    level,
                });
            }
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
        min_seq_wait: None,
    }
}
