//! Sealing: the canonical bytes of an event, from which its leaf hash is computed. An event is
//! encoded once, before sequencing, with two gaps where the sequencer writes `received_at`
//! and `seq`; sealing splices them in, so the writer copies bytes instead of re-encoding.

use crate::canonical::{self, CanonicalError};
use crate::event::Event;
use crate::timestamp::Timestamp;
use std::fmt;
use uuid::Uuid;

/// Writes the members of one JSON object in the order they are given, which must be JCS
/// order; absent (`None`) members are left out.
struct Members<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Members<'a> {
    fn new(out: &'a mut Vec<u8>) -> Members<'a> {
        out.push(b'{');
        Members { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        canonical::write_string(self.out, name);
        self.out.push(b':');
    }

    fn string(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.key(name);
            canonical::write_string(self.out, v);
        }
    }

    /// A value whose `Display` form is its JSON string (needing no escapes).
    fn display(&mut self, name: &str, value: Option<&impl fmt::Display>) {
        if let Some(v) = value {
            use std::io::Write;
            self.key(name);
            self.out.push(b'"');
            write!(self.out, "{v}").expect("writing to a Vec cannot fail");
            self.out.push(b'"');
        }
    }

    fn number(&mut self, name: &str, value: Option<u64>) -> Result<(), CanonicalError> {
        if let Some(v) = value {
            self.key(name);
            canonical::write_u64(self.out, v)?;
        }
        Ok(())
    }

    fn object(
        &mut self,
        name: &str,
        members: impl FnOnce(&mut Members<'_>) -> Result<(), CanonicalError>,
    ) -> Result<(), CanonicalError> {
        self.key(name);
        let mut inner = Members::new(self.out);
        members(&mut inner)?;
        inner.out.push(b'}');
        Ok(())
    }

    fn finish(self) {
        self.out.push(b'}');
    }
}

/// A position in a log's Merkle tree (0-based leaf index).
pub type Seq = u64;

/// `"received_at":"2026-01-02T03:04:05.000006Z",`
const RECEIVED_AT_LEN: usize = r#""received_at":"","#.len() + 27;
/// `2026-01-02T03:04:05.000006Z`: every timestamp's canonical text has this length.
const TIMESTAMP_LEN: usize = 27;
/// `"seq":18446744073709551615,` at its longest.
const SEQ_MAX_LEN: usize = r#""seq":,"#.len() + 20;

/// A server time formatted once for a whole batch: the writer seals many events with the
/// same `received_at`, and formatting it per event would be work on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealTime {
    at: Timestamp,
    text: String,
}

impl SealTime {
    pub fn new(at: Timestamp) -> SealTime {
        SealTime {
            at,
            text: at.to_string(),
        }
    }

    pub fn timestamp(&self) -> Timestamp {
        self.at
    }
}

/// An event's canonical bytes with the places where `received_at` and `seq` go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presealed {
    bytes: Vec<u8>,
    received_at_at: usize,
    seq_at: usize,
    /// Where the value of `occurred_at` starts (its 27 bytes follow the quote).
    occurred_at_at: Option<usize>,
    /// The server filled `occurred_at` in: a retry of the event will carry another one.
    occurred_at_defaulted: bool,
}

