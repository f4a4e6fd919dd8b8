//! `kv_server`: a key-value service on actix-web whose every write is durable in actix-wal
//! before its HTTP 200, whose state is rebuilt by replaying the log at start, and which
//! shows the log's metrics (Prometheus text) and health.
//!
//! ```text
//! cargo run --example kv_server -- --dir /var/tmp/kv --addr 127.0.0.1:8080
//! curl -X PUT --data-binary world http://127.0.0.1:8080/kv/hello   # 200 once fsynced
//! curl http://127.0.0.1:8080/kv/hello                              # world
//! curl -X DELETE http://127.0.0.1:8080/kv/hello                    # 200 once fsynced
//! curl http://127.0.0.1:8080/metrics                               # Prometheus text
//! curl http://127.0.0.1:8080/health                                # JSON; 503 if unhealthy
//! ```
//!
//! With no arguments it keeps its data in a fresh temporary directory (removed on a clean
//! exit) and listens on 127.0.0.1:8080, or on an ephemeral port if 8080 is taken. The
//! bound address is printed as `listening on ADDR`. `KV_SERVER_DIR` and `KV_SERVER_ADDR`
//! stand in for the flags. It serves loopback addresses only: it has no authentication.
//! SIGINT or SIGTERM stops it cleanly: requests in progress finish, then the log is shut
//! down (everything queued fsynced, the directory lock released).
//!
//! The write path: the HTTP handler sends `Write` to the [`Store`] actor, the transaction
//! actor of this service; it encodes the operation with `actix_wal::format::codec`, sends
//! `Append` to the log's queue and waits for the durable reply; only then does it apply
//! the operation to its map and answer, and only then does the handler answer 200. Many
//! concurrent requests share one fsync (group commit).
//!
//! Where the actors live: the HTTP server's workers have threads of their own; the
//! `Store` runs on the `System` arbiter beside the log's queue (the default
//! `QueueThread::Caller`), so a write reaches the queue without crossing threads. Nothing
//! on that arbiter may block: the map is a `BTreeMap`, which grows a node at a time,
//! where a `HashMap` doubles and moves every key at once (hundreds of ms at a million
//! keys on the development VM), and every request and every commit would wait behind
//! the move.
//!
//! What a real service would add: a checkpoint (snapshot the map, then
//! `Wal::truncate_before` the snapshot's LSN) so the log and the replay at start stay
//! bounded; see docs/operations.md.

use actix::prelude::*;
use actix_wal::format::codec;
use actix_wal::Queue;
use actix_wal::{Append, Lsn, QueueThread, Replayed, Wal, WalConfig, WalError};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use clap::{Parser, ValueEnum};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Largest value accepted, in bytes. With the key and the encoding it must fit the log's
/// `max_record_bytes` (1 MiB by default).
const MAX_VALUE_BYTES: usize = 256 * 1024;
/// Longest key accepted, in bytes.
const MAX_KEY_BYTES: usize = 512;
/// The address used when none is given; an ephemeral port stands in if it is taken.
const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// How often the exporter's upkeep runs (it bounds histogram memory between scrapes).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How long requests in progress may take to finish once a stop signal arrives.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// Buckets of the `*_seconds` histograms: 100 µs (an fsync on fast NVMe) to 2.5 s (a
/// stalled disk). Real buckets, not summaries, so latencies aggregate across instances.
const SECONDS_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Buckets of the records-per-batch histogram.
const BATCH_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Command line. Flags win over the environment variables.
#[derive(Debug, Parser)]
#[command(
    name = "kv_server",
    about = "A durable key-value service on actix-web and actix-wal"
)]
struct Args {
    /// Directory of the write-ahead log (`KV_SERVER_DIR`). Default: a fresh temporary
    /// directory, removed on a clean exit.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address to listen on, loopback only (`KV_SERVER_ADDR`). Port 0 picks a free port.
    /// Default 127.0.0.1:8080, or an ephemeral port if that is taken.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Most keys held (deleted keys whose writes are still in flight count too); a PUT of
    /// a new key beyond it is answered 507.
    #[arg(long, default_value_t = 1_000_000)]
    max_keys: usize,
    /// The thread the log's queue runs on: `caller` (the System arbiter, beside the
    /// `Store`: a write reaches the queue without crossing threads) or `own` (an arbiter
    /// of the log's own).
    #[arg(long, value_enum, default_value_t = QueueOn::Caller)]
    queue_thread: QueueOn,
}

