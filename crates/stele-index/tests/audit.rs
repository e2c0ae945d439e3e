//! The index audit against a real SQLite store and a real index: an intact index passes, and
//! each way of tampering with the index through tantivy's own API is named precisely.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use stele_core::cursor::SortOrder;
use stele_core::{ActorType, Category, Event, IngestDefaults, Level, Limits, Outcome, Timestamp};
use stele_index::{EventQuery, IndexAudit, IndexProblem, IndexerOptions, SearchIndex, catch_up};
use stele_store::sqlite::SqliteStore;
use stele_store::{LogStore, LogWriter, NewEvent};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema};
use tantivy::{Index, IndexWriter, TantivyDocument, Term};
use uuid::Uuid;

const ACTIONS: &[&str] = &[
    "user.login",
    "user.logout",
    "doc.read",
    "doc.share.external",
];

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("valid timestamp")
}

/// A varied event: over a few dozen of them every indexed field occurs, and is left out.
fn body(i: usize) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("action".into(), json!(ACTIONS[i % ACTIONS.len()]));
    if i % 7 != 6 {
        let mut actor = serde_json::Map::new();
        actor.insert("id".into(), json!(format!("u{}", i % 5)));
        if !i.is_multiple_of(3) {
            let kind = ActorType::ALL[i % ActorType::ALL.len()];
            actor.insert("type".into(), json!(kind.as_str()));
        }
        match i % 4 {
            0 => actor.insert("ip".into(), json!(format!("10.0.0.{}", i % 200))),
            1 => actor.insert("ip".into(), json!(format!("2001:db8::{:x}", i))),
            _ => None,
        };
        if i.is_multiple_of(5) {
            actor.insert("name".into(), json!("Ann Example"));
        }
        m.insert("actor".into(), Value::Object(actor));
    }
    if i.is_multiple_of(2) {
        m.insert(
            "category".into(),
            json!(Category::ALL[i % Category::ALL.len()].as_str()),
        );
        m.insert(
            "level".into(),
            json!(Level::ALL[i % Level::ALL.len()].as_str()),
        );
        m.insert(
            "outcome".into(),
            json!(Outcome::ALL[i % Outcome::ALL.len()].as_str()),
        );
    }
    if i % 3 == 1 {
        m.insert(
            "resource".into(),
            json!({"type": "document", "id": format!("r{}", i % 11), "name": "Q3 report"}),
        );
    }
    if i % 4 == 2 {
        m.insert("correlation_id".into(), json!(format!("c{}", i % 9)));
        m.insert("request_id".into(), json!(format!("req-{i}")));
        m.insert("trace_id".into(), json!(format!("{:032x}", i * 7919)));
    }
    if i % 6 == 5 {
        m.insert(
            "error".into(),
            json!({"code": "E_TIMEOUT", "message": "it timed out"}),
        );
        m.insert("duration_ms".into(), json!(i * 3));
    }
    if i % 10 == 3 {
        m.insert(
            "step".into(),
            json!({"name": "sod_check", "status": "completed"}),
        );
    }
    if i % 8 == 1 {
        m.insert(
            "details".into(),
            json!({"note": "free text", "n": i, "nested": {"tags": ["Alpha", "beta"]}}),
        );
    }
    if i % 9 != 4 {
        let at = ts("2026-01-01T00:00:00Z").as_micros() + i as i64 * 61_000_123;
        let at = Timestamp::from_micros(at).expect("in range");
        m.insert("occurred_at".into(), json!(at.to_string()));
    }
    Value::Object(m)
}

