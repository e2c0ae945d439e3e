//! The search index against a real SQLite store: every filter of `EventQuery` is checked
//! against the answer computed from the generated events, pagination visits each match once,
//! and an index that resumes after a restart answers like one rebuilt from scratch.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stele_core::cursor::SortOrder;
use stele_core::{
    ActorType, Category, Event, IngestDefaults, Level, Limits, Outcome, Timestamp, prepare,
};
use stele_index::{
    ActionFilter, EventQuery, Indexer, IndexerOptions, Progress, SearchIndex, SearchPage, catch_up,
};
use stele_store::sqlite::SqliteStore;
use stele_store::{LogStore, LogWriter, NewEvent};
use uuid::Uuid;

const ACTOR_IDS: &[&str] = &[
    "u0",
    "u1",
    "u2",
    "u3",
    "u4",
    "svc-billing",
    "Ann@example.com",
];
/// Used in globex only: a filter on it must find nothing in acme.
const GLOBEX_ONLY_ACTOR: &str = "globex-only";
const IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "192.168.1.20",
    "2001:db8::1",
    "2001:DB8::2",
    "fe80::1",
    "::1",
];
const ACTIONS: &[&str] = &[
    "user",
    "user.login",
    "user.logout",
    "user.password.reset",
    "users.list",
    "admin.user.delete",
    "doc.read",
    "doc.write",
    "doc.share.external",
    "billing.invoice.paid",
];
/// Free-text notes in `details`.
const NOTES: &[&str] = &[
    "free text",
    "Quarterly review, see ticket 42",
    "user.login from a new device",
];
const PREFIXES: &[&str] = &[
    "user.",
    "user",
    "users",
    "doc.",
    "doc.share.",
    "admin.user.",
    "b",
    "",
    "nope.",
];
const RESOURCE_TYPES: &[&str] = &["document", "invoice", "user", "passport"];
const ERROR_CODES: &[&str] = &["E_TIMEOUT", "E_DENIED", "db.locked"];
/// Larger than any log here: one page holds every match.
const ALL: usize = 1_000_000;

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("valid timestamp")
}

/// The occurred_at of events that leave it out.
fn default_occurred_at() -> Timestamp {
    ts("2026-01-05T00:00:00Z")
}

fn micros(n: i64) -> Timestamp {
    Timestamp::from_micros(n).expect("in range")
}

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One stored event, as generated.
struct Stored {
    tenant: String,
    seq: u64,
    /// The normalized event as sent, with the `received_at` the writer gave it.
    event: Event,
}

/// A SQLite store in a temporary directory, filled with generated events.
struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn LogStore>,
    writer: Box<dyn LogWriter>,
    rng: Rng,
    /// Bodies sent with a client-chosen id, to send again as retries.
    client_sent: Vec<(String, Value)>,
    /// Every stored event, in append order.
    events: Vec<Stored>,
    clock: i64,
}