impl Presealed {
    /// Encodes a validated event that has a tenant but neither `seq` nor `received_at`.
    ///
    /// The members are written straight from the struct in JCS order (every name is ASCII,
    /// so byte order is UTF-16 order); only `details` goes through the generic encoder.
    pub fn new(event: &Event) -> Result<Self, CanonicalError> {
        debug_assert!(event.seq.is_none() && event.received_at.is_none());
        let tenant = event
            .tenant
            .as_deref()
            .expect("a validated event has a tenant: it sorts after seq and closes both gaps");
        let mut bytes = Vec::with_capacity(640);
        let mut w = Members::new(&mut bytes);
        w.string("action", Some(&event.action));
        if let Some(a) = &event.actor {
            w.object("actor", |w| {
                w.string("id", a.id.as_deref());
                w.display("ip", a.ip.as_ref());
                w.string("name", a.name.as_deref());
                w.string("session_id", a.session_id.as_deref());
                w.string("type", a.kind.map(|k| k.as_str()));
                w.string("user_agent", a.user_agent.as_deref());
                Ok(())
            })?;
        }
        w.string("category", event.category.map(|c| c.as_str()));
        w.string("correlation_id", event.correlation_id.as_deref());
        if let Some(details) = &event.details {
            w.key("details");
            canonical::write_object(w.out, details)?;
        }
        w.number("duration_ms", event.duration_ms)?;
        if let Some(e) = &event.error {
            w.object("error", |w| {
                w.string("code", e.code.as_deref());
                w.string("message", e.message.as_deref());
                w.string("stack", e.stack.as_deref());
                Ok(())
            })?;
        }
        if let Some(id) = event.id {
            w.string(
                "id",
                Some(id.hyphenated().encode_lower(&mut Uuid::encode_buffer())),
            );
        }
        w.string("level", event.level.map(|l| l.as_str()));
        let occurred_at_at = event
            .occurred_at
            .map(|_| w.out.len() + usize::from(!w.first) + r#""occurred_at":""#.len());
        w.display("occurred_at", event.occurred_at.as_ref());
        w.string("outcome", event.outcome.map(|o| o.as_str()));
        // `"received_at":…,` goes before the next member, after its comma.
        let received_at_at = w.out.len() + 1;
        w.string("request_id", event.request_id.as_deref());
        if let Some(r) = &event.resource {
            w.object("resource", |w| {
                w.string("id", r.id.as_deref());
                w.string("name", r.name.as_deref());
                w.string("type", r.kind.as_deref());
                Ok(())
            })?;
        }
        let seq_at = w.out.len() + 1;
        if let Some(s) = &event.source {
            w.object("source", |w| {
                w.string("host", s.host.as_deref());
                w.string("service", s.service.as_deref());
                w.string("version", s.version.as_deref());
                Ok(())
            })?;
        }
        if let Some(s) = &event.step {
            w.object("step", |w| {
                w.string("name", Some(&s.name));
                w.number("sequence", s.sequence.map(u64::from))?;
                w.string("status", s.status.map(|s| s.as_str()));
                Ok(())
            })?;
        }
        w.string("tenant", Some(tenant));
        w.string("trace_id", event.trace_id.as_deref());
        w.finish();
        Ok(Presealed {
            bytes,
            received_at_at,
            seq_at,
            occurred_at_at,
            occurred_at_defaulted: false,
        })
    }

    /// Notes that `occurred_at` was filled in by the server, not sent by the client.
    pub(crate) fn set_occurred_at_defaulted(&mut self) {
        self.occurred_at_defaulted = true;
    }

    /// Whether this event, sent again with the id of `earlier`, is the same event: the same
    /// canonical bytes, except an `occurred_at` that the server filled in.
    pub fn same_event(&self, earlier: &Presealed) -> bool {
        if self.bytes == earlier.bytes {
            return true;
        }
        match (self.occurred_at_defaulted, earlier.occurred_at_at) {
            (true, Some(at)) => {
                self.with_occurred_at(&earlier.bytes[at..at + TIMESTAMP_LEN]) == earlier.bytes
            }
            _ => false,
        }
    }

    /// Whether `stored`, the canonical bytes of a stored event with this event's id, is this
    /// event (see [`Presealed::same_event`]). `None` if `stored` is not a stored event.
    pub fn is_stored_as(&self, stored: &[u8]) -> Option<bool> {
        let event = crate::Event::from_stored(stored).ok()?;
        let (seq, received_at) = (event.seq?, event.received_at?);
        let time = SealTime::new(received_at);
        if self.seal(seq, &time) == stored {
            return Some(true);
        }
        if !self.occurred_at_defaulted {
            return Some(false);
        }
        let Some(occurred_at) = event.occurred_at else {
            return Some(false);
        };
        let retried = Presealed {
            bytes: self.with_occurred_at(occurred_at.to_string().as_bytes()),
            occurred_at_defaulted: false,
            ..self.clone()
        };
        Some(retried.seal(seq, &time) == stored)
    }

    /// The presealed bytes with another `occurred_at` value (of the same, fixed length).
    fn with_occurred_at(&self, value: &[u8]) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        if let Some(at) = self.occurred_at_at
            && value.len() == TIMESTAMP_LEN
        {
            bytes[at..at + TIMESTAMP_LEN].copy_from_slice(value);
        }
        bytes
    }

    /// The length of the sealed bytes at their longest (largest possible `seq`).
    pub fn max_sealed_len(&self) -> usize {
        self.bytes.len() + RECEIVED_AT_LEN + SEQ_MAX_LEN
    }

