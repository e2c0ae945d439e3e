//! Conformance tests of the `LogStore` / `LogWriter` contract.
//!
//! The test bodies in `suite` only see the traits; `store_conformance_suite!` turns them into
//! `#[test]`s for one backend, given a factory that returns a fresh, empty [`Backend`]. A
//! second backend gets the same suite with one more invocation of the macro.
//!
//! Tests of what only the SQLite backend promises (its triggers, its migrations) follow in
//! `sqlite_only`.

use serde_json::{Value, json};
use std::any::Any;
use stele_core::{Event, IngestDefaults, Limits, Timestamp, prepare};
use stele_store::{
    Appended, Earlier, LogHead, LogStore, NewEvent, StoreError, StoredCheckpoint, StoredEvent,
    tile_reader,
};
use stele_tlog::leaf_hash;
use stele_tlog::merkle::{self, NodeHash};
use stele_tlog::tiles::{TileId, build_tiles};
use uuid::Uuid;

/// A fresh, empty place to keep a store.
pub struct Backend {
    /// Opens the store kept here. Called again after the previous store was dropped, it
    /// reopens the same data.
    pub open: Box<dyn Fn() -> Box<dyn LogStore>>,
    /// Keeps the place alive (a temporary directory, a scratch database) until the test ends.
    pub _guard: Box<dyn Any>,
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("valid timestamp")
}

/// Prepares `body` the way the ingest path does; the event's tenant defaults to `tenant`.
fn prepared(tenant: &str, body: Value, client_id: bool) -> (Event, NewEvent) {
    let defaults = IngestDefaults {
        tenant,
        occurred_at: ts("2026-01-01T00:00:00Z"),
    };
    let prepared =
        prepare(body, &defaults, &Limits::default(), Uuid::now_v7).expect("a valid event");
    let event = prepared.event.clone();
    let new = NewEvent {
        client_id,
        ..NewEvent::from(prepared)
    };
    (event, new)
}

/// An event whose id the server chose.
fn server_event(tenant: &str, action: &str) -> NewEvent {
    prepared(tenant, json!({ "action": action }), false).1
}

/// An event whose id the client chose.
fn client_event(tenant: &str, id: Uuid, action: &str) -> NewEvent {
    prepared(tenant, json!({ "id": id, "action": action }), true).1
}

fn size_of(store: &dyn LogStore, tenant: &str) -> u64 {
    let heads = store.heads().expect("heads");
    heads
        .iter()
        .find(|h| h.tenant == tenant)
        .map_or(0, |h| h.size)
}

fn sorted_heads(store: &dyn LogStore) -> Vec<LogHead> {
    let mut heads = store.heads().expect("heads");
    heads.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    heads
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// The leaf hashes of `tenant`'s log, read back from the store.
fn leaves(store: &dyn LogStore, tenant: &str) -> Vec<NodeHash> {
    let events = store.read_range(tenant, 0, usize::MAX).expect("read_range");
    events.iter().map(|e| e.leaf_hash.into()).collect()
}

/// Checks every stored tile of `tenant` against a from-scratch rebuild from its leaves:
/// the tiles of the current size are there at their exact width, and no row is left over.
fn assert_tiles_match(store: &dyn LogStore, tenant: &str) {
    let leaves = leaves(store, tenant);
    let expected = build_tiles(&leaves);
    let mut rows = store
        .scan_tiles(tenant, None, usize::MAX)
        .expect("scan_tiles");
    rows.sort_by_key(|t| t.id());
    let mut want = expected.clone();
    want.sort_by_key(|t| t.id());
    assert_eq!(
        rows.iter().map(|t| t.id()).collect::<Vec<_>>(),
        want.iter().map(|t| t.id()).collect::<Vec<_>>(),
        "the stored tile rows of {tenant} at size {}",
        leaves.len()
    );
    assert!(
        rows == want,
        "tile contents of {tenant} differ from a rebuild"
    );
    // Paging through the rows gives the same.
    let mut paged = Vec::new();
    let mut after: Option<TileId> = None;
    loop {
        let page = store.scan_tiles(tenant, after, 2).expect("scan_tiles");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|t| t.id());
        paged.extend(page);
    }
    assert!(paged == rows, "paging differs");
}

/// Checks that `stored` is the sealed form of `sent` at the position `appended` reports.
fn assert_sealed(stored: &StoredEvent, sent: &NewEvent, appended: &Appended) {
    assert_eq!(stored.seq, appended.seq);
    assert_eq!(stored.leaf_hash, appended.leaf_hash, "seq {}", stored.seq);
    assert_eq!(
        stored.leaf_hash,
        leaf_hash(&stored.bytes),
        "seq {}",
        stored.seq
    );
    let event = Event::from_stored(&stored.bytes).expect("stored bytes parse as an Event");
    assert_eq!(event.seq, Some(appended.seq));
    assert_eq!(
        event.received_at,
        Some(appended.received_at),
        "seq {}",
        stored.seq
    );
    assert_eq!(event.tenant.as_deref(), Some(sent.tenant.as_str()));
    assert_eq!(event.id, Some(sent.id));
    assert_eq!(
        stored.bytes,
        sent.presealed.seal(
            appended.seq,
            &stele_core::SealTime::new(appended.received_at)
        )
    );
}

/// The test bodies, written against the traits only.
pub mod suite {
    use super::*;

    pub fn empty_store_answers_nothing(backend: Backend) {
        let store = (backend.open)();
        store.ping().expect("ping");
        assert!(store.heads().expect("heads").is_empty());
        assert!(
            store
                .read_range("acme", 0, 10)
                .expect("read_range")
                .is_empty()
        );
        assert!(
            store
                .read_seqs("acme", &[0, 1])
                .expect("read_seqs")
                .is_empty()
        );
        assert!(
            store
                .get_by_id("acme", Uuid::now_v7())
                .expect("get_by_id")
                .is_none()
        );
        let mut writer = store.writer().expect("writer");
        let out = writer
            .append(&[], ts("2026-01-01T00:00:00Z"))
            .expect("empty append");
        assert!(out.is_empty());
        assert!(store.heads().expect("heads").iter().all(|h| h.size == 0));
    }

