//! What a query means for one event, computed directly: the reference that the index's
//! answers are held to, and what alert rules can run on events in memory.

use crate::ast::{Compare, Field, Match, Query, Value};
use serde_json::Value as Json;
use std::cmp::Ordering;
use std::net::IpAddr;
use stele_core::Event;

/// Whether `event` satisfies `query`.
pub fn matches(query: &Query, event: &Event) -> bool {
    match query {
        Query::All => true,
        Query::And(parts) => parts.iter().all(|q| matches(q, event)),
        Query::Or(parts) => parts.iter().any(|q| matches(q, event)),
        Query::Not(inner) => !matches(inner, event),
        Query::Text { words, prefix } => {
            texts(event).any(|t| contains(&self::words(&t), words, *prefix))
        }
        Query::Field(field, condition) => values(field, event)
            .iter()
            .any(|value| holds(condition, value)),
    }
}

/// The words of `text` as the index splits them: runs of letters and digits, in lower case.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `wanted` stands in `have` as consecutive words (the last by prefix if asked).
fn contains(have: &[String], wanted: &[String], prefix: bool) -> bool {
    if wanted.is_empty() || wanted.len() > have.len() {
        return false;
    }
    have.windows(wanted.len()).any(|window| {
        window.iter().zip(wanted).enumerate().all(|(i, (h, w))| {
            if prefix && i == wanted.len() - 1 {
                h.starts_with(w.as_str())
            } else {
                h == w
            }
        })
    })
}

/// The texts free text searches: the action, the error message, every string in details.
fn texts(event: &Event) -> impl Iterator<Item = String> + '_ {
    let mut out = vec![event.action.clone()];
    if let Some(message) = event.error.as_ref().and_then(|e| e.message.clone()) {
        out.push(message);
    }
    if let Some(details) = &event.details {
        for value in details.values() {
            strings(value, &mut out);
        }
    }
    out.into_iter()
}