impl Fixture {
    fn new(seed: u64) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn LogStore> =
            Arc::new(SqliteStore::open(&dir.path().join("stele.db")).expect("open the store"));
        let writer = store.writer().expect("writer");
        Fixture {
            dir,
            store,
            writer,
            rng: Rng(seed),
            client_sent: Vec::new(),
            events: Vec::new(),
            clock: ts("2026-02-01T00:00:00Z").as_micros(),
        }
    }

    fn index_dir(&self) -> PathBuf {
        self.dir.path().join("index")
    }

    fn open_index(&self) -> Arc<SearchIndex> {
        SearchIndex::open(&self.index_dir()).expect("open the index")
    }

    fn catch_up(&self, index: &Arc<SearchIndex>) -> u64 {
        catch_up(index.clone(), self.store.clone(), &options()).expect("catch_up")
    }

    fn size(&self, tenant: &str) -> u64 {
        self.events.iter().filter(|e| e.tenant == tenant).count() as u64
    }

    fn tenants(&self) -> Vec<String> {
        let mut tenants: Vec<String> = self.events.iter().map(|e| e.tenant.clone()).collect();
        tenants.sort();
        tenants.dedup();
        tenants
    }

    fn heads(&self) -> Progress {
        self.store
            .heads()
            .expect("heads")
            .into_iter()
            .map(|h| (h.tenant, h.size))
            .collect()
    }

    /// Appends `n` new events (and a few retries, which store nothing) over `tenants`.
    fn append(&mut self, n: usize, tenants: &[&str]) {
        let mut fresh = 0;
        while fresh < n {
            let mut batch = Vec::new();
            let mut sent = Vec::new();
            while fresh < n && batch.len() < 250 {
                let retry = !self.client_sent.is_empty() && self.rng.chance(3);
                let (tenant, body) = if retry {
                    let i = self.rng.below(self.client_sent.len());
                    self.client_sent[i].clone()
                } else {
                    fresh += 1;
                    // acme gets most of the events.
                    let tenant = if self.rng.chance(60) {
                        tenants[0]
                    } else {
                        *self.rng.pick(tenants)
                    };
                    let mut body = self.body(tenant);
                    if self.rng.chance(10) {
                        body["id"] = json!(Uuid::now_v7());
                        self.client_sent.push((tenant.to_string(), body.clone()));
                    }
                    (tenant.to_string(), body)
                };
                let client_id = body.get("id").is_some();
                let defaults = IngestDefaults {
                    tenant: &tenant,
                    occurred_at: default_occurred_at(),
                };
                let prepared = prepare(body, &defaults, &Limits::default(), Uuid::now_v7)
                    .expect("a valid event");
                let event = prepared.event.clone();
                batch.push(NewEvent {
                    client_id,
                    ..NewEvent::from(prepared)
                });
                sent.push((retry, event));
            }
            self.clock += 1_000;
            let out = self
                .writer
                .append(&batch, micros(self.clock))
                .expect("append");
            assert_eq!(out.len(), batch.len());
            for ((retry, event), appended) in sent.into_iter().zip(out) {
                assert_eq!(appended.duplicate, retry, "seq {}", appended.seq);
                if !retry {
                    let tenant = event.tenant().to_string();
                    assert_eq!(appended.seq, self.size(&tenant), "seqs are dense");
                    let event = Event {
                        received_at: Some(appended.received_at),
                        ..event
                    };
                    self.events.push(Stored {
                        tenant,
                        seq: appended.seq,
                        event,
                    });
                }
            }
        }
    }

    fn body(&mut self, tenant: &str) -> Value {
        let rng = &mut self.rng;
        let mut m = Map::new();
        m.insert("action".into(), json!(rng.pick(ACTIONS)));
        if rng.chance(85) {
            let mut actor = Map::new();
            if rng.chance(90) {
                let id = if tenant == "globex" && rng.chance(5) {
                    GLOBEX_ONLY_ACTOR
                } else {
                    rng.pick(ACTOR_IDS)
                };
                actor.insert("id".into(), json!(id));
            }
            if rng.chance(80) {
                actor.insert("type".into(), json!(rng.pick(ActorType::ALL).as_str()));
            }
            if rng.chance(70) {
                actor.insert("ip".into(), json!(rng.pick(IPS)));
            }
            if rng.chance(30) {
                actor.insert("name".into(), json!("Ann Example"));
            }
            m.insert("actor".into(), Value::Object(actor));
        }
        if rng.chance(70) {
            m.insert("category".into(), json!(rng.pick(Category::ALL).as_str()));
        }
        if rng.chance(70) {
            m.insert("level".into(), json!(rng.pick(Level::ALL).as_str()));
        }
        if rng.chance(70) {
            m.insert("outcome".into(), json!(rng.pick(Outcome::ALL).as_str()));
        }
        if rng.chance(60) {
            let mut resource = Map::new();
            resource.insert("type".into(), json!(rng.pick(RESOURCE_TYPES)));
            if rng.chance(80) {
                resource.insert("id".into(), json!(format!("r{}", rng.below(40))));
            }
            m.insert("resource".into(), Value::Object(resource));
        }
        if rng.chance(50) {
            m.insert(
                "correlation_id".into(),
                json!(format!("c{}", rng.below(30))),
            );
        }
        if rng.chance(60) {
            m.insert(
                "request_id".into(),
                json!(format!("req-{}", rng.below(500))),
            );
        }
        if rng.chance(30) {
            m.insert(
                "trace_id".into(),
                json!(format!("{:032x}", rng.below(50) * 7919)),
            );
        }
        if rng.chance(20) {
            m.insert(
                "error".into(),
                json!({"code": rng.pick(ERROR_CODES), "message": "it failed"}),
            );
        }
        if rng.chance(10) {
            let name = if rng.chance(50) {
                "sod_check"
            } else {
                "Review"
            };
            m.insert("step".into(), json!({"name": name, "status": "completed"}));
        }
        if rng.chance(40) {
            m.insert("duration_ms".into(), json!(rng.below(2_000)));
        }
        if rng.chance(25) {
            let note = *rng.pick(NOTES);
            m.insert("details".into(), json!({"note": note, "n": rng.below(100)}));
        }
        if rng.chance(90) {
            // Whole minutes over two weeks, so that many events share an instant; some with
            // microseconds, some written with an offset.
            let mut at =
                ts("2026-01-01T00:00:00Z").as_micros() + rng.below(20_000) as i64 * 60_000_000;
            if rng.chance(30) {
                at += rng.below(1_000_000) as i64;
            }
            let text = if rng.chance(25) {
                let dt = time::OffsetDateTime::from_unix_timestamp_nanos(at as i128 * 1_000)
                    .expect("in range")
                    .to_offset(time::UtcOffset::from_hms(5, 30, 0).expect("offset"));
                dt.format(&time::format_description::well_known::Rfc3339)
                    .expect("formats")
            } else {
                micros(at).to_string()
            };
            m.insert("occurred_at".into(), json!(text));
        }
        Value::Object(m)
    }

    /// The seqs matching `q`, in its order, computed from the generated events (ignores
    /// `limit`).
    fn expected(&self, q: &EventQuery) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .events
            .iter()
            .filter(|s| matches(q, s))
            .map(|s| s.seq)
            .collect();
        seqs.sort_unstable();
        if q.order == SortOrder::Desc {
            seqs.reverse();
        }
        seqs
    }

    /// Every query of `tenant` to try, each with a label and the filter it exercises.
    fn queries(&mut self, tenant: &str) -> Vec<(&'static str, String, EventQuery)> {
        let base = || EventQuery::all(tenant, ALL);
        let mut out: Vec<(&'static str, String, EventQuery)> = Vec::new();
        let mut add =
            |filter: &'static str, label: String, q: EventQuery| out.push((filter, label, q));

        add("all", "all".into(), base());
        for id in ACTOR_IDS.iter().chain([&GLOBEX_ONLY_ACTOR, &"nobody"]) {
            add(
                "actor_id",
                format!("actor_id={id}"),
                EventQuery {
                    actor_id: Some(id.to_string()),
                    ..base()
                },
            );
        }
        for &t in ActorType::ALL {
            add(
                "actor_type",
                format!("actor_type={t:?}"),
                EventQuery {
                    actor_type: Some(t),
                    ..base()
                },
            );
        }
        for ip in IPS.iter().chain(&["10.0.0.9", "2001:db8::9"]) {
            let ip: IpAddr = ip.parse().expect("an ip");
            let filter = if ip.is_ipv4() { "ip_v4" } else { "ip_v6" };
            add(
                filter,
                format!("ip={ip}"),
                EventQuery {
                    ip: Some(ip),
                    ..base()
                },
            );
        }
        for a in ACTIONS.iter().chain(&["user.log", "doc"]) {
            let action = Some(ActionFilter::Exact(a.to_string()));
            add(
                "action",
                format!("action={a}"),
                EventQuery { action, ..base() },
            );
        }
        for p in PREFIXES {
            let action = Some(ActionFilter::Prefix(p.to_string()));
            add(
                "action_prefix",
                format!("action={p}*"),
                EventQuery { action, ..base() },
            );
        }
        for &c in Category::ALL {
            add(
                "category",
                format!("category={c:?}"),
                EventQuery {
                    category: Some(c),
                    ..base()
                },
            );
        }
        for &l in Level::ALL {
            add(
                "min_level",
                format!("min_level={l:?}"),
                EventQuery {
                    min_level: Some(l),
                    ..base()
                },
            );
        }
        for &o in Outcome::ALL {
            add(
                "outcome",
                format!("outcome={o:?}"),
                EventQuery {
                    outcome: Some(o),
                    ..base()
                },
            );
        }
        for t in RESOURCE_TYPES.iter().chain(&["Document"]) {
            let resource_type = Some(t.to_string());
            add(
                "resource_type",
                format!("resource_type={t}"),
                EventQuery {
                    resource_type,
                    ..base()
                },
            );
        }
        for i in 0..42 {
            let resource_id = Some(format!("r{i}"));
            add(
                "resource_id",
                format!("resource_id=r{i}"),
                EventQuery {
                    resource_id,
                    ..base()
                },
            );
        }
        for i in 0..31 {
            let correlation_id = Some(format!("c{i}"));
            add(
                "correlation_id",
                format!("correlation_id=c{i}"),
                EventQuery {
                    correlation_id,
                    ..base()
                },
            );
        }
        for i in (0..500).step_by(23) {
            let request_id = Some(format!("req-{i}"));
            add(
                "request_id",
                format!("request_id=req-{i}"),
                EventQuery {
                    request_id,
                    ..base()
                },
            );
        }
        for i in (0..52).step_by(3) {
            let trace_id = Some(format!("{:032x}", i * 7919));
            add(
                "trace_id",
                format!("trace_id #{i}"),
                EventQuery { trace_id, ..base() },
            );
        }
        for code in ERROR_CODES.iter().chain(&["E_OTHER"]) {
            let error_code = Some(code.to_string());
            add(
                "error_code",
                format!("error_code={code}"),
                EventQuery {
                    error_code,
                    ..base()
                },
            );
        }

        for step in ["sod_check", "Review", "review", "other"] {
            add(
                "step",
                format!("step={step}"),
                EventQuery {
                    step: Some(step.to_string()),
                    ..base()
                },
            );
        }
        for (min, max) in [
            (Some(0), None),
            (Some(1_000), None),
            (None, Some(10)),
            (Some(500), Some(500)),
            (Some(100), Some(1_200)),
            (Some(1_500), Some(1_000)),
        ] {
            add(
                "duration",
                format!("duration {min:?}..={max:?}"),
                EventQuery {
                    min_duration_ms: min,
                    max_duration_ms: max,
                    ..base()
                },
            );
        }
        for text in [
            "free",
            "FREE text",
            "it failed",
            "ann",
            "Example ann",
            "quarterly",
            "login",
            "user.login",
            "nothing-like-it",
            "r7",
        ] {
            add(
                "text",
                format!("text={text}"),
                EventQuery {
                    text: Some(text.to_string()),
                    ..base()
                },
            );
        }
        let mut received: Vec<Timestamp> = self
            .events
            .iter()
            .filter(|s| s.tenant == tenant)
            .filter_map(|s| s.event.received_at)
            .collect();
        received.sort();
        received.dedup();
        for _ in 0..if received.is_empty() { 0 } else { 10 } {
            let (a, b) = (*self.rng.pick(&received), *self.rng.pick(&received));
            for (from, to) in [
                (Some(a.min(b)), Some(a.max(b))),
                (Some(a), None),
                (None, Some(b)),
            ] {
                add(
                    "received",
                    format!("received from={from:?} to={to:?}"),
                    EventQuery {
                        received_from: from,
                        received_to: to,
                        ..base()
                    },
                );
            }
        }

        // Ranges bounded by instants that events have, so both bounds are exercised.
        let mut instants: Vec<Timestamp> = self
            .events
            .iter()
            .filter(|s| s.tenant == tenant)
            .filter_map(|s| s.event.occurred_at)
            .collect();
        instants.sort();
        instants.dedup();
        let d = default_occurred_at();
        let mut ranges = vec![(Some(d), None), (None, Some(d)), (Some(d), Some(d))];
        if !instants.is_empty() {
            let (first, last) = (instants[0], instants[instants.len() - 1]);
            ranges.extend([
                (Some(first), None),
                (None, Some(last)),
                (Some(first), Some(last)),
            ]);
            ranges.push((Some(micros(last.as_micros() + 1)), None));
            for _ in 0..15 {
                let (a, b) = (*self.rng.pick(&instants), *self.rng.pick(&instants));
                ranges.push((Some(a.min(b)), Some(a.max(b))));
                ranges.push((Some(a), None));
                ranges.push((None, Some(b)));
            }
        }
        for (from, to) in ranges {
            add(
                "range",
                format!("from={from:?} to={to:?}"),
                EventQuery { from, to, ..base() },
            );
        }

        // Conjunctions, built from the fields of one event so that they match something.
        let own: Vec<usize> = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, s)| s.tenant == tenant)
            .map(|(i, _)| i)
            .collect();
        for _ in 0..if own.is_empty() { 0 } else { 60 } {
            let s = &self.events[*self.rng.pick(&own)];
            let e = &s.event;
            let rng = &mut self.rng;
            let mut q = base();
            let actor = e.actor.as_ref();
            let mut maybe = |p| rng.chance(p);
            if maybe(50) {
                q.actor_id = actor.and_then(|a| a.id.clone());
            }
            if maybe(40) {
                q.actor_type = actor.and_then(|a| a.kind);
            }
            if maybe(30) {
                q.ip = actor.and_then(|a| a.ip);
            }
            if maybe(40) {
                q.action = Some(ActionFilter::Exact(e.action.clone()));
            } else if maybe(30) {
                // Up to its last dot: `doc.share.external` gives `doc.share.`.
                let prefix = e
                    .action
                    .rfind('.')
                    .map_or(&e.action[..], |i| &e.action[..=i]);
                q.action = Some(ActionFilter::Prefix(prefix.to_string()));
            }
            if maybe(30) {
                q.category = e.category;
            }
            if maybe(40) {
                q.min_level = e.level;
            }
            if maybe(40) {
                q.outcome = e.outcome;
            }
            if maybe(30) {
                q.resource_type = e.resource.as_ref().and_then(|r| r.kind.clone());
            }
            if maybe(20) {
                q.resource_id = e.resource.as_ref().and_then(|r| r.id.clone());
            }
            if maybe(20) {
                q.correlation_id = e.correlation_id.clone();
            }
            if maybe(10) {
                q.request_id = e.request_id.clone();
            }
            if maybe(10) {
                q.trace_id = e.trace_id.clone();
            }
            if maybe(20) {
                q.error_code = e.error.as_ref().and_then(|x| x.code.clone());
            }
            if maybe(40) {
                let at = e
                    .occurred_at
                    .expect("prepare fills occurred_at")
                    .as_micros();
                q.from = Some(micros(at - rng.below(3) as i64 * 86_400_000_000));
                q.to = Some(micros(at + 1 + rng.below(3) as i64 * 86_400_000_000));
            }
            let label = format!("conjunction around seq {}", s.seq);
            assert!(matches(&q, s), "{label}: the query misses its own event");
            add("conjunction", label, q);
        }
        out
    }
}