    pub fn append_one_batch_and_read_it_back(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let batch: Vec<NewEvent> = (0..10)
            .map(|i| server_event("acme", &format!("doc.read{i}")))
            .collect();
        let now = ts("2026-02-03T04:05:06.000007Z");
        let out = writer.append(&batch, now).expect("append");

        assert_eq!(out.len(), batch.len());
        for (i, a) in out.iter().enumerate() {
            assert_eq!(a.seq, i as u64);
            assert_eq!(a.received_at, now);
            assert!(!a.duplicate);
        }
        assert_eq!(
            store.heads().expect("heads"),
            vec![LogHead {
                tenant: "acme".into(),
                size: 10
            }]
        );

        let all = store.read_range("acme", 0, 100).expect("read_range");
        assert_eq!(seqs(&all), (0..10).collect::<Vec<_>>());
        for ((stored, sent), appended) in all.iter().zip(&batch).zip(&out) {
            assert_sealed(stored, sent, appended);
        }
        // `from` and `limit` window the range.
        assert_eq!(
            seqs(&store.read_range("acme", 3, 4).expect("read_range")),
            vec![3, 4, 5, 6]
        );
        assert_eq!(
            seqs(&store.read_range("acme", 8, 100).expect("read_range")),
            vec![8, 9]
        );
        assert!(
            store
                .read_range("acme", 0, 0)
                .expect("read_range")
                .is_empty()
        );
        // Another tenant sees nothing.
        assert!(
            store
                .read_range("globex", 0, 100)
                .expect("read_range")
                .is_empty()
        );

        // read_seqs answers in the order asked and skips what is missing.
        let picked = store
            .read_seqs("acme", &[7, 2, 99, 0, 9])
            .expect("read_seqs");
        assert_eq!(seqs(&picked), vec![7, 2, 0, 9]);
        for stored in &picked {
            assert_eq!(stored, &all[stored.seq as usize]);
        }
        assert!(
            store
                .read_seqs("globex", &[0, 1])
                .expect("read_seqs")
                .is_empty()
        );
        assert!(store.read_seqs("acme", &[]).expect("read_seqs").is_empty());

        // get_by_id finds each event in its own log only.
        for (sent, stored) in batch.iter().zip(&all) {
            let found = store.get_by_id("acme", sent.id).expect("get_by_id");
            assert_eq!(found.as_ref(), Some(stored));
            assert!(
                store
                    .get_by_id("globex", sent.id)
                    .expect("get_by_id")
                    .is_none()
            );
        }
        assert!(
            store
                .get_by_id("acme", Uuid::now_v7())
                .expect("get_by_id")
                .is_none()
        );
    }

