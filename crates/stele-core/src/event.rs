//! The audit event: one struct for what a client sends and what the log stores. Field
//! names are stable API; Stele assigns `seq` and `received_at`, and `id` when absent.

use crate::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;
use uuid::Uuid;

/// An audit event. Absent optional fields are absent from the canonical bytes (never `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(
        default,
        deserialize_with = "assigned",
        skip_serializing_if = "Option::is_none"
    )]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub occurred_at: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "assigned",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub received_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Free-form data: numbers must survive canonical encoding exactly, and no object may
    /// name a member twice.
    #[serde(
        default,
        deserialize_with = "crate::exact::details",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<Map<String, Value>>,
}

impl Event {
    /// Parses an event from the canonical bytes the store holds.
    pub fn from_stored(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn tenant(&self) -> &str {
        self.tenant.as_deref().unwrap_or_default()
    }
}

/// A field Stele assigns (`seq`, `received_at`): a client's value is refused by validation,
/// and `null` here, so that no value of it passes unnoticed.
fn assigned<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)?
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("is assigned by Stele and must not be sent"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ActorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An IPv4 or IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "203.0.113.9"))]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Resource {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StepStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Declares a closed string enum with its wire names, in one place.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        // The wire names are the variants in snake_case (a test holds them equal to the
        // literals): `rename_all` is what both serde and the OpenAPI schema read.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($wire => Some($name::$variant),)+ _ => None }
            }

            /// The accepted names, for error messages.
            pub fn expected() -> String {
                [$($wire),+].join(", ")
            }
        }
    };
}

wire_enum!(ActorType { User = "user", Service = "service", ApiKey = "api_key", System = "system" });
wire_enum!(
    /// The kind of event: what it records, not how severe it is (that is `Level`).
    Category { Audit = "audit", Security = "security", Application = "application", Error = "error" }
);
wire_enum!(
    /// Ordered from least to most severe, so `level >= warn` is a comparison.
    Level { Debug = "debug", Info = "info", Warn = "warn", Error = "error", Critical = "critical" }
);
wire_enum!(Outcome {
    Success = "success",
    Failure = "failure",
    Denied = "denied",
    Partial = "partial",
    Unknown = "unknown",
});
wire_enum!(StepStatus {
    Started = "started",
    InProgress = "in_progress",
    Completed = "completed",
    Failed = "failed",
});

/// The defaults written into an event that does not state them.
pub const DEFAULT_CATEGORY: Category = Category::Audit;
pub const DEFAULT_LEVEL: Level = Level::Info;
pub const DEFAULT_OUTCOME: Outcome = Outcome::Unknown;

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire name of every variant, as serde writes and reads it, is its literal.
    #[test]
    fn wire_names_are_the_literals() {
        fn check<T>(all: &[T], name: fn(&T) -> &'static str)
        where
            T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            for v in all {
                let text = serde_json::to_value(v).unwrap();
                assert_eq!(text, serde_json::Value::from(name(v)));
                assert_eq!(&serde_json::from_value::<T>(text).unwrap(), v);
            }
        }
        check(ActorType::ALL, |v| v.as_str());
        check(Category::ALL, |v| v.as_str());
        check(Level::ALL, |v| v.as_str());
        check(Outcome::ALL, |v| v.as_str());
        check(StepStatus::ALL, |v| v.as_str());
    }

    #[test]
    fn levels_are_ordered_by_severity() {
        assert!(Level::Debug < Level::Info);
        assert!(Level::Info < Level::Warn);
        assert!(Level::Error < Level::Critical);
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse("WARN"), None);
    }
}
