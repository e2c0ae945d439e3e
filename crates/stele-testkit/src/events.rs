//! Events for tests and benchmarks: a seeded generator of realistic audit events (actors
//! with stable IPs, a skewed mix of actions and outcomes, about 200 bytes of details, a
//! share of multi-step traces), and small deterministic events for filter tests.

use serde_json::{Value, json};

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same events.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Skewed towards small values: a few actors and actions dominate, as in real logs.
    pub fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

pub const ACTIONS: &[&str] = &[
    "user.login",
    "user.logout",
    "user.password.change",
    "document.read",
    "document.update",
    "document.delete",
    "invoice.create",
    "invoice.approve",
    "queue.freeze",
    "config.change",
    "api_key.create",
    "role.grant",
];
const OUTCOMES: &[&str] = &[
    "success", "success", "success", "failure", "denied", "partial",
];
const LEVELS: &[&str] = &["info", "info", "info", "debug", "warn", "error"];
const CATEGORIES: &[&str] = &["audit", "audit", "security", "application"];
const STEPS: &[&str] = &["validate", "authorize", "reserve", "charge", "notify"];

/// Number of distinct actors the generator draws from.
pub const ACTORS: u64 = 5_000;

pub struct Generator {
    rng: Rng,
    /// Share of events (per mille) that belong to multi-step traces.
    trace_permille: u64,
    /// An open trace: (correlation id, next step).
    trace: Option<(u64, usize)>,
    next_trace: u64,
    count: u64,
}

impl Generator {
    pub fn new(seed: u64, trace_permille: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
            trace_permille,
            trace: None,
            next_trace: seed.wrapping_mul(1_000_003),
            count: 0,
        }
    }

    /// The actor id of actor `n`, and its IP (each actor keeps one address).
    pub fn actor(n: u64) -> (String, String) {
        (
            format!("user-{n}"),
            format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        )
    }

    pub fn event(&mut self) -> Value {
        self.count += 1;
        let r = &mut self.rng;
        let actor = r.skewed(ACTORS);
        let (actor_id, ip) = Generator::actor(actor);
        let seconds = 1_767_225_600 + self.count; // from 2026-01-01, one per second
        let occurred = format!(
            "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            1 + (seconds / 2_419_200) % 12,
            1 + (seconds / 86_400) % 28,
            (seconds / 3_600) % 24,
            (seconds / 60) % 60,
            seconds % 60
        );
        let mut event = json!({
            "occurred_at": occurred,
            "actor": {"id": actor_id, "type": if actor.is_multiple_of(10) { "service" } else { "user" },
                      "ip": ip, "name": format!("Person {actor}")},
            "action": ACTIONS[r.skewed(ACTIONS.len() as u64) as usize],
            "category": CATEGORIES[r.below(CATEGORIES.len() as u64) as usize],
            "level": LEVELS[r.below(LEVELS.len() as u64) as usize],
            "outcome": OUTCOMES[r.below(OUTCOMES.len() as u64) as usize],
            "resource": {"type": "document", "id": format!("doc-{}", r.below(100_000))},
            "request_id": format!("req-{:016x}", r.next_u64()),
            "details": {
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
                "reason": "scheduled review of access rights",
                "ticket": format!("T-{}", r.below(1_000_000)),
                "bytes": r.below(1 << 20),
            },
        });
        let in_trace = self.trace.is_some() || r.below(1_000) < self.trace_permille;
        if in_trace {
            let (id, step) = *self.trace.get_or_insert_with(|| {
                self.next_trace += 1;
                (self.next_trace, 0)
            });
            event["correlation_id"] = json!(format!("op-{id:x}"));
            event["step"] = json!({"name": STEPS[step], "status": "completed", "sequence": step});
            event["duration_ms"] = json!(self.rng.below(500));
            self.trace = (step + 1 < STEPS.len()).then_some((id, step + 1));
        }
        event
    }

    pub fn batch(&mut self, n: usize) -> Vec<Value> {
        (0..n).map(|_| self.event()).collect()
    }
}

/// A deterministic, varied event for filter tests: every field takes a few values in
/// cycles of different lengths, so that filters select computable subsets.
pub fn sample_event(i: usize) -> Value {
    let actions = [
        "user.login",
        "user.logout",
        "queue.freeze",
        "config.change",
        "passport.verify",
    ];
    let outcomes = ["success", "failure", "denied", "partial", "unknown"];
    let levels = ["debug", "info", "warn", "error", "critical"];
    let categories = ["audit", "security", "application", "error"];
    let actor_types = ["user", "service", "api_key", "system"];
    let ips = ["10.0.0.1", "10.0.0.2", "2001:db8::1"];
    let mut event = json!({
        "occurred_at": format!("2026-01-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        "actor": {"id": format!("u{}", i % 7), "type": actor_types[i % 4], "ip": ips[i % 3], "name": "Test User"},
        "action": actions[i % 5],
        "category": categories[i % 4],
        "level": levels[i % 5],
        "outcome": outcomes[(i / 2) % 5],
        "resource": {"type": if i.is_multiple_of(2) { "queue" } else { "user" }, "id": format!("r{}", i % 11)},
        "correlation_id": format!("op-{}", i / 10),
        "request_id": format!("req-{i}"),
        "trace_id": format!("trace-{}", i % 13),
        "error": if i.is_multiple_of(6) { json!({"code": format!("E{}", i % 4), "message": "timeout talking to upstream"}) } else { Value::Null },
        "details": {"i": i, "note": "sample"},
    });
    if i % 4 == 1 {
        event["step"] = json!({"name": format!("check-{}", i % 3), "status": "completed"});
    }
    if i.is_multiple_of(3) {
        event["duration_ms"] = json!(i * 7);
    }
    event
}

/// Sample event `i` (see [`sample_event`]) in the log of `tenant`.
pub fn tenant_event(tenant: &str, i: usize) -> Value {
    let mut event = sample_event(i);
    event["tenant"] = json!(tenant);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_valid_deterministic_and_about_the_right_size() {
        let a: Vec<Value> = Generator::new(7, 100).batch(500);
        let b: Vec<Value> = Generator::new(7, 100).batch(500);
        assert_eq!(a, b);
        let defaults = stele_core::IngestDefaults {
            tenant: "default",
            occurred_at: stele_core::Timestamp::MIN,
        };
        let mut traced = 0;
        for e in &a {
            let event = stele_core::prepare(
                e.clone(),
                &defaults,
                &stele_core::Limits::default(),
                uuid::Uuid::now_v7,
            )
            .expect("a valid event")
            .event;
            traced += usize::from(event.correlation_id.is_some());
            let details = serde_json::to_string(&e["details"]).unwrap().len();
            assert!((150..300).contains(&details), "{details}");
        }
        assert!((25..200).contains(&traced), "{traced} traced events");
    }

    #[test]
    fn sample_events_are_valid() {
        let defaults = stele_core::IngestDefaults {
            tenant: "default",
            occurred_at: stele_core::Timestamp::MIN,
        };
        for i in 0..60 {
            let e = tenant_event("acme", i);
            let p = stele_core::prepare(
                e,
                &defaults,
                &stele_core::Limits::default(),
                uuid::Uuid::now_v7,
            )
            .expect("a valid event");
            assert_eq!(p.tenant, "acme");
        }
    }
}
