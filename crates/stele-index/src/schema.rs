//! The indexed fields: exact-match terms for filters, fast fields for ordering and ranges,
//! and one full-text field. Nothing is stored: bodies are read from the log store.

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::net::IpAddr;
use stele_core::{ActorType, Category, Level, Outcome, Timestamp};
use tantivy::TantivyDocument;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};

#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub tenant: Field,
    pub seq: Field,
    /// The node's own order of addition (not part of the event): documents of a segment are
    /// in this order, so each log's documents are in `seq` order within a segment.
    pub pos: Field,
    pub occurred_at: Field,
    pub received_at: Field,
    pub duration_ms: Field,
    pub level: Field,
    pub ip: Field,
    pub actor_id: Field,
    pub actor_type: Field,
    pub action: Field,
    /// Every proper dotted prefix of the action with its dot (`user.`, `user.password.`),
    /// so that `action=user.*` is one term.
    pub action_prefix: Field,
    pub category: Field,
    pub outcome: Field,
    pub resource_type: Field,
    pub resource_id: Field,
    pub correlation_id: Field,
    pub request_id: Field,
    pub trace_id: Field,
    pub error_code: Field,
    pub step_name: Field,
    pub text: Field,
}

pub(crate) fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        tenant: b.add_text_field("tenant", STRING),
        // Numbers are only ever ranged over or sorted by, which tantivy does on the fast
        // (columnar) field; an inverted index of them would be a near-unique term per
        // event, written and merged for nothing.
        seq: b.add_u64_field("seq", FAST),
        pos: b.add_u64_field("pos", FAST),
        occurred_at: b.add_i64_field("occurred_at", FAST),
        received_at: b.add_i64_field("received_at", FAST),
        duration_ms: b.add_u64_field("duration_ms", FAST),
        level: b.add_u64_field("level", FAST),
        ip: b.add_ip_addr_field("ip", INDEXED | FAST),
        actor_id: b.add_text_field("actor_id", STRING),
        actor_type: b.add_text_field("actor_type", STRING),
        action: b.add_text_field("action", STRING),
        action_prefix: b.add_text_field("action_prefix", STRING),
        category: b.add_text_field("category", STRING),
        outcome: b.add_text_field("outcome", STRING),
        resource_type: b.add_text_field("resource_type", STRING),
        resource_id: b.add_text_field("resource_id", STRING),
        correlation_id: b.add_text_field("correlation_id", STRING),
        request_id: b.add_text_field("request_id", STRING),
        trace_id: b.add_text_field("trace_id", STRING),
        error_code: b.add_text_field("error_code", STRING),
        step_name: b.add_text_field("step_name", STRING),
        // Which documents hold a word, no more: frequencies and positions (for scoring and
        // phrases) would double the indexing work, and filters need neither.
        text: b.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::Basic)
                    .set_fieldnorms(false),
            ),
        ),
    };
    (b.build(), fields)
}

/// The level's rank, so that "at least warn" is a range.
pub(crate) fn level_rank(level: stele_core::Level) -> u64 {
    level as u64
}

/// The parts of a stored event that are indexed, borrowed from its bytes where they need
/// no unescaping. Every field of the event model must be here (others are refused), as
/// when the event is read in full.
// The `IgnoredAny` fields are there only so that they are accepted, never read.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored<'a> {
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(default)]
    seq: Option<IgnoredAny>,
    #[serde(default)]
    tenant: Option<IgnoredAny>,
    #[serde(default)]
    occurred_at: Option<Timestamp>,
    #[serde(default)]
    received_at: Option<Timestamp>,
    #[serde(default, borrow)]
    actor: Option<StoredActor<'a>>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default, borrow)]
    resource: Option<StoredResource<'a>>,
    #[serde(default, borrow)]
    correlation_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    step: Option<StoredStep<'a>>,
    #[serde(default)]
    duration_ms: Option<u64>,
    #[serde(default, borrow)]
    error: Option<StoredError<'a>>,
    #[serde(default)]
    source: Option<IgnoredAny>,
    #[serde(default)]
    details: Option<TextOf>,
}

// The `IgnoredAny` fields are there only so that they are accepted, never read.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredActor<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", default)]
    kind: Option<ActorType>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    ip: Option<IpAddr>,
    #[serde(default)]
    user_agent: Option<IgnoredAny>,
    #[serde(default)]
    session_id: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredResource<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

// The `IgnoredAny` fields are there only so that they are accepted, never read.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredStep<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    status: Option<IgnoredAny>,
    #[serde(default)]
    sequence: Option<IgnoredAny>,
}

// The `IgnoredAny` fields are there only so that they are accepted, never read.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredError<'a> {
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default)]
    stack: Option<IgnoredAny>,
}

/// Every string and number inside a JSON value, each after a space: the searchable text of
/// `details` (keys are not searchable).
struct TextOf(String);

impl<'de> Deserialize<'de> for TextOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut text = String::new();
        d.deserialize_any(Collect(&mut text))?;
        Ok(TextOf(text))
    }
}

struct Collect<'t>(&'t mut String);

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        push_text(self.0, Some(v));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        push_text(self.0, Some(&v.to_string()));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        push_text(self.0, Some(&v.to_string()));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        if let Some(n) = serde_json::Number::from_f64(v) {
            push_text(self.0, Some(&n.to_string()));
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Collect(self.0))?;
        }
        Ok(())
    }
}

