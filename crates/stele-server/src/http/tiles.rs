//! C2SP tlog-tiles as served: hash tiles and entry bundles. A given path always has the
//! same bytes, so answers may be cached forever.

use super::AppState;
use super::error::{ApiError, blocking};
use super::params::tenant_name;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use stele_tlog::tiles::{TilePath, entry_bundle, parse_tile_path};

/// Tiles and bundles never change once served: a given path always has the same bytes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A tile or an entry bundle
///
/// C2SP tlog-tiles: `tile/<L>/<N>[.p/<W>]` serves hash tiles (W × 32 bytes) and
/// `tile/entries/<N>[.p/<W>]` the entry bundles: each event's canonical bytes behind a
/// big-endian uint16 length.
#[utoipa::path(get, path = "/v1/logs/{tenant}/tile/{path}", tag = "verification", operation_id = "get_tile",
    params(("tenant" = String, Path), ("path" = String, Path, description = "e.g. `0/x001/234.p/17` or `entries/000`")),
    responses(
        (status = 200, description = "The tile's hashes, or the bundle's entries", body = stele_api::TileBytes, content_type = "application/octet-stream"),
        (status = 400, description = "The tenant name is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a tile path, or the log has not reached it", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn tile(
    State(state): State<Arc<AppState>>,
    Path((tenant, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = tenant_name(&tenant)?;
    let parsed = parse_tile_path(&path)
        .ok_or_else(|| ApiError::not_found(format!("`tile/{path}` is not a tile path")))?;
    let store = state.store.clone();
    let body = blocking(move || match parsed {
        TilePath::Hashes(id) => {
            let tile = store.read_tile(&tenant, id)?;
            tile.map(|t| t.hashes)
                .ok_or_else(|| ApiError::not_found(format!("log `{tenant}` has no {id}")))
        }
        TilePath::Entries(id) => {
            let width = usize::from(id.width);
            let events = store.read_range(&tenant, id.first_entry(), width)?;
            if events.len() < width {
                return Err(ApiError::not_found(format!(
                    "log `{tenant}` has no {}",
                    id.entries_path()
                )));
            }
            entry_bundle(events.iter().map(|e| e.bytes.as_slice())).ok_or_else(|| {
                ApiError::corrupt(format!(
                    "log {tenant}: a stored event is too long to bundle"
                ))
            })
        }
    })
    .await?;
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    Ok(response)
}
