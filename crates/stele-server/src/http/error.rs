//! Errors as the API answers them: RFC 9457 problem details rendered from the error
//! catalogue in `stele-api`. Every failure below the HTTP layer converts into an
//! [`ApiError`] through `From`; internal causes are logged, never sent to the client.

use crate::sequencer::SubmitError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stele_api::{ErrorCode, EventError, PROBLEM_JSON, Problem};
use stele_index::IndexError;
use stele_store::StoreError;

/// An error answer: a catalogue code, what went wrong this time, and for rejected ingest
/// requests every bad event.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<EventError>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn invalid_query(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidQuery, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, detail)
    }

    /// An internal failure: the cause goes to the log, the client gets a generic answer.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        metrics::counter!("stele_internal_errors_total").increment(1);
        ApiError::new(
            ErrorCode::Internal,
            "an internal error occurred; see the server log",
        )
    }

    /// A failure the client may retry: the store is unreachable or shutting down.
    pub fn unavailable(cause: impl std::fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "unavailable");
        ApiError::new(
            ErrorCode::Unavailable,
            "the store is unavailable; retry later",
        )
    }

    /// Stored data failed an integrity check. Retrying cannot help: 500, an error in the
    /// log and a metric for the operator.
    pub fn corrupt(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "the store failed an integrity check");
        metrics::counter!("stele_store_corruption_total").increment(1);
        ApiError::new(
            ErrorCode::StoreCorrupt,
            "stored data failed an integrity check; run `stele verify` and see the server log",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if e.is_corruption() {
            ApiError::corrupt(e)
        } else if matches!(e, StoreError::TooNew { .. }) {
            ApiError::internal(e)
        } else {
            ApiError::unavailable(e)
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> ApiError {
        match e {
            IndexError::Store(store) => store.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(format!("a blocking task failed: {e}"))
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        match e {
            SubmitError::Overloaded { queued } => ApiError::new(
                ErrorCode::Overloaded,
                format!("{queued} events are already waiting to be stored; retry after a moment"),
            ),
            SubmitError::Unavailable => ApiError::unavailable(e),
            SubmitError::Conflict(c) => ApiError {
                code: ErrorCode::IdConflict,
                detail: format!(
                    "{c}; nothing was stored (re-send the same body to get its receipt)"
                ),
                errors: vec![EventError {
                    index: c.index,
                    line: None,
                    reasons: vec![format!("id {} {}", c.id, c.earlier)],
                }],
            },
        }
    }
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Problem {
        Problem {
            errors: e.errors,
            ..Problem::new(e.code, e.detail)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(self.into())
    }
}

/// Renders a problem with its status, content type and, for a 503, `Retry-After`.
pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, serde_json::to_vec(&problem).unwrap_or_default()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}

/// Runs blocking work (store and index reads) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}
