//! The query language, one parser for the API, the command line, and later the UI and
//! alert rules:
//!
//! ```text
//! query     = or
//! or        = and { "OR" and }
//! and       = unary { [ "AND" ] unary }          (terms side by side mean AND)
//! unary     = ( "NOT" | "-" ) unary | primary
//! primary   = "(" or ")" | field ":" value | text
//! value     = word [ "*" ]                       exact, or a prefix
//!           | phrase                             "quoted, with \" and \\ escapes"
//!           | ( ">" | ">=" | "<" | "<=" ) word   a comparison
//!           | ( "[" | "{" ) word "TO" word ( "]" | "}" )   a range, [ ] inclusive, { } exclusive, * open
//!           | address "/" bits                   (actor.ip only) a CIDR block
//! text      = word | phrase                      free text: action, error.message, details strings
//! field     = action | actor.id | actor.type | actor.name | actor.ip | category | level
//!           | outcome | resource.type | resource.id | correlation_id | request_id | trace_id
//!           | error.code | error.message | step.name | step.status | duration_ms
//!           | occurred_at | received_at | seq | details.<path>
//! ```
//!
//! Keywords are upper case (`and`, `or`, `not` in lower case are words). A parse error
//! names the column (1-based, in characters) where the query stops making sense.

mod ast;
mod eval;
mod parse;

pub use ast::{Compare, Field, Match, Query, Value};
pub use eval::matches;
pub use parse::{ParseError, parse};