    pub fn read_range_past_the_end_is_empty(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let batch: Vec<NewEvent> = (0..5).map(|_| server_event("acme", "doc.read")).collect();
        writer
            .append(&batch, ts("2026-01-01T00:00:00Z"))
            .expect("append");
        let past = [
            5,
            6,
            1 << 40,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX,
        ];
        let mut wrong = Vec::new();
        for from in past {
            let got = store.read_range("acme", from, 10).expect("read_range");
            if !got.is_empty() {
                wrong.push(format!(
                    "read_range(from: {from}) answered seqs {:?}",
                    seqs(&got)
                ));
            }
            let got = store.read_seqs("acme", &[from]).expect("read_seqs");
            if !got.is_empty() {
                wrong.push(format!(
                    "read_seqs([{from}]) answered seqs {:?}",
                    seqs(&got)
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "past the end of a 5-event log: {wrong:#?}"
        );
    }

    pub fn seq_is_dense_and_independent_per_tenant(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let tenants = [
            "acme", "globex", "acme", "initech", "globex", "acme", "acme", "globex",
        ];
        let mut sent: Vec<NewEvent> = Vec::new();
        let mut appended: Vec<Appended> = Vec::new();
        let now = ts("2026-01-01T00:00:00Z");
        for round in 0..3 {
            let batch: Vec<NewEvent> = tenants
                .iter()
                .map(|t| server_event(t, &format!("round.r{round}")))
                .collect();
            let out = writer.append(&batch, now).expect("append");
            assert_eq!(out.len(), batch.len());
            sent.extend(batch);
            appended.extend(out);
        }

        // Per tenant, the seqs handed out are 0, 1, 2, ... in batch order.
        for tenant in ["acme", "globex", "initech"] {
            let got: Vec<u64> = sent
                .iter()
                .zip(&appended)
                .filter(|(s, _)| s.tenant == tenant)
                .map(|(_, a)| a.seq)
                .collect();
            assert_eq!(
                got,
                (0..got.len() as u64).collect::<Vec<_>>(),
                "tenant {tenant}"
            );
        }
        assert_eq!(
            sorted_heads(&*store),
            vec![
                LogHead {
                    tenant: "acme".into(),
                    size: 12
                },
                LogHead {
                    tenant: "globex".into(),
                    size: 9
                },
                LogHead {
                    tenant: "initech".into(),
                    size: 3
                },
            ]
        );
        for (s, a) in sent.iter().zip(&appended) {
            let stored = store.read_seqs(&s.tenant, &[a.seq]).expect("read_seqs");
            assert_eq!(stored.len(), 1);
            assert_sealed(&stored[0], s, a);
        }
    }

    pub fn received_at_never_decreases(backend: Backend) {
        let t1 = ts("2026-05-01T12:00:00Z");
        let t0 = ts("2026-05-01T11:00:00Z"); // the clock stepped back
        let t2 = ts("2026-05-01T13:00:00Z");
        {
            let store = (backend.open)();
            let mut writer = store.writer().expect("writer");
            let a = writer
                .append(&[server_event("acme", "a.one")], t1)
                .expect("append");
            assert_eq!(a[0].received_at, t1);
            let b = writer
                .append(
                    &[
                        server_event("acme", "a.two"),
                        server_event("acme", "a.three"),
                    ],
                    t0,
                )
                .expect("append");
            assert!(
                b.iter().all(|x| x.received_at >= t1),
                "received_at went back to {:?}",
                b
            );
            let c = writer
                .append(&[server_event("acme", "a.four")], t2)
                .expect("append");
            assert_eq!(c[0].received_at, t2);
        }
        // The high-water mark survives a restart.
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let d = writer
            .append(&[server_event("acme", "a.five")], t0)
            .expect("append");
        assert!(
            d[0].received_at >= t2,
            "received_at went back after reopening"
        );

        let events = store.read_range("acme", 0, 100).expect("read_range");
        assert_eq!(events.len(), 5);
        let stamps: Vec<Timestamp> = events
            .iter()
            .map(|e| {
                Event::from_stored(&e.bytes)
                    .expect("parses")
                    .received_at
                    .expect("stamped")
            })
            .collect();
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "stored received_at decreases"
        );
    }

    pub fn client_id_is_idempotent_within_a_batch(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let id = Uuid::now_v7();
        let batch = vec![
            server_event("acme", "doc.read"),
            client_event("acme", id, "user.login"),
            client_event("acme", id, "user.login"),
            server_event("acme", "doc.write"),
        ];
        let out = writer
            .append(&batch, ts("2026-01-01T00:00:00Z"))
            .expect("append");
        assert_eq!(out.len(), 4);
        assert_eq!(
            out.iter().map(|a| a.seq).collect::<Vec<_>>(),
            vec![0, 1, 1, 2]
        );
        assert_eq!(
            out.iter().map(|a| a.duplicate).collect::<Vec<_>>(),
            vec![false, false, true, false]
        );
        assert_eq!(
            out[2],
            Appended {
                duplicate: true,
                ..out[1].clone()
            }
        );
        assert_eq!(size_of(&*store, "acme"), 3);
        assert_eq!(
            seqs(&store.read_range("acme", 0, 100).expect("read_range")),
            vec![0, 1, 2]
        );
        let stored = store
            .get_by_id("acme", id)
            .expect("get_by_id")
            .expect("found");
        assert_sealed(&stored, &batch[1], &out[1]);
    }

    pub fn client_id_is_idempotent_across_batches(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let id = Uuid::now_v7();
        let first = client_event("acme", id, "user.login");
        let t1 = ts("2026-01-01T00:00:00Z");
        let original = writer
            .append(&[server_event("acme", "doc.read"), first.clone()], t1)
            .expect("append");
        assert_eq!((original[1].seq, original[1].duplicate), (1, false));
        let before = store.read_range("acme", 0, 100).expect("read_range");

        // The retry, later, with another event after it.
        let t2 = ts("2026-01-01T00:05:00Z");
        let retry = writer
            .append(&[first.clone(), server_event("acme", "doc.write")], t2)
            .expect("append");
        assert_eq!(
            retry[0],
            Appended {
                duplicate: true,
                ..original[1].clone()
            }
        );
        assert_eq!(
            retry[0].received_at, t1,
            "a duplicate answers the original received_at"
        );
        assert_eq!((retry[1].seq, retry[1].duplicate), (2, false));

        // The same id with another body: the whole request is refused, naming the seq; the
        // other requests of the batch are stored.
        let changed = prepared("acme", json!({"id": id, "action": "user.logout"}), true).1;
        let err = writer
            .append(&[server_event("acme", "doc.x"), changed.clone()], t2)
            .expect_err("a conflicting resend is refused");
        let StoreError::Conflict(conflict) = err else {
            panic!("not a conflict: {err}");
        };
        assert_eq!(
            (conflict.index, conflict.id, conflict.earlier),
            (1, id, Earlier::Stored { seq: 1 })
        );
        let fresh = Uuid::now_v7();
        let outcomes = writer
            .append_requests(
                &[
                    server_event("acme", "doc.y"),
                    changed,
                    client_event("acme", fresh, "doc.z"),
                    prepared("acme", json!({"id": fresh, "action": "doc.other"}), true).1,
                    client_event("acme", fresh, "doc.z"),
                ],
                &[2, 1, 2],
                t2,
            )
            .expect("append");
        assert_eq!(
            outcomes[0].as_ref().unwrap_err().earlier,
            Earlier::Stored { seq: 1 }
        );
        let accepted = outcomes[1].as_ref().expect("the middle request is stored");
        assert_eq!((accepted[0].seq, accepted[0].duplicate), (3, false));
        let clash = outcomes[2].as_ref().unwrap_err();
        assert_eq!(
            (clash.index, clash.earlier),
            (0, Earlier::Stored { seq: 3 }),
            "a clash with an earlier request of the same batch names the seq it got"
        );

        assert_eq!(size_of(&*store, "acme"), 4);
        let after = store.read_range("acme", 0, 100).expect("read_range");
        assert_eq!(after[..2], before[..], "the original events are unchanged");
        assert_eq!(seqs(&after), vec![0, 1, 2, 3]);

        // The same id in another log is another event.
        let other = writer
            .append(&[client_event("globex", id, "user.login")], t2)
            .expect("append");
        assert_eq!((other[0].seq, other[0].duplicate), (0, false));
        assert_eq!(size_of(&*store, "globex"), 1);
        assert_eq!(size_of(&*store, "acme"), 4);
    }

    pub fn client_id_is_idempotent_after_reopening(backend: Backend) {
        let id = Uuid::now_v7();
        let event = client_event("acme", id, "user.login");
        let t1 = ts("2026-01-01T00:00:00Z");
        let (original, before) = {
            let store = (backend.open)();
            let mut writer = store.writer().expect("writer");
            let out = writer
                .append(&[server_event("acme", "doc.read"), event.clone()], t1)
                .expect("append");
            (
                out[1].clone(),
                store.read_range("acme", 0, 100).expect("read_range"),
            )
        };
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let retry = writer
            .append(std::slice::from_ref(&event), ts("2026-01-02T00:00:00Z"))
            .expect("append");
        assert_eq!(
            retry,
            vec![Appended {
                duplicate: true,
                ..original.clone()
            }]
        );
        assert_eq!(size_of(&*store, "acme"), 2);
        assert_eq!(
            store.read_range("acme", 0, 100).expect("read_range"),
            before
        );
        let stored = store
            .get_by_id("acme", id)
            .expect("get_by_id")
            .expect("found");
        assert_sealed(&stored, &event, &original);

        // The log continues densely after the duplicate.
        let next = writer
            .append(&[server_event("acme", "doc.write")], t1)
            .expect("append");
        assert_eq!((next[0].seq, next[0].duplicate), (2, false));
    }

    pub fn a_failed_batch_stores_nothing(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let now = ts("2026-01-01T00:00:00Z");
        let taken = server_event("acme", "doc.read");
        writer
            .append(std::slice::from_ref(&taken), now)
            .expect("append");
        let heads = sorted_heads(&*store);

        // A server-chosen id that is already stored is not a retry: the batch fails whole.
        let mut clash = server_event("acme", "doc.write");
        clash.id = taken.id;
        let batch = vec![
            server_event("acme", "doc.write"),
            server_event("globex", "doc.write"),
            clash,
        ];
        assert!(
            writer.append(&batch, now).is_err(),
            "a duplicate server id was accepted"
        );
        assert_eq!(sorted_heads(&*store), heads);
        assert!(
            store
                .read_range("globex", 0, 10)
                .expect("read_range")
                .is_empty()
        );
        assert_eq!(
            seqs(&store.read_range("acme", 0, 10).expect("read_range")),
            vec![0]
        );
        assert!(
            store
                .get_by_id("acme", batch[0].id)
                .expect("get_by_id")
                .is_none()
        );

        // Nor did its tree: the head and the tiles are those of the one event.
        let head = writer.tree_head("acme").expect("head");
        assert_eq!(head.size, 1);
        assert_eq!(head.root, merkle::root(&leaves(&*store, "acme")));
        assert_eq!(writer.tree_head("globex"), None);
        assert_tiles_match(&*store, "acme");

        // The writer is still usable and the seqs stay dense.
        let out = writer.append(&batch[..2], now).expect("append");
        assert_eq!(out.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(size_of(&*store, "acme"), 2);
        assert_eq!(size_of(&*store, "globex"), 1);
        assert_tiles_match(&*store, "acme");
        assert_tiles_match(&*store, "globex");
    }

    pub fn heads_report_sizes(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let now = ts("2026-01-01T00:00:00Z");
        let mut expected = std::collections::BTreeMap::new();
        for (tenant, n) in [("globex", 3u64), ("acme", 7), ("initech", 1), ("acme", 2)] {
            let batch: Vec<NewEvent> = (0..n).map(|_| server_event(tenant, "doc.read")).collect();
            writer.append(&batch, now).expect("append");
            *expected.entry(tenant.to_string()).or_insert(0) += n;
            let want: Vec<LogHead> = expected
                .iter()
                .map(|(t, &size)| LogHead {
                    tenant: t.clone(),
                    size,
                })
                .collect();
            assert_eq!(sorted_heads(&*store), want);
        }
        drop(writer);
        drop(store);
        let reopened = (backend.open)();
        let want: Vec<LogHead> = expected
            .iter()
            .map(|(t, &size)| LogHead {
                tenant: t.clone(),
                size,
            })
            .collect();
        assert_eq!(sorted_heads(&*reopened), want);
    }

    pub fn only_one_writer(backend: Backend) {
        let store = (backend.open)();
        let mut first = store.writer().expect("the first writer");
        assert!(store.writer().is_err(), "a second writer was handed out");
        // The first writer is unaffected.
        let out = first.append(
            &[server_event("acme", "doc.read")],
            ts("2026-01-01T00:00:00Z"),
        );
        assert_eq!(out.expect("append")[0].seq, 0);
        // Once it is gone, a new writer may be opened and continues the log.
        drop(first);
        let mut second = store
            .writer()
            .expect("a writer after the first was dropped");
        let out = second.append(
            &[server_event("acme", "doc.read")],
            ts("2026-01-01T00:00:01Z"),
        );
        assert_eq!(out.expect("append")[0].seq, 1);
    }

    /// Settings live beside the log: they may change, the first `init` wins, and a new
    /// connection (another node) sees them.
    pub fn settings_are_kept_beside_the_log(backend: Backend) {
        let store = (backend.open)();
        let meta = store.meta();
        assert_eq!(meta.setting("a.b").expect("setting"), None);
        assert_eq!(meta.init_setting("a.b", "first").expect("init"), "first");
        assert_eq!(meta.init_setting("a.b", "second").expect("init"), "first");
        meta.put_setting("other", "1").expect("put");
        meta.put_setting("other", "2").expect("put again");
        let reopened = (backend.open)();
        assert_eq!(
            reopened.meta().setting("a.b").expect("setting").as_deref(),
            Some("first")
        );
        assert_eq!(
            reopened
                .meta()
                .setting("other")
                .expect("setting")
                .as_deref(),
            Some("2")
        );
        // Settings are not events: the log is untouched.
        assert!(reopened.heads().expect("heads").is_empty());
    }

    pub fn records_are_kept_by_kind_and_id(backend: Backend) {
        let store = (backend.open)();
        let meta = store.meta();
        assert_eq!(meta.record("api_key", "a1").expect("record"), None);
        assert!(meta.records("api_key").expect("records").is_empty());
        assert!(
            meta.insert_record("api_key", "b2", "{\"n\":1}")
                .expect("insert")
        );
        assert!(
            meta.insert_record("api_key", "a1", "{\"n\":2}")
                .expect("insert")
        );
        // An id taken is refused and left as it was.
        assert!(
            !meta
                .insert_record("api_key", "a1", "{\"n\":3}")
                .expect("insert")
        );
        meta.put_record("other", "a1", "x").expect("put");
        meta.put_record("api_key", "b2", "{\"n\":4}").expect("put");
        let reopened = (backend.open)();
        assert_eq!(
            reopened.meta().records("api_key").expect("records"),
            vec![
                ("a1".to_string(), "{\"n\":2}".to_string()),
                ("b2".to_string(), "{\"n\":4}".to_string())
            ]
        );
        assert_eq!(
            reopened
                .meta()
                .record("other", "a1")
                .expect("record")
                .as_deref(),
            Some("x")
        );
        assert!(reopened.heads().expect("heads").is_empty());
    }

    pub fn tiles_describe_the_tree_after_every_batch(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(writer.tree_head("acme"), None);
        for (tenant, n) in [
            ("acme", 3usize),
            ("acme", 250),
            ("globex", 1),
            ("acme", 3),
            ("acme", 300),
            ("globex", 256),
            ("acme", 1),
        ] {
            let batch: Vec<NewEvent> = (0..n).map(|_| server_event(tenant, "doc.read")).collect();
            writer.append(&batch, now).expect("append");
            let leaves = leaves(&*store, tenant);
            let head = writer.tree_head(tenant).expect("a head after appending");
            assert_eq!(head.size, leaves.len() as u64);
            assert_eq!(head.root, merkle::root(&leaves));
            assert_tiles_match(&*store, tenant);
            let mut reader = tile_reader(&*store, tenant, head.size);
            assert_eq!(reader.root().expect("root from tiles"), head.root);
        }
        // A new writer resumes the same tree from the stored tiles.
        let heads = ["acme", "globex"].map(|t| writer.tree_head(t));
        drop(writer);
        drop(store);
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        assert_eq!(["acme", "globex"].map(|t| writer.tree_head(t)), heads);
        writer
            .append(&[server_event("acme", "doc.read")], now)
            .expect("append");
        assert_tiles_match(&*store, "acme");
        // Tiles of an unknown log or beyond the tree are absent, not errors.
        let id = TileId {
            level: 0,
            index: 0,
            width: 1,
        };
        assert_eq!(store.read_tile("initech", id).expect("read_tile"), None);
        let far = TileId {
            level: 0,
            index: 9,
            width: 256,
        };
        assert_eq!(store.read_tile("acme", far).expect("read_tile"), None);
    }

    pub fn proofs_for_any_earlier_size_come_from_stored_tiles(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let now = ts("2026-01-01T00:00:00Z");
        for n in [1usize, 255, 2, 300, 70] {
            let batch: Vec<NewEvent> = (0..n).map(|_| server_event("acme", "doc.read")).collect();
            writer.append(&batch, now).expect("append");
        }
        let all = leaves(&*store, "acme");
        for size in [1u64, 2, 255, 256, 257, 258, 511, 512, 600, 628] {
            let part = &all[..size as usize];
            let mut reader = tile_reader(&*store, "acme", size);
            assert_eq!(
                reader.root().expect("root"),
                merkle::root(part),
                "size {size}"
            );
            for index in [0, size / 2, size - 1] {
                assert_eq!(
                    reader.inclusion_proof(index).expect("inclusion"),
                    merkle::inclusion_proof(part, index),
                    "PATH({index}, {size})"
                );
            }
            for from in [0, 1, size / 3, size] {
                assert_eq!(
                    reader.consistency_proof(from).expect("consistency"),
                    merkle::consistency_proof(part, from),
                    "PROOF({from}, {size})"
                );
            }
        }
    }

    pub fn many_logs_are_read_at_once_as_log_by_log(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let now = ts("2026-01-01T00:00:00Z");
        // Logs a, b, c, d of 1 to 4 events, with a checkpoint after each.
        for (i, tenant) in ["a", "b", "c", "d"].iter().enumerate() {
            for _ in 0..=i {
                writer
                    .append(&[server_event(tenant, "doc.read")], now)
                    .expect("append");
                let size = writer.tree_head(tenant).expect("head").size;
                writer
                    .add_checkpoints(&[StoredCheckpoint {
                        tenant: tenant.to_string(),
                        size,
                        signed_at: now,
                        note: format!("example.org/{tenant}\n{size}\nroot\n\n— sig\n"),
                    }])
                    .expect("add_checkpoints");
            }
        }
        let rows = store
            .read_logs("b", "d", 100)
            .expect("read_logs")
            .expect("fits");
        assert_eq!(rows.keys().collect::<Vec<_>>(), vec!["b", "c", "d"]);
        for (tenant, contents) in &rows {
            let size = size_of(store.as_ref(), tenant);
            assert_eq!(
                contents.events,
                store.read_range(tenant, 0, 100).expect("read_range")
            );
            assert_eq!(contents.events.len() as u64, size);
            assert_eq!(
                contents.tiles,
                store.scan_tiles(tenant, None, 100).expect("scan_tiles")
            );
            assert_eq!(
                contents.checkpoints,
                store.scan_checkpoints(tenant, 0, 100).expect("scan")
            );
            assert_eq!(contents.checkpoints.len() as u64, size);
        }
        // b, c and d hold 9 events: a limit below that says so instead of cutting a log.
        assert_eq!(store.read_logs("b", "d", 8).expect("read_logs"), None);
        assert!(store.read_logs("b", "d", 9).expect("read_logs").is_some());
        assert!(
            store
                .read_logs("x", "z", 0)
                .expect("read_logs")
                .expect("fits")
                .is_empty()
        );
    }

    pub fn checkpoints_are_kept_in_order(backend: Backend) {
        let store = (backend.open)();
        let mut writer = store.writer().expect("writer");
        let now = ts("2026-01-01T00:00:00Z");
        assert!(store.latest_checkpoints().expect("latest").is_empty());
        let checkpoint = |tenant: &str, size: u64, second: i64| StoredCheckpoint {
            tenant: tenant.to_string(),
            size,
            signed_at: Timestamp::from_micros(second * 1_000_000).expect("time"),
            note: format!("example.org/{tenant}\n{size}\nroot\n\n— sig\n"),
        };
        for n in [3usize, 4, 5] {
            let batch: Vec<NewEvent> = (0..n).map(|_| server_event("acme", "doc.read")).collect();
            writer.append(&batch, now).expect("append");
            let size = writer.tree_head("acme").expect("head").size;
            writer
                .add_checkpoints(&[checkpoint("acme", size, size as i64)])
                .expect("add_checkpoints");
        }
        writer
            .append(&[server_event("globex", "doc.read")], now)
            .expect("append");
        writer
            .add_checkpoints(&[checkpoint("globex", 1, 100)])
            .expect("add_checkpoints");

        let all = store.checkpoints("acme", 0, 100).expect("checkpoints");
        assert_eq!(store.scan_checkpoints("acme", 0, 100).expect("scan"), all);
        assert_eq!(
            store.scan_checkpoints("acme", 1, 1).expect("scan"),
            vec![all[1].clone()]
        );
        assert!(
            store
                .scan_checkpoints("acme", 3, 10)
                .expect("scan")
                .is_empty()
        );
        assert!(store.orphaned_logs().expect("orphaned_logs").is_empty());
        assert_eq!(
            all.iter().map(|c| c.size).collect::<Vec<_>>(),
            vec![3, 7, 12]
        );
        assert_eq!(all[1], checkpoint("acme", 7, 7));
        let later = store.checkpoints("acme", 3, 1).expect("checkpoints");
        assert_eq!(later, vec![checkpoint("acme", 7, 7)]);
        assert!(
            store
                .checkpoints("acme", 12, 10)
                .expect("checkpoints")
                .is_empty()
        );
        assert!(
            store
                .checkpoints("initech", 0, 10)
                .expect("checkpoints")
                .is_empty()
        );
        assert_eq!(
            store.latest_checkpoints().expect("latest"),
            vec![checkpoint("acme", 12, 12), checkpoint("globex", 1, 100)]
        );
        // A checkpoint may not name events that are not committed; none of the batch is kept.
        let beyond = [checkpoint("globex", 1, 101), checkpoint("acme", 13, 13)];
        assert!(writer.add_checkpoints(&beyond).is_err());
        assert!(
            writer
                .add_checkpoints(&[checkpoint("initech", 1, 1)])
                .is_err()
        );
        assert_eq!(
            store
                .checkpoints("globex", 0, 10)
                .expect("checkpoints")
                .len(),
            1
        );
    }

    pub fn readers_see_committed_batches_while_writing(backend: Backend) {
        let store: std::sync::Arc<dyn LogStore> = (backend.open)().into();
        let mut writer = store.writer().expect("writer");
        let now = ts("2026-01-01T00:00:00Z");
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                // Whatever a reader sees is a dense prefix of the log.
                let mut last = 0;
                for _ in 0..200 {
                    let size = size_of(&*store, "acme");
                    assert!(size >= last, "the log shrank");
                    let got = store.read_range("acme", 0, usize::MAX).expect("read_range");
                    assert!(got.len() as u64 >= size, "heads ran ahead of the events");
                    assert_eq!(seqs(&got), (0..got.len() as u64).collect::<Vec<_>>());
                    last = size;
                    if size == 200 {
                        break;
                    }
                }
                last
            });
            for _ in 0..20 {
                let batch: Vec<NewEvent> =
                    (0..10).map(|_| server_event("acme", "doc.read")).collect();
                writer.append(&batch, now).expect("append");
            }
            assert!(reader.join().expect("reader") <= 200);
        });
        assert_eq!(size_of(&*store, "acme"), 200);
    }
}

