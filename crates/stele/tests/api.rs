//! HTTP API tests against a real server process on a temporary data directory.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn ingest_single_array_and_ndjson(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);

    let single = ingest(
        &server,
        &[json!({"action": "user.login", "actor": {"id": "ann"}})],
    )
    .await;
    assert_eq!(single[0]["seq"], 0);
    let (status, body) = post(&server, "/v1/events", &json!({"action": "user.logout"})).await;
    assert_eq!(status, 201);
    assert_eq!(body["receipts"][0]["seq"], 1);
    let array = ingest(
        &server,
        &[
            json!({"action": "a.b"}),
            json!({"action": "a.c"}),
            json!({"action": "a.d"}),
        ],
    )
    .await;
    assert_eq!(seqs(&array), vec![2, 3, 4]);

    let ndjson = "{\"action\":\"n.one\"}\n\n{\"action\":\"n.two\",\"tenant\":\"other\"}\n";
    let (status, body) = post_ndjson(&server, ndjson).await;
    assert_eq!(status, 201);
    let receipts = body["receipts"].as_array().unwrap();
    assert_eq!(
        (receipts[0]["seq"].as_u64(), receipts[0]["tenant"].as_str()),
        (Some(5), Some("default"))
    );
    assert_eq!(
        (receipts[1]["seq"].as_u64(), receipts[1]["tenant"].as_str()),
        (Some(0), Some("other"))
    );

    // Each receipt's leaf hash is the RFC 9162 hash of exactly the bytes served back.
    for receipt in single.iter().chain(&array).chain(receipts) {
        let url = format!(
            "/v1/events/{}?tenant={}",
            receipt["id"].as_str().unwrap(),
            receipt["tenant"].as_str().unwrap()
        );
        let response = client().get(server.endpoint(&url)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        assert_eq!(
            receipt["leaf_hash"].as_str().unwrap(),
            b64(&stele_tlog::leaf_hash(&bytes).0)
        );
        let event: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(event["seq"], receipt["seq"]);
        assert_eq!(event["received_at"], receipt["received_at"]);
        assert_eq!(event["id"], receipt["id"]);
    }
    let (status, body) = get(&server, "/v1/events/0190b3c4-0000-7000-8000-000000000001").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = get(&server, "/v1/events/not-a-uuid").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_query"))
    );
    server.stop();
}

