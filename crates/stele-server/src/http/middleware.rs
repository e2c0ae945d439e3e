//! The layers every request passes: request ids (kept from the client or made here, and
//! returned), request metrics with label values from closed sets, and a panic in a handler
//! turned into a problem+json 500 instead of a dropped connection.

use super::error::problem_response;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::any::Any;
use std::time::Instant;
use stele_api::{ErrorCode, Problem};
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

/// Every route the router serves, as a metric label.
const ROUTES: &[&str] = &[
    "/v1/events",
    "/v1/events/{id}",
    "/v1/traces/{correlation_id}",
    "/v1/logs",
    "/v1/logs/{tenant}/checkpoint",
    "/v1/logs/{tenant}/checkpoints",
    "/v1/logs/{tenant}/proof/consistency",
    "/v1/logs/{tenant}/tile/{*path}",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
];

/// The matched route as a metric label: one of [`ROUTES`], `docs` for the API docs' pages,
/// else `unmatched`.
fn route_label(request: &Request) -> &'static str {
    let Some(matched) = request.extensions().get::<MatchedPath>() else {
        return "unmatched";
    };
    let path = matched.as_str();
    ROUTES
        .iter()
        .copied()
        .find(|r| *r == path)
        .unwrap_or(if path.starts_with("/docs") {
            "docs"
        } else {
            "unmatched"
        })
}

/// The status as a metric label, from a closed set.
fn status_label(status: StatusCode) -> &'static str {
    const LABELS: [(u16, &str); 15] = [
        (200, "200"),
        (201, "201"),
        (304, "304"),
        (400, "400"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (410, "410"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
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
    fn every_route_is_a_known_label() {
        // The router's routes and the document's paths are the label set (the document
        // writes `{*path}` as `{path}`).
        let doc: serde_json::Value = serde_json::from_str(&crate::http::openapi_json()).unwrap();
        for path in doc["paths"].as_object().unwrap().keys() {
            let route = path.replace("{path}", "{*path}");
            assert!(ROUTES.contains(&route.as_str()), "{route} is not a label");
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