/// A SQLite store and an index in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn LogStore>,
    writer: Box<dyn LogWriter>,
    appended: usize,
    clock: i64,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn LogStore> =
            Arc::new(SqliteStore::open(&dir.path().join("stele.db")).expect("open the store"));
        let writer = store.writer().expect("writer");
        Fixture {
            dir,
            store,
            writer,
            appended: 0,
            clock: ts("2026-02-01T00:00:00Z").as_micros(),
        }
    }

    /// acme with 300 events and globex with 120, indexed in several commits (segments).
    fn filled() -> Fixture {
        let mut fx = Fixture::new();
        for _ in 0..3 {
            fx.append("acme", 100);
            fx.append("globex", 40);
            fx.index();
        }
        fx
    }

    fn index_dir(&self) -> PathBuf {
        self.dir.path().join("index")
    }

    fn append(&mut self, tenant: &str, n: usize) {
        let mut batch = Vec::new();
        for _ in 0..n {
            let defaults = IngestDefaults {
                tenant,
                occurred_at: ts("2026-01-05T00:00:00Z"),
            };
            let prepared = stele_core::prepare(
                body(self.appended),
                &defaults,
                &Limits::default(),
                Uuid::now_v7,
            )
            .expect("a valid event");
            self.appended += 1;
            batch.push(NewEvent::from(prepared));
        }
        self.clock += 1_000_000;
        let now = Timestamp::from_micros(self.clock).expect("in range");
        self.writer.append(&batch, now).expect("append");
    }

    fn size(&self, tenant: &str) -> u64 {
        self.store
            .heads()
            .expect("heads")
            .into_iter()
            .find(|h| h.tenant == tenant)
            .map_or(0, |h| h.size)
    }

    /// Indexes everything the store holds, and commits.
    fn index(&self) {
        let index = SearchIndex::open(&self.index_dir()).expect("open the index");
        let opts = IndexerOptions {
            read_batch: 64,
            writer_memory: 15 << 20,
            ..IndexerOptions::default()
        };
        catch_up(index, self.store.clone(), &opts).expect("catch_up");
    }

    /// Audits `tenant`, checking what is true of every audit.
    fn audit(&self, tenant: &str) -> IndexAudit {
        let index = SearchIndex::open(&self.index_dir()).expect("open the index");
        let mut reported = Vec::new();
        let audit = index
            .audit(self.store.as_ref(), tenant, &mut |n| reported.push(n))
            .expect("audit");
        assert_eq!(audit.tenant, tenant);
        assert!(
            reported.windows(2).all(|w| w[0] <= w[1]),
            "progress goes forward: {reported:?}"
        );
        assert_eq!(reported.last().copied(), Some(audit.checked));
        audit
    }

    /// The stored event of `tenant` at `seq`.
    fn event(&self, tenant: &str, seq: u64) -> Event {
        let stored = self.store.read_seqs(tenant, &[seq]).expect("read");
        Event::from_stored(&stored[0].bytes).expect("a stored event")
    }

    /// Changes the index with tantivy directly, as an attacker could, and commits keeping
    /// the commit payload (`edit_payload` may change it).
    fn tamper(
        &self,
        edit: impl FnOnce(&mut IndexWriter<TantivyDocument>, &Schema),
        edit_payload: impl FnOnce(&mut Value),
    ) {
        let index = Index::open_in_dir(self.index_dir()).expect("open the tantivy index");
        let text = index
            .load_metas()
            .expect("metas")
            .payload
            .expect("a payload");
        let mut payload: Value = serde_json::from_str(&text).expect("a JSON payload");
        edit_payload(&mut payload);
        let schema = index.schema();
        let mut writer: IndexWriter<TantivyDocument> = index
            .writer_with_num_threads(1, 15_000_000)
            .expect("writer");
        edit(&mut writer, &schema);
        let mut prepared = writer.prepare_commit().expect("prepare commit");
        prepared.set_payload(&payload.to_string());
        prepared.commit().expect("commit");
        writer.wait_merging_threads().expect("merges");
    }
}

fn field(schema: &Schema, name: &str) -> Field {
    schema.get_field(name).expect("a field of the schema")
}

/// Deletes the documents of `tenant` at `seq`.
fn delete(writer: &mut IndexWriter<TantivyDocument>, schema: &Schema, tenant: &str, seq: u64) {
    let term =
        |t: Term| -> Box<dyn Query> { Box::new(TermQuery::new(t, IndexRecordOption::Basic)) };
    let query = BooleanQuery::new(vec![
        (
            Occur::Must,
            term(Term::from_field_text(field(schema, "tenant"), tenant)),
        ),
        (
            Occur::Must,
            // `seq` is a fast field only: select it by range.
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(field(schema, "seq"), seq)),
                Bound::Included(Term::from_field_u64(field(schema, "seq"), seq)),
            )),
        ),
    ]);
    writer.delete_query(Box::new(query)).expect("delete");
}