/// `--queue-thread`: [`QueueThread`] on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QueueOn {
    /// `QueueThread::Caller`.
    Caller,
    /// `QueueThread::Own`.
    Own,
}

/// One logged operation: the payload of one WAL record, encoded with the crate's codec.
/// The log is the truth; the map is what replaying these in LSN order yields.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The value's bytes.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// A key's state and the LSN of the operation that set it.
#[derive(Debug)]
struct Slot {
    /// Writes to one key may be in flight together; each is applied only if its LSN is
    /// newer than this, so the map ends as the log's order says whatever order the
    /// durable replies are handled in.
    lsn: Lsn,
    /// `None` is a tombstone: the key was deleted while another write to it was in
    /// flight. Kept until none is, so a late older write cannot bring the key back.
    value: Option<Vec<u8>>,
}

/// The transaction actor: owns the map, logs each write and applies it once durable.
#[derive(Debug, Default)]
struct Store {
    /// The state: keys to values (and tombstones, see [`Slot::value`]). A `BTreeMap`, not
    /// a `HashMap`: it never moves every key at once as a `HashMap` does each time it
    /// doubles, which at a million keys holds the store (every request) for tens of ms.
    entries: BTreeMap<String, Slot>,
    /// Writes in flight per key (sent to the log, durable reply not yet handled). At most
    /// one entry per request in progress, so its doublings stay small.
    in_flight: HashMap<String, usize>,
    /// The log's queue; `None` until the log is open (replay comes first).
    queue: Option<Addr<Queue>>,
    /// See [`Args::max_keys`].
    max_keys: usize,
    /// Records replayed at start.
    replayed: u64,
    /// The first record replay could not decode: the service refuses to start on it
    /// rather than serve a state that is not the log's.
    replay_error: Option<String>,
}

impl Store {
    fn new(max_keys: usize) -> Store {
        Store {
            max_keys,
            ..Store::default()
        }
    }

    /// Applies a durable operation (from a reply or from replay) if it is the key's newest.
    fn apply(&mut self, lsn: Lsn, op: Op) {
        let (key, value) = match op {
            Op::Put { key, value } => (key, Some(value)),
            Op::Delete { key } => (key, None),
        };
        if self.entries.get(&key).is_some_and(|s| s.lsn >= lsn) {
            return;
        }
        if value.is_none() && !self.in_flight.contains_key(&key) {
            self.entries.remove(&key);
        } else {
            self.entries.insert(key, Slot { lsn, value });
        }
    }

    /// The write to `key` is no longer in flight; drop its tombstone if it was the last.
    fn settle(&mut self, key: &str) {
        if let Some(n) = self.in_flight.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(key);
                if self.entries.get(key).is_some_and(|s| s.value.is_none()) {
                    self.entries.remove(key);
                }
            }
        }
    }

    fn live(&self, key: &str) -> bool {
        self.entries.get(key).is_some_and(|s| s.value.is_some())
    }
}

impl Actor for Store {
    type Context = Context<Self>;
}

/// Replay at open: the log's records in LSN order, a chunk at a time.
impl Handler<Replayed> for Store {
    type Result = ();

    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        for record in msg.records {
            match codec::decode::<Op>(&record.payload) {
                Ok(op) => {
                    self.apply(record.lsn, op);
                    self.replayed += 1;
                }
                Err(e) => {
                    if self.replay_error.is_none() {
                        self.replay_error = Some(format!("record {}: {e}", record.lsn));
                    }
                }
            }
        }
    }
}

/// The log is open: writes may begin. Replies with the records replayed and the first
/// replay error, if any.
#[derive(Debug, Message)]
#[rtype(result = "(u64, Option<String>)")]
struct Attach(Addr<Queue>);

impl Handler<Attach> for Store {
    type Result = MessageResult<Attach>;

    fn handle(&mut self, msg: Attach, _: &mut Self::Context) -> Self::Result {
        self.queue = Some(msg.0);
        MessageResult((self.replayed, self.replay_error.clone()))
    }
}

/// Why a write was not done.
#[derive(Debug)]
enum WriteError {
    /// The log refused or failed it.
    Wal(WalError),
    /// `max_keys` reached.
    TooManyKeys,
    /// DELETE of a key that is not there.
    NotFound,
    /// The log is not open yet, or already stopped.
    Unavailable,
}