/// Instantiates every conformance test for one backend. `$factory` is called once per test
/// and returns a fresh, empty [`Backend`], or `None` when the backend is unavailable here
/// (the factory has said so loudly).
macro_rules! store_conformance_suite {
    ($factory:expr) => {
        store_conformance_suite!(@tests $factory;
            empty_store_answers_nothing,
            append_one_batch_and_read_it_back,
            read_range_past_the_end_is_empty,
            seq_is_dense_and_independent_per_tenant,
            received_at_never_decreases,
            client_id_is_idempotent_within_a_batch,
            client_id_is_idempotent_across_batches,
            client_id_is_idempotent_after_reopening,
            a_failed_batch_stores_nothing,
            heads_report_sizes,
            tiles_describe_the_tree_after_every_batch,
            proofs_for_any_earlier_size_come_from_stored_tiles,
            checkpoints_are_kept_in_order,
            many_logs_are_read_at_once_as_log_by_log,
            only_one_writer,
            readers_see_committed_batches_while_writing,
            settings_are_kept_beside_the_log,
            records_are_kept_by_kind_and_id,
        );
    };
    (@tests $factory:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                let factory: fn() -> Option<$crate::Backend> = $factory;
                if let Some(backend) = factory() {
                    $crate::suite::$name(backend);
                }
            }
        )+
    };
}

