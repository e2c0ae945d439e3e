//! The indexed fields: exact-match terms for filters, fast fields for ordering and ranges,
//! and one full-text field. Nothing is stored: bodies are read from the log store.

use stele_core::Event;
use tantivy::TantivyDocument;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};

#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub tenant: Field,
    pub seq: Field,
    pub occurred_at: Field,
    pub received_at: Field,
    pub duration_ms: Field,
    pub level: Field,
    pub ip: Field,
    pub actor_id: Field,
    pub actor_type: Field,
    pub action: Field,
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
        occurred_at: b.add_i64_field("occurred_at", FAST),
        received_at: b.add_i64_field("received_at", FAST),
        duration_ms: b.add_u64_field("duration_ms", FAST),
        level: b.add_u64_field("level", FAST),
        ip: b.add_ip_addr_field("ip", INDEXED | FAST),
        actor_id: b.add_text_field("actor_id", STRING),
        actor_type: b.add_text_field("actor_type", STRING),
        action: b.add_text_field("action", STRING),
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

/// Builds the document of one stored event.
pub(crate) fn document(f: &Fields, tenant: &str, seq: u64, e: &Event) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.tenant, tenant);
    doc.add_u64(f.seq, seq);
    let mut text = String::with_capacity(128);
    let add = |doc: &mut TantivyDocument, field: Field, value: Option<&str>| {
        if let Some(v) = value {
            doc.add_text(field, v);
        }
    };
    add(&mut doc, f.action, Some(&e.action));
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
        for value in details.values() {
            push_json_text(&mut text, value);
        }
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

fn push_json_text(text: &mut String, value: &serde_json::Value) {
    match value {
        serde_json::Value::String(s) => push_text(text, Some(s)),
        serde_json::Value::Array(items) => items.iter().for_each(|v| push_json_text(text, v)),
        serde_json::Value::Object(map) => map.values().for_each(|v| push_json_text(text, v)),
        serde_json::Value::Number(n) => push_text(text, Some(&n.to_string())),
        _ => {}
    }
}