    /// The canonical bytes of the event at `seq`, received at `received_at`.
    pub fn seal(&self, seq: Seq, received_at: &SealTime) -> Vec<u8> {
        let b = &self.bytes;
        let mut out = Vec::with_capacity(b.len() + RECEIVED_AT_LEN + SEQ_MAX_LEN);
        out.extend_from_slice(&b[..self.received_at_at]);
        out.extend_from_slice(b"\"received_at\":\"");
        out.extend_from_slice(received_at.text.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(&b[self.received_at_at..self.seq_at]);
        out.extend_from_slice(b"\"seq\":");
        canonical::write_decimal(&mut out, seq);
        out.push(b',');
        out.extend_from_slice(&b[self.seq_at..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn event(value: Value) -> Event {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn sealing_equals_encoding_the_whole_event() {
        let samples = [
            json!({"tenant": "acme", "action": "user.login"}),
            json!({"tenant": "t", "action": "a", "request_id": "r", "resource": {"id": "x"}}),
            json!({"tenant": "t", "action": "a", "occurred_at": "2026-01-01T00:00:00Z",
                   "outcome": "denied", "details": {"z": 1, "é": [1.5, null]}}),
        ];
        for sample in samples {
            let ev = event(sample);
            let pre = Presealed::new(&ev).unwrap();
            let received = Timestamp::parse("2026-11-22T13:53:55.123456Z").unwrap();
            for seq in [0, 7, u64::MAX] {
                let sealed = pre.seal(seq, &SealTime::new(received));
                let mut full = ev.clone();
                full.seq = Some(seq);
                full.received_at = Some(received);
                let mut value = serde_json::to_value(&full).unwrap();
                if seq > canonical::MAX_SAFE_INTEGER {
                    // Too large for JCS itself; compare with the value encoded as text.
                    value["seq"] = json!(0);
                    let expect = String::from_utf8(canonical::to_vec(&value).unwrap())
                        .unwrap()
                        .replace("\"seq\":0", &format!("\"seq\":{seq}"));
                    assert_eq!(String::from_utf8(sealed.clone()).unwrap(), expect);
                    assert_eq!(sealed.len(), pre.max_sealed_len());
                } else {
                    assert_eq!(sealed, canonical::to_vec(&value).unwrap());
                    assert!(sealed.len() <= pre.max_sealed_len());
                }
            }
        }
    }

    /// Any string, biased towards what needs escaping or sorts oddly.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9._-]{1,12}",
            "[\"\\\\\u{0}-\u{1f}é€😀\u{fb33} a]{1,8}",
        ]
    }

    fn opt<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
        proptest::option::of(s)
    }

    fn details() -> impl Strategy<Value = serde_json::Map<String, Value>> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0u64..=crate::canonical::MAX_SAFE_INTEGER).prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map(text(), value, 0..5).prop_map(|m| m.into_iter().collect())
    }

    /// Every field of the event model, each present or not.
    fn any_event() -> impl Strategy<Value = Event> {
        let actor = (
            opt(text()),
            opt(proptest::sample::select(ActorType::ALL.to_vec())),
            opt(text()),
            opt(any::<std::net::IpAddr>()),
            opt(text()),
            opt(text()),
        )
            .prop_map(|(id, kind, name, ip, user_agent, session_id)| Actor {
                id,
                kind,
                name,
                ip,
                user_agent,
                session_id,
            });
        let resource = (opt(text()), opt(text()), opt(text()))
            .prop_map(|(kind, id, name)| Resource { kind, id, name });
        let step = (
            text(),
            opt(proptest::sample::select(StepStatus::ALL.to_vec())),
            opt(any::<u32>()),
        )
            .prop_map(|(name, status, sequence)| Step {
                name,
                status,
                sequence,
            });
        let error =
            (opt(text()), opt(text()), opt(text())).prop_map(|(code, message, stack)| ErrorInfo {
                code,
                message,
                stack,
            });
        let source =
            (opt(text()), opt(text()), opt(text())).prop_map(|(service, host, version)| Source {
                service,
                host,
                version,
            });
        let head = (
            opt(any::<u128>().prop_map(uuid::Uuid::from_u128)),
            text(),
            opt((-62_167_219_200_000_000i64..253_402_300_799_999_999)
                .prop_map(|m| Timestamp::from_micros(m).unwrap())),
            opt(actor),
            text(),
            opt(proptest::sample::select(Category::ALL.to_vec())),
            opt(proptest::sample::select(Level::ALL.to_vec())),
            opt(proptest::sample::select(Outcome::ALL.to_vec())),
        );
        let tail = (
            opt(resource),
            opt(text()),
            opt(text()),
            opt(text()),
            opt(step),
            opt(0u64..=crate::canonical::MAX_SAFE_INTEGER),
            opt(error),
            opt(source),
            opt(details()),
        );
        (head, tail).prop_map(
            |(
                (id, tenant, occurred_at, actor, action, category, level, outcome),
                (
                    resource,
                    correlation_id,
                    request_id,
                    trace_id,
                    step,
                    duration_ms,
                    error,
                    source,
                    details,
                ),
            )| Event {
                id,
                seq: None,
                tenant: Some(tenant),
                occurred_at,
                received_at: None,
                actor,
                action,
                category,
                level,
                outcome,
                resource,
                correlation_id,
                request_id,
                trace_id,
                step,
                duration_ms,
                error,
                source,
                details,
            },
        )
    }

    proptest! {
        /// The direct encoder agrees with encoding the event as a generic JSON value.
        #[test]
        fn direct_encoding_equals_generic_encoding(ev in any_event(), seq in 0u64..=crate::canonical::MAX_SAFE_INTEGER) {
            let received = Timestamp::parse("2026-11-22T13:53:55.123456Z").unwrap();
            let sealed = Presealed::new(&ev).unwrap().seal(seq, &SealTime::new(received));
            let mut full = ev.clone();
            full.seq = Some(seq);
            full.received_at = Some(received);
            let expected = canonical::to_vec(&serde_json::to_value(&full).unwrap()).unwrap();
            prop_assert_eq!(String::from_utf8(sealed).unwrap(), String::from_utf8(expected).unwrap());
        }
    }
}
