//! Micro-benchmarks of the event path's hot pure functions: canonical encoding,
//! preparing (parse, validate, canonicalize) and sealing. `cargo bench -p stele-core`.

use divan::{Bencher, black_box};
use serde_json::{Value, json};
use stele_core::{IngestDefaults, Limits, Presealed, SealTime, Timestamp, prepare, prepare_json};
use stele_tlog::leaf_hash;

fn main() {
    divan::main();
}

/// A typical audit event of about 600 canonical bytes.
fn event() -> Value {
    json!({
        "occurred_at": "2026-03-04T05:06:07.123456Z",
        "actor": {"id": "user-4711", "type": "user", "ip": "10.1.2.3", "name": "Person 4711"},
        "action": "document.update",
        "category": "audit",
        "level": "info",
        "outcome": "success",
        "resource": {"type": "document", "id": "doc-99"},
        "correlation_id": "op-1f2e",
        "request_id": "req-00000000deadbeef",
        "details": {
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
            "reason": "scheduled review of access rights",
            "ticket": "T-123456",
            "bytes": 81920
        }
    })
}

fn presealed() -> Presealed {
    let defaults = IngestDefaults {
        tenant: "default",
        occurred_at: Timestamp::MIN,
    };
    prepare(event(), &defaults, &Limits::default(), uuid::Uuid::now_v7)
        .expect("valid")
        .presealed
}

#[divan::bench]
fn canonical_encoding(bencher: Bencher) {
    let value = event();
    bencher.bench(|| stele_core::canonical::to_vec(black_box(&value)).expect("encodes"));
}

#[divan::bench]
fn prepare_event(bencher: Bencher) {
    let defaults = IngestDefaults {
        tenant: "default",
        occurred_at: Timestamp::MIN,
    };
    bencher.with_inputs(event).bench_values(|v| {
        prepare(v, &defaults, &Limits::default(), uuid::Uuid::now_v7).expect("valid")
    });
}

#[divan::bench]
fn prepare_event_text(bencher: Bencher) {
    let defaults = IngestDefaults {
        tenant: "default",
        occurred_at: Timestamp::MIN,
    };
    let text = event().to_string();
    bencher.bench(|| {
        prepare_json(
            black_box(&text),
            &defaults,
            &Limits::default(),
            uuid::Uuid::now_v7,
        )
        .expect("valid")
    });
}

#[divan::bench]
fn seal_and_hash(bencher: Bencher) {
    let pre = presealed();
    let time = SealTime::new(Timestamp::from_micros(1_767_225_600_000_000).expect("time"));
    let mut seq = 0u64;
    bencher.bench_local(|| {
        seq += 1;
        let bytes = pre.seal(seq, &time);
        leaf_hash(black_box(&bytes))
    });
}
