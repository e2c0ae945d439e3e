//! Query parameters, read strictly: each allowed once, unknown ones refused rather than
//! ignored, every value parsed with an error that names the parameter.

use super::AppState;
use super::error::ApiError;
use axum::extract::Query;
use std::collections::HashMap;
use stele_api::ErrorCode;

pub(super) type Params = Query<Vec<(String, String)>>;

/// Longest accepted parameter value.
const MAX_VALUE_BYTES: usize = 4096;

pub(super) struct ParamReader {
    params: HashMap<String, String>,
}

impl ParamReader {
    pub(super) fn new(
        raw: Vec<(String, String)>,
        allowed: &[&str],
    ) -> Result<ParamReader, ApiError> {
        let mut params = HashMap::new();
        for (key, value) in raw {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::invalid_query(format!(
                    "unknown parameter `{}`; accepted: {}",
                    key.chars().take(64).collect::<String>(),
                    allowed.join(", ")
                )));
            }
            if params.insert(key.clone(), value).is_some() {
                return Err(ApiError::invalid_query(format!(
                    "parameter `{key}` is given more than once"
                )));
            }
        }
        Ok(ParamReader { params })
    }

    /// The value of `key` as given; an empty or over-long value is an error.
    pub(super) fn text(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.params.get(key) {
            Some(v) if v.is_empty() => Err(ApiError::invalid_query(format!("`{key}` is empty"))),
            Some(v) if v.len() > MAX_VALUE_BYTES => {
                Err(ApiError::invalid_query(format!("`{key}` is too long")))
            }
            other => Ok(other.cloned()),
        }
    }

    pub(super) fn parsed<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.text(key)?
            .map(|v| parse(&v).map_err(|e| ApiError::invalid_query(format!("`{key}`: {e}"))))
            .transpose()
    }

    /// Every parameter given except `skip`, as (name, value).
    pub(super) fn given_except(&self, skip: &[&str]) -> Vec<(&str, &str)> {
        self.params
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// `tenant`, else the server's default tenant; a valid log name either way.
    pub(super) fn tenant(&self, state: &AppState) -> Result<String, ApiError> {
        let tenant = self
            .text("tenant")?
            .unwrap_or_else(|| state.config.default_tenant.clone());
        tenant_name(&tenant)
    }

    /// As [`ParamReader::tenant`], but a log clients may write: not a reserved one.
    pub(super) fn writable_tenant(&self, state: &AppState) -> Result<String, ApiError> {
        let tenant = self.tenant(state)?;
        stele_core::validate_tenant(&tenant)
            .map_err(|e| ApiError::new(ErrorCode::InvalidTenant, e))?;
        Ok(tenant)
    }

    /// `min_seq`: the read waits until the search index reaches it.
    pub(super) fn min_seq(&self) -> Result<Option<u64>, ApiError> {
        self.parsed("min_seq", |v| {
            v.parse::<u64>()
                .map_err(|_| "must be a whole number".to_string())
        })
    }

    /// `limit`, from 1 to `max`, else `default`.
    pub(super) fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        Ok(self
            .parsed("limit", |v| match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("must be a whole number from 1 to {max}")),
            })?
            .unwrap_or(default))
    }
}

/// A log name from a path or parameter, checked: a client's log, or the meta-audit log
/// (which only Stele writes).
pub(super) fn tenant_name(raw: &str) -> Result<String, ApiError> {
    if raw == stele_auth::META_TENANT {
        return Ok(raw.to_string());
    }
    stele_core::validate_tenant(raw).map_err(|e| ApiError::new(ErrorCode::InvalidTenant, e))?;
    Ok(raw.to_string())
}

/// A closed enum's value, with the accepted names in the error.
pub(super) fn enum_param<T>(
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> impl Fn(&str) -> Result<T, String> {
    move |v| parse(v).ok_or_else(|| format!("`{v}` is not one of {}", expected()))
}

/// A whole number in its one decimal form (no sign, no leading zeros).
pub(super) fn whole(v: &str) -> Result<u64, String> {
    if v.len() > 1 && v.starts_with('0') {
        return Err("must be a whole number without leading zeros".into());
    }
    v.parse::<u64>()
        .map_err(|_| "must be a whole number".to_string())
}

/// `true` or `false`.
pub(super) fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_string()),
    }
}