/// The document the indexer makes of an event, written out again from the schema's
/// description, so that a test can index an event itself, altered or not.
fn document(schema: &Schema, tenant: &str, seq: u64, e: &Event) -> TantivyDocument {
    let f = |name: &str| field(schema, name);
    let mut doc = TantivyDocument::default();
    let add = |doc: &mut TantivyDocument, name: &str, value: Option<&str>| {
        if let Some(v) = value {
            doc.add_text(f(name), v);
        }
    };
    add(&mut doc, "tenant", Some(tenant));
    doc.add_u64(f("seq"), seq);
    let mut text = e.action.clone();
    add(&mut doc, "action", Some(&e.action));
    let parts: Vec<&str> = e.action.split('.').collect();
    for n in 1..parts.len() {
        doc.add_text(f("action_prefix"), format!("{}.", parts[..n].join(".")));
    }
    if let Some(t) = e.occurred_at {
        doc.add_i64(f("occurred_at"), t.as_micros());
    }
    if let Some(t) = e.received_at {
        doc.add_i64(f("received_at"), t.as_micros());
    }
    if let Some(d) = e.duration_ms {
        doc.add_u64(f("duration_ms"), d);
    }
    if let Some(l) = e.level {
        doc.add_u64(f("level"), l as u64);
    }
    add(&mut doc, "category", e.category.map(|c| c.as_str()));
    add(&mut doc, "outcome", e.outcome.map(|o| o.as_str()));
    add(&mut doc, "correlation_id", e.correlation_id.as_deref());
    add(&mut doc, "request_id", e.request_id.as_deref());
    add(&mut doc, "trace_id", e.trace_id.as_deref());
    let mut words = |value: Option<&str>| {
        if let Some(v) = value {
            text.push(' ');
            text.push_str(v);
        }
    };
    if let Some(a) = &e.actor {
        add(&mut doc, "actor_id", a.id.as_deref());
        add(&mut doc, "actor_type", a.kind.map(|k| k.as_str()));
        if let Some(ip) = a.ip {
            let v6 = match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            doc.add_ip_addr(f("ip"), v6);
        }
        words(a.name.as_deref());
    }
    if let Some(r) = &e.resource {
        add(&mut doc, "resource_type", r.kind.as_deref());
        add(&mut doc, "resource_id", r.id.as_deref());
        words(r.name.as_deref());
    }
    if let Some(s) = &e.step {
        add(&mut doc, "step_name", Some(&s.name));
    }
    if let Some(err) = &e.error {
        add(&mut doc, "error_code", err.code.as_deref());
        words(err.message.as_deref());
    }
    fn json_words(words: &mut dyn FnMut(Option<&str>), value: &Value) {
        match value {
            Value::String(s) => words(Some(s)),
            Value::Array(items) => items.iter().for_each(|v| json_words(words, v)),
            Value::Object(map) => map.values().for_each(|v| json_words(words, v)),
            Value::Number(n) => words(Some(&n.to_string())),
            _ => {}
        }
    }
    if let Some(details) = &e.details {
        details.values().for_each(|v| json_words(&mut words, v));
    }
    doc.add_text(f("text"), &text);
    doc
}

fn problem(tenant: &str, seq: Option<u64>, detail: &str) -> IndexProblem {
    IndexProblem {
        tenant: tenant.to_string(),
        seq,
        detail: detail.to_string(),
    }
}

/// Replaces the document of `tenant` at `seq` by the event's, changed by `change`.
fn replace(
    fx: &Fixture,
    tenant: &str,
    seq: u64,
    change: impl FnOnce(&mut TantivyDocument, &Schema),
) {
    let event = fx.event(tenant, seq);
    fx.tamper(
        |writer, schema| {
            delete(writer, schema, tenant, seq);
            let mut doc = document(schema, tenant, seq, &event);
            change(&mut doc, schema);
            writer.add_document(doc).expect("add");
        },
        |_| {},
    );
}

/// Rebuilds `doc` without the values of field `name`.
fn without(doc: &TantivyDocument, schema: &Schema, name: &str) -> TantivyDocument {
    let drop = field(schema, name);
    let mut out = TantivyDocument::default();
    for (f, v) in doc.field_values() {
        if f != drop {
            out.add_field_value(f, v);
        }
    }
    out
}

