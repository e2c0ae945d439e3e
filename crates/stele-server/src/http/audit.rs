//! The meta-audit: every read and administrative request, and every refused one, is an
//! event in the reserved `_stele` log, appended through the same sequencer as any other,
//! so the record of who looked at the audit log is itself verifiable.
//!
//! What is recorded: the key's id and name (never its secret; for a failed attempt, the
//! id the client claimed, if its token was shaped like a key), the client's address and
//! user agent, the route and its filters (values shaped like a key are redacted, cursors
//! left out), the status, how many results were answered, and the outcome.

use super::AppState;
use super::error::ApiError;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use stele_auth::routes::Route;
use stele_auth::{KeyRecord, META_TENANT};
use stele_core::{IngestDefaults, Limits, prepare_reserved};
use uuid::Uuid;

/// How many results an answer held, for the meta-audit (a response extension).
#[derive(Debug, Clone, Copy)]
pub struct ResultCount(pub u64);

/// Longest value of a recorded header or filter, in characters.
const MAX_VALUE_CHARS: usize = 256;
/// Most filters recorded of one request.
const MAX_FILTERS: usize = 32;

/// What is known of a request before its handler runs.
pub struct Attempt {
    route: &'static Route,
    tenants: Vec<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    filters: Map<String, Value>,
}

impl Attempt {
    pub fn of(request: &Request, route: &'static Route, tenants: &[String]) -> Attempt {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| clip(v.to_string()))
        };
        let mut filters = Map::new();
        if let Some(query) = request.uri().query() {
            let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
                .map(|q| q.0)
                .unwrap_or_else(|_| vec![("query".into(), query.to_string())]);
            for (name, value) in pairs.into_iter().take(MAX_FILTERS) {
                if name == "cursor" {
                    continue;
                }
                let value = if looks_like_key(&value) {
                    "[redacted]".to_string()
                } else {
                    clip(value)
                };
                filters.insert(clip(name), Value::String(value));
            }
        }
        Attempt {
            route,
            tenants: tenants.to_vec(),
            ip: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent: header(header::USER_AGENT),
            request_id: header(header::HeaderName::from_static("x-request-id")),
            filters,
        }
    }

    /// Appends the event recording this request's end: by `key` (or the id a refused
    /// client claimed), with `status`, `results` answered and the refusal's `reason`.
    pub async fn record(
        &self,
        state: &AppState,
        key: Who<'_>,
        status: StatusCode,
        results: Option<u64>,
        reason: Option<&str>,
    ) -> Result<(), ApiError> {
        let outcome = match status.as_u16() {
            200..=299 => "success",
            401 | 403 => "denied",
            _ => "failure",
        };
        let mut actor = Map::new();
        actor.insert("type".into(), json!("api_key"));
        match key {
            Who::Key(k) => {
                actor.insert("id".into(), json!(k.id));
                actor.insert("name".into(), json!(clip(k.name.clone())));
            }
            Who::Claimed(Some(id)) => {
                actor.insert("id".into(), json!(id));
            }
            Who::Claimed(None) => {}
        }
        if let Some(ip) = &self.ip {
            actor.insert("ip".into(), json!(ip));
        }
        if let Some(ua) = &self.user_agent {
            actor.insert("user_agent".into(), json!(ua));
        }
        let mut details = Map::new();
        details.insert("method".into(), json!(self.route.method));
        details.insert("route".into(), json!(self.route.path));
        details.insert("status".into(), json!(status.as_u16()));
        if !self.filters.is_empty() {
            details.insert("filters".into(), Value::Object(self.filters.clone()));
        }
        if let Some(n) = results {
            details.insert("result_count".into(), json!(n));
        }
        if let Some(reason) = reason {
            details.insert("reason".into(), json!(reason));
        }
        let mut event = json!({
            "tenant": META_TENANT,
            "action": self.route.action,
            "category": if outcome == "denied" { "security" } else { "audit" },
            "level": if outcome == "success" { "info" } else { "warn" },
            "outcome": outcome,
            "actor": actor,
            "details": details,
        });
        if let Some(tenant) = self.tenants.first() {
            event["resource"] = json!({ "type": "tenant", "id": tenant });
        }
        if let Some(id) = &self.request_id {
            event["request_id"] = json!(id);
        }
        let event = serde_json::from_value(event).map_err(ApiError::internal)?;
        let defaults = IngestDefaults {
            tenant: META_TENANT,
            occurred_at: crate::access::now(),
        };
        let prepared = prepare_reserved(event, &defaults, &Limits::default(), Uuid::now_v7)
            .map_err(ApiError::internal)?;
        state.sequencer.submit_own(vec![prepared.into()]).await?;
        metrics::counter!("stele_meta_audit_events_total", "outcome" => outcome).increment(1);
        Ok(())
    }
}

/// Whose request it was.
pub enum Who<'a> {
    Key(&'a KeyRecord),
    /// Not authenticated: the key id the client's token named, if it was shaped like one.
    Claimed(Option<String>),
}

fn looks_like_key(value: &str) -> bool {
    value.contains("stl_")
}

fn clip(mut text: String) -> String {
    if let Some((at, _)) = text.char_indices().nth(MAX_VALUE_CHARS) {
        text.truncate(at);
    }
    text
}
