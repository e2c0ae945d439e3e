//! `POST /v1/events`: parse one event, an array or NDJSON; validate all; store all or
//! nothing; answer one receipt per event once they are durable.

use super::AppState;
use super::error::ApiError;
use super::middleware::DeniedReason;
use super::params::{ParamReader, Params};
use crate::access::Caller;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use stele_api::{ErrorCode, EventError, IngestResponse, Receipt};
use stele_auth::Permission;
use stele_core::validate::{IngestDefaults, prepare_json};
use stele_core::{Limits, Timestamp};
use stele_store::NewEvent;
use uuid::Uuid;

/// Bodies up to this size are parsed on the async worker that received them.
const INLINE_PARSE_BYTES: usize = 16 * 1024;

#[derive(Clone, Copy)]
enum Format {
    Json,
    Ndjson,
    /// RFC 7464 JSON text sequences: each record starts with RS (0x1E).
    JsonSeq,
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
        "application/x-ndjson" | "application/jsonl" => Ok(Format::Ndjson),
        "application/json-seq" => Ok(Format::JsonSeq),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "content type `{other}` is not accepted; send application/json, application/x-ndjson or application/json-seq"
            ),
        )),
    }
}

/// How the body is compressed (`Content-Encoding`).
#[derive(Clone, Copy)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

fn encoding_of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Ok(Encoding::Identity);
    };
    let name = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match name.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "zstd" => Ok(Encoding::Zstd),
        _ => Err(ApiError::new(
            ErrorCode::UnsupportedEncoding,
            format!(
                "content encoding `{}` is not accepted; send gzip, zstd or an uncompressed body",
                name.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// Decompresses the body, refusing more than `max` bytes of output.
fn decode(bytes: Bytes, encoding: Encoding, max: usize) -> Result<Bytes, ApiError> {
    use std::io::Read;
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => return Ok(bytes),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&bytes[..])),
        Encoding::Zstd => Box::new(ruzstd::decoding::StreamingDecoder::new(&bytes[..]).map_err(
            |e| {
                ApiError::new(
                    ErrorCode::InvalidEncoding,
                    format!("not a zstd stream: {e}"),
                )
            },
        )?),
    };
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(max));
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidEncoding,
                format!("the body could not be decompressed: {e}"),
            )
        })?;
    if out.len() > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the decompressed request body exceeds {max} bytes"),
        ));
    }
    Ok(out.into())
}

/// Ingest events
///
/// Accepts one event object, a JSON array of events, NDJSON (one event per line) or a JSON
/// text sequence (RFC 7464), optionally compressed with gzip or zstd (`Content-Encoding`).
/// All or nothing: if any event is invalid nothing is stored and every bad event is listed.
/// Re-sending a stored event (same id, same content) is answered with its receipt and
/// `duplicate: true`; the same id with other content is a conflict.
#[utoipa::path(
    post, path = "/v1/events", tag = "events", operation_id = "ingest_events",
    params(("tenant" = Option<String>, Query, description = "The log for events that do not name one")),
    request_body(description = "An event or an array of events as JSON, NDJSON (one event per line), or a JSON text sequence",
        content(
            (stele_api::IngestBody = "application/json"),
            (String = "application/x-ndjson"),
            (String = "application/json-seq"),
        )),
    responses(
        (status = 201, description = "Stored durably", body = IngestResponse),
        (status = 400, description = "The body is not JSON or not valid in its encoding, holds no events, or `tenant` is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "An event names a new log beyond the server's limit on logs; nothing stored", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "An event's id is stored with a different body; nothing stored", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large (also once decompressed) or too many events", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 415, description = "A content type or content encoding that is not accepted", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid events; nothing stored", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Queue full or store unavailable; retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(raw): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = format_of(&headers)?;
    let encoding = encoding_of(&headers)?;
    let limits = &state.config.ingest;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > limits.max_body_bytes
    {
        return Err(too_large(limits.max_body_bytes));
    }
    let deadline = Duration::from_millis(state.config.http.body_read_timeout_ms);
    let bytes = tokio::time::timeout(deadline, axum::body::to_bytes(body, limits.max_body_bytes))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} ms",
                    deadline.as_millis()
                ),
            )
        })?
        .map_err(|_| too_large(limits.max_body_bytes))?;
    let tenant = ParamReader::new(raw, &["tenant"])?.writable_tenant(&state)?;
    let max_events = limits.max_events_per_request;
    let max_body = limits.max_body_bytes;

    // Decompressing, parsing and validating thousands of events is CPU work: keep it off
    // the async workers. A small plain body (a few events, microseconds of work) is cheaper
    // to parse right here than to hand to another thread and back.
    let inline = matches!(encoding, Encoding::Identity) && bytes.len() <= INLINE_PARSE_BYTES;
    let work = move || {
        let bytes = decode(bytes, encoding, max_body)?;
        parse_and_prepare(&bytes, format, &tenant, max_events)
    };
    let (events, lines) = if inline {
        work()?
    } else {
        tokio::task::spawn_blocking(work).await??
    };

    // Every event's log must be one the key may append to; otherwise nothing is stored.
    let mut checked: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for event in &events {
        let tenant = event.tenant.as_str();
        if !checked.insert(tenant) {
            continue;
        }
        if let Err(denied) = caller.authorize(Permission::Ingest, Some(tenant)) {
            let mut response =
                ApiError::new(ErrorCode::Forbidden, denied.to_string()).into_response();
            response
                .extensions_mut()
                .insert(DeniedReason(denied.to_string()));
            return Ok(response);
        }
    }
    state
        .tenants
        .admit(events.iter().map(|e| e.tenant.as_str()))
        .map_err(|e| ApiError::new(ErrorCode::TenantLimit, e.to_string()))?;
    let keys: Vec<(Uuid, String)> = events.iter().map(|e| (e.id, e.tenant.clone())).collect();
    let appended = state.sequencer.submit(events).await.map_err(|e| {
        let mut e = ApiError::from(e);
        for error in &mut e.errors {
            error.line = lines.get(error.index).copied().flatten();
        }
        e
    })?;
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