fn assert_clean(audit: &IndexAudit, size: u64) {
    assert_eq!(audit.problems, vec![], "{} has problems", audit.tenant);
    assert_eq!(audit.checked, size);
    assert_eq!(audit.indexed_through, size);
}

#[test]
fn an_intact_index_has_no_problems() {
    let fx = Fixture::filled();
    assert_eq!(fx.size("acme"), 300);
    assert_eq!(fx.size("globex"), 120);
    assert_clean(&fx.audit("acme"), 300);
    assert_clean(&fx.audit("globex"), 120);
    // A log the store does not know, and the index neither: nothing to compare.
    let audit = fx.audit("initech");
    assert_eq!(
        (audit.checked, audit.indexed_through, audit.problems),
        (0, 0, vec![])
    );
    let index = SearchIndex::open(&fx.index_dir()).expect("open");
    let tenants: BTreeSet<String> = ["acme", "globex"].map(String::from).into();
    assert_eq!(index.indexed_tenants().expect("tenants"), tenants);
}

#[test]
fn a_document_indexed_again_identically_is_no_problem() {
    // Deleted documents do not count, and the test's own document builder is faithful.
    let fx = Fixture::filled();
    for seq in [0, 17, 150, 299] {
        replace(&fx, "acme", seq, |_, _| {});
    }
    assert_clean(&fx.audit("acme"), 300);
    assert_clean(&fx.audit("globex"), 120);
}

#[test]
fn a_deleted_document_is_named() {
    let fx = Fixture::filled();
    fx.tamper(|w, schema| delete(w, schema, "acme", 41), |_| {});
    let audit = fx.audit("acme");
    assert_eq!(
        audit.problems,
        vec![problem(
            "acme",
            Some(41),
            "seq 41 is indexed 0 times, expected once"
        )]
    );
    assert_eq!(audit.checked, 300);
    // The other log is intact, though it also has a seq 41.
    assert_clean(&fx.audit("globex"), 120);
}

#[test]
fn a_document_indexed_twice_is_named() {
    let fx = Fixture::filled();
    let event = fx.event("acme", 7);
    fx.tamper(
        |w, schema| {
            w.add_document(document(schema, "acme", 7, &event))
                .expect("add");
        },
        |_| {},
    );
    assert_eq!(
        fx.audit("acme").problems,
        vec![problem(
            "acme",
            Some(7),
            "seq 7 is indexed 2 times, expected once"
        )]
    );
}

#[test]
fn a_second_document_with_another_actor_is_named() {
    // Making an event show up in bob's searches with a second document of its position.
    let fx = Fixture::filled();
    let event = fx.event("acme", 9);
    let actor = event
        .actor
        .as_ref()
        .and_then(|a| a.id.clone())
        .expect("an actor");
    fx.tamper(
        |w, schema| {
            let doc = document(schema, "acme", 9, &event);
            let mut doc = without(&doc, schema, "actor_id");
            doc.add_text(field(schema, "actor_id"), "bob");
            w.add_document(doc).expect("add");
        },
        |_| {},
    );
    assert_eq!(
        fx.audit("acme").problems,
        vec![
            problem("acme", Some(9), "seq 9 is indexed 2 times, expected once"),
            problem(
                "acme",
                Some(9),
                &format!("seq 9: field actor_id indexed as [\"bob\"], the event has [\"{actor}\"]")
            ),
        ]
    );
}

#[test]
fn a_changed_actor_id_is_named() {
    let fx = Fixture::filled();
    let actor = fx
        .event("acme", 7)
        .actor
        .and_then(|a| a.id)
        .expect("an actor");
    replace(&fx, "acme", 7, |doc, schema| {
        *doc = without(doc, schema, "actor_id");
        doc.add_text(field(schema, "actor_id"), "mallory");
    });
    assert_eq!(
        fx.audit("acme").problems,
        vec![problem(
            "acme",
            Some(7),
            &format!("seq 7: field actor_id indexed as [\"mallory\"], the event has [\"{actor}\"]")
        )]
    );
    assert_clean(&fx.audit("globex"), 120);
}