async fn bad_input_is_rejected_whole_with_problem_details(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    ingest(&server, &[json!({"action": "seed.event"})]).await;

    let batch = json!([
        {"action": "ok.one"},
        {"action": "Bad Action"},
        {"action": "ok.two"},
        {"action": "x", "level": "loud", "actor": {"ip": "nope"}},
    ]);
    let response = client()
        .post(server.endpoint("/v1/events"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_event");
    assert_eq!(problem["status"], 422);
    assert_eq!(problem["type"], "urn:stele:error:invalid_event");
    let indexes: Vec<u64> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![1, 3]);
    assert!(
        problem["errors"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("action")
    );

    let ndjson = "{\"action\":\"fine\"}\n{\"action\": broken\n";
    let (status, problem) = post_ndjson(&server, ndjson).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["index"], 1);

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            client()
                .post(server.endpoint("/v1/events"))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_json",
        ),
        (
            client()
                .post(server.endpoint("/v1/events"))
                .json(&json!([])),
            400,
            "empty_batch",
        ),
        (
            client()
                .post(server.endpoint("/v1/events"))
                .json(&json!(42)),
            400,
            "invalid_json",
        ),
        (
            client()
                .post(server.endpoint("/v1/events"))
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            client()
                .post(server.endpoint("/v1/events?tenant=_stele"))
                .json(&json!({"action": "a"})),
            400,
            "invalid_tenant",
        ),
        (
            client()
                .post(server.endpoint("/v1/events"))
                .json(&vec![json!({"action": "a"}); 10_001]),
            413,
            "too_many_events",
        ),
        (
            client().delete(server.endpoint("/v1/events")),
            405,
            "method_not_allowed",
        ),
        (
            client().get(server.endpoint("/v2/nothing")),
            404,
            "not_found",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{code}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{code}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code);
    }

    // A body announced as larger than the limit is refused before it is read.
    let (status, problem) = raw_post_announcing(&server, 17 << 20);
    assert_eq!(
        (status, problem["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Nothing of the rejected requests was stored: the log still holds the one seed event.
    let all = list_all(&server, "min_seq=0", 100).await;
    assert_eq!(seqs(&all), vec![0]);
    let next = ingest(&server, &[json!({"action": "after.rejections"})]).await;
    assert_eq!(next[0]["seq"], 1);
    server.stop();
}

/// Sends only the headers of a POST announcing `len` bytes, and reads the answer.
fn raw_post_announcing(server: &Server, len: usize) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = server.url.trim_start_matches("http://");
    // The server is another process, so a blocking socket here stalls nothing it needs.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn every_filter_matches_its_events(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    let events: Vec<Value> = (0..300).map(sample_event).collect();
    for chunk in events.chunks(100) {
        ingest(&server, chunk).await;
    }
    ingest(
        &server,
        &[json!({"action": "user.login", "tenant": "elsewhere"})],
    )
    .await;
    wait_indexed(&server, "default", 299).await;

    let level_rank = |l: &str| {
        ["debug", "info", "warn", "error", "critical"]
            .iter()
            .position(|x| *x == l)
            .unwrap()
    };
    type Pred = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, Pred)> = vec![
        ("actor_id=u3", Box::new(|e| e["actor"]["id"] == "u3")),
        (
            "actor_type=api_key",
            Box::new(|e| e["actor"]["type"] == "api_key"),
        ),
        ("ip=10.0.0.2", Box::new(|e| e["actor"]["ip"] == "10.0.0.2")),
        (
            "ip=2001:db8:0:0::1",
            Box::new(|e| e["actor"]["ip"] == "2001:db8::1"),
        ),
        (
            "action=user.login",
            Box::new(|e| e["action"] == "user.login"),
        ),
        (
            "action=user.*",
            Box::new(|e| e["action"].as_str().unwrap().starts_with("user.")),
        ),
        (
            "action=pass*",
            Box::new(|e| e["action"].as_str().unwrap().starts_with("pass")),
        ),
        (
            "category=security",
            Box::new(|e| e["category"] == "security"),
        ),
        (
            "level=warn",
            Box::new(move |e| level_rank(e["level"].as_str().unwrap()) >= 2),
        ),
        ("level=critical", Box::new(|e| e["level"] == "critical")),
        ("outcome=denied", Box::new(|e| e["outcome"] == "denied")),
        (
            "resource_type=queue",
            Box::new(|e| e["resource"]["type"] == "queue"),
        ),
        ("resource_id=r4", Box::new(|e| e["resource"]["id"] == "r4")),
        (
            "correlation_id=op-7",
            Box::new(|e| e["correlation_id"] == "op-7"),
        ),
        (
            "request_id=req-42",
            Box::new(|e| e["request_id"] == "req-42"),
        ),
        ("trace_id=trace-5", Box::new(|e| e["trace_id"] == "trace-5")),
        ("error_code=E2", Box::new(|e| e["error"]["code"] == "E2")),
        (
            "from=2026-01-01T00:01:00Z&to=2026-01-01T00:02:30Z",
            Box::new(|e| {
                let t = e["occurred_at"].as_str().unwrap();
                ("2026-01-01T00:01:00"..="2026-01-01T00:02:29.999999Z").contains(&t)
            }),
        ),
        (
            "text=Upstream%20TIMEOUT",
            Box::new(|e| e["error"]["message"] == "timeout talking to upstream"),
        ),
        ("text=42", Box::new(|e| e["details"]["i"] == 42)),
        ("step=check-2", Box::new(|e| e["step"]["name"] == "check-2")),
        (
            "min_duration_ms=700&max_duration_ms=1400",
            Box::new(|e| {
                e["duration_ms"]
                    .as_u64()
                    .is_some_and(|d| (700..=1400).contains(&d))
            }),
        ),
        ("max_duration_ms=0", Box::new(|e| e["duration_ms"] == 0)),
        (
            "outcome=failure&level=warn&action=queue.*",
            Box::new(move |e| {
                e["outcome"] == "failure"
                    && level_rank(e["level"].as_str().unwrap()) >= 2
                    && e["action"].as_str().unwrap().starts_with("queue.")
            }),
        ),
    ];
    let stored = list_all(&server, "", 1000).await;
    assert_eq!(stored.len(), 300);
    for (query, pred) in cases {
        let expected: Vec<u64> = stored
            .iter()
            .filter(|e| pred(e))
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(
            !expected.is_empty(),
            "{query} matches nothing; the sample data should cover it"
        );
        let got = seqs(&list_all(&server, query, 1000).await);
        assert_eq!(got, expected, "{query}");
        let mut desc = seqs(&list_all(&server, &format!("{query}&order=desc"), 7).await);
        desc.reverse();
        assert_eq!(desc, expected, "{query} desc");
    }
    // Server time: the first and second request's events, by their received_at.
    let times: Vec<&str> = stored
        .iter()
        .map(|e| e["received_at"].as_str().unwrap())
        .collect();
    let (first, third) = (times[0], times[200]);
    let query = format!("received_from={first}&received_to={third}");
    let expected: Vec<u64> = stored
        .iter()
        .filter(|e| (first..third).contains(&e["received_at"].as_str().unwrap()))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(expected, (0..200).collect::<Vec<u64>>());
    assert_eq!(
        seqs(&list_all(&server, &query, 1000).await),
        expected,
        "{query}"
    );

    let other = list_all(&server, "tenant=elsewhere", 10).await;
    assert_eq!(
        (other.len(), other[0]["tenant"].as_str()),
        (1, Some("elsewhere"))
    );

    let (_, page) = get(&server, "/v1/events?limit=5").await;
    assert_eq!(page["indexed_through"], 299);
    let asc_cursor = page["next_cursor"].as_str().unwrap().to_string();
    for (query, code) in [
        ("colour=red", "invalid_query"),
        ("level=loud", "invalid_query"),
        ("limit=0", "invalid_query"),
        ("limit=1001", "invalid_query"),
        ("from=yesterday", "invalid_query"),
        (
            "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "invalid_query",
        ),
        ("ip=999.1.1.1", "invalid_query"),
        ("action=User.*", "invalid_query"),
        ("order=sideways", "invalid_query"),
        ("min_duration_ms=-1", "invalid_query"),
        ("received_from=soon", "invalid_query"),
        (
            "received_from=2026-02-01T00:00:00Z&received_to=2026-01-01T00:00:00Z",
            "invalid_query",
        ),
        ("text=", "invalid_query"),
        ("limit=5&limit=6", "invalid_query"),
        ("cursor=garbage", "invalid_cursor"),
        (&format!("order=desc&cursor={asc_cursor}"), "invalid_cursor"),
        ("tenant=Bad", "invalid_tenant"),
    ] {
        let (status, body) = get(&server, &format!("/v1/events?{query}")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }
    server.stop();
}

async fn pagination_through_2500_events_in_both_orders(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    for chunk in 0..5 {
        let events: Vec<Value> = (0..500)
            .map(|i| json!({"action": "bulk.load", "details": {"n": chunk * 500 + i}}))
            .collect();
        ingest(&server, &events).await;
    }
    wait_indexed(&server, "default", 2499).await;
    let all: Vec<u64> = (0..2500).collect();
    for page in [100, 7, 1000] {
        assert_eq!(
            seqs(&list_all(&server, "order=asc", page).await),
            all,
            "asc pages of {page}"
        );
        let mut desc = all.clone();
        desc.reverse();
        assert_eq!(
            seqs(&list_all(&server, "order=desc", page).await),
            desc,
            "desc pages of {page}"
        );
    }
    let filtered = list_all(&server, "action=bulk.load", 333).await;
    assert_eq!(filtered.len(), 2500);
    server.stop();
}

async fn idempotent_resend_in_a_batch_across_batches_and_after_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    let id = "0190b3c4-1111-7000-8000-000000000001";
    let other = "0190b3c4-1111-7000-8000-000000000002";
    let receipts = ingest(
        &server,
        &[
            json!({"id": id, "action": "pay.send"}),
            json!({"id": id, "action": "pay.send"}),
            json!({"id": other, "action": "pay.send"}),
        ],
    )
    .await;
    assert_eq!(receipts[0]["duplicate"], false);
    assert_eq!(receipts[1]["duplicate"], true);
    assert_eq!(receipts[1]["seq"], receipts[0]["seq"]);
    assert_eq!(receipts[1]["leaf_hash"], receipts[0]["leaf_hash"]);
    assert_eq!(receipts[2]["seq"], 1);

    let again = ingest(
        &server,
        &[
            json!({"action": "new.one"}),
            json!({"id": id, "action": "pay.send"}),
        ],
    )
    .await;
    assert_eq!(
        (again[0]["seq"].as_u64(), again[0]["duplicate"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(again[1]["duplicate"], true);
    assert_eq!(again[1]["seq"], receipts[0]["seq"]);
    assert_eq!(again[1]["received_at"], receipts[0]["received_at"]);
    server.stop();

    let server = start(&backend, dir.path(), None);
    let after = ingest(
        &server,
        &[
            json!({"id": other, "action": "pay.send"}),
            json!({"action": "newer"}),
        ],
    )
    .await;
    assert_eq!(
        (after[0]["seq"].as_u64(), after[0]["duplicate"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(
        (after[1]["seq"].as_u64(), after[1]["duplicate"].as_bool()),
        (Some(3), Some(false))
    );
    assert_eq!(
        seqs(&list_all(&server, "min_seq=3", 100).await),
        vec![0, 1, 2, 3]
    );
    server.stop();
}

async fn a_full_queue_answers_503_with_retry_after(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &backend,
        dir.path(),
        Some("[ingest]\nqueue_events = 200\nmax_events_per_request = 200\n"),
    );
    let mut tasks = Vec::new();
    for t in 0..32 {
        let url = server.endpoint("/v1/events");
        tasks.push(tokio::spawn(async move {
            let events: Vec<Value> = (0..150)
                .map(|i| json!({"action": "load.test", "details": {"t": t, "i": i}}))
                .collect();
            let mut outcomes = Vec::new();
            for _ in 0..4 {
                let response = client().post(&url).json(&events).send().await.unwrap();
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                let body: Value = response.json().await.unwrap();
                outcomes.push((status, retry_after, body));
            }
            outcomes
        }));
    }
    let (mut accepted, mut overloaded) = (0usize, 0usize);
    for task in tasks {
        for (status, retry_after, body) in task.await.unwrap() {
            match status {
                201 => accepted += body["receipts"].as_array().unwrap().len(),
                503 => {
                    overloaded += 1;
                    assert_eq!(body["code"], "overloaded");
                    assert_eq!(retry_after.as_deref(), Some("1"));
                }
                other => panic!("unexpected status {other}: {}", short(&body)),
            }
        }
    }
    assert!(overloaded > 0, "the tiny queue never filled");
    assert!(accepted > 0, "nothing was accepted");
    // Exactly the accepted events were stored, densely.
    let stored = list_all(&server, &format!("min_seq={}", accepted - 1), 1000).await;
    assert_eq!(seqs(&stored), (0..accepted as u64).collect::<Vec<_>>());
    server.stop();
}

async fn traces_group_steps_with_timing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    let step = |name: &str, status: &str, seq: u32, at: &str, extra: Value| {
        let mut e = json!({
            "action": "passport.verify", "correlation_id": "verify-1", "occurred_at": at,
            "step": {"name": name, "status": status, "sequence": seq},
        });
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    let events = vec![
        step("parse", "started", 1, "2026-03-01T10:00:00Z", json!({})),
        step("sod_check", "started", 2, "2026-03-01T10:00:01Z", json!({})),
        step(
            "parse",
            "completed",
            1,
            "2026-03-01T10:00:00.250Z",
            json!({}),
        ),
        step(
            "sod_check",
            "failed",
            2,
            "2026-03-01T10:00:03Z",
            json!({"level": "error", "outcome": "failure", "duration_ms": 1900, "error": {"code": "SOD_INVALID"}}),
        ),
        json!({"action": "passport.verify", "correlation_id": "other-op"}),
    ];
    let receipts = ingest(&server, &events).await;
    let last = receipts.last().unwrap()["seq"].as_u64().unwrap();
    let (status, trace) = get(&server, &format!("/v1/traces/verify-1?min_seq={last}")).await;
    assert_eq!(status, 200, "{}", short(&trace));
    assert_eq!(seqs(trace["events"].as_array().unwrap()), vec![0, 1, 2, 3]);
    assert_eq!(trace["started_at"], "2026-03-01T10:00:00.000000Z");
    assert_eq!(trace["ended_at"], "2026-03-01T10:00:03.000000Z");
    assert_eq!(trace["duration_ms"], 3000);
    assert_eq!(trace["outcome"], "failure");
    let steps = trace["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[0]["name"].as_str(), steps[0]["status"].as_str()),
        (Some("parse"), Some("completed"))
    );
    assert_eq!(steps[0]["duration_ms"], 250);
    assert_eq!(steps[0]["events"], 2);
    assert_eq!(
        (steps[1]["name"].as_str(), steps[1]["status"].as_str()),
        (Some("sod_check"), Some("failed"))
    );
    assert_eq!(steps[1]["duration_ms"], 1900);
    assert_eq!(steps[1]["level"], "error");
    let (status, body) = get(&server, "/v1/traces/no-such-op").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    server.stop();
}

async fn health_metrics_and_docs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    ingest(&server, &[json!({"action": "user.login"})]).await;
    let (status, live) = get(&server, "/health/live").await;
    assert_eq!((status, live["status"].as_str()), (200, Some("ok")));
    let (status, ready) = get(&server, "/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["store"].as_bool(),
            ready["writer"].as_bool()
        ),
        (Some("ready"), Some(true), Some(true))
    );
    assert!(ready["index_lag"].as_u64().is_some());

    let metrics = metrics_text(&server).await;
    for name in [
        "stele_events_ingested_total",
        "stele_commit_seconds_bucket",
        "stele_commit_batch_events_bucket",
        "stele_ingest_queue_events",
        "stele_http_requests_total{route=\"/v1/events\",method=\"POST\",status=\"201\"}",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }

    let (status, spec) = get(&server, "/openapi.json").await;
    assert_eq!(status, 200);
    let paths: BTreeSet<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/v1/events",
        "/v1/events/{id}",
        "/v1/traces/{correlation_id}",
        "/health/ready",
        "/metrics",
    ] {
        assert!(paths.contains(path), "openapi lacks {path}");
    }
    let docs = client()
        .get(server.endpoint("/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"));
    // The UI's assets come from the binary, not from the internet.
    assert!(
        !html.contains("https://"),
        "the docs page loads remote assets"
    );
    let bundle = client()
        .get(server.endpoint("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    server.stop();
}

/// Stored data that fails an integrity check is a 500 the operator sees (an error in the
/// log, a metric), never a 503 inviting a retry; the rest of the log is still served.
async fn stored_corruption_answers_500_and_is_counted(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    let receipts = ingest(
        &server,
        &[sample_event(0), sample_event(1), sample_event(2)],
    )
    .await;
    wait_indexed(&server, "default", 2).await;
    server.stop();
    // A leaf hash that is not 32 bytes, as a damaged store might hold.
    tamper(&backend, dir.path(), |db| {
        db.drop_triggers();
        let body = db.body("default", 2);
        db.set_event("default", 2, &body, b"bad");
    })
    .await;
    let server = start(&backend, dir.path(), None);
    let id = receipts[2]["id"].as_str().unwrap();
    let response = client()
        .get(server.endpoint(&format!("/v1/events/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().get("retry-after").is_none());
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "store_corrupt", "{problem}");
    assert!(
        !problem["detail"].as_str().unwrap().contains("32"),
        "{problem}"
    );

    let (status, listed) = get(&server, "/v1/events?limit=2").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(seqs(listed["events"].as_array().unwrap()), [0, 1]);
    let (status, problem) = get(&server, "/v1/events").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (500, Some("store_corrupt"))
    );

    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains("stele_store_corruption_total"),
        "{metrics}"
    );
    server.stop();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("integrity check"), "{log}");
}

/// The problem bodies are public API: each error's body is held in a snapshot (the same
/// one for both backends).
async fn problem_bodies_are_stable(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path(), None);
    ingest(&server, &[sample_event(0)]).await;
    let http = client();
    let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "POST /v1/events (invalid events)",
            http.post(server.endpoint("/v1/events")).json(&json!([
                {"action": "ok"},
                {"action": "Not Ok", "colour": "red"},
                {"action": "a", "level": "loud", "seq": 3}
            ])),
        ),
        (
            "POST /v1/events (not JSON)",
            http.post(server.endpoint("/v1/events"))
                .header("content-type", "application/json")
                .body("{oops"),
        ),
        (
            "POST /v1/events (empty)",
            http.post(server.endpoint("/v1/events")).json(&json!([])),
        ),
        (
            "POST /v1/events (text/csv)",
            http.post(server.endpoint("/v1/events"))
                .header("content-type", "text/csv")
                .body("a,b"),
        ),
        (
            "GET /v1/events?limit=0",
            http.get(server.endpoint("/v1/events?limit=0")),
        ),
        (
            "GET /v1/events?cursor=garbage",
            http.get(server.endpoint("/v1/events?cursor=garbage")),
        ),
        (
            "GET /v1/events?tenant=_private",
            http.get(server.endpoint("/v1/events?tenant=_private")),
        ),
        (
            "GET /v1/events/{unknown id}",
            http.get(server.endpoint("/v1/events/0190b3c4-0000-7000-8000-000000000001")),
        ),
        ("GET /nowhere", http.get(server.endpoint("/nowhere"))),
        (
            "DELETE /v1/events",
            http.delete(server.endpoint("/v1/events")),
        ),
    ];
    let mut answers = Vec::new();
    for (label, request) in requests {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = response.json().await.unwrap();
        answers
            .push(json!({"request": label, "status": status, "content_type": kind, "body": body}));
    }
    insta::assert_snapshot!(
        "problem_bodies",
        serde_json::to_string_pretty(&answers).unwrap()
    );
    server.stop();
}

crate::on_both_backends!(
    problem_bodies_are_stable,
    stored_corruption_answers_500_and_is_counted,
    ingest_single_array_and_ndjson,
    bad_input_is_rejected_whole_with_problem_details,
    every_filter_matches_its_events,
    pagination_through_2500_events_in_both_orders,
    idempotent_resend_in_a_batch_across_batches_and_after_restart,
    a_full_queue_answers_503_with_retry_after,
    traces_group_steps_with_timing,
    health_metrics_and_docs,
);