/// Log an operation and apply it once durable. Replies with its LSN.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lsn, WriteError>")]
struct Write(Op);

impl Handler<Write> for Store {
    type Result = ResponseActFuture<Self, Result<Lsn, WriteError>>;

    fn handle(&mut self, Write(op): Write, _: &mut Self::Context) -> Self::Result {
        let refuse = |e| -> Self::Result { Box::pin(fut::ready(Err(e))) };
        let Some(queue) = self.queue.clone() else {
            return refuse(WriteError::Unavailable);
        };
        let key = op.key().to_owned();
        let known = self.entries.contains_key(&key) || self.in_flight.contains_key(&key);
        match &op {
            Op::Put { .. }
                if !known && self.entries.len() + self.in_flight.len() >= self.max_keys =>
            {
                return refuse(WriteError::TooManyKeys)
            }
            Op::Delete { .. } if !self.live(&key) && !self.in_flight.contains_key(&key) => {
                return refuse(WriteError::NotFound)
            }
            _ => {}
        }
        let payload = match codec::encode(&op) {
            Ok(p) => p,
            Err(e) => return refuse(WriteError::Wal(e)),
        };
        *self.in_flight.entry(key.clone()).or_default() += 1;
        // `send`, not `do_send`: the queue's back-pressure reaches us. No timeout around
        // it: a write whose reply we stopped waiting for may still become durable.
        let durable = async move { queue.send(Append::new(payload)).await };
        Box::pin(durable.into_actor(self).map(move |reply, act, _| {
            let result = match reply {
                Ok(Ok(lsn)) => {
                    act.apply(lsn, op);
                    Ok(lsn)
                }
                Ok(Err(e)) => Err(WriteError::Wal(e)),
                Err(_) => Err(WriteError::Unavailable),
            };
            act.settle(&key);
            result
        }))
    }
}

/// Read a key.
#[derive(Debug, Message)]
#[rtype(result = "Option<Vec<u8>>")]
struct Get(String);

impl Handler<Get> for Store {
    type Result = MessageResult<Get>;

    fn handle(&mut self, Get(key): Get, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.entries.get(&key).and_then(|s| s.value.clone()))
    }
}

/// What the HTTP handlers share.
#[derive(Clone)]
struct AppState {
    store: Addr<Store>,
    wal: Wal,
    prometheus: PrometheusHandle,
}

/// The 400 answer for a key out of bounds, if it is.
fn bad_key(key: &str) -> Option<HttpResponse> {
    (key.is_empty() || key.len() > MAX_KEY_BYTES)
        .then(|| HttpResponse::BadRequest().body(format!("a key is 1 to {MAX_KEY_BYTES} bytes\n")))
}

/// Answers a write: 200 (with the LSN) only once the operation is durable.
async fn write(state: &AppState, op: Op) -> HttpResponse {
    let reply = match state.store.send(Write(op)).await {
        Ok(r) => r,
        Err(_) => Err(WriteError::Unavailable),
    };
    let (status, text) = match reply {
        Ok(lsn) => {
            return HttpResponse::Ok()
                .insert_header(("x-wal-lsn", lsn.0.to_string()))
                .body(format!("{lsn}\n"))
        }
        Err(WriteError::NotFound) => (StatusCode::NOT_FOUND, "no such key".to_owned()),
        Err(WriteError::TooManyKeys) => {
            (StatusCode::INSUFFICIENT_STORAGE, "too many keys".to_owned())
        }
        Err(WriteError::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the log is not open".to_owned(),
        ),
        Err(WriteError::Wal(e)) => {
            let status = match e {
                WalError::RecordTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                WalError::QueueFull { .. } | WalError::ShutDown | WalError::Poisoned { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                WalError::DiskFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, e.to_string())
        }
    };
    HttpResponse::build(status).body(format!("{text}\n"))
}

/// `PUT /kv/{key}`: the body is the value.
async fn put(state: web::Data<AppState>, key: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let key = key.into_inner();
    if let Some(r) = bad_key(&key) {
        return r;
    }
    let op = Op::Put {
        key,
        value: body.to_vec(),
    };
    write(&state, op).await
}

/// `DELETE /kv/{key}`: 404 if the key is not there.
async fn delete(state: web::Data<AppState>, key: web::Path<String>) -> HttpResponse {
    let key = key.into_inner();
    if let Some(r) = bad_key(&key) {
        return r;
    }
    write(&state, Op::Delete { key }).await
}

/// `GET /kv/{key}`: the value, or 404.
async fn get(state: web::Data<AppState>, key: web::Path<String>) -> HttpResponse {
    match state.store.send(Get(key.into_inner())).await {
        Ok(Some(value)) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(value),
        Ok(None) => HttpResponse::NotFound().body("no such key\n"),
        Err(_) => HttpResponse::ServiceUnavailable().body("the store is stopped\n"),
    }
}

/// `GET /metrics`: every metric of the process in Prometheus text format.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.prometheus.render())
}