fn options() -> IndexerOptions {
    // Several read steps per catch-up, and a modest writer arena.
    // and a commit every few hundred events: many segments, some of them merged, so that
    // listings seek across segments of every kind.
    IndexerOptions {
        read_batch: 100,
        writer_memory: 20 << 20,
        catch_up_commit_events: 500,
        ..IndexerOptions::default()
    }
}

/// Whether the generated event matches `q`: the meaning of each filter, written out.
fn matches(q: &EventQuery, s: &Stored) -> bool {
    fn eq<T: PartialEq>(want: &Option<T>, have: Option<T>) -> bool {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    }
    let e = &s.event;
    let actor = e.actor.as_ref();
    let resource = e.resource.as_ref();
    s.tenant == q.tenant
        && eq(&q.actor_id.as_deref(), actor.and_then(|a| a.id.as_deref()))
        && eq(&q.actor_type, actor.and_then(|a| a.kind))
        && eq(&q.ip, actor.and_then(|a| a.ip))
        && match &q.action {
            None => true,
            Some(ActionFilter::Exact(a)) => &e.action == a,
            Some(ActionFilter::Prefix(p)) => e.action.starts_with(p.as_str()),
        }
        && eq(&q.category, e.category)
        && q.min_level
            .is_none_or(|min| e.level.is_some_and(|l| l >= min))
        && eq(&q.outcome, e.outcome)
        && eq(
            &q.resource_type.as_deref(),
            resource.and_then(|r| r.kind.as_deref()),
        )
        && eq(
            &q.resource_id.as_deref(),
            resource.and_then(|r| r.id.as_deref()),
        )
        && eq(&q.correlation_id.as_deref(), e.correlation_id.as_deref())
        && eq(&q.request_id.as_deref(), e.request_id.as_deref())
        && eq(&q.trace_id.as_deref(), e.trace_id.as_deref())
        && eq(
            &q.error_code.as_deref(),
            e.error.as_ref().and_then(|x| x.code.as_deref()),
        )
        && eq(&q.step.as_deref(), e.step.as_ref().map(|s| s.name.as_str()))
        && q.min_duration_ms
            .is_none_or(|min| e.duration_ms.is_some_and(|d| d >= min))
        && q.max_duration_ms
            .is_none_or(|max| e.duration_ms.is_some_and(|d| d <= max))
        && q.text.as_deref().is_none_or(|text| has_words(e, text))
        && q.received_from
            .is_none_or(|from| e.received_at.is_some_and(|t| t >= from))
        && q.received_to
            .is_none_or(|to| e.received_at.is_some_and(|t| t < to))
        && q.from
            .is_none_or(|from| e.occurred_at.is_some_and(|t| t >= from))
        && q.to.is_none_or(|to| e.occurred_at.is_some_and(|t| t < to))
        && q.after.is_none_or(|after| match q.order {
            SortOrder::Asc => s.seq > after,
            SortOrder::Desc => s.seq < after,
        })
}

