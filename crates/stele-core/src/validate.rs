//! Validation and normalization of incoming events: every limit and enum, each failure a
//! clear reason naming the field. A valid event leaves here presealed, ready to sequence.

use crate::event::{DEFAULT_CATEGORY, DEFAULT_LEVEL, DEFAULT_OUTCOME, Event};
use crate::seal::Presealed;
use crate::timestamp::Timestamp;
use serde_json::Value;
use uuid::Uuid;

/// Limits on a single event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The canonical event must fit a C2SP entry bundle (uint16 length prefix).
    pub max_event_bytes: usize,
    /// Every string except inside `details` and `error.stack`.
    pub max_string_bytes: usize,
    /// Nesting of objects and arrays; the event object itself is depth 1.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 65_535,
            max_string_bytes: 4_096,
            max_depth: 16,
        }
    }
}

/// What the request supplies for fields an event leaves out.
#[derive(Debug, Clone, Copy)]
pub struct IngestDefaults<'a> {
    pub tenant: &'a str,
    pub occurred_at: Timestamp,
}

/// Everything wrong with one event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", reasons.join("; "))]
pub struct ValidationError {
    pub reasons: Vec<String>,
}

impl ValidationError {
    fn one(reason: impl Into<String>) -> Self {
        ValidationError {
            reasons: vec![reason.into()],
        }
    }
}