/// `GET /health`: the log's `Health` as JSON; 503 unless it is healthy.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.wal.health().await {
        Ok(h) if h.healthy => HttpResponse::Ok().json(h),
        Ok(h) => HttpResponse::ServiceUnavailable().json(h),
        Err(e) => HttpResponse::ServiceUnavailable().body(format!("{e}\n")),
    }
}

/// Binds the listener: loopback only; the default address falls back to an ephemeral port.
fn bind(addr: Option<SocketAddr>) -> Result<TcpListener, Box<dyn std::error::Error>> {
    let from_env = match std::env::var("KV_SERVER_ADDR") {
        Ok(s) => Some(s.parse::<SocketAddr>()?),
        Err(_) => None,
    };
    let chosen = addr.or(from_env);
    let addr = match chosen {
        Some(a) => a,
        None => DEFAULT_ADDR.parse()?,
    };
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: this example has no authentication"
        )
        .into());
    }
    match TcpListener::bind(addr) {
        Ok(l) => Ok(l),
        Err(e) if chosen.is_none() && e.kind() == std::io::ErrorKind::AddrInUse => {
            Ok(TcpListener::bind(SocketAddr::new(addr.ip(), 0))?)
        }
        Err(e) => Err(format!("bind {addr}: {e}").into()),
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // The recorder first: the log registers its metric handles when it opens, and
    // handles registered before a recorder exists go nowhere.
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(actix_wal::metrics::BATCH_ENTRIES.into()),
            &BATCH_BUCKETS,
        )?
        .install_recorder()?;
    let upkeep = prometheus.clone();
    actix_rt::spawn(async move {
        loop {
            actix_rt::time::sleep(UPKEEP_INTERVAL).await;
            upkeep.run_upkeep();
        }
    });

    let listener = bind(args.addr)?;
    let bound = listener.local_addr()?;
    let (dir, _temp) = match args
        .dir
        .or_else(|| std::env::var_os("KV_SERVER_DIR").map(PathBuf::from))
    {
        Some(d) => (d, None),
        None => {
            let t = tempfile::Builder::new().prefix("kv_server-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };

    // Replay rebuilds the map: the store receives every record before the log takes appends.
    let store = Store::new(args.max_keys).start();
    let config = WalConfig {
        replay_to: Some(store.clone().recipient()),
        queue_thread: match args.queue_thread {
            QueueOn::Own => QueueThread::Own,
            QueueOn::Caller => QueueThread::Caller,
        },
        ..WalConfig::default()
    };
    let wal = Wal::open(&dir, config).await?;
    let (replayed, replay_error) = store.send(Attach(wal.queue().clone())).await?;
    if let Some(e) = replay_error {
        wal.shutdown().await?;
        return Err(format!("replay: a record is not a kv operation: {e}").into());
    }

    let state = AppState {
        store,
        wal: wal.clone(),
        prometheus,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(MAX_VALUE_BYTES))
            .route("/kv/{key}", web::put().to(put))
            .route("/kv/{key}", web::delete().to(delete))
            .route("/kv/{key}", web::get().to(get))
            .route("/metrics", web::get().to(metrics))
            .route("/health", web::get().to(health))
    })
    .workers(args.workers.max(1))
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "data in {} ({replayed} records replayed)",
        dir.display()
    )?;
    writeln!(out, "listening on {bound}")?;
    out.flush()?;
    drop(out);

    // Returns after SIGINT or SIGTERM, once requests in progress are answered.
    server.await?;
    wal.shutdown().await?;
    println!("stopped");
    Ok(())
}

#[actix_web::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv_server: {e}");
            ExitCode::FAILURE
        }
    }
}