/// Whether every word of `text` occurs in the event's searchable text: the action, the
/// actor's and resource's names, the error message, and the strings and numbers of
/// `details`, split at anything but letters and digits, case-insensitively.
fn has_words(e: &Event, text: &str) -> bool {
    fn words(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }
    let mut haystack = vec![e.action.clone()];
    haystack.extend(e.actor.as_ref().and_then(|a| a.name.clone()));
    haystack.extend(e.resource.as_ref().and_then(|r| r.name.clone()));
    haystack.extend(e.error.as_ref().and_then(|x| x.message.clone()));
    for value in e.details.iter().flat_map(|d| d.values()) {
        match value {
            Value::String(s) => haystack.push(s.clone()),
            Value::Number(n) => haystack.push(n.to_string()),
            _ => {}
        }
    }
    let have: Vec<String> = haystack.iter().flat_map(|h| words(h)).collect();
    words(text).iter().all(|w| have.contains(w))
}

/// A short account of how two seq lists differ, for assertion messages.
fn diff(expected: &[u64], got: &[u64]) -> String {
    let missing: Vec<u64> = expected
        .iter()
        .filter(|s| !got.contains(s))
        .take(5)
        .copied()
        .collect();
    let extra: Vec<u64> = got
        .iter()
        .filter(|s| !expected.contains(s))
        .take(5)
        .copied()
        .collect();
    format!(
        "expected {} seqs, got {}; missing e.g. {missing:?}, unexpected e.g. {extra:?}, first expected {:?}, first got {:?}",
        expected.len(),
        got.len(),
        &expected[..expected.len().min(5)],
        &got[..got.len().min(5)],
    )
}

