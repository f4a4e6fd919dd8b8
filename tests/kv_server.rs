//! The kv_server example as a process: every write it acknowledged with HTTP 200 survives
//! SIGKILL, round after round (state rebuilt by replay); `/metrics` carries every metric of
//! `actix_wal::metrics::ALL` with the figures of a known load; `/health` says healthy.
//!
//! The server is the example binary (`target/<profile>/examples/kv_server`, built here by
//! `cargo build --example kv_server`, a no-op when it is fresh), spoken to over loopback
//! with a small HTTP/1.1 client (`tests/kv_server/client.rs`). Every request has a
//! timeout, every loop a bound, and a guard kills the process whatever happens.

#[path = "kv_server/client.rs"]
mod client;

use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::metrics;
use actix_wal::{Health, WalMode};
use client::{request, Server};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Crash: acknowledged writes survive SIGKILL.

/// Writer threads per round; each owns its keys, so a key's writes are sequential.
const WRITERS: usize = 4;
/// Keys per writer.
const KEYS_PER_WRITER: usize = 16;
/// Most requests a writer sends in a round (the kill usually comes first).
const MAX_WRITES_PER_WRITER: usize = 200;
/// Crash rounds.
const ROUNDS: usize = 5;

/// What a key must read as after a restart.
#[derive(Debug, Clone, Default)]
struct KeyState {
    /// The state of the last acknowledged write (`None`: absent).
    acked: Option<Vec<u8>>,
    /// The state the one unacknowledged write (in flight at the kill) would leave, if any:
    /// it may or may not have become durable.
    maybe: Option<Option<Vec<u8>>>,
}

/// One writer's keys.
type Model = HashMap<String, KeyState>;

fn key_name(writer: usize, k: usize) -> String {
    format!("w{writer}-k{k}")
}

/// Writes until `max` requests are sent or one fails (the kill); records what was
/// acknowledged. A non-200 answer while the server lives is a bug and is returned.
fn writer(
    addr: SocketAddr,
    round: usize,
    id: usize,
    mut model: Model,
    acked_total: Arc<AtomicUsize>,
) -> (Model, Option<String>) {
    for i in 0..MAX_WRITES_PER_WRITER {
        let key = key_name(id, (round * 7 + i) % KEYS_PER_WRITER);
        let state = model.entry(key.clone()).or_default();
        let present = state.acked.is_some();
        let (method, body, after) = if i % 5 == 4 && present {
            ("DELETE", Vec::new(), None)
        } else {
            let pad = "x".repeat((i * 37 + id * 11) % 300);
            let value = format!("r{round}-w{id}-i{i}-{pad}").into_bytes();
            ("PUT", value.clone(), Some(value))
        };
        match request(addr, method, &format!("/kv/{key}"), &body) {
            Ok(r) if r.status == 200 => {
                state.acked = after;
                acked_total.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.body).into_owned();
                return (
                    model,
                    Some(format!("{method} {key}: status {} {text}", r.status)),
                );
            }
            Err(_) => {
                // The server died with this request somewhere on its way.
                state.maybe = Some(after);
                return (model, None);
            }
        }
    }
    (model, None)
}