mod sqlite {
    use super::Backend;
    use stele_store::LogStore;
    use stele_store::sqlite::SqliteStore;

    fn backend() -> Option<Backend> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stele.db");
        Some(Backend {
            open: Box::new(move || -> Box<dyn LogStore> {
                Box::new(SqliteStore::open(&path).expect("open the sqlite store"))
            }),
            _guard: Box::new(dir),
        })
    }

    store_conformance_suite!(backend);
}

mod postgres {
    use super::Backend;
    use stele_store::LogStore;
    use stele_store::pg::PgStore;
    use stele_testkit::PgSchema;

    fn backend() -> Option<Backend> {
        let schema = PgSchema::create()?;
        let url = schema.url.clone();
        Some(Backend {
            open: Box::new(move || -> Box<dyn LogStore> {
                Box::new(PgStore::open(&url).expect("open the postgres store"))
            }),
            _guard: Box::new(schema),
        })
    }

    store_conformance_suite!(backend);
}

/// What only the SQLite backend promises.
mod sqlite_only {
    use super::*;
    use rusqlite::Connection;
    use stele_store::StoreError;
    use stele_store::sqlite::SqliteStore;

    /// A plain connection to the store's file, as anyone with access to it could open.
    fn raw_connection(path: &std::path::Path) -> Connection {
        let raw = Connection::open(path).expect("raw connection");
        raw.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy timeout");
        raw
    }