fn search(index: &SearchIndex, q: &EventQuery) -> SearchPage {
    index.search(q).expect("search")
}

/// Runs `q` (one page holding everything) in both orders and compares with the expectation.
/// Answers the number of matches.
fn check(fx: &Fixture, index: &SearchIndex, label: &str, q: &EventQuery) -> usize {
    let through = fx.size(&q.tenant).checked_sub(1);
    let mut expected_count = None;
    for order in [SortOrder::Asc, SortOrder::Desc] {
        let q = EventQuery { order, ..q.clone() };
        let expected = fx.expected(&q);
        let page = search(index, &q);
        assert!(
            page.seqs == expected,
            "{} {label} ({order:?}): {}",
            q.tenant,
            diff(&expected, &page.seqs)
        );
        assert!(
            !page.has_more,
            "{} {label}: has_more on a page holding everything",
            q.tenant
        );
        assert_eq!(page.indexed_through, through, "{} {label}", q.tenant);
        expected_count = Some(expected.len());
    }
    expected_count.expect("ran")
}

/// Reads every match of `q` page by page, following `after`.
fn paginate(index: &SearchIndex, q: &EventQuery, limit: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = search(
            index,
            &EventQuery {
                after,
                limit,
                ..q.clone()
            },
        );
        pages += 1;
        assert!(pages < 100_000, "pagination does not end");
        assert!(
            page.seqs.len() <= limit,
            "a page of {} for limit {limit}",
            page.seqs.len()
        );
        if page.has_more {
            assert_eq!(page.seqs.len(), limit, "a short page claims more follow");
        }
        seen.extend_from_slice(&page.seqs);
        match (page.has_more, page.seqs.last()) {
            (true, Some(&last)) => after = Some(last),
            _ => break,
        }
    }
    seen
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn filled(seed: u64) -> Fixture {
    let mut fx = Fixture::new(seed);
    fx.append(3_000, &["acme", "globex"]);
    fx
}