/// Reads every key of the model back: it must read as its last acknowledged state, or
/// as the state of the write that was in flight at the kill. The model then takes the
/// state read (it is durable now: recovery read it from the log).
fn verify(server: &Server, model: &mut Model, round: usize) {
    for (key, state) in model.iter_mut() {
        let r = server
            .request("GET", &format!("/kv/{key}"), b"")
            .unwrap_or_else(|e| panic!("round {round}: GET {key}: {e}"));
        let read = match r.status {
            200 => Some(r.body),
            404 => None,
            s => panic!("round {round}: GET {key}: status {s}"),
        };
        let ok = read == state.acked || state.maybe.as_ref() == Some(&read);
        assert!(
            ok,
            "round {round}: {key} reads {:?}, acknowledged {:?} (in flight at the kill: {:?})",
            read.as_deref().map(String::from_utf8_lossy),
            state.acked.as_deref().map(String::from_utf8_lossy),
            state
                .maybe
                .as_ref()
                .map(|m| m.as_deref().map(String::from_utf8_lossy))
        );
        state.acked = read;
        state.maybe = None;
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_five_rounds_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut models: Vec<Model> = vec![Model::new(); WRITERS];
    let mut acked_in_all_rounds = 0;
    for round in 0..ROUNDS {
        let server = Server::start(dir.path());
        for m in models.iter_mut() {
            verify(&server, m, round);
        }
        // Kill somewhere in the middle of the load, at a different point each round.
        let kill_after = 60 + round * 37;
        let acked = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = models
            .drain(..)
            .enumerate()
            .map(|(id, model)| {
                let (addr, acked) = (server.addr, acked.clone());
                thread::spawn(move || writer(addr, round, id, model, acked))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::Relaxed) < kill_after
            && !writers.iter().all(|w| w.is_finished())
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(1));
        }
        server.kill();
        for w in writers {
            let (model, error) = w.join().expect("writer thread");
            assert_eq!(error, None, "round {round}: a write was refused");
            models.push(model);
        }
        let n = acked.load(Ordering::Relaxed);
        assert!(
            n >= kill_after,
            "round {round}: only {n} writes acknowledged"
        );
        let in_flight: usize = models
            .iter()
            .map(|m| m.values().filter(|s| s.maybe.is_some()).count())
            .sum();
        eprintln!("round {round}: {n} writes acknowledged, {in_flight} in flight at SIGKILL");
        acked_in_all_rounds += n;
    }
    // The last round's writes, read back after its kill.
    let server = Server::start(dir.path());
    for m in models.iter_mut() {
        verify(&server, m, ROUNDS);
    }
    assert!(acked_in_all_rounds >= ROUNDS * 60);
}

// ---------------------------------------------------------------------------------------
// Metrics and health.

/// The exposition as series (name with labels) to values.
fn scrape(server: &Server) -> HashMap<String, f64> {
    let r = server
        .request("GET", "/metrics", b"")
        .expect("GET /metrics");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).expect("UTF-8 exposition");
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
}

fn health(server: &Server) -> Health {
    let r = server.request("GET", "/health", b"").expect("GET /health");
    let h: Health = serde_json::from_slice(&r.body).expect("Health JSON");
    assert_eq!(r.status, if h.healthy { 200 } else { 503 });
    h
}

