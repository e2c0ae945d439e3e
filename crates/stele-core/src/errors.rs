//! The catalogue of API error codes: code, HTTP status and title in one table. The HTTP
//! layer renders them as RFC 9457 problem details; the codes are stable API.

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
    NotFound => ("not_found", 404, "Not found"),
    MethodNotAllowed => ("method_not_allowed", 405, "Method not allowed"),
    Overloaded => ("overloaded", 503, "The ingest queue is full; retry later"),
    CheckpointPending => ("checkpoint_pending", 503, "No signed checkpoint covers this yet; retry shortly"),
    Unavailable => ("unavailable", 503, "The service is shutting down or its store is unavailable"),
    Internal => ("internal", 500, "Internal error"),
}

impl ErrorCode {
    /// The RFC 9457 `type` URI of this error.
    pub fn type_uri(self) -> String {
        format!("urn:stele:error:{}", self.code())
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
        }
    }
}