    fn filled(path: &std::path::Path) -> (SqliteStore, Vec<StoredEvent>) {
        let store = SqliteStore::open(path).expect("open");
        let batch: Vec<NewEvent> = (0..3).map(|_| server_event("acme", "doc.read")).collect();
        store
            .writer()
            .expect("writer")
            .append(&batch, ts("2026-01-01T00:00:00Z"))
            .expect("append");
        let events = store.read_range("acme", 0, 10).expect("read_range");
        (store, events)
    }

    fn assert_append_only(result: rusqlite::Result<usize>, what: &str) {
        match result {
            Ok(n) => panic!("{what} succeeded and changed {n} rows"),
            Err(e) => assert!(
                e.to_string().contains("append-only"),
                "{what} failed otherwise: {e}"
            ),
        }
    }

    /// Committed pages go back from the WAL into the database file in the background while
    /// the writer stays open and idle, and under a steady load the WAL stays bounded
    /// instead of growing with everything written.
    #[test]
    fn wal_is_copied_back_while_the_writer_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stele.db");
        let wal = dir.path().join("stele.db-wal");
        let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let store = SqliteStore::open(&path).expect("open");
        let mut writer = store.writer().expect("writer");
        // Events of about 16 KiB: few to prepare, many pages to write.
        let big = |i: usize| {
            let text = format!("{i:08}").repeat(2_000);
            prepared(
                "acme",
                json!({ "action": "doc.write", "details": { "text": text } }),
                false,
            )
            .1
        };
        let now = ts("2026-01-01T00:00:00Z");

