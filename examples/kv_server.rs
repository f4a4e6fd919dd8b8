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
//! Nor may a web page the user's browser visits reach it: a request whose `Host` is not
//! `localhost`, an IP address or a name given with `--allowed-host` (the shape of a DNS
//! rebinding: `Host: attacker.example:8080`), or that carries another site's `Origin`,
//! is answered 403 before any handler runs (`shared/hosts.rs`). Any local process can
//! still connect and send what it likes.
//! SIGINT, SIGTERM or SIGHUP stops it cleanly: requests in progress finish, then the log
//! is shut down (everything queued fsynced, the directory lock released).
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
//! Its bounds: keys (`--max-keys`) and the bytes of keys and values held in memory
//! (`--max-bytes`, 256 MiB): a PUT past either is answered 507. The bodies on their way
//! in count against `--max-bytes` too, from their request's head until their write is
//! answered (the `Content-Length`, or a chunked body's bytes 64 KiB at a time as they
//! arrive): a body with no room is answered 503 (`Retry-After: 1`) unread and its
//! connection closed, so clients holding bodies half sent cannot fill the memory. A value
//! is at most 256 KiB (413, before its body is read); a request body must arrive within
//! `--body-timeout-ms` (10 s) of its head, or the answer is 408 and the connection closed
//! (actix-web bounds only the wait for the head). What `--max-bytes` does not count:
//! actix-web's buffers of each connection (up to about 64 KiB while a body arrives,
//! bounded by its connection limit) and, while a write is on its way to the log, the
//! value's encoded copy.
//!
//! The code: this file (command line, start and stop), `kv_server/store.rs` (the `Store`
//! actor: the map and the write path), `kv_server/http.rs` (the handlers),
//! `kv_server/budget.rs` (the bytes counted against `--max-bytes`), `shared/hosts.rs`
//! (the `Host` and `Origin` rule, shared with `raft_kv`).
//!
//! What a real service would add: a checkpoint (snapshot the map, then
//! `Wal::truncate_before` the snapshot's LSN) so the log and the replay at start stay
//! bounded; see docs/operations.md.

#[path = "kv_server/budget.rs"]
mod budget;
#[path = "shared/hangup.rs"]
mod hangup;
#[path = "shared/hosts.rs"]
mod hosts;
#[path = "kv_server/http.rs"]
mod http;
#[path = "kv_server/store.rs"]
mod store;

use actix::prelude::*;
use actix_wal::{QueueThread, Wal, WalConfig};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use budget::Budget;
use clap::{Parser, ValueEnum};
use http::{delete, get, health, metrics, put, AppState};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use store::{Attach, Store};

/// Largest value accepted, in bytes. With the key and the encoding it must fit the log's
/// `max_record_bytes` (1 MiB by default).
pub(crate) const MAX_VALUE_BYTES: usize = 256 * 1024;
/// Longest key accepted, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 512;
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
    /// Most bytes of keys and values the map holds (writes in flight count too); a PUT
    /// that would pass it is answered 507. The bodies being received count too, from
    /// their head: one with no room left is answered 503 before it is read. Default
    /// 256 MiB. The map's own overhead comes on top (about 100 bytes a key). A log replayed at start that holds more is loaded
    /// whole (the log is the truth); PUTs are then refused until deletes make room.
    #[arg(long, default_value_t = 256 << 20)]
    max_bytes: usize,
    /// How long a request body may take to arrive, in milliseconds, from the end of its
    /// head; a slower one is answered 408 and its connection closed. Default 10,000 (a
    /// 256 KiB value at 26 KB/s).
    #[arg(long, default_value_t = 10_000)]
    body_timeout_ms: u64,
    /// The thread the log's queue runs on: `caller` (the System arbiter, beside the
    /// `Store`: a write reaches the queue without crossing threads) or `own` (an arbiter
    /// of the log's own).
    #[arg(long, value_enum, default_value_t = QueueOn::Caller)]
    queue_thread: QueueOn,
    /// A name clients may give as the `Host` (repeatable; no port), besides `localhost`
    /// and IP addresses: any other is answered 403, as is a request with another site's
    /// `Origin`, so that no web page can reach the service through the user's browser.
    #[arg(long = "allowed-host", value_name = "NAME", value_parser = hosts::parse_name)]
    allowed_hosts: Vec<String>,
}

/// `--queue-thread`: [`QueueThread`] on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QueueOn {
    /// `QueueThread::Caller`.
    Caller,
    /// `QueueThread::Own`.
    Own,
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
    let budget = Budget::new(args.max_bytes);
    let store = Store::new(args.max_keys, budget.clone()).start();
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
        budget,
        wal: wal.clone(),
        prometheus,
        body_timeout: Duration::from_millis(args.body_timeout_ms.max(1)),
    };
    let allowed = hosts::AllowedHosts::new(args.allowed_hosts);
    let server = HttpServer::new(move || {
        let allowed = allowed.clone();
        App::new()
            .wrap(from_fn(move |req, next| {
                hosts::guard(allowed.clone(), req, next)
            }))
            .app_data(web::Data::new(state.clone()))
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

    hangup::stop_on_hangup(server.handle(), "kv_server")?;
    // Returns after SIGINT, SIGTERM or SIGHUP, once requests in progress are answered.
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
