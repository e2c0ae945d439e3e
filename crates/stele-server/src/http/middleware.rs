//! The layers every request passes: request ids (kept from the client or made here, and
//! returned), request metrics with label values from closed sets, and a panic in a handler
//! turned into a problem+json 500 instead of a dropped connection; and on every API route,
//! the guard: the route's declared permission, the caller's key, the meta-audit.

use super::AppState;
use super::audit::{Attempt, ResultCount, Who};
use super::error::problem_response;
use crate::access::{self, Caller, KeyRing, Refusal};
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{RequestExt, Router};
use std::any::Any;
use std::sync::Arc;
use std::time::Instant;
use stele_api::{ErrorCode, Problem};
use stele_auth::Denied;
use stele_auth::routes::{self, Access, Route, TenantFrom};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// Wraps `router` in every layer, outermost first: request id, metrics, panic catcher.
pub fn layers(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::custom(panic_answer))
        .layer(middleware::from_fn(count_requests))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The guard, on every routed API request (a route layer: the route is known). The
/// route's entry in the route table says who may call it; a route missing there is
/// refused. Public routes pass; otherwise the bearer key must be valid, within its rate,
/// hold the route's permission and cover the request's tenants (`{tenant}` in the path,
/// or every `tenant` query parameter, else the default tenant; ingest checks each event's
/// tenant itself). Refusals, reads and administration are meta-audited; if that record
/// cannot be written, the answer is not given (503).
pub async fn guard(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(request).await;
    };
    let Some(route) = routes::find(request.method().as_str(), &path) else {
        tracing::error!(method = %request.method(), path, "refused a route that declares no permission");
        return problem_response(Problem::new(
            ErrorCode::Internal,
            "this route declares no permission",
        ));
    };
    let Some(ring) = state.keys.clone() else {
        request.extensions_mut().insert(Caller::Insecure);
        return run_within(&state, route, request, next).await;
    };
    let tenants = route_tenants(route, &mut request, &state.config.default_tenant).await;
    let permission = match route.access {
        Access::Public => return next.run(request).await,
        Access::Verifiable
            if !tenants.is_empty()
                && tenants.iter().all(|t| state.config.auth.proofs_public(t)) =>
        {
            return next.run(request).await;
        }
        Access::Verifiable => routes::VERIFIABLE,
        Access::Key(permission) => permission,
    };
    let attempt = Attempt::of(&request, route, &tenants);
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let key = match ring.authenticate(header, access::now()) {
        Ok(key) => key,
        // Not meta-audited: a client over its rate would otherwise fill the log.
        Err(Refusal::Limited(wait)) => {
            return limited("too many requests with this API key", wait);
        }
        Err(Refusal::Denied(denied)) => {
            let claimed = KeyRing::claimed_id(header);
            let peer = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip());
            if !ring.record_failure_from(peer) {
                metrics::counter!("stele_auth_failures_unrecorded_total").increment(1);
                return refusal(denied);
            }
            return refuse(&state, &attempt, Who::Claimed(claimed), denied).await;
        }
    };
    let tenant_list: Vec<Option<&str>> = if tenants.is_empty() {
        vec![None]
    } else {
        tenants.iter().map(|t| Some(t.as_str())).collect()
    };
    for tenant in tenant_list {
        if let Err(denied) = stele_auth::authorize(&key, permission, tenant, access::now()) {
            return refuse(&state, &attempt, Who::Key(&key), denied).await;
        }
    }
    request.extensions_mut().insert(Caller::Key(key.clone()));
    let permit = if routes::is_heavy(route) {
        match ring.start_read(&key.id) {
            Some(permit) => Some(permit),
            None => {
                return limited(
                    "this API key has too many listings or traces in progress",
                    std::time::Duration::from_secs(1),
                );
            }
        }
    } else {
        None
    };
    let response = run_within(&state, route, request, next).await;
    drop(permit);
    let status = response.status();
    let refused = matches!(status.as_u16(), 401 | 403);
    if !(route.audited || refused) {
        return response;
    }
    let results = response.extensions().get::<ResultCount>().map(|c| c.0);
    let reason = response
        .extensions()
        .get::<DeniedReason>()
        .map(|r| r.0.clone());
    match attempt
        .record(&state, Who::Key(&key), status, results, reason.as_deref())
        .await
    {
        Ok(()) => response,
        Err(e) if status.is_success() => {
            tracing::error!(
                code = e.code.code(),
                "the meta-audit record could not be written; the answer is withheld"
            );
            e.into_response()
        }
        Err(_) => response,
    }
}

/// 429 `rate_limited`, with `Retry-After` in whole seconds (at least 1).
fn limited(detail: &str, wait: std::time::Duration) -> Response {
    let mut response = problem_response(Problem::new(ErrorCode::RateLimited, detail));
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits"),
    );
    response
}

/// Runs the handler; a read or administrative request gets `http.request_timeout_ms` to
/// answer (ingest is bounded by its body-read timeout and the queue instead).
async fn run_within(state: &AppState, route: &Route, request: Request, next: Next) -> Response {
    if route.access == Access::Key(stele_auth::Permission::Ingest) {
        return next.run(request).await;
    }
    let limit = std::time::Duration::from_millis(state.config.http.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("stele_request_timeouts_total").increment(1);
            problem_response(Problem::new(
                ErrorCode::Timeout,
                format!("no answer within {} ms", limit.as_millis()),
            ))
        }
    }
}

/// Why a handler refused a request (a response extension), for the meta-audit.
#[derive(Debug, Clone)]
pub struct DeniedReason(pub String);

