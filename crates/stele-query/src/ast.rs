//! What a query means, once parsed: a tree of conditions on typed fields.

use std::net::IpAddr;
use stele_core::{Level, Timestamp};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// The empty query: every event.
    All,
    And(Vec<Query>),
    Or(Vec<Query>),
    Not(Box<Query>),
    /// A condition on one field.
    Field(Field, Match),
    /// Free text (a word, a `word*` prefix, or a phrase of words in a row) in the action,
    /// the error message or any string in `details`, without regard to case.
    Text {
        words: Vec<String>,
        prefix: bool,
    },
}

/// A field a condition can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Action,
    ActorId,
    ActorType,
    ActorName,
    ActorIp,
    Category,
    Level,
    Outcome,
    ResourceType,
    ResourceId,
    CorrelationId,
    RequestId,
    TraceId,
    ErrorCode,
    ErrorMessage,
    StepName,
    StepStatus,
    DurationMs,
    OccurredAt,
    ReceivedAt,
    Seq,
    /// `details.a.b`: the path below `details`.
    Details(Vec<String>),
}

/// What a field's values are, which says which conditions make sense on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Matched whole (or by prefix).
    Keyword,
    /// One of a closed set of names.
    Enum(&'static [&'static str]),
    /// Ordered names (`level`).
    Level,
    /// Words, matched without regard to case.
    Text,
    Number,
    Time,
    Ip,
    /// `details.*`: whatever the event holds there.
    Any,
}

impl Field {
    /// Every fixed field, by its name in queries.
    pub const NAMED: &'static [(&'static str, Field)] = &[
        ("action", Field::Action),
        ("actor.id", Field::ActorId),
        ("actor.type", Field::ActorType),
        ("actor.name", Field::ActorName),
        ("actor.ip", Field::ActorIp),
        ("category", Field::Category),
        ("level", Field::Level),
        ("outcome", Field::Outcome),
        ("resource.type", Field::ResourceType),
        ("resource.id", Field::ResourceId),
        ("correlation_id", Field::CorrelationId),
        ("request_id", Field::RequestId),
        ("trace_id", Field::TraceId),
        ("error.code", Field::ErrorCode),
        ("error.message", Field::ErrorMessage),
        ("step.name", Field::StepName),
        ("step.status", Field::StepStatus),
        ("duration_ms", Field::DurationMs),
        ("occurred_at", Field::OccurredAt),
        ("received_at", Field::ReceivedAt),
        ("seq", Field::Seq),
    ];

    /// The field a query names, if any.
    pub fn named(name: &str) -> Option<Field> {
        if let Some(path) = name.strip_prefix("details.") {
            let parts: Vec<String> = path.split('.').map(str::to_string).collect();
            return parts
                .iter()
                .all(|p| !p.is_empty())
                .then_some(Field::Details(parts));
        }
        Field::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f.clone())
    }

    /// The field's name in queries.
    pub fn name(&self) -> String {
        match self {
            Field::Details(path) => format!("details.{}", path.join(".")),
            fixed => Field::NAMED
                .iter()
                .find(|(_, f)| f == fixed)
                .map(|(n, _)| n.to_string())
                .expect("every fixed field is named"),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Field::ActorType => Kind::Enum(&["user", "service", "api_key", "system"]),
            Field::Category => Kind::Enum(&["audit", "security", "application", "error"]),
            Field::Outcome => Kind::Enum(&["success", "failure", "denied", "partial", "unknown"]),
            Field::StepStatus => Kind::Enum(&["started", "in_progress", "completed", "failed"]),
            Field::Level => Kind::Level,
            Field::ErrorMessage => Kind::Text,
            Field::DurationMs | Field::Seq => Kind::Number,
            Field::OccurredAt | Field::ReceivedAt => Kind::Time,
            Field::ActorIp => Kind::Ip,
            Field::Details(_) => Kind::Any,
            _ => Kind::Keyword,
        }
    }
}

/// A typed value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Number(f64),
    Time(Timestamp),
    Ip(IpAddr),
    Level(Level),
}

/// An order comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Gt,
    Ge,
    Lt,
    Le,
}

/// What a field condition asks of the field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    /// Equal (for text fields: the words, in a row, without regard to case).
    Is(Value),
    /// Starts with.
    Prefix(String),
    Compare(Compare, Value),
    /// Between; each end `(value, inclusive)`, or open.
    Range {
        from: Option<(Value, bool)>,
        to: Option<(Value, bool)>,
    },
    /// In the block `address/bits`.
    Cidr(IpAddr, u8),
}
