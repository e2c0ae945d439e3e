//! Slow, silent and hostile connections: timeouts, the connection cap, the drain deadline
//! on shutdown, and metric labels a client cannot grow.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or answers); `None` if it still holds it
/// open after `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Duration, String)> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some((started.elapsed(), String::from_utf8_lossy(&got).into())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some((started.elapsed(), String::from_utf8_lossy(&got).into())),
        }
    }
    None
}

/// `GET path` on a fresh connection: the status, or `None` without an answer in `limit`.
fn raw_get(server: &Server, path: &str, limit: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect(address(server)).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let (_, answer) = read_until_closed(&mut stream, limit)?;
    answer.get(9..12)?.parse().ok()
}

const TIMEOUTS: &str =
    "[http]\nheader_read_timeout_ms = 1000\nbody_read_timeout_ms = 1500\nidle_timeout_ms = 3000\n";

#[test]
fn slow_and_silent_clients_are_cut_off_by_their_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(TIMEOUTS));

    // A header dripped one line every 300 ms: closed after the 1 s header timeout.
    let mut slow_header = TcpStream::connect(address(&server)).unwrap();
    slow_header
        .write_all(b"GET /health/live HTTP/1.1\r\n")
        .unwrap();
    let started = Instant::now();
    let mut closed = None;
    for i in 0..40 {
        std::thread::sleep(Duration::from_millis(300));
        if slow_header
            .write_all(format!("X-Drip-{i}: x\r\n").as_bytes())
            .is_err()
        {
            closed = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 64];
        slow_header.set_nonblocking(true).unwrap();
        let read = slow_header.read(&mut probe);
        slow_header.set_nonblocking(false).unwrap();
        if matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
        {
            closed = Some(started.elapsed());
            break;
        }
    }
    let closed = closed.expect("a dripping header was still connected after 12 s");
    assert!(closed < Duration::from_secs(4), "closed after {closed:?}");

    // A body dripped one byte every 200 ms: 408 after the 1.5 s body timeout.
    let mut slow_body = TcpStream::connect(address(&server)).unwrap();
    slow_body
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )
        .unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    slow_body
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while started.elapsed() < Duration::from_secs(10) && answer.is_empty() {
        let _ = slow_body.write_all(b" ");
        let mut buf = [0u8; 4096];
        if let Ok(n) = slow_body.read(&mut buf) {
            answer = String::from_utf8_lossy(&buf[..n]).into();
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "answer: {answer:?}");
    assert!(answer.contains("request_timeout"), "answer: {answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "after {:?}",
        started.elapsed()
    );

    // A connection that never sends a byte: closed by the header timeout too.
    let mut silent = TcpStream::connect(address(&server)).unwrap();
    let (after, _) = read_until_closed(&mut silent, Duration::from_secs(10))
        .expect("a silent connection was still open after 10 s");
    assert!(after < Duration::from_secs(4), "closed after {after:?}");

    // The server is unharmed.
    assert_eq!(
        raw_get(&server, "/health/live", Duration::from_secs(5)),
        Some(200)
    );
    server.stop();
}

#[test]
fn a_connection_that_moves_no_byte_is_closed_by_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[http]\nheader_read_timeout_ms = 30000\nbody_read_timeout_ms = 30000\nidle_timeout_ms = 1000\n";
    let server = Server::start(dir.path(), Some(config));
    // The header is whole and the body begun, then nothing: only the idle timeout applies.
    let mut stalled = TcpStream::connect(address(&server)).unwrap();
    stalled
        .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
        .unwrap();
    let (after, answer) = read_until_closed(&mut stalled, Duration::from_secs(10))
        .expect("a stalled connection was still open after 10 s");
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
    assert!(answer.is_empty(), "answered {answer:?}");
    assert_eq!(
        raw_get(&server, "/health/live", Duration::from_secs(5)),
        Some(200)
    );
    server.stop();
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some("[http]\nmax_connections = 2\n"));
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(address(&server)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        raw_get(&server, "/health/live", Duration::from_millis(700)),
        None,
        "a third connection was served while two were open"
    );
    drop(held);
    assert_eq!(
        raw_get(&server, "/health/live", Duration::from_secs(5)),
        Some(200)
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_half_sent_request_exits_within_the_drain_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[http]\nshutdown_drain_ms = 1000\nheader_read_timeout_ms = 60000\nbody_read_timeout_ms = 60000\n[log]\ncheckpoint_interval_ms = 60000\n";
    let server = Server::start(dir.path(), Some(config));
    // The first batch may be signed at once; the second waits for the interval (a minute),
    // so only the final checkpoint can cover it.
    load_samples(&server, 50, 25).await;

    let mut half = TcpStream::connect(address(&server)).unwrap();
    half.write_all(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n[{\"action\":",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    server.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");

    // The final checkpoint covers every event, although the interval was a minute.
    let db = rusqlite::Connection::open(dir.path().join("stele.db")).unwrap();
    let size: i64 = db
        .query_row("SELECT max(size) FROM checkpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(size, 50);
}

#[tokio::test]
async fn made_up_methods_and_paths_do_not_grow_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let http = client();
    let send = |method: String, path: String| {
        let request = http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            server.endpoint(&path),
        );
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Every label value once, so that only counts change afterwards.
    assert_eq!(send("BREW".into(), "/nowhere".into()).await, 404);
    assert_eq!(send("GET".into(), "/nowhere".into()).await, 404);
    assert_eq!(send("BREW".into(), "/health/live".into()).await, 405);
    let metrics = || async {
        let text = metrics_text(&server).await;
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        (text.len(), series)
    };
    // Reading the metrics is itself counted: read them once before the baseline.
    metrics().await;
    let (size, series) = metrics().await;
    let mut rng = stele_testkit::Rng::new(7);
    for i in 0..1_000 {
        let len = 3 + rng.below(60) as usize;
        let method: String = (0..len)
            .map(|_| (b'A' + rng.below(26) as u8) as char)
            .collect();
        let path = if i % 2 == 0 {
            format!("/x{i}")
        } else {
            "/health/live".into()
        };
        let status = send(method, path).await;
        assert!(status == 404 || status == 405, "{status}");
    }
    let (size_after, series_after) = metrics().await;
    assert_eq!(series_after, series, "new series appeared");
    // Only counters and sums grew a few digits.
    assert!(size_after < size + 512, "{size} → {size_after} bytes");
    server.stop();
}
