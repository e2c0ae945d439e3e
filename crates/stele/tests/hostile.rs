//! Hostile input, table-driven: each case is a request, the status and problem code it must
//! get, and (for every refusal) proof that nothing was stored. Cases that already behaved
//! well are kept beside the fixed ones, so that both stay that way.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::Write;

/// A request and what it must get.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// The problem code of a refusal; `None` for a success.
    code: Option<&'static str>,
}

fn case(name: &'static str, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        path: "/v1/events".into(),
        headers: Vec::new(),
        body: Vec::new(),
        status,
        code: Some(code),
    }
}

impl Case {
    fn json(mut self, body: &str) -> Case {
        self.body = body.as_bytes().to_vec();
        self.headers
            .push(("content-type", "application/json".into()));
        self
    }
    fn raw(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Case {
        self.body = body.into();
        self.headers.push(("content-type", content_type.into()));
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.into()));
        self
    }
    fn get(mut self, path: &str) -> Case {
        self.method = "GET";
        self.path = path.into();
        self
    }
    fn ok(mut self) -> Case {
        self.code = None;
        self
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

/// The number of events in every log.
async fn stored(server: &Server) -> u64 {
    let (status, body) = get(server, "/v1/logs?limit=1000").await;
    assert_eq!(status, 200, "{}", short(&body));
    body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum()
}

async fn send(server: &Server, c: &Case) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
    let mut request = client()
        .request(method, server.endpoint(&c.path))
        .body(c.body.clone());
    for (name, value) in &c.headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const LIMITS: &str = "[ingest]\nmax_body_bytes = 65536\nmax_events_per_request = 100\n";

fn ev(action: &str) -> String {
    format!(r#"{{"action":"{action}"}}"#)
}

fn cases(cursor_of_other_log: &str, cursor_of_other_filter: &str) -> Vec<Case> {
    let big = format!("[{}]", vec![ev("a.b"); 101].join(","));
    let huge = format!(
        r#"{{"action":"a","details":{{"s":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    let bomb = format!("[{}]", vec![ev("a.b"); 100].join(",")) + &" ".repeat(200_000);
    let ndjson_bad = format!("{}\n\n{{\"action\": \n{}\n", ev("n.a"), ev("n.b"));
    vec![
        // Bodies that are not events.
        case("malformed JSON", 400, "invalid_json").json("{\"action\": "),
        case("not UTF-8", 400, "invalid_json").raw("application/json", vec![0xff, 0xfe, b'{']),
        case("empty body", 400, "invalid_json").json(""),
        case("empty array", 400, "empty_batch").json("[]"),
        case("a bare string", 400, "invalid_json").json("\"user.login\""),
        case("two BOMs", 400, "invalid_json").json(&format!("\u{feff}\u{feff}{}", ev("a.b"))),
        case("text/plain", 415, "unsupported_media_type").raw("text/plain", ev("a.b")),
        // Sizes and counts.
        case("body over the limit", 413, "payload_too_large").json(&huge),
        case("101 events, limit 100", 413, "too_many_events").json(&big),
        case(
            "gzip that inflates over the limit",
            413,
            "payload_too_large",
        )
        .raw("application/json", gzip(bomb.as_bytes()))
        .header("content-encoding", "gzip"),
        case(
            "zstd that inflates over the limit",
            413,
            "payload_too_large",
        )
        .raw("application/json", zstd(bomb.as_bytes()))
        .header("content-encoding", "zstd"),
        // Content encodings.
        case("plain JSON labelled gzip", 400, "invalid_encoding")
            .json(&ev("a.b"))
            .header("content-encoding", "gzip"),
        case("brotli", 415, "unsupported_encoding")
            .json(&ev("a.b"))
            .header("content-encoding", "br"),
        // Events that are not valid, or would not be stored as sent.
        case("unknown field", 422, "invalid_event").json(r#"{"action":"a","colour":"red"}"#),
        case("bad tenant parameter", 400, "invalid_tenant").json(&ev("a.b")),
        case("integer beyond u64", 422, "invalid_event")
            .json(r#"{"action":"a","details":{"n":18446744073709551617}}"#),
        case("2^63", 422, "invalid_event")
            .json(r#"{"action":"a","details":{"n":9223372036854775808}}"#),
        case("1e-400", 422, "invalid_event").json(r#"{"action":"a","details":{"n":1e-400}}"#),
        case("too many digits", 422, "invalid_event")
            .json(r#"{"action":"a","details":{"pi":3.14159265358979323846264338}}"#),
        case("duration beyond u64", 422, "invalid_event")
            .json(r#"{"action":"a","duration_ms":18446744073709551616}"#),
        case("duplicate top-level key", 422, "invalid_event")
            .json(r#"{"action":"a","action":"b"}"#),
        case("duplicate key in details", 422, "invalid_event")
            .json(r#"{"action":"a","details":{"k":1,"k":2}}"#),
        case("duplicate key deep in details", 422, "invalid_event")
            .json(r#"{"action":"a","details":{"x":[{"k":1,"k":1}]}}"#),
        case("duplicate key in actor", 422, "invalid_event")
            .json(r#"{"action":"a","actor":{"id":"a","id":"b"}}"#),
        case("leap second", 422, "invalid_event")
            .json(r#"{"action":"a","occurred_at":"2016-12-31T23:59:60Z"}"#),
        case("seq: null", 422, "invalid_event").json(r#"{"action":"a","seq":null}"#),
        case("seq: 5", 422, "invalid_event").json(r#"{"action":"a","seq":5}"#),
        case("received_at: null", 422, "invalid_event")
            .json(r#"{"action":"a","received_at":null}"#),
        case("one bad event of three", 422, "invalid_event").json(&format!(
            "[{},{{\"action\":\"Bad\"}},{}]",
            ev("a.b"),
            ev("a.c")
        )),
        case("NDJSON with a broken line", 422, "invalid_event")
            .raw("application/x-ndjson", ndjson_bad),
        case("JSON text sequence without RS", 400, "invalid_json")
            .raw("application/json-seq", format!("{}\n", ev("a.b"))),
        case(
            "JSON text sequence with a broken record",
            422,
            "invalid_event",
        )
        .raw(
            "application/json-seq",
            format!("\u{1e}{}\n\u{1e}{{\"action\"\n", ev("a.b")),
        ),
        case(
            "an id twice in one request, other bodies",
            409,
            "id_conflict",
        )
        .json(&format!(
            "[{{\"id\":\"{ID}\",\"action\":\"a.b\"}},{{\"id\":\"{ID}\",\"action\":\"a.c\"}}]"
        )),
        // Reads.
        case("unknown parameter", 400, "invalid_query").get("/v1/events?colour=red"),
        case("limit 0", 400, "invalid_query").get("/v1/events?limit=0"),
        case("garbage cursor", 400, "invalid_cursor").get("/v1/events?cursor=abc"),
        case("cursor of another log", 400, "invalid_cursor")
            .get(&format!("/v1/events?cursor={cursor_of_other_log}")),
        case("cursor of other filters", 400, "invalid_cursor")
            .get(&format!("/v1/events?cursor={cursor_of_other_filter}")),
        case("bad tenant in a path", 400, "invalid_tenant").get("/v1/logs/Bad%20Name/checkpoint"),
        case("unknown route", 404, "not_found").get("/v1/nothing"),
        case("bad proof size", 400, "invalid_query")
            .get("/v1/logs/default/proof/consistency?old=5&new=2"),
    ]
}

/// An id that the conflict cases use.
const ID: &str = "0190b3c4-1111-7000-8000-000000000001";

fn accepted() -> Vec<Case> {
    let plain = format!("[{},{}]", ev("ok.gzip"), ev("ok.gzip"));
    vec![
        case("gzip", 201, "").raw("application/json", gzip(plain.as_bytes())).header("content-encoding", "gzip").ok(),
        case("zstd", 201, "").raw("application/json", zstd(plain.as_bytes())).header("content-encoding", "zstd").ok(),
        case("identity", 201, "").json(&ev("ok.identity")).header("content-encoding", "identity").ok(),
        case("one BOM", 201, "").json(&format!("\u{feff}{}", ev("ok.bom"))).ok(),
        case("JSON text sequence", 201, "")
            .raw("application/json-seq", format!("\u{1e}{}\n\u{1e}{}\n", ev("ok.seq"), ev("ok.seq")))
            .ok(),
        case("exact numbers", 201, "")
            .json(r#"{"action":"ok.numbers","details":{"a":9007199254740991,"b":-1.5e-7,"c":1e21,"d":0.1}}"#)
            .ok(),
    ]
}

async fn hostile_requests_are_refused_and_change_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), Some(LIMITS));
    load_samples(&server, 30, 30).await;
    ingest(
        &server,
        &[tenant_event("other", 0), tenant_event("other", 1)],
    )
    .await;
    wait_indexed(&server, "default", 29).await;
    wait_indexed(&server, "other", 1).await;
    // Cursors of two other listings, each with more pages to come.
    let (_, other_log) = get(&server, "/v1/events?tenant=other&limit=1").await;
    let (_, other_filter) = get(&server, "/v1/events?outcome=success&limit=1").await;
    let mut all = cases(
        other_log["next_cursor"].as_str().unwrap(),
        other_filter["next_cursor"].as_str().unwrap(),
    );
    for c in &mut all {
        if c.name == "bad tenant parameter" {
            c.path = "/v1/events?tenant=Bad_Tenant".into();
        }
    }
    for c in &all {
        let before = stored(&server).await;
        let (status, body) = send(&server, c).await;
        assert_eq!(status, c.status, "{}: {}", c.name, short(&body));
        assert_eq!(
            body["code"].as_str(),
            c.code,
            "{}: {}",
            c.name,
            short(&body)
        );
        assert_eq!(body["status"], c.status, "{}", c.name);
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            c.name
        );
        assert_eq!(
            stored(&server).await,
            before,
            "{}: something was stored",
            c.name
        );
    }
    for c in accepted() {
        let (status, body) = send(&server, &c).await;
        assert_eq!(status, 201, "{}: {}", c.name, short(&body));
    }
    server.stop();
}

/// What the refusals say: the field, the line, the seq of the stored event.
async fn refusals_name_what_is_wrong(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    let reasons = |body: &Value| body["errors"][0]["reasons"].to_string();

    let (_, body) = post(&server, "/v1/events", &json!(null)).await;
    assert_eq!(body["code"], "invalid_json");
    let sent = r#"{"action":"a","details":{"order":{"total":18446744073709551617}}}"#;
    let (status, body) = post_events_as(&server, "application/json", sent).await;
    assert_eq!(status, 422);
    assert!(reasons(&body).contains("`order.total`"), "{}", short(&body));
    assert!(
        reasons(&body).contains("18446744073709552000"),
        "{}",
        short(&body)
    );
    let sent = r#"{"action":"a","occurred_at":"2016-12-31T23:59:60Z"}"#;
    let (_, body) = post_events_as(&server, "application/json", sent).await;
    assert!(reasons(&body).contains("leap second"), "{}", short(&body));

    // NDJSON: the index among events and the 1-based line.
    let ndjson = format!(
        "{}\n\n\n{{\"action\": \"Bad\"}}\n{}\n{{oops\n",
        ev("a.b"),
        ev("a.c")
    );
    let (status, body) = post_events_as(&server, "application/x-ndjson", &ndjson).await;
    assert_eq!(status, 422, "{}", short(&body));
    let errors: Vec<(u64, u64)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(errors, vec![(1, 4), (3, 6)]);

    // A conflicting resend names the stored seq; an exact resend is idempotent.
    let event = json!({"id": ID, "action": "doc.open", "details": {"v": 1}});
    let first = ingest(&server, std::slice::from_ref(&event)).await;
    let again = ingest(&server, std::slice::from_ref(&event)).await;
    assert_eq!(again[0]["seq"], first[0]["seq"]);
    assert_eq!(again[0]["duplicate"], true);
    let (status, body) = post(
        &server,
        "/v1/events",
        &json!([{"action": "doc.close"}, {"id": ID, "action": "doc.open", "details": {"v": 2}}]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("id_conflict")),
        "{}",
        short(&body)
    );
    assert_eq!(body["errors"][0]["index"], 1);
    let seq = first[0]["seq"].as_u64().unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("seq {seq}")),
        "{}",
        short(&body)
    );
    assert_eq!(
        stored(&server).await,
        1,
        "the other event of the refused request is not stored"
    );
    server.stop();
}

/// Logs are listed a page at a time, and no client can create more than the cap.
async fn logs_are_paged_and_capped(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), Some("[ingest]\nmax_tenants = 5\n"));
    let events: Vec<Value> = ["d", "a", "e", "c", "b"]
        .iter()
        .map(|t| tenant_event(t, 0))
        .collect();
    ingest(&server, &events).await;
    let (status, body) = post(
        &server,
        "/v1/events",
        &json!([tenant_event("a", 1), tenant_event("f", 0)]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("tenant_limit")),
        "{}",
        short(&body)
    );
    assert!(
        body["detail"].as_str().unwrap().contains("`f`"),
        "{}",
        short(&body)
    );
    assert_eq!(
        stored(&server).await,
        5,
        "nothing of the refused request is stored"
    );
    ingest(&server, &[tenant_event("a", 1)]).await;

    let mut names = Vec::new();
    let mut path = "/v1/logs?limit=2".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = get(&server, &path).await;
        assert_eq!(status, 200, "{}", short(&page));
        pages += 1;
        let logs = page["logs"].as_array().unwrap();
        assert!(logs.len() <= 2);
        names.extend(
            logs.iter()
                .map(|l| l["tenant"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/logs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        (names, pages),
        (
            vec!["a", "b", "c", "d", "e"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>(),
            3
        )
    );
    for bad in [
        "/v1/logs?cursor=zz",
        "/v1/logs?limit=0",
        "/v1/logs?colour=red",
    ] {
        let (status, body) = get(&server, bad).await;
        assert_eq!(status, 400, "{bad}: {}", short(&body));
    }
    server.stop();
}

/// `min_seq` answers at once for a seq not yet assigned, and says how the wait ended.
async fn min_seq_says_how_the_wait_ended(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    load_samples(&server, 3, 3).await;
    let (status, page) = get(&server, "/v1/events?min_seq=2").await;
    assert_eq!(status, 200, "{}", short(&page));
    assert_eq!(page["min_seq_wait"], "reached");
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    let started = std::time::Instant::now();
    let (status, page) = get(&server, "/v1/events?min_seq=1000").await;
    assert_eq!(status, 200, "{}", short(&page));
    assert_eq!(page["min_seq_wait"], "not_assigned");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "a wait for a seq never assigned took {:?}",
        started.elapsed()
    );
    let (_, page) = get(&server, "/v1/events").await;
    assert!(page.get("min_seq_wait").is_none(), "{}", short(&page));
    server.stop();
}

/// A seq assigned but not searchable within the wait limit (5 s) says so, and the page
/// answers what the index holds.
async fn min_seq_says_when_the_wait_timed_out(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // The index commits only after a minute: nothing becomes searchable during the test.
    let slow = "[index]\nmax_commit_interval_ms = 60000\nquiet_interval_ms = 60000\n";
    let server = start(&backend, dir.path(), Some(slow));
    load_samples(&server, 3, 3).await;
    let started = std::time::Instant::now();
    let (status, page) = get(&server, "/v1/events?min_seq=2").await;
    assert_eq!(status, 200, "{}", short(&page));
    assert_eq!(page["min_seq_wait"], "timed_out");
    assert_eq!(page["events"].as_array().unwrap().len(), 0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(4));
    server.stop();
}

/// A read that outlasts `http.request_timeout_ms` answers 503 `timeout`, and the server
/// goes on.
async fn a_slow_read_times_out(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let slow = "[index]\nmax_commit_interval_ms = 60000\nquiet_interval_ms = 60000\n[http]\nrequest_timeout_ms = 300\n";
    let server = start(&backend, dir.path(), Some(slow));
    load_samples(&server, 3, 3).await;
    let started = std::time::Instant::now();
    let (status, body) = get(&server, "/v1/events?min_seq=2").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("timeout")),
        "{}",
        short(&body)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let (status, _) = get(&server, "/health/live").await;
    assert_eq!(status, 200);
    server.stop();
}

crate::on_both_backends!(
    a_slow_read_times_out,
    min_seq_says_how_the_wait_ended,
    min_seq_says_when_the_wait_timed_out,
    hostile_requests_are_refused_and_change_nothing,
    refusals_name_what_is_wrong,
    logs_are_paged_and_capped,
);
