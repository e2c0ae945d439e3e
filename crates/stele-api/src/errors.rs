//! The catalogue of API error codes: code, HTTP status and title in one table, and the
//! RFC 9457 problem details every error answer carries. The codes are stable API.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:literal, $title:literal)),+ $(,)?) => {
        /// A stable, documented API error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant),+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The machine-readable code, e.g. `invalid_event`.
            pub fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            /// The HTTP status code answered with this error.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),+ }
            }

            /// A short, human-readable summary that does not vary between occurrences.
            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title),+ }
            }
        }
    };
}

error_codes! {
    InvalidEvent => ("invalid_event", 422, "One or more events are invalid"),
    InvalidJson => ("invalid_json", 400, "The request body is not valid JSON"),
    InvalidQuery => ("invalid_query", 400, "A query parameter is invalid"),
    InvalidCursor => ("invalid_cursor", 400, "The pagination cursor is invalid"),
    InvalidTenant => ("invalid_tenant", 400, "The tenant name is invalid"),
    EmptyBatch => ("empty_batch", 400, "The request holds no events"),
    TooManyEvents => ("too_many_events", 413, "The request holds too many events"),
    PayloadTooLarge => ("payload_too_large", 413, "The request body is too large"),
    UnsupportedMediaType => ("unsupported_media_type", 415, "The content type is not supported"),
    UnsupportedEncoding => ("unsupported_encoding", 415, "The content encoding is not supported"),
    InvalidEncoding => ("invalid_encoding", 400, "The body is not valid in its content encoding"),
    Unauthenticated => ("unauthenticated", 401, "A valid API key is required"),
    Forbidden => ("forbidden", 403, "The API key may not do this"),
    RateLimited => ("rate_limited", 429, "Too many requests with this API key; retry after `Retry-After`"),
    TenantLimit => ("tenant_limit", 403, "The server's limit on the number of logs is reached"),
    IdConflict => ("id_conflict", 409, "An event with this id is already stored with a different body"),
    RequestTimeout => ("request_timeout", 408, "The request body was not received in time"),
    NotFound => ("not_found", 404, "Not found"),
    MethodNotAllowed => ("method_not_allowed", 405, "Method not allowed"),
    Overloaded => ("overloaded", 503, "The ingest queue is full; retry later"),
    CheckpointPending => ("checkpoint_pending", 503, "No signed checkpoint covers this yet; retry shortly"),
    Timeout => ("timeout", 503, "The request took longer than the server allows; retry later, or ask for less"),
    Unavailable => ("unavailable", 503, "The service is shutting down or its store is unavailable"),
    StoreCorrupt => ("store_corrupt", 500, "The store holds data that fails an integrity check; the operator has been alerted in the server log"),
    Internal => ("internal", 500, "Internal error"),
}

impl ErrorCode {
    /// The RFC 9457 `type` URI of this error.
    pub fn type_uri(self) -> String {
        format!("urn:stele:error:{}", self.code())
    }

    /// The code named `code`, if the catalogue has it.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.code() == code)
    }
}

/// One rejected event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventError {
    /// Position of the event in the request (0-based, blank lines not counted).
    pub index: usize,
    /// The 1-based line the event starts on, for NDJSON and JSON text sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong with it, one reason per problem.
    pub reasons: Vec<String>,
}

/// The body of every error answer (`application/problem+json`, RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// `urn:stele:error:<code>`
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem; the same for every occurrence of a code.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Stable, machine-readable error code.
    pub code: String,
    /// The rejected events of an ingest request (only with `invalid_event`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<EventError>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: code.type_uri(),
            title: code.title().to_string(),
            status: code.status(),
            detail: detail.into(),
            code: code.code().to_string(),
            errors: Vec::new(),
        }
    }

    /// The catalogue entry of this problem's code, if it is one this build knows.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(&self.code)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)?;
        for e in &self.errors {
            write!(f, "\n  event {}: {}", e.index, e.reasons.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_statuses_are_errors() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.code()), "duplicate {}", code.code());
            assert!(
                code.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!((400..600).contains(&code.status()));
            assert!(!code.title().is_empty());
            assert_eq!(ErrorCode::from_code(code.code()), Some(*code));
        }
    }

    #[test]
    fn a_problem_carries_its_catalogue_entry() {
        let p = Problem::new(ErrorCode::InvalidCursor, "bad");
        assert_eq!(p.kind, "urn:stele:error:invalid_cursor");
        assert_eq!((p.status, p.code.as_str()), (400, "invalid_cursor"));
        assert_eq!(p.error_code(), Some(ErrorCode::InvalidCursor));
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("errors"), "{text}");
        assert_eq!(serde_json::from_str::<Problem>(&text).unwrap(), p);
    }
}