/// Builds the document of one stored event from its bytes. An event that cannot be read
/// is indexed by its position only, so that it is counted exactly once.
pub(crate) fn stored_document(
    f: &Fields,
    tenant: &str,
    seq: u64,
    bytes: &[u8],
) -> Result<TantivyDocument, (TantivyDocument, serde_json::Error)> {
    match serde_json::from_slice::<Stored>(bytes) {
        Ok(e) => Ok(document(f, tenant, seq, &e)),
        Err(error) => {
            let mut doc = TantivyDocument::default();
            doc.add_text(f.tenant, tenant);
            doc.add_u64(f.seq, seq);
            Err((doc, error))
        }
    }
}

fn document(f: &Fields, tenant: &str, seq: u64, e: &Stored<'_>) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.tenant, tenant);
    doc.add_u64(f.seq, seq);
    let mut text = String::with_capacity(256);
    let add = |doc: &mut TantivyDocument, field: Field, value: Option<&str>| {
        if let Some(v) = value {
            doc.add_text(field, v);
        }
    };
    add(&mut doc, f.action, Some(&e.action));
    for (i, _) in e.action.match_indices('.') {
        doc.add_text(f.action_prefix, &e.action[..=i]);
    }
    text.push_str(&e.action);
    if let Some(t) = e.occurred_at {
        doc.add_i64(f.occurred_at, t.as_micros());
    }
    if let Some(t) = e.received_at {
        doc.add_i64(f.received_at, t.as_micros());
    }
    if let Some(d) = e.duration_ms {
        doc.add_u64(f.duration_ms, d);
    }
    if let Some(l) = e.level {
        doc.add_u64(f.level, level_rank(l));
    }
    add(&mut doc, f.category, e.category.map(|c| c.as_str()));
    add(&mut doc, f.outcome, e.outcome.map(|o| o.as_str()));
    add(&mut doc, f.correlation_id, e.correlation_id.as_deref());
    add(&mut doc, f.request_id, e.request_id.as_deref());
    add(&mut doc, f.trace_id, e.trace_id.as_deref());
    if let Some(a) = &e.actor {
        add(&mut doc, f.actor_id, a.id.as_deref());
        add(&mut doc, f.actor_type, a.kind.map(|k| k.as_str()));
        if let Some(ip) = a.ip {
            doc.add_ip_addr(f.ip, to_v6(ip));
        }
        push_text(&mut text, a.name.as_deref());
    }
    if let Some(r) = &e.resource {
        add(&mut doc, f.resource_type, r.kind.as_deref());
        add(&mut doc, f.resource_id, r.id.as_deref());
        push_text(&mut text, r.name.as_deref());
    }
    if let Some(s) = &e.step {
        add(&mut doc, f.step_name, Some(&s.name));
    }
    if let Some(err) = &e.error {
        add(&mut doc, f.error_code, err.code.as_deref());
        push_text(&mut text, err.message.as_deref());
    }
    if let Some(details) = &e.details {
        text.push_str(&details.0);
    }
    doc.add_text(f.text, &text);
    doc
}

pub(crate) fn to_v6(ip: std::net::IpAddr) -> std::net::Ipv6Addr {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    }
}

fn push_text(text: &mut String, value: Option<&str>) {
    if let Some(v) = value {
        text.push(' ');
        text.push_str(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::Value;

    fn texts(doc: &TantivyDocument, field: Field) -> Vec<String> {
        doc.get_all(field)
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn a_stored_event_becomes_its_terms_and_text() {
        let (_, f) = build();
        let bytes = br#"{"action":"doc.read","actor":{"id":"u\"1","ip":"10.0.0.1","name":"Ann","type":"user"},"category":"audit","details":{"a":[1,-2,1.5,true,null,{"b":"deep"}],"z":"last"},"error":{"code":"E1","message":"bad thing"},"id":"0190b3c4-0000-7000-8000-000000000001","level":"warn","occurred_at":"2026-01-01T00:00:00.000000Z","outcome":"failure","received_at":"2026-01-01T00:00:01.000000Z","request_id":"r1","resource":{"id":"d1","name":"Doc","type":"document"},"seq":7,"source":{"host":"h"},"step":{"name":"s1","sequence":2,"status":"completed"},"tenant":"acme"}"#;
        let doc = stored_document(&f, "acme", 7, bytes).unwrap_or_else(|(_, e)| panic!("{e}"));
        assert_eq!(texts(&doc, f.actor_id), ["u\"1"]);
        assert_eq!(texts(&doc, f.error_code), ["E1"]);
        assert_eq!(texts(&doc, f.step_name), ["s1"]);
        assert_eq!(texts(&doc, f.action_prefix), ["doc."]);
        let nested = br#"{"action":"user.password.change"}"#;
        let nested = stored_document(&f, "acme", 8, nested).unwrap_or_else(|(_, e)| panic!("{e}"));
        assert_eq!(texts(&nested, f.action_prefix), ["user.", "user.password."]);
        assert_eq!(texts(&doc, f.outcome), ["failure"]);
        assert_eq!(
            texts(&doc, f.text),
            ["doc.read Ann Doc bad thing 1 -2 1.5 deep last"]
        );
        let level: Vec<u64> = doc.get_all(f.level).filter_map(|v| v.as_u64()).collect();
        assert_eq!(level, [level_rank(Level::Warn)]);

        // Unknown fields or values make the event unreadable: only its position is indexed.
        for bad in [
            &br#"{"action":"a","colour":"red"}"#[..],
            br#"{"action":"a","level":"loud"}"#,
            b"not json",
        ] {
            let Err((doc, _)) = stored_document(&f, "acme", 3, bad) else {
                panic!("accepted {}", String::from_utf8_lossy(bad));
            };
            assert_eq!(doc.field_values().count(), 2);
        }
    }
}