#[test]
fn every_filter_matches_the_generated_events() {
    let mut fx = filled(0x5eed_0001);
    let index = fx.open_index();
    assert_eq!(fx.catch_up(&index), 3_000);
    assert_eq!(index.progress(), fx.heads());
    let (segments, ordered) = index.segments_in_order();
    // Six commits, too few segments to merge: the listings seek in each.
    assert!(segments > 1, "{segments} segment: nothing to seek across");
    assert_eq!(ordered, segments, "a segment out of order");

    let mut nonempty: BTreeMap<&str, usize> = BTreeMap::new();
    for tenant in ["acme", "globex"] {
        assert!(
            fx.size(tenant) > 500,
            "{tenant} has too few events to be a test"
        );
        for (filter, label, q) in fx.queries(tenant) {
            let n = check(&fx, &index, &label, &q);
            *nonempty.entry(filter).or_default() += usize::from(n > 0);
        }
    }
    // Every kind of filter found something somewhere, so none of them passed vacuously.
    for filter in [
        "all",
        "actor_id",
        "actor_type",
        "ip_v4",
        "ip_v6",
        "action",
        "action_prefix",
        "category",
        "min_level",
        "outcome",
        "resource_type",
        "resource_id",
        "correlation_id",
        "request_id",
        "trace_id",
        "error_code",
        "range",
        "step",
        "duration",
        "text",
        "received",
        "conjunction",
    ] {
        assert!(
            nonempty.get(filter).copied().unwrap_or(0) > 0,
            "no {filter} query matched anything"
        );
    }
}

#[test]
fn tenants_are_isolated() {
    let fx = filled(0x5eed_0002);
    let index = fx.open_index();
    fx.catch_up(&index);
    for tenant in ["acme", "globex"] {
        let size = fx.size(tenant);
        let page = search(&index, &EventQuery::all(tenant, ALL));
        assert_eq!(page.seqs, (0..size).collect::<Vec<_>>(), "{tenant}");
        assert_eq!(page.indexed_through, Some(size - 1));
        assert_eq!(index.indexed_through(tenant), Some(size - 1));
    }
    // An actor seen only in globex is found there and nowhere else.
    let only = |tenant: &str| EventQuery {
        actor_id: Some(GLOBEX_ONLY_ACTOR.into()),
        ..EventQuery::all(tenant, ALL)
    };
    assert!(!search(&index, &only("globex")).seqs.is_empty());
    assert!(search(&index, &only("acme")).seqs.is_empty());
    // A log that does not exist answers nothing and is indexed through nothing.
    let page = search(&index, &EventQuery::all("initech", ALL));
    assert_eq!(
        page,
        SearchPage {
            seqs: vec![],
            has_more: false,
            indexed_through: None
        }
    );
    assert_eq!(index.indexed_through("initech"), None);
}