#[test]
fn an_extra_actor_id_term_is_named() {
    let fx = Fixture::filled();
    let actor = fx
        .event("acme", 12)
        .actor
        .and_then(|a| a.id)
        .expect("an actor");
    assert_eq!(actor, "u2");
    replace(&fx, "acme", 12, |doc, schema| {
        doc.add_text(field(schema, "actor_id"), "bob");
    });
    assert_eq!(
        fx.audit("acme").problems,
        vec![problem(
            "acme",
            Some(12),
            "seq 12: field actor_id indexed as [\"bob\", \"u2\"], the event has [\"u2\"]"
        )]
    );
}

#[test]
fn a_removed_term_and_changed_fast_fields_are_named() {
    let fx = Fixture::filled();
    let event = fx.event("acme", 16);
    let at = event.occurred_at.expect("an occurred_at").as_micros();
    let level = event.level.expect("a level") as u64;
    let ip = event.actor.as_ref().and_then(|a| a.ip).expect("an ip");
    assert_eq!(ip.to_string(), "10.0.0.16");
    let resource = event.resource.as_ref().and_then(|r| r.id.clone());
    assert_eq!(resource.as_deref(), Some("r5"));
    replace(&fx, "acme", 16, |doc, schema| {
        let mut d = without(doc, schema, "resource_id");
        d = without(&d, schema, "occurred_at");
        d = without(&d, schema, "level");
        d = without(&d, schema, "ip");
        d.add_i64(field(schema, "occurred_at"), at + 1);
        d.add_u64(field(schema, "level"), 0);
        d.add_u64(field(schema, "level"), level);
        *doc = d;
    });
    assert_eq!(
        fx.audit("acme").problems,
        vec![
            problem(
                "acme",
                Some(16),
                &format!(
                    "seq 16: field occurred_at indexed as [{}], the event has [{at}]",
                    at + 1
                )
            ),
            problem(
                "acme",
                Some(16),
                &format!("seq 16: field level indexed as [0, {level}], the event has [{level}]")
            ),
            problem(
                "acme",
                Some(16),
                "seq 16: field ip indexed as [], the event has [\"10.0.0.16\"]"
            ),
            problem(
                "acme",
                Some(16),
                "seq 16: field resource_id indexed as [], the event has [\"r5\"]"
            ),
        ]
    );
}

#[test]
fn a_changed_text_term_is_named() {
    let fx = Fixture::filled();
    replace(&fx, "acme", 3, |doc, schema| {
        let d = without(doc, schema, "text");
        *doc = d;
        doc.add_text(field(schema, "text"), "doc.share.external Bob");
    });
    // The event's text is its action "doc.share.external" and nothing more.
    assert_eq!(fx.event("acme", 3).action, "doc.share.external");
    assert_eq!(
        fx.audit("acme").problems,
        vec![problem(
            "acme",
            Some(3),
            "seq 3: field text has terms the event lacks [\"bob\"]"
        )]
    );
}

#[test]
fn a_document_tagged_with_another_tenant_is_named() {
    let fx = Fixture::filled();
    replace(&fx, "acme", 5, |doc, schema| {
        doc.add_text(field(schema, "tenant"), "globex");
    });
    assert_eq!(
        fx.audit("acme").problems,
        vec![problem(
            "acme",
            Some(5),
            "seq 5: field tenant indexed as [\"acme\", \"globex\"], the event has [\"acme\"]"
        )]
    );
    // In globex, it is a second document of its seq 5, unlike globex's event.
    let globex = fx.audit("globex");
    assert_eq!(
        globex.problems[0],
        problem("globex", Some(5), "seq 5 is indexed 2 times, expected once")
    );
    assert!(
        globex.problems[1..]
            .iter()
            .all(|p| p.seq == Some(5) && p.detail.starts_with("seq 5: field ")),
        "{:?}",
        globex.problems
    );
    assert!(globex.problems.contains(&problem(
        "globex",
        Some(5),
        "seq 5: field tenant indexed as [\"acme\", \"globex\"], the event has [\"globex\"]"
    )));
}