/// PUTs `n` keys from 4 threads at once (so batches form); each value is `value_bytes`.
fn load(server: &Server, prefix: &str, n: usize, value_bytes: usize) {
    let addr = server.addr;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let prefix = prefix.to_owned();
            thread::spawn(move || {
                for i in (t..n).step_by(4) {
                    let r = request(
                        addr,
                        "PUT",
                        &format!("/kv/{prefix}{i:04}"),
                        &vec![b'v'; value_bytes],
                    )
                    .expect("PUT");
                    assert_eq!(
                        r.status,
                        200,
                        "PUT {i}: {}",
                        String::from_utf8_lossy(&r.body)
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("load thread");
    }
}

/// Checks every metric after `n` PUTs of `key_bytes` + `value_bytes` in this process.
fn check_metrics(m: &HashMap<String, f64>, n: usize, key_bytes: usize, value_bytes: usize) {
    let histograms = [
        metrics::FLUSH_DURATION,
        metrics::BATCH_ENTRIES,
        metrics::COMMIT_DURATION,
        metrics::ENQUEUE_WAIT,
    ];
    for name in metrics::ALL {
        if histograms.contains(&name) {
            for part in ["_sum", "_count"] {
                value(m, &format!("{name}{part}"));
            }
            value(m, &format!("{name}_bucket{{le=\"+Inf\"}}"));
        } else {
            value(m, name);
        }
    }
    let n = n as f64;
    let flushes = value(m, metrics::FLUSHES);
    assert_eq!(
        value(m, metrics::ENTRIES_WRITTEN),
        n,
        "every PUT is one record"
    );
    assert!(
        (1.0..=n).contains(&flushes),
        "{flushes} flushes for {n} records"
    );
    // A frame is its header and the encoded operation: the key, the value, a few bytes
    // of lengths and tag.
    let least = n * (FRAME_HEADER_BYTES + key_bytes + value_bytes) as f64;
    let bytes = value(m, metrics::BYTES_WRITTEN);
    assert!(
        bytes > least && bytes <= least + n * 16.0,
        "bytes written {bytes}, expected a little over {least}"
    );
    // One sample per batch, one per durable append.
    assert_eq!(
        value(m, &format!("{}_count", metrics::FLUSH_DURATION)),
        flushes
    );
    assert!(value(m, &format!("{}_sum", metrics::FLUSH_DURATION)) > 0.0);
    assert_eq!(
        value(m, &format!("{}_count", metrics::BATCH_ENTRIES)),
        flushes
    );
    assert_eq!(value(m, &format!("{}_sum", metrics::BATCH_ENTRIES)), n);
    assert_eq!(value(m, &format!("{}_count", metrics::COMMIT_DURATION)), n);
    assert!(value(m, &format!("{}_sum", metrics::COMMIT_DURATION)) > 0.0);
    // One `Append` per PUT: one enqueue-wait sample each.
    assert_eq!(value(m, &format!("{}_count", metrics::ENQUEUE_WAIT)), n);
    // Everything acknowledged: nothing queued.
    assert_eq!(value(m, metrics::QUEUE_DEPTH), 0.0);
    assert_eq!(value(m, metrics::QUEUE_BYTES), 0.0);
    assert_eq!(value(m, metrics::FLUSHER_HEALTHY), 1.0);
    assert_eq!(
        value(m, metrics::MODE),
        actix_wal::metrics::mode_value(WalMode::Async)
    );
    assert_eq!(value(m, metrics::FLUSHER_RESTARTS), 0.0);
    assert_eq!(value(m, metrics::SYNC_FAILURES), 0.0);
    assert_eq!(value(m, metrics::WRITE_FAILURES), 0.0);
    assert_eq!(value(m, metrics::POISONED), 0.0);
    assert!(value(m, metrics::DISK_BYTES) >= bytes, "the log is on disk");
}

#[test]
fn metrics_count_what_was_written_and_health_is_healthy() {
    const KEY: &str = "metric-";
    const KEY_BYTES: usize = KEY.len() + 4;
    const VALUE_BYTES: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let h = health(&server);
    assert!(h.healthy && h.flusher_healthy && !h.poisoned, "{h:?}");

    load(&server, KEY, 64, VALUE_BYTES);
    check_metrics(&scrape(&server), 64, KEY_BYTES, VALUE_BYTES);
    let h = health(&server);
    assert!(h.healthy && h.flusher_healthy && !h.poisoned, "{h:?}");
    assert_eq!(h.mode, WalMode::Async);
    assert_eq!(h.queue_depth, 0);
    assert!(h.disk_bytes > 0);
    assert!(h.active_alerts.is_empty(), "{:?}", h.active_alerts);

    // A new process counts only its own writes: replay at start writes nothing.
    server.kill();
    let server = Server::start(dir.path());
    load(&server, "again--", 12, VALUE_BYTES);
    check_metrics(&scrape(&server), 12, KEY_BYTES, VALUE_BYTES);
    assert!(health(&server).healthy);
    // The first process's keys came back by replay.
    let r = server.request("GET", "/kv/metric-0063", b"").expect("GET");
    assert_eq!((r.status, r.body.len()), (200, VALUE_BYTES));
}
