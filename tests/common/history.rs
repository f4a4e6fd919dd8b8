//! Clients of a raft_kv cluster that record a history for the linearizability checker
//! (`linearizable.rs`): each PUT writes a value no other PUT writes; every operation is
//! kept with its invoke and completion times and its outcome. A PUT answered 200 is
//! acknowledged; any other answer (307, 503, a timeout, a connection error) leaves its
//! outcome unknown, so it stays pending forever and its client goes on under a new id,
//! except a PUT whose connection was refused: it was never sent, so it is left out. A
//! GET answered 200 or 404 is kept; any other answer says nothing and is left out.
//!
//! Requests are never retried or redirected within one operation (a write sent twice
//! could take effect twice); a 307 only moves the client's idea of the leader for its
//! next operation. Keys come in groups of `keys_per_group`, each group used for
//! `ops_per_group` operations, so that a key's history stays small.
#![allow(dead_code)]

#[path = "linearizable.rs"]
pub mod linearizable;

use linearizable::{Call, Op};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// splitmix64: small, seeded, good enough to pick faults and keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Counts of what the clients saw.
#[derive(Debug, Default)]
pub struct Counts {
    pub put_ok: AtomicU64,
    pub put_unknown: AtomicU64,
    /// PUTs never sent (connection refused): left out of the history.
    pub put_refused: AtomicU64,
    pub get_ok: AtomicU64,
    pub get_dropped: AtomicU64,
}

impl Counts {
    /// `[put_ok, put_unknown, put_refused, get_ok, get_dropped]` now.
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.put_ok.load(Ordering::Relaxed),
            self.put_unknown.load(Ordering::Relaxed),
            self.put_refused.load(Ordering::Relaxed),
            self.get_ok.load(Ordering::Relaxed),
            self.get_dropped.load(Ordering::Relaxed),
        ]
    }
}

/// The shape of the workload.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Concurrent clients.
    pub clients: usize,
    /// Keys used at a time.
    pub keys_per_group: u64,
    /// Operations before the clients move to the next group of keys.
    pub ops_per_group: u64,
    /// Longest pause between two operations of a client, ms.
    pub think_ms: u64,
    /// Most operations recorded in all (a bound on the history's memory).
    pub max_ops: u64,
}

/// What the clients share: the history, the counters, the id and value sources.
pub struct Recorder {
    start: Instant,
    /// `(key, operation)` in completion order.
    pub history: Mutex<Vec<(String, Op)>>,
    pub counts: Counts,
    stop: AtomicBool,
    next_op: AtomicU64,
    next_value: AtomicU64,
    next_client: AtomicU64,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            history: Mutex::new(Vec::new()),
            counts: Counts::default(),
            stop: AtomicBool::new(false),
            next_op: AtomicU64::new(0),
            next_value: AtomicU64::new(1),
            next_client: AtomicU64::new(1),
        })
    }

    /// ns since the recorder was made.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// A client id not used before.
    pub fn new_client(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks the clients to stop after their operation in progress.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn record(&self, key: String, op: Op) {
        self.history.lock().expect("history lock").push((key, op));
    }
}

/// Where a 307's `Location` points, as an index in `addrs`.
fn redirect_target(r: &reqwest::Response, addrs: &[SocketAddr]) -> Option<usize> {
    let to = r.headers().get("location")?.to_str().ok()?;
    addrs
        .iter()
        .position(|a| to.starts_with(&format!("http://{a}/")))
}

/// Runs one client until `stop` or `max_ops`: random PUTs and GETs on the current group
/// of keys, sent straight to the node it believes leads.
pub async fn run_client(
    rec: Arc<Recorder>,
    addrs: Vec<SocketAddr>,
    work: Workload,
    seed: u64,
    http: reqwest::Client,
) {
    let mut rng = Rng::new(seed);
    let mut hint = rng.below(addrs.len() as u64) as usize;
    let mut client = rec.new_client();
    while !rec.stop.load(Ordering::Relaxed) {
        let n = rec.next_op.fetch_add(1, Ordering::Relaxed);
        if n >= work.max_ops {
            break;
        }
        let group = n / work.ops_per_group;
        let key = format!("g{group}k{}", rng.below(work.keys_per_group));
        let url = format!("http://{}/kv/{key}", addrs[hint]);
        let invoke_ns = rec.now_ns();
        let mut moved = None;
        // Answered by a leader (200, or 404 for a GET).
        let answered;
        if rng.below(2) == 0 {
            let v = rec.next_value.fetch_add(1, Ordering::Relaxed);
            let sent = http.put(&url).body(v.to_string()).send().await;
            let complete_ns = rec.now_ns();
            let ok = match &sent {
                Ok(r) if r.status() == StatusCode::OK => true,
                Ok(r) if r.status() == StatusCode::TEMPORARY_REDIRECT => {
                    moved = redirect_target(r, &addrs);
                    false
                }
                _ => false,
            };
            answered = ok;
            let refused = matches!(&sent, Err(e) if e.is_connect());
            if refused {
                // No connection, no request: it cannot have taken effect.
                rec.counts.put_refused.fetch_add(1, Ordering::Relaxed);
            } else {
                let op = Op {
                    client,
                    invoke_ns,
                    complete_ns: ok.then_some(complete_ns),
                    call: Call::Put(v),
                };
                rec.record(key, op);
            }
            if ok {
                rec.counts.put_ok.fetch_add(1, Ordering::Relaxed);
            } else if !refused {
                rec.counts.put_unknown.fetch_add(1, Ordering::Relaxed);
                // Its operation stays pending: the client goes on as another.
                client = rec.new_client();
            }
        } else {
            let got = match http.get(&url).send().await {
                Ok(r) if r.status() == StatusCode::OK => match r.text().await {
                    Ok(t) => t.trim().parse::<u64>().ok().map(Some),
                    Err(_) => None,
                },
                Ok(r) if r.status() == StatusCode::NOT_FOUND => Some(None),
                Ok(r) if r.status() == StatusCode::TEMPORARY_REDIRECT => {
                    moved = redirect_target(&r, &addrs);
                    None
                }
                _ => None,
            };
            let complete_ns = rec.now_ns();
            answered = got.is_some();
            match got {
                Some(seen) => {
                    let op = Op {
                        client,
                        invoke_ns,
                        complete_ns: Some(complete_ns),
                        call: Call::Get(seen),
                    };
                    rec.record(key, op);
                    rec.counts.get_ok.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    rec.counts.get_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Not answered by a leader: the node a 307 names, or the next one.
        if !answered {
            hint = moved.unwrap_or((hint + 1) % addrs.len());
        }
        let pause = rng.below(work.think_ms.max(1));
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}