        // Well below the writer's own checkpoint threshold: only the background copy moves
        // these pages into the database file.
        let before = len(&path);
        writer
            .append(&(0..20).map(big).collect::<Vec<_>>(), now)
            .expect("append");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while len(&path) < before + 20 * 16_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {} bytes after a commit of 320 KB",
                len(&path)
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }

        // 80 MB in commits of 320 KB: the WAL is reused from its start again and again.
        let mut largest_wal = 0;
        for round in 1..=250 {
            let batch: Vec<NewEvent> = (0..20).map(|i| big(round * 20 + i)).collect();
            writer.append(&batch, now).expect("append");
            largest_wal = largest_wal.max(len(&wal));
        }
        assert!(
            largest_wal < 24 << 20,
            "the WAL grew to {largest_wal} bytes for 80 MB written"
        );
        assert_eq!(size_of(&store, "acme"), 5_020);
        drop(writer);
        assert_eq!(store.read_range("acme", 5_019, 1).expect("read").len(), 1);
    }

    #[test]
    fn triggers_refuse_update_and_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stele.db");
        let (store, events) = filled(&path);
        let raw = raw_connection(&path);

        assert_append_only(
            raw.execute("UPDATE events SET body = x'7b7d' WHERE seq = 1", []),
            "UPDATE body",
        );
        assert_append_only(
            raw.execute("UPDATE events SET seq = seq + 10", []),
            "UPDATE seq",
        );
        assert_append_only(
            raw.execute("DELETE FROM events WHERE seq = 0", []),
            "DELETE one",
        );
        assert_append_only(raw.execute("DELETE FROM events", []), "DELETE all");

        let count: i64 = raw
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 3);
        assert_eq!(store.read_range("acme", 0, 10).expect("read_range"), events);
    }

    #[test]
    fn tree_hashes_and_checkpoints_are_append_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stele.db");
        let (store, _) = filled(&path);
        store
            .writer()
            .expect("writer")
            .add_checkpoints(&[StoredCheckpoint {
                tenant: "acme".into(),
                size: 3,
                signed_at: ts("2026-01-01T00:00:00Z"),
                note: "note".into(),
            }])
            .expect("add_checkpoints");
        let tiles = store.scan_tiles("acme", None, 10).expect("scan_tiles");
        let raw = raw_connection(&path);
        for (sql, what) in [
            ("UPDATE tiles SET hashes = x'00'", "UPDATE tile"),
            ("DELETE FROM tiles", "DELETE tile"),
            (
                "INSERT OR REPLACE INTO tiles SELECT log_id, level, idx, width, x'00' FROM tiles",
                "REPLACE tile",
            ),
            ("UPDATE checkpoints SET size = 2", "UPDATE checkpoint"),
            ("DELETE FROM checkpoints", "DELETE checkpoint"),
            (
                "INSERT OR REPLACE INTO checkpoints SELECT checkpoint_id, log_id, 9, 0, 'x' FROM checkpoints",
                "REPLACE checkpoint",
            ),
        ] {
            assert_append_only(raw.execute(sql, []), what);
        }
        assert_eq!(
            store.scan_tiles("acme", None, 10).expect("scan_tiles"),
            tiles
        );
        assert_eq!(
            store.checkpoints("acme", 0, 10).expect("checkpoints").len(),
            1
        );
    }

    #[test]
    fn a_store_from_before_the_tree_gets_its_tiles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let current = dir.path().join("current.db");
        let store = SqliteStore::open(&current).expect("open");
        let mut writer = store.writer().expect("writer");
        for (tenant, n) in [("acme", 700usize), ("globex", 3)] {
            let batch: Vec<NewEvent> = (0..n).map(|_| server_event(tenant, "doc.read")).collect();
            writer
                .append(&batch, ts("2026-01-01T00:00:00Z"))
                .expect("append");
        }
        let heads = ["acme", "globex"].map(|t| writer.tree_head(t));
        drop(writer);
        let events = ["acme", "globex"].map(|t| store.read_range(t, 0, 1_000).expect("read"));
        drop(store);

        // The same logs and events in a store of schema version 1, which had no tiles and
        // kept events WITHOUT ROWID.
        let old = dir.path().join("old.db");
        let raw = Connection::open(&old).expect("raw connection");
        raw.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
            .expect("schema 1");
        raw.execute("ATTACH ?1 AS cur", [current.to_str().expect("utf-8 path")])
            .expect("attach");
        raw.execute_batch(
            "INSERT INTO logs SELECT * FROM cur.logs;
             INSERT INTO events SELECT * FROM cur.events;
             DETACH cur;
             PRAGMA user_version = 1;",
        )
        .expect("copy");
        drop(raw);

        let store = SqliteStore::open(&old).expect("migrate");
        let mut writer = store.writer().expect("writer");
        assert_eq!(["acme", "globex"].map(|t| writer.tree_head(t)), heads);
        assert_tiles_match(&store, "acme");
        assert_tiles_match(&store, "globex");
        assert_eq!(
            ["acme", "globex"].map(|t| store.read_range(t, 0, 1_000).expect("read")),
            events
        );
        // The migrated store goes on: the next event lands after the copied ones.
        let next = [server_event("acme", "doc.read")];
        let appended = writer
            .append(&next, ts("2026-01-02T00:00:00Z"))
            .expect("append");
        assert_eq!(appended[0].seq, 700);
        assert_tiles_match(&store, "acme");
    }

    #[test]
    fn insert_or_replace_cannot_rewrite_an_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stele.db");
        let (store, events) = filled(&path);
        let raw = raw_connection(&path);

        // REPLACE removes the conflicting row without firing delete triggers (unless
        // recursive_triggers is on), so it is another way to rewrite an event.
        let result = raw.execute(
            "INSERT OR REPLACE INTO events (log_id, seq, id, leaf_hash, body)
             SELECT log_id, seq, id, leaf_hash, x'7b7d' FROM events WHERE seq = 1",
            [],
        );
        let after = store.read_range("acme", 0, 10).expect("read_range");
        assert_eq!(seqs(&after), seqs(&events));
        for (now, before) in after.iter().zip(&events) {
            assert!(
                now == before,
                "INSERT OR REPLACE rewrote seq {} ({result:?})",
                before.seq
            );
        }
        assert!(
            result.is_err(),
            "INSERT OR REPLACE of an existing event was accepted"
        );
    }

    /// Only the writer's connection appends: another connection cannot insert even a new
    /// event at the next position, nor one that claims to be the writer's by defining the
    /// marker function as false.
    #[test]
    fn only_the_writer_inserts_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stele.db");
        let (store, events) = filled(&path);
        let raw = raw_connection(&path);
        let append = |raw: &Connection| {
            raw.execute(
                "INSERT INTO events (log_id, seq, id, leaf_hash, body)
                 SELECT log_id, seq + 1000, randomblob(16), leaf_hash, body FROM events
                 WHERE seq = 0",
                [],
            )
        };
        let refused = append(&raw).expect_err("a foreign insert was accepted");
        assert!(refused.to_string().contains("stele_writer"), "{refused}");
        raw.create_scalar_function(
            "stele_writer",
            0,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8,
            |_| Ok(false),
        )
        .expect("function");
        let refused = append(&raw).expect_err("a foreign insert was accepted");
        assert!(
            refused.to_string().contains("only the Stele writer"),
            "{refused}"
        );
        assert_eq!(store.read_range("acme", 0, 10_000).expect("read"), events);
    }

    #[test]
    fn reopening_migrates_idempotently() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("stele.db");
        let (store, events) = filled(&path);
        drop(store);
        let version = |path: &std::path::Path| -> i64 {
            let raw = Connection::open(path).expect("raw connection");
            raw.query_row("PRAGMA user_version", [], |r| r.get(0))
                .expect("user_version")
        };
        let migrated = version(&path);
        assert!(migrated >= 1, "user_version is {migrated}");
        for _ in 0..3 {
            let store = SqliteStore::open(&path).expect("reopen");
            assert_eq!(version(&path), migrated);
            assert_eq!(
                store.heads().expect("heads"),
                vec![LogHead {
                    tenant: "acme".into(),
                    size: 3
                }]
            );
            assert_eq!(store.read_range("acme", 0, 10).expect("read_range"), events);
        }
        let store = SqliteStore::open(&path).expect("reopen");
        let out = store
            .writer()
            .expect("writer")
            .append(
                &[server_event("acme", "doc.write")],
                ts("2026-01-01T00:00:00Z"),
            )
            .expect("append");
        assert_eq!(out[0].seq, 3);
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stele.db");
        drop(filled(&path));
        let raw = Connection::open(&path).expect("raw connection");
        let current: i64 = raw
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("user_version");
        raw.pragma_update(None, "user_version", current + 1)
            .expect("bump user_version");
        drop(raw);
        match SqliteStore::open(&path) {
            Err(StoreError::TooNew { found, known }) => {
                assert_eq!((found, known), (current + 1, current))
            }
            Err(e) => panic!("refused with another error: {e}"),
            Ok(_) => panic!("opened a store from a newer version"),
        }
    }
}