#[test]
fn a_lagging_index_is_no_problem() {
    let mut fx = Fixture::filled();
    fx.append("acme", 50);
    fx.append("initech", 10);
    let audit = fx.audit("acme");
    assert_eq!(audit.problems, vec![]);
    assert_eq!((audit.checked, audit.indexed_through), (300, 300));
    assert_eq!(fx.size("acme"), 350);
    let audit = fx.audit("initech");
    assert_eq!(audit.problems, vec![]);
    assert_eq!((audit.checked, audit.indexed_through), (0, 0));

    // But a document of a position the index does not claim to have indexed is wrong.
    let event = fx.event("acme", 320);
    fx.tamper(
        |w, schema| {
            w.add_document(document(schema, "acme", 320, &event))
                .expect("add");
        },
        |_| {},
    );
    assert_eq!(
        fx.audit("acme").problems,
        vec![problem(
            "acme",
            Some(320),
            "seq 320 is indexed but the index commit records only 300 events indexed"
        )]
    );
}

#[test]
fn a_document_beyond_the_log_is_named() {
    let fx = Fixture::filled();
    let event = fx.event("acme", 2);
    fx.tamper(
        |w, schema| {
            w.add_document(document(schema, "acme", 900, &event))
                .expect("add");
            w.add_document(document(schema, "acme", 901, &event))
                .expect("add");
            w.add_document(document(schema, "acme", 901, &event))
                .expect("add");
        },
        |_| {},
    );
    assert_eq!(
        fx.audit("acme").problems,
        vec![
            problem(
                "acme",
                Some(900),
                "seq 900 is indexed but the log has 300 events"
            ),
            problem(
                "acme",
                Some(901),
                "seq 901 is indexed 2 times but the log has 300 events"
            ),
        ]
    );
}

#[test]
fn a_commit_claiming_more_than_the_log_is_named() {
    let fx = Fixture::filled();
    fx.tamper(
        |_, _| {},
        |payload| payload["logs"]["acme"] = json!(1_000_000_000_000u64),
    );
    let audit = fx.audit("acme");
    assert_eq!(
        audit.problems,
        vec![problem(
            "acme",
            None,
            "the index commit records 1000000000000 events indexed, but the log has 300 events"
        )]
    );
    assert_eq!(
        (audit.checked, audit.indexed_through),
        (300, 1_000_000_000_000)
    );
}

#[test]
fn a_document_without_its_seq_is_named() {
    let fx = Fixture::filled();
    replace(&fx, "acme", 30, |doc, schema| {
        *doc = without(doc, schema, "seq");
    });
    assert_eq!(
        fx.audit("acme").problems,
        vec![
            problem("acme", None, "a document of this log has no seq"),
            problem("acme", Some(30), "seq 30 is indexed 0 times, expected once"),
        ]
    );
}

/// An index changed by hand can hold a segment whose documents are out of order: listings
/// cannot seek in it, so they visit all its documents, and still answer every event once,
/// in order, in both directions.
#[test]
fn a_segment_out_of_order_is_scanned() {
    let fx = Fixture::filled();
    let events: Vec<Event> = (10..30).map(|seq| fx.event("acme", seq)).collect();
    fx.tamper(
        |writer, schema| {
            for seq in 10..30 {
                delete(writer, schema, "acme", seq);
            }
            // Re-added newest first, with positions that run backwards.
            for (seq, event) in (10..30u32).map(u64::from).zip(&events).rev() {
                let mut doc = document(schema, "acme", seq, event);
                doc.add_u64(field(schema, "pos"), 1_000_000 + seq);
                writer.add_document(doc).expect("add");
            }
        },
        |_| {},
    );
    let index = SearchIndex::open(&fx.index_dir()).expect("open the index");
    let (segments, ordered) = index.segments_in_order();
    assert_eq!(ordered + 1, segments, "the re-added segment is not noticed");
    for order in [SortOrder::Asc, SortOrder::Desc] {
        for limit in [1, 7, 300] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = index
                    .search(&EventQuery {
                        order,
                        after,
                        ..EventQuery::all("acme", limit)
                    })
                    .expect("search");
                seen.extend_from_slice(&page.seqs);
                match (page.has_more, page.seqs.last()) {
                    (true, Some(&last)) => after = Some(last),
                    _ => break,
                }
            }
            let mut want: Vec<u64> = (0..300).collect();
            if order == SortOrder::Desc {
                want.reverse();
            }
            assert_eq!(seen, want, "{order:?} limit {limit}");
        }
    }
    assert_clean(&fx.audit("acme"), 300);
}
