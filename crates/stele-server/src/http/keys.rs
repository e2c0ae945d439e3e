//! API keys, for admins of every tenant: list, create (the secret is in that answer only),
//! read and revoke. A revocation takes effect on this node at once and on the others
//! within `auth.refresh_ms`.

use super::AppState;
use super::audit::ResultCount;
use super::error::{ApiError, blocking};
use crate::access::{self, KeyView};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, body::Bytes};
use serde_json::json;
use std::sync::Arc;
use stele_api::ErrorCode;
use stele_auth::NewKey;

fn no_key(id: &str) -> ApiError {
    ApiError::not_found(format!("no API key `{id}`"))
}

fn view(state: &AppState, id: &str) -> Result<KeyView, ApiError> {
    access::key_view(state.store.meta(), id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| no_key(id))
}

/// List the API keys
///
/// Every key's id, name, role, scope, times and last use; never a secret.
#[utoipa::path(get, path = "/v1/keys", tag = "access", operation_id = "list_keys",
    responses(
        (status = 200, description = "`{\"keys\": [key, …]}`", body = Object),
        (status = 401, description = "No valid API key", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key of every tenant", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let keys =
        blocking(move || access::list_keys(state.store.meta()).map_err(ApiError::internal)).await?;
    let count = keys.len() as u64;
    let mut response = Json(json!({ "keys": keys })).into_response();
    response.extensions_mut().insert(ResultCount(count));
    Ok(response)
}

/// Create an API key
///
/// Body: `{"name": …, "role": "ingest"|"reader"|"auditor"|"admin", "scope": "all" | [tenant, …],
/// "expires_at": RFC 3339 (optional)}`. The answer's `key` is the only time the secret is
/// shown.
#[utoipa::path(post, path = "/v1/keys", tag = "access", operation_id = "create_key",
    request_body(content = Object, description = "name, role, scope, optional expires_at"),
    responses(
        (status = 201, description = "`{\"key\": \"stl_…\", \"record\": key}`", body = Object),
        (status = 400, description = "The body is not a valid key request", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key of every tenant", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let request: NewKey = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("not a key request: {e}")))?;
    request
        .validate()
        .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e))?;
    if request.expires_at.is_some_and(|at| at <= access::now()) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "`expires_at` is in the past",
        ));
    }
    let writing = state.clone();
    let (key, record, view) = blocking(move || {
        let (key, record) =
            access::create_key(writing.store.meta(), &request).map_err(ApiError::internal)?;
        let view = view(&writing, &record.id)?;
        Ok((key, record, view))
    })
    .await?;
    if let Some(ring) = &state.keys {
        ring.put(record);
    }
    let mut response = (
        StatusCode::CREATED,
        Json(json!({ "key": key.expose(), "record": view })),
    )
        .into_response();
    response.extensions_mut().insert(ResultCount(1));
    Ok(response)
}

/// Read an API key
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "access", operation_id = "get_key",
    params(("id" = String, Path, description = "The key id")),
    responses(
        (status = 200, description = "The key, without its secret", body = Object),
        (status = 401, description = "No valid API key", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key of every tenant", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = blocking(move || view(&state, &id)).await?;
    let mut response = Json(found).into_response();
    response.extensions_mut().insert(ResultCount(1));
    Ok(response)
}

/// Revoke an API key
///
/// From now on: at once on this node, within `auth.refresh_ms` on the others. Revoking
/// again keeps the first time.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "access", operation_id = "revoke_key",
    params(("id" = String, Path, description = "The key id")),
    responses(
        (status = 200, description = "The revoked key", body = Object),
        (status = 401, description = "No valid API key", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key of every tenant", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let writing = state.clone();
    let record = blocking(move || {
        access::revoke_key(writing.store.meta(), &id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| no_key(&id))
    })
    .await?;
    let id = record.id.clone();
    if let Some(ring) = &state.keys {
        ring.put(record);
    }
    let found = blocking(move || view(&state, &id)).await?;
    let mut response = Json(found).into_response();
    response.extensions_mut().insert(ResultCount(1));
    Ok(response)
}