#[test]
fn from_is_inclusive_and_to_exclusive() {
    let fx = filled(0x5eed_0007);
    let index = fx.open_index();
    fx.catch_up(&index);
    let d = default_occurred_at();
    let next = micros(d.as_micros() + 1);
    for tenant in ["acme", "globex"] {
        let range = |from, to| EventQuery {
            from,
            to,
            ..EventQuery::all(tenant, ALL)
        };
        let at_d: Vec<u64> = fx
            .events
            .iter()
            .filter(|s| s.tenant == tenant && s.event.occurred_at == Some(d))
            .map(|s| s.seq)
            .collect();
        assert!(
            !at_d.is_empty(),
            "{tenant}: no event at the boundary instant"
        );
        assert_eq!(
            search(&index, &range(Some(d), Some(next))).seqs,
            at_d,
            "{tenant}: [d, d+1us)"
        );
        assert!(
            search(&index, &range(Some(d), Some(d))).seqs.is_empty(),
            "{tenant}: [d, d)"
        );
        let below = search(&index, &range(None, Some(d))).seqs;
        assert!(
            !below.is_empty() && below.iter().all(|s| !at_d.contains(s)),
            "{tenant}: [.., d)"
        );
        let from = search(&index, &range(Some(d), None)).seqs;
        assert!(at_d.iter().all(|s| from.contains(s)), "{tenant}: [d, ..)");
        assert_eq!(
            below.len() + from.len(),
            fx.size(tenant) as usize,
            "{tenant}: the halves do not partition the log"
        );
    }
}

#[test]
fn pagination_visits_every_match_once() {
    let fx = filled(0x5eed_0003);
    let index = fx.open_index();
    fx.catch_up(&index);
    assert!(index.segments_in_order().0 > 1);
    check_pagination(&fx, &index);
}

/// Segments merged in order are sought like the ones they were merged from.
#[test]
fn pagination_in_merged_segments() {
    let fx = filled(0x5eed_0008);
    let index = fx.open_index();
    let opts = IndexerOptions {
        catch_up_commit_events: 100,
        ..options()
    };
    catch_up(index.clone(), fx.store.clone(), &opts).expect("catch_up");
    // 30 commits of ~100 events: merged eight at a time, then the merged ones again.
    let (segments, ordered) = index.segments_in_order();
    assert!(segments < 30, "{segments} segments: nothing was merged");
    assert_eq!(ordered, segments, "a merged segment is out of order");
    check_pagination(&fx, &index);
}

fn check_pagination(fx: &Fixture, index: &SearchIndex) {
    let base = |tenant: &str| EventQuery::all(tenant, ALL);
    let queries = [
        base("acme"),
        base("globex"),
        EventQuery {
            action: Some(ActionFilter::Prefix("user.".into())),
            ..base("acme")
        },
        EventQuery {
            min_level: Some(Level::Warn),
            ..base("acme")
        },
        EventQuery {
            actor_type: Some(ActorType::User),
            ..base("globex")
        },
        EventQuery {
            outcome: Some(Outcome::Failure),
            category: Some(Category::Security),
            ..base("acme")
        },
        EventQuery {
            from: Some(ts("2026-01-03T00:00:00Z")),
            to: Some(ts("2026-01-10T00:00:00Z")),
            ..base("acme")
        },
    ];
    for q in &queries {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let q = EventQuery { order, ..q.clone() };
            let expected = fx.expected(&q);
            assert!(
                expected.len() > 20,
                "{} {q:?}: too few matches to paginate",
                expected.len()
            );
            let n = expected.len();
            for limit in [1, 7, 64, 500, n - 1, n, n + 1] {
                let seen = paginate(index, &q, limit);
                assert!(
                    seen == expected,
                    "{} {order:?} limit {limit}: {}",
                    q.tenant,
                    diff(&expected, &seen)
                );
            }
            // Continuing after the last match, or from before the first, finds nothing.
            let last = *expected.last().expect("matches");
            let page = search(
                index,
                &EventQuery {
                    after: Some(last),
                    ..q.clone()
                },
            );
            assert!(
                page.seqs.is_empty() && !page.has_more,
                "{order:?}: matches after the last one"
            );
            // `after` need not be a match itself: continuing from any seq skips exactly the
            // matches up to and including it.
            for after in [0, 1, 250, 999, 5_000] {
                let page = search(
                    index,
                    &EventQuery {
                        after: Some(after),
                        ..q.clone()
                    },
                );
                let want: Vec<u64> = expected
                    .iter()
                    .copied()
                    .filter(|&s| {
                        if order == SortOrder::Asc {
                            s > after
                        } else {
                            s < after
                        }
                    })
                    .collect();
                assert!(
                    page.seqs == want,
                    "{order:?} after {after}: {}",
                    diff(&want, &page.seqs)
                );
            }
        }
    }
}