/// Answers a refusal (401 or 403) after recording it.
async fn refuse(state: &AppState, attempt: &Attempt, who: Who<'_>, denied: Denied) -> Response {
    let status = refusal_status(&denied);
    let reason = denied.to_string();
    if let Err(e) = attempt
        .record(state, who, status, None, Some(&reason))
        .await
    {
        tracing::warn!(
            code = e.code.code(),
            "a refused request could not be meta-audited"
        );
    }
    refusal(denied)
}

fn refusal_status(denied: &Denied) -> StatusCode {
    match denied {
        Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Denied::Forbidden(_) => StatusCode::FORBIDDEN,
    }
}

/// The answer to a refused request (401 or 403).
fn refusal(denied: Denied) -> Response {
    let status = refusal_status(&denied);
    let code = match denied {
        Denied::Unauthenticated(_) => ErrorCode::Unauthenticated,
        Denied::Forbidden(_) => ErrorCode::Forbidden,
    };
    metrics::counter!("stele_auth_refusals_total", "status" => status_label(status)).increment(1);
    problem_response(Problem::new(code, denied.to_string()))
}

/// The tenants a request is about, by where its route takes them from: the path's
/// `{tenant}`, every `tenant` query parameter (else the default tenant), or none (routes
/// of no one tenant, and ingest, whose handler checks each event's tenant).
async fn route_tenants(route: &Route, request: &mut Request, default: &str) -> Vec<String> {
    match route.tenant {
        TenantFrom::None | TenantFrom::Body => Vec::new(),
        TenantFrom::Path => request
            .extract_parts::<RawPathParams>()
            .await
            .map(|p| {
                p.iter()
                    .filter(|(name, _)| *name == "tenant")
                    .map(|(_, v)| v.to_string())
                    .collect()
            })
            .unwrap_or_default(),
        TenantFrom::Query => {
            let named: Vec<String> =
                axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
                    .map(|q| {
                        q.0.into_iter()
                            .filter(|(name, _)| name == "tenant")
                            .map(|(_, v)| v)
                            .collect()
                    })
                    .unwrap_or_default();
            if named.is_empty() {
                vec![default.to_string()]
            } else {
                named
            }
        }
    }
}

/// A handler panicked: log what it said, answer a generic 500.
fn panic_answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = message, "a request handler panicked");
    metrics::counter!("stele_handler_panics_total").increment(1);
    problem_response(Problem::new(
        ErrorCode::Internal,
        "an internal error occurred; see the server log",
    ))
}

/// The method as a metric label: the standard ones by name, anything else `other` (a
/// label a client controls must come from a closed set).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The matched route as a metric label: a path of the route table, `docs` for the API
/// docs' pages, else `unmatched`.
fn route_label(request: &Request) -> &'static str {
    let Some(matched) = request.extensions().get::<MatchedPath>() else {
        return "unmatched";
    };
    let path = matched.as_str();
    if path.starts_with("/docs") {
        return "docs";
    }
    stele_auth::routes::ROUTES
        .iter()
        .find(|r| r.path == path)
        .map_or("unmatched", |r| r.path)
}

/// The status as a metric label, from a closed set.
fn status_label(status: StatusCode) -> &'static str {
    const LABELS: [(u16, &str); 17] = [
        (200, "200"),
        (201, "201"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (410, "410"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    let code = status.as_u16();
    if let Some((_, label)) = LABELS.iter().find(|(c, _)| *c == code) {
        return label;
    }
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route = route_label(&request);
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = status_label(response.status());
    metrics::counter!("stele_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("stele_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    /// A real server on port 0 whose one route panics: the client gets problem+json, and
    /// the server goes on answering.
    #[tokio::test]
    async fn a_panicking_handler_answers_a_problem_500() {
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        async fn fine() -> &'static str {
            "ok"
        }
        let app = layers(
            Router::new()
                .route("/boom", get(boom))
                .route("/fine", get(fine)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::new();

        let response = client
            .get(format!("http://{addr}/boom"))
            .header("x-request-id", "req-42")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["x-request-id"], "req-42");
        let problem: Problem = response.json().await.unwrap();
        assert_eq!(problem.code, "internal");
        assert!(
            !problem.detail.contains("handler bug"),
            "{}",
            problem.detail
        );

        let response = client
            .get(format!("http://{addr}/fine"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }

    #[test]
    fn every_documented_operation_declares_who_may_call_it() {
        // Every operation of the document is in the route table (the document writes
        // `{*path}` as `{path}`), and so has a permission and a metric label; the table
        // has nothing the document lacks.
        let doc: serde_json::Value = serde_json::from_str(&crate::http::openapi_json()).unwrap();
        let mut documented = Vec::new();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            let route = path.replace("{path}", "{*path}");
            for method in operations.as_object().unwrap().keys() {
                let method = method.to_uppercase();
                let declared = stele_auth::routes::find(&method, &route);
                assert!(
                    declared.is_some(),
                    "{method} {route} declares no permission"
                );
                documented.push((method, route.clone()));
            }
        }
        for r in stele_auth::routes::ROUTES {
            assert!(
                documented.contains(&(r.method.to_string(), r.path.to_string()))
                    || r.path == "/openapi.json",
                "{} {} is declared but not documented",
                r.method,
                r.path
            );
        }
        assert_eq!(status_label(StatusCode::IM_A_TEAPOT), "4xx");
        assert_eq!(status_label(StatusCode::CREATED), "201");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }
}
