//! `POST /v1/events`: parse one event, an array or NDJSON; validate all; store all or
//! nothing; answer one receipt per event once they are durable.

use super::AppState;
use super::error::ApiError;
use super::params::{ParamReader, Params};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use std::sync::Arc;
use stele_api::{ErrorCode, EventError, IngestResponse, Receipt};
use stele_core::validate::{IngestDefaults, prepare_json};
use stele_core::{Limits, Timestamp};
use stele_store::NewEvent;
use uuid::Uuid;

/// Bodies up to this size are parsed on the async worker that received them.
const INLINE_PARSE_BYTES: usize = 16 * 1024;

enum Format {
    Json,
    Ndjson,
}

fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Json);
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "" => Ok(Format::Json),
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" => Ok(Format::Ndjson),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "content type `{other}` is not accepted; send application/json or application/x-ndjson"
            ),
        )),
    }
}

/// Ingest events
///
/// Accepts one event object, a JSON array of events, or NDJSON (one event per line). All or
/// nothing: if any event is invalid nothing is stored and every bad event is listed.
#[utoipa::path(
    post, path = "/v1/events", tag = "events", operation_id = "ingest_events",
    params(("tenant" = Option<String>, Query, description = "The log for events that do not name one")),
    request_body(description = "An event or an array of events as JSON, or NDJSON (one event per line)",
        content(
            (stele_api::IngestBody = "application/json"),
            (String = "application/x-ndjson"),
        )),
    responses(
        (status = 201, description = "Stored durably", body = IngestResponse),
        (status = 400, description = "The body is not JSON, holds no events, or `tenant` is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large or too many events", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor NDJSON", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid events; nothing stored", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Queue full or store unavailable; retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    Query(raw): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = format_of(&headers)?;
    let limits = &state.config.ingest;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > limits.max_body_bytes
    {
        return Err(too_large(limits.max_body_bytes));
    }
    let bytes = axum::body::to_bytes(body, limits.max_body_bytes)
        .await
        .map_err(|_| too_large(limits.max_body_bytes))?;
    let tenant = ParamReader::new(raw, &["tenant"])?.tenant(&state)?;
    let max_events = limits.max_events_per_request;

    // Parsing and validating thousands of events is CPU work: keep it off the async workers.
    // A small body (a few events, microseconds of work) is cheaper to parse right here than
    // to hand to another thread and back.
    let events = if bytes.len() <= INLINE_PARSE_BYTES {
        parse_and_prepare(&bytes, format, &tenant, max_events)?
    } else {
        tokio::task::spawn_blocking(move || parse_and_prepare(&bytes, format, &tenant, max_events))
            .await??
    };

    let keys: Vec<(Uuid, String)> = events.iter().map(|e| (e.id, e.tenant.clone())).collect();
    let appended = state.sequencer.submit(events).await?;
    // A batch mostly shares one server time: format it once.
    let mut time: Option<(Timestamp, String)> = None;
    let receipts = keys
        .into_iter()
        .zip(appended)
        .map(|((id, tenant), a)| Receipt {
            id,
            seq: a.seq,
            tenant,
            received_at: match &time {
                Some((at, text)) if *at == a.received_at => text.clone(),
                _ => time
                    .insert((a.received_at, a.received_at.to_string()))
                    .1
                    .clone(),
            },
            leaf_hash: a.leaf_hash.to_base64(),
            duplicate: a.duplicate,
        })
        .collect();
    Ok((StatusCode::CREATED, axum::Json(IngestResponse { receipts })).into_response())
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body exceeds {max} bytes"),
    )
}

/// Splits the body into the JSON text of each event (`None` for an NDJSON line that is not
/// JSON, already listed in the errors), without building any JSON tree.
fn split_events<'a>(
    bytes: &'a [u8],
    format: Format,
    errors: &mut Vec<EventError>,
) -> Result<Vec<Option<&'a str>>, ApiError> {
    let invalid = |detail: String| ApiError::new(ErrorCode::InvalidJson, detail);
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("the body is not UTF-8".into()))?;
    match format {
        Format::Json => {
            let parsed = if text.trim_start().starts_with('[') {
                serde_json::from_str::<Vec<&RawValue>>(text)
            } else {
                serde_json::from_str::<&RawValue>(text).map(|raw| vec![raw])
            };
            let raws = parsed.map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
            if raws.len() == 1 && !text.trim_start().starts_with(['[', '{']) {
                return Err(invalid(
                    "the body must be an event object or an array of events".into(),
                ));
            }
            Ok(raws.into_iter().map(|raw| Some(raw.get())).collect())
        }
        Format::Ndjson => {
            let mut events = Vec::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<&RawValue>(line) {
                    Ok(raw) => events.push(Some(raw.get())),
                    Err(e) => {
                        errors.push(EventError {
                            index: events.len(),
                            reasons: vec![format!("not valid JSON: {e}")],
                        });
                        events.push(None);
                    }
                }
            }
            Ok(events)
        }
    }
}

fn parse_and_prepare(
    bytes: &[u8],
    format: Format,
    tenant: &str,
    max_events: usize,
) -> Result<Vec<NewEvent>, ApiError> {
    let mut errors = Vec::new();
    let values = split_events(bytes, format, &mut errors)?;
    if values.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyBatch,
            "the request holds no events",
        ));
    }
    if values.len() > max_events {
        return Err(ApiError::new(
            ErrorCode::TooManyEvents,
            format!(
                "{} events in one request; the limit is {max_events}",
                values.len()
            ),
        ));
    }
    let now =
        Timestamp::from_datetime(time::OffsetDateTime::now_utc()).expect("the clock is in range");
    let defaults = IngestDefaults {
        tenant,
        occurred_at: now,
    };
    let limits = Limits::default();
    let mut events = Vec::with_capacity(values.len());
    for (index, text) in values.into_iter().enumerate() {
        let Some(text) = text else { continue };
        match prepare_json(text, &defaults, &limits, Uuid::now_v7) {
            Ok(prepared) => events.push(NewEvent::from(prepared)),
            Err(e) => errors.push(EventError {
                index,
                reasons: e.reasons,
            }),
        }
    }
    if !errors.is_empty() {
        let n = errors.len();
        return Err(ApiError {
            code: ErrorCode::InvalidEvent,
            detail: format!(
                "{n} of {} events are invalid; nothing was stored",
                events.len() + n
            ),
            errors,
        });
    }
    Ok(events)
}