/// One event's JSON text as the body holds it: `None` when it is not JSON (the error is
/// already listed), and the line it starts on for line-oriented formats.
struct Piece<'a> {
    text: Option<&'a str>,
    line: Option<usize>,
}

/// Splits the body into the JSON text of each event, without building any JSON tree.
fn split_events<'a>(
    bytes: &'a [u8],
    format: Format,
    errors: &mut Vec<EventError>,
) -> Result<Vec<Piece<'a>>, ApiError> {
    let invalid = |detail: String| ApiError::new(ErrorCode::InvalidJson, detail);
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("the body is not UTF-8".into()))?;
    // One leading byte order mark is tolerated (RFC 8259 allows a parser to ignore it).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Line-oriented formats: each record with the 1-based line it starts on.
    let records: Vec<(usize, &str)> = match format {
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
            return Ok(raws
                .into_iter()
                .map(|raw| Piece {
                    text: Some(raw.get()),
                    line: None,
                })
                .collect());
        }
        Format::Ndjson => text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect(),
        Format::JsonSeq => json_seq_records(text).map_err(invalid)?,
    };
    let mut events = Vec::new();
    for (line, record) in records {
        if record.trim().is_empty() {
            continue;
        }
        let text = match serde_json::from_str::<&RawValue>(record) {
            Ok(raw) => Some(raw.get()),
            Err(e) => {
                errors.push(EventError {
                    index: events.len(),
                    line: Some(line),
                    reasons: vec![format!("not valid JSON: {e}")],
                });
                None
            }
        };
        events.push(Piece {
            text,
            line: Some(line),
        });
    }
    Ok(events)
}

/// The records of an RFC 7464 JSON text sequence, each with the line it starts on. Every
/// record starts with RS (0x1E); text before the first RS is an error.
fn json_seq_records(text: &str) -> Result<Vec<(usize, &str)>, String> {
    let mut parts = text.split('\u{1e}');
    let before = parts.next().unwrap_or_default();
    if !before.trim().is_empty() {
        return Err(
            "a JSON text sequence (application/json-seq) must start each record with RS (0x1E)"
                .into(),
        );
    }
    let mut line = 1 + before.matches('\n').count();
    Ok(parts
        .map(|record| {
            let at = line;
            line += record.matches('\n').count();
            // A record's own leading newlines (none in RFC 7464's writers) move its start.
            let leading = record.len() - record.trim_start_matches(['\n', '\r', ' ', '\t']).len();
            (at + record[..leading].matches('\n').count(), record)
        })
        .collect())
}

fn parse_and_prepare(
    bytes: &[u8],
    format: Format,
    tenant: &str,
    max_events: usize,
) -> Result<(Vec<NewEvent>, Vec<Option<usize>>), ApiError> {
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
    let lines = values.iter().map(|p| p.line).collect();
    for (index, piece) in values.into_iter().enumerate() {
        let Some(text) = piece.text else { continue };
        match prepare_json(text, &defaults, &limits, Uuid::now_v7) {
            Ok(prepared) => events.push(NewEvent::from(prepared)),
            Err(e) => errors.push(EventError {
                index,
                line: piece.line,
                reasons: e.reasons,
            }),
        }
    }
    // Listed in the order of the body, whichever check found them.
    errors.sort_by_key(|e| e.index);
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
    Ok((events, lines))
}