/// What only the PostgreSQL backend promises.
mod postgres_only {
    use super::*;
    use stele_store::pg::PgStore;
    use stele_testkit::PgSchema;

    fn partitions(url: &str) -> Vec<String> {
        let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).expect("connect");
        client
            .query(
                "SELECT c.relname::text FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = 'events' AND p.relnamespace = to_regnamespace(current_schema())
                 ORDER BY 1",
                &[],
            )
            .expect("partitions")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Two nodes append to one log in turns: each finds its cached tree behind (the
    /// one-statement append is refused), appends under the log's lock after resuming from
    /// the tiles, and a client-chosen id the other node stored is answered as a duplicate.
    #[test]
    fn nodes_taking_turns_keep_one_dense_log() {
        let Some(schema) = PgSchema::create() else {
            return;
        };
        let (a, b) = (
            PgStore::open(&schema.url).expect("open a"),
            PgStore::open(&schema.url).expect("open b"),
        );
        let (mut wa, mut wb) = (a.writer().expect("writer a"), b.writer().expect("writer b"));
        let mut clock = ts("2026-03-01T00:00:00Z").as_micros();
        let mut next = || {
            clock += 1_000;
            Timestamp::from_micros(clock).expect("in range")
        };
        let shared_id = Uuid::now_v7();
        let mut expected = 0u64;
        for turn in 0..12 {
            let writer: &mut Box<dyn stele_store::LogWriter> =
                if turn % 2 == 0 { &mut wa } else { &mut wb };
            let mut batch: Vec<NewEvent> = (0..turn + 1)
                .map(|_| server_event("acme", "doc.read"))
                .collect();
            if turn >= 5 {
                batch.push(client_event("acme", shared_id, "doc.share"));
            }
            let out = writer.append(&batch, next()).expect("append");
            let fresh = out.iter().filter(|o| !o.duplicate).count() as u64;
            let seqs: Vec<u64> = out.iter().filter(|o| !o.duplicate).map(|o| o.seq).collect();
            assert_eq!(
                seqs,
                (expected..expected + fresh).collect::<Vec<_>>(),
                "turn {turn}"
            );
            if turn > 5 {
                assert!(out.last().expect("answers").duplicate, "turn {turn}");
            }
            expected += fresh;
            let head = writer.tree_head("acme").expect("a head");
            assert_eq!(head.size, expected);
        }
        assert_eq!(size_of(&a, "acme"), expected);
        assert_tiles_match(&b, "acme");
    }

    #[test]
    fn events_are_partitioned_by_month_ahead_of_time() {
        let Some(schema) = PgSchema::create() else {
            return;
        };
        let store = PgStore::open(&schema.url).expect("open");
        let mut writer = store.writer().expect("writer");
        writer
            .append(
                &[server_event("acme", "doc.read")],
                ts("2026-11-30T23:59:59.999999Z"),
            )
            .expect("append");
        assert_eq!(
            partitions(&schema.url),
            ["events_2026_11", "events_2026_12", "events_2027_01"]
        );
        // A batch in a later month finds its partition made, and makes the next ones.
        writer
            .append(
                &[server_event("acme", "doc.read")],
                ts("2027-01-01T00:00:00Z"),
            )
            .expect("append");
        assert_eq!(
            partitions(&schema.url),
            [
                "events_2026_11",
                "events_2026_12",
                "events_2027_01",
                "events_2027_02",
                "events_2027_03"
            ]
        );
        let events = store.read_range("acme", 0, 10).expect("read_range");
        assert_eq!(seqs(&events), vec![0, 1]);
        let mut client =
            ::postgres::Client::connect(&schema.url, ::postgres::NoTls).expect("connect");
        let per_partition: Vec<(String, i64)> = client
            .query(
                "SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1 ORDER BY 1",
                &[],
            )
            .expect("count")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            per_partition,
            [
                ("events_2026_11".to_string(), 1),
                ("events_2027_01".to_string(), 1)
            ]
        );
    }

    #[test]
    fn nodes_starting_together_migrate_once() {
        let Some(schema) = PgSchema::create() else {
            return;
        };
        let opened: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| PgStore::open(&schema.url).map(|_| ())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        for result in opened {
            result.expect("every node opens the store");
        }
        let mut client =
            ::postgres::Client::connect(&schema.url, ::postgres::NoTls).expect("connect");
        let versions: Vec<i32> = client
            .query("SELECT version FROM stele_migrations ORDER BY version", &[])
            .expect("versions")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, [1, 2, 3, 4]);
    }

    #[test]
    fn history_is_append_only_in_the_database() {
        let Some(schema) = PgSchema::create() else {
            return;
        };
        let store = PgStore::open(&schema.url).expect("open");
        let mut writer = store.writer().expect("writer");
        let batch: Vec<NewEvent> = (0..3).map(|_| server_event("acme", "doc.read")).collect();
        writer
            .append(&batch, ts("2026-11-01T00:00:00Z"))
            .expect("append");
        writer
            .add_checkpoints(&[StoredCheckpoint {
                tenant: "acme".into(),
                size: 3,
                signed_at: ts("2026-11-01T00:00:00Z"),
                note: "note".into(),
            }])
            .expect("add_checkpoints");
        let before = store.read_range("acme", 0, 10).expect("read_range");
        let mut client =
            ::postgres::Client::connect(&schema.url, ::postgres::NoTls).expect("connect");
        for sql in [
            "UPDATE events SET body = 'x'",
            "DELETE FROM events WHERE seq = 0",
            "TRUNCATE events",
            "TRUNCATE events_2026_11",
            "UPDATE event_ids SET seq = 9",
            "DELETE FROM event_ids",
            "UPDATE tiles SET hashes = 'x'",
            "DELETE FROM tiles",
            "TRUNCATE tiles CASCADE",
            "UPDATE checkpoints SET size = 2",
            "DELETE FROM checkpoints",
            "UPDATE logs SET size = 2",
            "UPDATE logs SET tenant = 'other'",
            "DELETE FROM logs",
        ] {
            let err = client.batch_execute(sql).expect_err(sql);
            let db = err
                .as_db_error()
                .map(|e| e.message().to_string())
                .unwrap_or_default();
            assert!(db.contains("append-only"), "{sql}: {err:?}");
        }
        assert_eq!(store.read_range("acme", 0, 10).expect("read_range"), before);
    }
}