/// Checks a tenant (log) name: 1–64 of `a-z 0-9 _ . -`, starting with a letter or digit.
/// Names starting with `_` are reserved for Stele's own logs.
pub fn validate_tenant(name: &str) -> Result<(), String> {
    if name.starts_with('_') {
        return Err(format!(
            "tenant `{name}`: names starting with `_` are reserved"
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant `{}`: must be 1-64 characters of a-z, 0-9, `_`, `.`, `-`, starting with a letter or digit",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// Checks an action name: dotted lowercase words, e.g. `user.login`.
pub fn validate_action(action: &str) -> Result<(), String> {
    let ok = !action.is_empty()
        && action.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err("action: must match ^[a-z0-9_]+(\\.[a-z0-9_]+)*$ (e.g. `user.login`)".to_string())
    }
}

/// A valid event with Stele's defaults filled in, presealed and ready to sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The event's id: the client's, or one from `new_id`.
    pub id: Uuid,
    /// The log it goes to: the event's own, or the request's default.
    pub tenant: String,
    /// The client chose the id, so the event may be a retry of one already stored.
    pub client_id: bool,
    /// The normalized event (without `seq` and `received_at`).
    pub event: Event,
    pub presealed: Presealed,
}

/// Validates one event as sent by a client, fills Stele's defaults and preseales it.
/// `new_id` is called only when the event has no `id`.
pub fn prepare(
    value: Value,
    defaults: &IngestDefaults<'_>,
    limits: &Limits,
    new_id: impl FnOnce() -> Uuid,
) -> Result<Prepared, ValidationError> {
    if !value.is_object() {
        return Err(ValidationError::one("an event must be a JSON object"));
    }
    let event = serde_path_to_error::deserialize(value).map_err(shape_error)?;
    finish(event, defaults, limits, new_id, false)
}

/// Like [`prepare`], from the JSON text of one event: the event is read straight into the
/// event model, with no intermediate JSON tree.
pub fn prepare_json(
    text: &str,
    defaults: &IngestDefaults<'_>,
    limits: &Limits,
    new_id: impl FnOnce() -> Uuid,
) -> Result<Prepared, ValidationError> {
    if !text.trim_start().starts_with('{') {
        return Err(ValidationError::one("an event must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let event = serde_path_to_error::deserialize(&mut de).map_err(shape_error)?;
    de.end()
        .map_err(|e| ValidationError::one(without_position(&e)))?;
    finish(event, defaults, limits, new_id, false)
}

/// Like [`prepare`], for an event Stele writes itself into one of its reserved logs
/// (`_stele`): the same checks, but the tenant must be given and reserved.
pub fn prepare_reserved(
    event: Event,
    defaults: &IngestDefaults<'_>,
    limits: &Limits,
    new_id: impl FnOnce() -> Uuid,
) -> Result<Prepared, ValidationError> {
    let reserved = event
        .tenant
        .as_deref()
        .and_then(|t| t.strip_prefix('_'))
        .is_some_and(|rest| validate_tenant(rest).is_ok());
    if !reserved {
        return Err(ValidationError::one(
            "tenant: a reserved log's name is `_` and a valid name",
        ));
    }
    finish(event, defaults, limits, new_id, true)
}

/// Says what is wrong with an event's shape, naming the field. Positions in the text are
/// left out: they would be relative to one event, not to the request.
fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> ValidationError {
    let path = e.path().to_string();
    let message = without_position(e.inner());
    let hint = if message.starts_with("unknown field") {
        " (put custom data under `details`)"
    } else {
        ""
    };
    if path == "." {
        ValidationError::one(format!("{message}{hint}"))
    } else {
        ValidationError::one(format!("{path}: {message}{hint}"))
    }
}

/// An error's message without the ` at line L column C` that text parsing appends.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if e.line() == 0 {
        return message;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_string(),
        None => message,
    }
}

/// The checks and defaults that follow parsing, shared by both entry points.
fn finish(
    mut event: Event,
    defaults: &IngestDefaults<'_>,
    limits: &Limits,
    new_id: impl FnOnce() -> Uuid,
    reserved: bool,
) -> Result<Prepared, ValidationError> {
    let depth = event_depth(&event);
    if depth > limits.max_depth {
        return Err(ValidationError::one(format!(
            "nesting depth {depth} exceeds the limit of {}",
            limits.max_depth
        )));
    }
    let mut reasons = Vec::new();
    if event.seq.is_some() {
        reasons.push("seq: is assigned by Stele and must not be sent".to_string());
    }
    if event.received_at.is_some() {
        reasons.push("received_at: is assigned by Stele and must not be sent".to_string());
    }
    if let Err(reason) = validate_action(&event.action) {
        reasons.push(reason);
    }
    check_strings(&event, limits.max_string_bytes, &mut reasons);

    let tenant = event
        .tenant
        .clone()
        .unwrap_or_else(|| defaults.tenant.to_string());
    if !reserved && let Err(reason) = validate_tenant(&tenant) {
        reasons.push(reason);
    }
    if !reasons.is_empty() {
        return Err(ValidationError { reasons });
    }

    let client_id = event.id.is_some();
    let id = *event.id.get_or_insert_with(new_id);
    event.tenant = Some(tenant.clone());
    let occurred_at_defaulted = event.occurred_at.is_none();
    event.occurred_at.get_or_insert(defaults.occurred_at);
    event.category.get_or_insert(DEFAULT_CATEGORY);
    event.level.get_or_insert(DEFAULT_LEVEL);
    event.outcome.get_or_insert(DEFAULT_OUTCOME);

    let mut presealed = Presealed::new(&event).map_err(|e| ValidationError::one(e.to_string()))?;
    if occurred_at_defaulted {
        presealed.set_occurred_at_defaulted();
    }
    if presealed.max_sealed_len() > limits.max_event_bytes {
        return Err(ValidationError::one(format!(
            "the canonical event would be {} bytes, over the limit of {}",
            presealed.max_sealed_len(),
            limits.max_event_bytes
        )));
    }
    Ok(Prepared {
        id,
        tenant,
        client_id,
        event,
        presealed,
    })
}

/// The nesting depth of the event as JSON: the event object is depth 1, its fixed
/// sub-objects depth 2, and only `details` can go deeper.
fn event_depth(event: &Event) -> usize {
    let nested = event.actor.is_some()
        || event.resource.is_some()
        || event.step.is_some()
        || event.error.is_some()
        || event.source.is_some();
    let details = event
        .details
        .as_ref()
        .map_or(0, |d| 1 + d.values().map(depth).max().unwrap_or(0));
    1 + details.max(usize::from(nested))
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_strings(event: &Event, max: usize, reasons: &mut Vec<String>) {
    let mut check = |path: &str, value: Option<&str>| {
        let Some(value) = value else { return };
        if value.is_empty() {
            reasons.push(format!(
                "{path}: must not be empty (leave the field out instead)"
            ));
        } else if value.len() > max {
            reasons.push(format!(
                "{path}: {} bytes exceeds the limit of {max}",
                value.len()
            ));
        }
    };
    check("action", Some(&event.action));
    check("correlation_id", event.correlation_id.as_deref());
    check("request_id", event.request_id.as_deref());
    check("trace_id", event.trace_id.as_deref());
    if let Some(a) = &event.actor {
        check("actor.id", a.id.as_deref());
        check("actor.name", a.name.as_deref());
        check("actor.user_agent", a.user_agent.as_deref());
        check("actor.session_id", a.session_id.as_deref());
    }
    if let Some(r) = &event.resource {
        check("resource.type", r.kind.as_deref());
        check("resource.id", r.id.as_deref());
        check("resource.name", r.name.as_deref());
    }
    if let Some(s) = &event.step {
        check("step.name", Some(&s.name));
    }
    if let Some(e) = &event.error {
        check("error.code", e.code.as_deref());
        check("error.message", e.message.as_deref());
    }
    if let Some(s) = &event.source {
        check("source.service", s.service.as_deref());
        check("source.host", s.host.as_deref());
        check("source.version", s.version.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-22T12:00:00Z").unwrap()
    }

    fn check(value: Value) -> Result<Event, String> {
        let defaults = IngestDefaults {
            tenant: "default",
            occurred_at: now(),
        };
        let text = value.to_string();
        let from_value = prepare(value, &defaults, &Limits::default(), Uuid::nil)
            .map(|p| (p.event, p.presealed.max_sealed_len()))
            .map_err(|e| e.to_string());
        let from_text = prepare_json(&text, &defaults, &Limits::default(), Uuid::nil)
            .map(|p| (p.event, p.presealed.max_sealed_len()))
            .map_err(|e| e.to_string());
        assert_eq!(
            from_value, from_text,
            "the two entry points disagree on {text}"
        );
        from_value.map(|(event, _)| event)
    }

    /// Each case: an event and a fragment the error must contain.
    fn rejects(cases: &[(Value, &str)]) {
        for (value, fragment) in cases {
            match check(value.clone()) {
                Ok(_) => panic!("accepted {value}"),
                Err(e) => assert!(e.contains(fragment), "{value}: `{e}` lacks `{fragment}`"),
            }
        }
    }

    #[test]
    fn fills_defaults() {
        let e = check(json!({"action": "user.login"})).unwrap();
        assert_eq!(e.tenant.as_deref(), Some("default"));
        assert_eq!(e.id, Some(Uuid::nil()));
        assert_eq!(e.occurred_at, Some(now()));
        assert_eq!(e.category, Some(crate::Category::Audit));
        assert_eq!(e.level, Some(crate::Level::Info));
        assert_eq!(e.outcome, Some(crate::Outcome::Unknown));
        let id = Uuid::parse_str("0190b3c4-0000-7000-8000-000000000001").unwrap();
        let e = check(json!({"action": "a", "id": id, "tenant": "acme"})).unwrap();
        assert_eq!((e.id, e.tenant.as_deref()), (Some(id), Some("acme")));
    }

    #[test]
    fn prepared_says_whose_id_it_is() {
        let defaults = IngestDefaults {
            tenant: "default",
            occurred_at: now(),
        };
        let fresh = Uuid::now_v7();
        let p = prepare_json(r#"{"action":"a"}"#, &defaults, &Limits::default(), || fresh).unwrap();
        assert_eq!(
            (p.id, p.client_id, p.tenant.as_str()),
            (fresh, false, "default")
        );
        assert_eq!(p.event.id, Some(fresh));
        let id = "0190b3c4-0000-7000-8000-000000000001";
        let text = format!(r#"{{"action":"a","id":"{id}","tenant":"acme"}}"#);
        let p = prepare_json(&text, &defaults, &Limits::default(), || unreachable!()).unwrap();
        assert_eq!(
            (p.id.to_string(), p.client_id, p.tenant.as_str()),
            (id.to_string(), true, "acme")
        );
    }

    #[test]
    fn accepts_a_full_event() {
        let e = check(json!({
            "id": "0190b3c4-0000-7000-8000-000000000001",
            "tenant": "acme-prod",
            "occurred_at": "2026-11-22T13:00:00+01:00",
            "actor": {"id": "u1", "type": "user", "name": "Ann", "ip": "2001:DB8::1",
                      "user_agent": "curl/8", "session_id": "s1"},
            "action": "passport.verify",
            "category": "security", "level": "warn", "outcome": "failure",
            "resource": {"type": "passport", "id": "p1", "name": "P"},
            "correlation_id": "c1", "request_id": "r1", "trace_id": "t1",
            "step": {"name": "sod_check", "status": "failed", "sequence": 3},
            "duration_ms": 42,
            "error": {"code": "E1", "message": "bad", "stack": "x"},
            "source": {"service": "pa", "host": "h", "version": "1.0"},
            "details": {"k": [1, {"n": null}]}
        }))
        .unwrap();
        assert_eq!(e.actor.unwrap().ip.unwrap().to_string(), "2001:db8::1");
        assert_eq!(
            e.occurred_at.unwrap().to_string(),
            "2026-11-22T12:00:00.000000Z"
        );
    }

    #[test]
    fn rejects_bad_enums() {
        rejects(&[
            (
                json!({"action": "a", "category": "audits"}),
                "category: unknown variant",
            ),
            (
                json!({"action": "a", "level": "fatal"}),
                "level: unknown variant",
            ),
            (
                json!({"action": "a", "outcome": "ok"}),
                "outcome: unknown variant",
            ),
            (
                json!({"action": "a", "actor": {"type": "robot"}}),
                "actor.type: unknown variant",
            ),
            (
                json!({"action": "a", "step": {"name": "s", "status": "done"}}),
                "step.status",
            ),
        ]);
    }

    #[test]
    fn rejects_bad_shapes_and_values() {
        rejects(&[
            (json!([]), "must be a JSON object"),
            (json!("x"), "must be a JSON object"),
            (json!({}), "missing field `action`"),
            (json!({"action": "User.Login"}), "action: must match"),
            (json!({"action": "user..login"}), "action: must match"),
            (json!({"action": "user."}), "action: must match"),
            (json!({"action": ""}), "action"),
            (
                json!({"action": "a", "colour": "red"}),
                "unknown field `colour`",
            ),
            (
                json!({"action": "a", "actor": {"email": "x"}}),
                "actor.email: unknown field `email`",
            ),
            (
                json!({"action": "a", "actor": {"ip": "10.0.0.300"}}),
                "actor.ip",
            ),
            (
                json!({"action": "a", "actor": {"ip": "localhost"}}),
                "actor.ip",
            ),
            (
                json!({"action": "a", "occurred_at": "2026-11-22"}),
                "occurred_at",
            ),
            (
                json!({"action": "a", "occurred_at": 1700000000}),
                "occurred_at",
            ),
            (json!({"action": "a", "id": "not-a-uuid"}), "id"),
            (json!({"action": "a", "duration_ms": -1}), "duration_ms"),
            (json!({"action": "a", "details": [1]}), "details"),
            (
                json!({"action": "a", "seq": 3}),
                "seq: is assigned by Stele",
            ),
            (
                json!({"action": "a", "received_at": "2026-11-22T00:00:00Z"}),
                "received_at",
            ),
            (
                json!({"action": "a", "request_id": ""}),
                "request_id: must not be empty",
            ),
            (json!({"action": "a", "tenant": "_stele"}), "reserved"),
            (json!({"action": "a", "tenant": "Acme"}), "tenant `Acme`"),
            (
                json!({"action": "a", "details": {"n": 9007199254740993u64}}),
                "send it as a string",
            ),
        ]);
    }

    #[test]
    fn string_limit_applies_outside_details_and_stack() {
        let at_limit = "x".repeat(4096);
        let over = "x".repeat(4097);
        check(json!({"action": "a", "request_id": at_limit})).unwrap();
        rejects(&[
            (
                json!({"action": "a", "request_id": over}),
                "request_id: 4097 bytes",
            ),
            (
                json!({"action": "a", "actor": {"name": over}}),
                "actor.name: 4097",
            ),
            (
                json!({"action": "a", "error": {"message": over}}),
                "error.message: 4097",
            ),
        ]);
        check(json!({"action": "a", "error": {"stack": "y".repeat(20_000)}})).unwrap();
        check(json!({"action": "a", "details": {"body": "y".repeat(20_000)}})).unwrap();
    }

    #[test]
    fn event_size_limit() {
        let e = check(json!({"action": "a", "details": {"body": "y".repeat(65_400)}}));
        assert!(e.is_err_and(|e| e.contains("over the limit of 65535")));
        assert!(check(json!({"action": "a", "details": {"body": "y".repeat(65_000)}})).is_ok());
    }

    #[test]
    fn depth_limit() {
        let mut nested = json!(1);
        for _ in 0..15 {
            nested = json!({ "n": nested });
        }
        // the event object (1) holding 15 nested objects: depth 16
        check(json!({"action": "a", "details": nested.clone()})).unwrap();
        rejects(&[(json!({"action": "a", "details": {"n": nested}}), "depth 17")]);
    }

    #[test]
    fn text_entry_point_reports_without_positions() {
        let defaults = IngestDefaults {
            tenant: "default",
            occurred_at: now(),
        };
        let run = |text: &str| {
            prepare_json(text, &defaults, &Limits::default(), Uuid::nil)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(run("[1]"), "an event must be a JSON object");
        assert_eq!(run("  7"), "an event must be a JSON object");
        let e = run(r#"{"action": "a"} x"#);
        assert!(e.starts_with("trailing characters"), "{e}");
        let e = run("{\n\"action\": \"a\",\n \"actor\": {\"ip\": 5}}");
        assert!(e.starts_with("actor.ip: invalid type"), "{e}");
        assert!(!e.contains("line"), "{e}");
        assert!(
            prepare_json(
                r#" {"action": "a"} "#,
                &defaults,
                &Limits::default(),
                Uuid::nil
            )
            .is_ok()
        );
    }

    #[test]
    fn tenant_names() {
        for ok in ["a", "acme", "acme-prod.eu_1", &"a".repeat(64)] {
            validate_tenant(ok).unwrap();
        }
        for bad in ["", "_stele", "-a", ".a", "A", "a b", "a/b", &"a".repeat(65)] {
            validate_tenant(bad).unwrap_err();
        }
    }
}