#[test]
fn resumed_index_answers_like_a_rebuilt_one() {
    let mut fx = Fixture::new(0x5eed_0004);
    fx.append(1_200, &["acme", "globex"]);
    let first = {
        let index = fx.open_index();
        assert_eq!(fx.catch_up(&index), 1_200);
        index.progress()
    };
    assert_eq!(first, fx.heads());

    // More events, in the old logs and a new one, while the index is closed.
    fx.append(600, &["acme", "globex", "initech"]);
    assert!(fx.size("initech") > 0);
    let resumed = fx.open_index();
    assert_eq!(
        resumed.progress(),
        first,
        "the reopened index forgot how far it got"
    );
    assert_eq!(
        fx.catch_up(&resumed),
        600,
        "catch_up indexed more than the new events"
    );
    assert_eq!(fx.catch_up(&resumed), 0, "a second catch_up found work");
    assert_eq!(resumed.progress(), fx.heads());

    let mut queries = Vec::new();
    for tenant in fx.tenants() {
        queries.extend(
            fx.queries(&tenant)
                .into_iter()
                .map(|(_, label, q)| (label, q)),
        );
    }
    // Pages of 50 in both orders, so has_more is compared too.
    let answer = |index: &SearchIndex| -> Vec<SearchPage> {
        queries
            .iter()
            .flat_map(|(_, q)| {
                [SortOrder::Asc, SortOrder::Desc].map(|order| {
                    search(
                        index,
                        &EventQuery {
                            order,
                            limit: 50,
                            ..q.clone()
                        },
                    )
                })
            })
            .collect()
    };
    for (label, q) in &queries {
        check(&fx, &resumed, label, q);
    }
    let before = answer(&resumed);
    drop(resumed);

    SearchIndex::wipe(&fx.index_dir()).expect("wipe");
    assert!(!fx.index_dir().exists(), "wipe left the index directory");
    let rebuilt = fx.open_index();
    assert!(
        rebuilt.progress().is_empty(),
        "a wiped index remembers progress"
    );
    assert_eq!(fx.catch_up(&rebuilt), 1_800);
    assert_eq!(rebuilt.progress(), fx.heads());
    let after = answer(&rebuilt);
    assert_eq!(before.len(), after.len());
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let (label, q) = &queries[i / 2];
        assert!(
            a == b,
            "{} {label} (page {i}): resumed and rebuilt differ: {}",
            q.tenant,
            diff(&b.seqs, &a.seqs)
        );
    }
}

#[test]
fn background_indexer_follows_the_store() {
    let mut fx = Fixture::new(0x5eed_0005);
    fx.append(500, &["acme"]);
    let index = fx.open_index();
    let commits: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let on_commit = {
        let commits = commits.clone();
        Box::new(move |p: &Progress| commits.lock().expect("commits").push(p.clone()))
    };
    // A long poll interval: only notify() makes the indexer look again soon.
    let opts = IndexerOptions {
        read_batch: 128,
        poll_interval: Duration::from_secs(600),
        writer_memory: 20 << 20,
        ..IndexerOptions::default()
    };
    let indexer = Indexer::spawn(index.clone(), fx.store.clone(), opts, on_commit).expect("spawn");

    // What the store held at start-up is indexed without being told.
    wait_until("the first events are searchable", || {
        index.indexed_through("acme") == Some(499)
    });

    fx.append(700, &["acme", "globex"]);
    indexer.notify();
    let heads = fx.heads();
    wait_until("the second batch is searchable", || {
        index.progress() == heads
    });

    // The notifier works from another thread.
    fx.append(300, &["globex", "acme"]);
    let notifier = indexer.notifier();
    std::thread::spawn(move || notifier.notify())
        .join()
        .expect("notify thread");
    let heads = fx.heads();
    wait_until("the third batch is searchable", || {
        index.progress() == heads
    });

    indexer.shutdown();
    assert_eq!(index.progress(), fx.heads());
    let commits = commits.lock().expect("commits");
    assert_eq!(
        commits.last(),
        Some(&fx.heads()),
        "on_commit did not see the last commit"
    );
    assert!(
        commits
            .windows(2)
            .all(|w| w[1].iter().all(|(t, n)| w[0].get(t).is_none_or(|m| n >= m))),
        "progress went backwards between commits"
    );
    drop(commits);
    for tenant in ["acme", "globex"] {
        check(&fx, &index, "all", &EventQuery::all(tenant, ALL));
        let q = EventQuery {
            min_level: Some(Level::Error),
            ..EventQuery::all(tenant, ALL)
        };
        check(&fx, &index, "min_level=error", &q);
    }
    drop(index);
    // What was committed is on disk.
    assert_eq!(fx.open_index().progress(), fx.heads());
}

#[test]
fn shutdown_indexes_what_is_left() {
    let mut fx = Fixture::new(0x5eed_0006);
    fx.append(100, &["acme"]);
    let index = fx.open_index();
    let opts = IndexerOptions {
        read_batch: 50,
        poll_interval: Duration::from_secs(600),
        writer_memory: 20 << 20,
        ..IndexerOptions::default()
    };
    let indexer =
        Indexer::spawn(index.clone(), fx.store.clone(), opts, Box::new(|_| {})).expect("spawn");
    wait_until("the first events are searchable", || {
        index.indexed_through("acme") == Some(99)
    });

    // Committed to the store, but the indexer is not told before it is shut down.
    fx.append(400, &["acme", "globex"]);
    indexer.shutdown();
    assert_eq!(
        index.progress(),
        fx.heads(),
        "shutdown left committed events unindexed"
    );
}