fn strings(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Json::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// A field's value in an event, as compared.
enum Have {
    Str(String),
    /// Text matched by words.
    Words(String),
    Number(f64),
    Time(i64),
    Ip(IpAddr),
    Level(stele_core::Level),
    Bool(bool),
}

/// The values `field` has in `event`: none if absent, several for an array in details.
fn values(field: &Field, e: &Event) -> Vec<Have> {
    let s = |v: Option<&String>| v.map(|v| Have::Str(v.clone())).into_iter().collect();
    let actor = e.actor.as_ref();
    match field {
        Field::Action => vec![Have::Str(e.action.clone())],
        Field::ActorId => s(actor.and_then(|a| a.id.as_ref())),
        Field::ActorName => s(actor.and_then(|a| a.name.as_ref())),
        Field::ActorType => actor
            .and_then(|a| a.kind)
            .map(|k| Have::Str(k.as_str().into()))
            .into_iter()
            .collect(),
        Field::ActorIp => actor.and_then(|a| a.ip).map(Have::Ip).into_iter().collect(),
        Field::Category => e
            .category
            .map(|c| Have::Str(c.as_str().into()))
            .into_iter()
            .collect(),
        Field::Outcome => e
            .outcome
            .map(|o| Have::Str(o.as_str().into()))
            .into_iter()
            .collect(),
        Field::Level => e.level.map(Have::Level).into_iter().collect(),
        Field::ResourceType => s(e.resource.as_ref().and_then(|r| r.kind.as_ref())),
        Field::ResourceId => s(e.resource.as_ref().and_then(|r| r.id.as_ref())),
        Field::CorrelationId => s(e.correlation_id.as_ref()),
        Field::RequestId => s(e.request_id.as_ref()),
        Field::TraceId => s(e.trace_id.as_ref()),
        Field::ErrorCode => s(e.error.as_ref().and_then(|x| x.code.as_ref())),
        Field::ErrorMessage => e
            .error
            .as_ref()
            .and_then(|x| x.message.clone())
            .map(Have::Words)
            .into_iter()
            .collect(),
        Field::StepName => s(e.step.as_ref().map(|x| &x.name)),
        Field::StepStatus => e
            .step
            .as_ref()
            .and_then(|x| x.status)
            .map(|st| Have::Str(st.as_str().into()))
            .into_iter()
            .collect(),
        Field::DurationMs => e
            .duration_ms
            .map(|d| Have::Number(d as f64))
            .into_iter()
            .collect(),
        Field::Seq => e.seq.map(|d| Have::Number(d as f64)).into_iter().collect(),
        Field::OccurredAt => e
            .occurred_at
            .map(|t| Have::Time(t.as_micros()))
            .into_iter()
            .collect(),
        Field::ReceivedAt => e
            .received_at
            .map(|t| Have::Time(t.as_micros()))
            .into_iter()
            .collect(),
        Field::Details(path) => {
            let mut at = e.details.as_ref().and_then(|d| d.get(&path[0]));
            for key in &path[1..] {
                at = at.and_then(|v| v.get(key));
            }
            let mut out = Vec::new();
            if let Some(v) = at {
                details_values(v, &mut out);
            }
            out
        }
    }
}

fn details_values(value: &Json, out: &mut Vec<Have>) {
    match value {
        Json::String(s) => out.push(Have::Str(s.clone())),
        Json::Number(n) => out.extend(n.as_f64().map(Have::Number)),
        Json::Bool(b) => out.push(Have::Bool(*b)),
        Json::Array(items) => items.iter().for_each(|v| details_values(v, out)),
        Json::Null | Json::Object(_) => {}
    }
}

/// Whether one value satisfies the condition.
fn holds(condition: &Match, have: &Have) -> bool {
    match condition {
        Match::Is(wanted) => equal(have, wanted),
        Match::Prefix(stem) => match have {
            Have::Str(s) => s.starts_with(stem.as_str()),
            Have::Words(t) => contains(&words(t), &words(stem), true),
            _ => false,
        },
        Match::Compare(op, wanted) => order(have, wanted).is_some_and(|o| match op {
            Compare::Gt => o == Ordering::Greater,
            Compare::Ge => o != Ordering::Less,
            Compare::Lt => o == Ordering::Less,
            Compare::Le => o != Ordering::Greater,
        }),
        Match::Range { from, to } => {
            let above = from.as_ref().is_none_or(|(v, inclusive)| {
                order(have, v)
                    .is_some_and(|o| o == Ordering::Greater || (*inclusive && o == Ordering::Equal))
            });
            let below = to.as_ref().is_none_or(|(v, inclusive)| {
                order(have, v)
                    .is_some_and(|o| o == Ordering::Less || (*inclusive && o == Ordering::Equal))
            });
            above && below
        }
        Match::Cidr(block, bits) => match have {
            Have::Ip(ip) => in_block(*ip, *block, *bits),
            _ => false,
        },
    }
}

fn equal(have: &Have, wanted: &Value) -> bool {
    match (have, wanted) {
        (Have::Str(h), Value::Str(w)) => h == w,
        (Have::Words(h), Value::Str(w)) => contains(&words(h), &words(w), false),
        (Have::Bool(h), Value::Str(w)) => h.to_string() == *w,
        (Have::Ip(h), Value::Ip(w)) => h == w,
        (Have::Level(h), Value::Level(w)) => h == w,
        _ => order(have, wanted) == Some(Ordering::Equal),
    }
}

fn order(have: &Have, wanted: &Value) -> Option<Ordering> {
    match (have, wanted) {
        (Have::Number(h), Value::Number(w)) => h.partial_cmp(w),
        (Have::Time(h), Value::Time(w)) => Some(h.cmp(&w.as_micros())),
        (Have::Level(h), Value::Level(w)) => Some(h.cmp(w)),
        (Have::Str(h), Value::Str(w)) => Some(h.as_str().cmp(w.as_str())),
        _ => None,
    }
}

/// Whether `ip` lies in `block/bits` (an IPv4 address matches its IPv4-mapped form too).
fn in_block(ip: IpAddr, block: IpAddr, bits: u8) -> bool {
    let widen = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 96),
        IpAddr::V6(v6) => (u128::from(v6), 0),
    };
    let (ip, _) = widen(ip);
    let (block, offset) = widen(block);
    let bits = u32::from(bits) + offset;
    if bits == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - bits);
    ip & mask == block & mask
}
