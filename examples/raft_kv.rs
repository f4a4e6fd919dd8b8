//! `raft_kv`: a replicated key-value service, one process per node, on openraft with
//! actix-wal as its log (through the `actix-wal-openraft` adapter) and actix-web for both
//! the client API and openraft's network.
//!
//! ```text
//! (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /var/tmp/secret)
//! raft_kv --id 1 --dir /var/tmp/n1 --addr 127.0.0.1:21001 --cluster-secret-file /var/tmp/secret \
//!         --peers 1=127.0.0.1:21001,2=127.0.0.1:21002,3=127.0.0.1:21003 --init
//! raft_kv --id 2 --dir /var/tmp/n2 --addr 127.0.0.1:21002 --cluster-secret-file ... --peers ...
//! raft_kv --id 3 --dir /var/tmp/n3 --addr 127.0.0.1:21003 --cluster-secret-file ... --peers ...
//! curl -L -X PUT --data-binary world http://127.0.0.1:21001/kv/hello   # 200 once committed
//! curl -L http://127.0.0.1:21002/kv/hello                              # world (linearizable)
//! curl http://127.0.0.1:21003/raft/state                               # id, leader, term, ...
//! ```
//!
//! `--init` on one node makes all `--peers` voters once each has said which incarnation
//! it is (`identity`, `startup`; a no-op once the node has a log, so it may stay on the
//! command line across restarts); `--join ADDR` on a fresh node asks the cluster at ADDR
//! to add it (`members`). The node prints `listening on ADDR` once it serves. A node
//! that lost its directory is a new incarnation, which the others refuse under its old
//! id (`identity`). `docs/replication.md` has the full walk-through and what survives what.
//!
//! - `PUT /kv/{key}` (body = value): 200 once the write is committed by a majority and
//!   applied here; a follower answers 307 to the leader's `/kv/{key}`, or 503 with
//!   `{"leader": id|null}` while it knows no leader's address; 504 (outcome unknown)
//!   past `--request-timeout-ms` (`deadline`). With `Client-Id` and `Client-Seq`, applied
//!   at most once, a retry answered with the first result (`dedup`).
//! - `GET /kv/{key}`: a linearizable read (`ensure_linearizable` on the leader): 200 with
//!   the value or 404; a follower answers 307 as above.
//! - A node whose Raft core stopped (a `Fatal` error) answers both 503 `{"error":
//!   "stopped", "leader": id|null, ...}`, never a 307 (`stopped` says why).
//! - `GET /raft/state`: this node's view (id, leader, term, last_log_index, last_applied,
//!   snapshot, purged, state, store) as JSON.
//! - `GET /cluster` (the membership), `POST /cluster/learners`, `POST /cluster/voters`,
//!   `DELETE /cluster/nodes/{id}`: membership changes, signed with the cluster's secret
//!   as `/raft/*` is (`members`; `admin` is the client).
//! - `GET /metrics` (Prometheus text: actix-wal's metrics and openraft's basic ones) and
//!   `GET /health` (JSON; 503 unless healthy), as in `kv_server`.
//! - `POST /raft/{append,vote,snapshot}`: openraft's RPCs (and `/raft/prevote`: elections
//!   start only after a majority's pre-vote, see `prevote`), bodies in actix-wal's codec,
//!   each request and reply signed with the cluster's secret (`--cluster-secret-file`,
//!   HMAC-SHA256, see `auth`); 401 without a valid signature, 400 for a term or index
//!   no real cluster reaches (`bounds`), 409 for or from an incarnation of a node that
//!   the membership does not name (`identity`; `/raft/identity` answers this node's).
//!
//! Every route answers 403, before any handler runs, to a request a web page may have
//! made the user's browser send (`hosts`, shared with `kv_server`): one whose `Host` is
//! not an IP address (v4 or v6, any: nodes are reached by address, and an address cannot
//! be rebound), `localhost`, or a name given with `--allowed-host NAME` (repeatable),
//! the shape of a DNS rebinding; and one with another site's `Origin`. Nodes and
//! `raft_kv_admin` address each other by `IP:PORT`, so their requests pass.
//!
//! `--store wal` (the default) keeps the Raft log in actix-wal under `DIR/log`;
//! `--store mem` keeps it in memory, written the way openraft's `memstore` is: the
//! baseline `raft_bench` measures against, and it loses everything on a restart. The state
//! machine (a `BTreeMap`) is in memory; its snapshot (the map, serialized) is written to
//! `DIR/snapshot` before openraft may purge the log below it.

#[path = "raft_kv/admin.rs"]
mod admin;
#[path = "raft_kv/api.rs"]
mod api;
#[path = "raft_kv/append_budget.rs"]
mod append_budget;
#[path = "raft_kv/auth.rs"]
mod auth;
#[path = "raft_kv/batcher.rs"]
mod batcher;
#[path = "raft_kv/bounds.rs"]
mod bounds;
#[path = "raft_kv/deadline.rs"]
mod deadline;
#[path = "raft_kv/dedup.rs"]
mod dedup;
#[path = "shared/hangup.rs"]
mod hangup;
#[path = "raft_kv/heads.rs"]
mod heads;
#[path = "shared/hosts.rs"]
mod hosts;
#[path = "raft_kv/identity.rs"]
mod identity;
#[path = "raft_kv/intake.rs"]
mod intake;
#[path = "raft_kv/members.rs"]
mod members;
#[path = "raft_kv/memlog.rs"]
mod memlog;
#[path = "raft_kv/network.rs"]
mod network;
#[path = "raft_kv/prevote.rs"]
mod prevote;
#[path = "raft_kv/snapshot_body.rs"]
mod snapshot_body;
#[path = "raft_kv/snapshot_data.rs"]
mod snapshot_data;
#[path = "raft_kv/snapshot_send.rs"]
mod snapshot_send;
#[path = "raft_kv/startup.rs"]
mod startup;
#[path = "raft_kv/state.rs"]
mod state;
#[path = "raft_kv/stopped.rs"]
mod stopped;
#[path = "raft_kv/value_bytes.rs"]
mod value_bytes;

use actix_wal::WalConfig;
use actix_wal_openraft::WalLogStore;
use actix_web::middleware::from_fn;
use actix_web::{web, App};
use clap::{Parser, ValueEnum};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use openraft::storage::RaftLogStorage as _;
use openraft::{Config, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// A node's id in the cluster (`--id`, the keys of `--peers`).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The example's Raft types: entries carry a [`Request`]; applying one yields a
    /// [`Response`]; nodes are [`identity::Member`]s (an address and an incarnation);
    /// openraft runs on tokio.
    pub TypeConfig: D = Request, R = Response, Node = identity::Member,
        SnapshotData = snapshot_data::SnapshotData
);

/// The Raft handle of this example.
pub type Raft = openraft::Raft<TypeConfig>;

/// Writes, as they travel in the Raft log: one entry carries every PUT gathered while
/// the previous entry was being committed (see `batcher`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Set each key to its value, in order (a batch none of whose PUTs carried a client
    /// id: the format of entries written before `SetOnce` existed).
    Set {
        /// `(key, value)` pairs: keys of 1 to [`api::MAX_KEY_BYTES`] bytes, values of at
        /// most [`api::MAX_VALUE_BYTES`].
        #[serde(with = "value_bytes")]
        writes: Vec<(String, Vec<u8>)>,
    },
    /// Set each key to its value, in order, each write that carries a client id and seq
    /// at most once (`dedup`).
    SetOnce {
        /// The writes.
        writes: Vec<Write>,
    },
}

/// One write of a [`Request::SetOnce`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Write {
    /// 1 to [`api::MAX_KEY_BYTES`] bytes.
    pub key: String,
    /// At most [`api::MAX_VALUE_BYTES`].
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// `Client-Id` and `Client-Seq`, if the PUT carried them.
    pub once: Option<dedup::ClientSeq>,
}

/// What applying one write of a [`Request::SetOnce`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    /// Applied by this entry.
    Applied,
    /// Applied before, by the entry at this index: not applied again.
    Duplicate(u64),
    /// Its seq is older than the client's results kept: not applied, outcome unknown.
    Stale,
}

/// What applying an entry yields: for a [`Request::SetOnce`], one result per write
/// (empty otherwise: every write applied).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// One per write, in order.
    pub results: Vec<WriteResult>,
}

/// Where the Raft log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// actix-wal under `DIR/log`, through the `actix-wal-openraft` adapter.
    Wal,
    /// In memory, as openraft's memstore: lost on restart. A baseline, not a store.
    Mem,
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "raft_kv",
    about = "A replicated key-value service on openraft and actix-wal"
)]
struct Args {
    /// This node's id: one of the ids in `--peers` with `--init`; a new one with `--join`.
    #[arg(long)]
    id: NodeId,
    /// This node's directory: the log (`DIR/log`), the last snapshot (`DIR/snapshot`) and
    /// the identity of this life of the log (`DIR/identity`).
    #[arg(long)]
    dir: PathBuf,
    /// Address to listen on (loopback or a private network: no TLS; cluster RPCs are
    /// authenticated, client requests are not).
    #[arg(long)]
    addr: SocketAddr,
    /// The cluster's shared secret (the same file on every node): at least 32 bytes,
    /// mode 0600. Every `/raft/*` request and reply is signed with it (HMAC-SHA256).
    /// Make one: `(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > FILE)`.
    #[arg(long)]
    cluster_secret_file: PathBuf,
    /// The first voters, this node included: `1=127.0.0.1:21001,2=...`, the same on each
    /// of them. Needed with `--init` only: nodes learn addresses from the membership.
    #[arg(long, value_parser = parse_peers)]
    peers: Option<Peers>,
    /// Where this node sends its RPCs for some peers, in place of their membership
    /// address: `2=127.0.0.1:31002,...` (a test hook: `tests/raft_partitions.rs` puts a
    /// fault-injecting proxy on each link). Redirects to clients still name the real one.
    #[arg(long, value_parser = parse_peers)]
    peer_via: Option<Peers>,
    /// Initialize the cluster with every peer as a voter (ignored once initialized).
    #[arg(long, requires = "peers")]
    init: bool,
    /// Join the cluster a node of which listens at this address: once this node serves,
    /// it asks to be added as a learner, then as a voter (`members`; harmless once done).
    #[arg(long, conflicts_with = "init")]
    join: Option<SocketAddr>,
    /// Where the Raft log lives.
    #[arg(long, value_enum, default_value_t = StoreKind::Wal)]
    store: StoreKind,
    /// Build a snapshot (and let openraft purge the log below it) every this many entries.
    #[arg(long, default_value_t = 10_000)]
    snapshot_logs: u64,
    /// Leader heartbeat interval, ms. It is also each append's deadline (openraft's), so a
    /// follower's link must carry the largest entry (256 KiB) within it, about 55 Mbit/s
    /// at 50 ms: raise it for slower links (docs/replication.md, "Appends that fit their
    /// deadline").
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Deadline of each snapshot chunk sent to a follower, ms (openraft's
    /// `install_snapshot_timeout`): a follower's link must carry a chunk (3 MiB) within
    /// it, 3 MiB/s at the default (docs/replication.md, "Snapshots that fit their
    /// deadline"). A chunk but the last that misses it is sent again at its offset.
    #[arg(long, default_value_t = snapshot_send::DEFAULT_CHUNK_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    install_snapshot_timeout_ms: u64,
    /// Added to the last snapshot chunk's deadline for every MiB of the snapshot, ms: the
    /// follower decodes, writes, fsyncs and installs the whole map before it answers that
    /// chunk (50 MiB/s at the default).
    #[arg(long, default_value_t = snapshot_send::DEFAULT_INSTALL_MS_PER_MIB,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    snapshot_install_ms_per_mib: u64,
    /// Shortest election timeout, ms; the longest is twice this, and is openraft's leader
    /// lease (a voter refuses votes that long after its last heartbeat). With the
    /// pre-vote, an election is tried after `2 x` to `3 x` this of silence, attempts then
    /// `1 x` to `2 x` apart (see `prevote`); docs/performance.md has the figures.
    #[arg(long, default_value_t = 200)]
    election_ms: u64,
    /// Who starts elections: the pre-vote timer (`prevote`), or openraft's own.
    #[arg(long, value_enum, default_value_t = prevote::ElectionMode::Prevote)]
    election: prevote::ElectionMode,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Most PUTs gathered into one Raft entry (1: an entry per PUT).
    #[arg(long, default_value_t = 1_024)]
    batch_writes: usize,
    /// Most keys the map holds; a PUT of a new key beyond it is answered 507.
    #[arg(long, default_value_t = 1_000_000)]
    max_keys: usize,
    /// A PUT or linearizable GET not done within this many ms is answered 504 (for a PUT:
    /// outcome unknown, it may still commit; see `deadline`).
    #[arg(long, default_value_t = deadline::DEFAULT_REQUEST_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(
              *deadline::REQUEST_TIMEOUT_MS_RANGE.start()..=*deadline::REQUEST_TIMEOUT_MS_RANGE.end()))]
    request_timeout_ms: u64,
    /// A request body not all there within this many ms of its head is answered 408 and
    /// its connection closed (`intake`).
    #[arg(long, default_value_t = intake::DEFAULT_BODY_TIMEOUT_MS)]
    body_timeout_ms: u64,
    /// Bytes of signed RPC bodies larger than 64 KiB read or handled at once at most; one
    /// past it is answered 503 before its body is read (`intake`). At least 32 MiB (the
    /// largest RPC body).
    #[arg(long, default_value_t = intake::DEFAULT_RPC_BYTES_IN_FLIGHT)]
    max_rpc_bytes_in_flight: usize,
    /// Connections open at once at most, shared out among the workers (a new one waits in
    /// the listen queue): well below the file descriptors the log needs as well.
    #[arg(long, default_value_t = 4_096)]
    max_connections: usize,
    /// A name clients may give as the `Host` (repeatable; no port), besides `localhost`
    /// and IP addresses: any other is answered 403, as is a request with another site's
    /// `Origin` (`hosts`). Only names whose DNS you control: rebinding uses the others.
    #[arg(long = "allowed-host", value_name = "NAME", value_parser = hosts::parse_name)]
    allowed_hosts: Vec<String>,
}

/// `--peers`: node ids to addresses.
#[derive(Debug, Clone)]
struct Peers(BTreeMap<NodeId, SocketAddr>);

/// Most voters `--peers` may name.
const MAX_PEERS: usize = 9;
/// Entries kept below a snapshot for followers a little behind (at most `--snapshot-logs`).
const LOGS_KEPT_BELOW_SNAPSHOT: u64 = 1_000;
/// Bytes of keys and values gathered into one entry at most (one more write may pass
/// it): with the encoding it stays under actix-wal's 1 MiB record limit.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Entries in one AppendEntries RPC at most: with `MAX_BATCH_BYTES` entries (plus one
/// value), within `network::MAX_RPC_BYTES`.
const MAX_PAYLOAD_ENTRIES: u64 = 64;

fn parse_peers(s: &str) -> Result<Peers, String> {
    let mut peers = BTreeMap::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}` is not ID=ADDR"))?;
        let id: NodeId = id.parse().map_err(|e| format!("node id `{id}`: {e}"))?;
        let addr: SocketAddr = addr.parse().map_err(|e| format!("address `{addr}`: {e}"))?;
        if peers.insert(id, addr).is_some() {
            return Err(format!("node {id} named twice"));
        }
    }
    if peers.is_empty() || peers.len() > MAX_PEERS {
        return Err(format!("1 to {MAX_PEERS} peers, not {}", peers.len()));
    }
    Ok(Peers(peers))
}

/// No TLS, and no authentication of clients: refuse an address the whole world may reach.
/// Private: loopback, IPv4's private ranges (10/8, 172.16/12, 192.168/16), IPv6's unique
/// local addresses (fc00::/7), and an IPv4-mapped IPv6 address of a private IPv4 one.
fn check_reachable_privately(addr: SocketAddr) -> Result<(), String> {
    let v4_private = |v4: std::net::Ipv4Addr| v4.is_loopback() || v4.is_private();
    let private = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4_private(v4),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unique_local() || v6.to_ipv4_mapped().is_some_and(v4_private)
        }
    };
    if private {
        Ok(())
    } else {
        Err(format!(
            "{addr} is neither loopback nor private: this example has no TLS"
        ))
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let peers = args.peers.clone().unwrap_or(Peers(BTreeMap::new()));
    if args.peers.is_some() && !peers.0.contains_key(&args.id) {
        return Err(format!("--id {} is not in --peers", args.id).into());
    }
    check_reachable_privately(args.addr)?;
    if args.max_rpc_bytes_in_flight < network::MAX_RPC_BYTES {
        // A largest RPC could never be reserved: the cluster would stall on it.
        return Err(format!(
            "--max-rpc-bytes-in-flight {} is below the largest RPC body, {}",
            args.max_rpc_bytes_in_flight,
            network::MAX_RPC_BYTES
        )
        .into());
    }
    let via = args.peer_via.clone().map(|p| p.0).unwrap_or_default();
    for addr in peers
        .0
        .values()
        .chain(via.values())
        .chain(args.join.as_ref())
    {
        check_reachable_privately(*addr)?;
    }
    let secret = auth::Secret::load(&args.cluster_secret_file)?;
    // The recorder first: the log registers its metric handles when it opens.
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &api::SECONDS_BUCKETS)?
        .install_recorder()?;
    let listener = TcpListener::bind(args.addr).map_err(|e| format!("bind {}: {e}", args.addr))?;
    let bound = listener.local_addr()?;
    std::fs::create_dir_all(&args.dir)?;

    let config = Config {
        cluster_name: "raft_kv".into(),
        heartbeat_interval: args.heartbeat_ms,
        install_snapshot_timeout: args.install_snapshot_timeout_ms,
        election_timeout_min: args.election_ms,
        election_timeout_max: args.election_ms * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(args.snapshot_logs),
        max_in_snapshot_log_to_keep: LOGS_KEPT_BELOW_SNAPSHOT.min(args.snapshot_logs),
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        enable_elect: args.election == prevote::ElectionMode::Openraft,
        ..Config::default()
    };
    let config = Arc::new(config.validate()?);
    // The snapshot file only with a durable log: a memory log restarts empty, and a
    // snapshot ahead of an empty log would not be a state openraft can start from.
    let snapshot_file = (args.store == StoreKind::Wal).then(|| args.dir.join("snapshot"));
    let sm = state::StateMachine::open(snapshot_file).await?;
    let snapshot_deadlines = snapshot_send::ChunkDeadlines {
        chunk: Duration::from_millis(args.install_snapshot_timeout_ms),
        install_per_mib: Duration::from_millis(args.snapshot_install_ms_per_mib),
    };
    // `read_floor`: the last entry the log holds at start; linearizable reads wait until
    // it is applied (`api::read_floor`). Read here, before openraft has the log: the
    // metrics of a new `Raft` say nothing until its core has run. `empty`: the log holds
    // no entry, no vote and nothing purged: a new life of this node (`identity`).
    let (raft, wal, read_floor, me, network) = match args.store {
        StoreKind::Mem => {
            let log = memlog::MemLog::default();
            let me = identity::Identity::settle(&args.dir, args.id, true)?;
            let network = network::Network::new(me, secret.clone(), via, snapshot_deadlines);
            let raft = Raft::new(args.id, config, network.clone(), log, sm.clone()).await?;
            (raft, None, None, me, network)
        }
        StoreKind::Wal => {
            // On this System's arbiter (`Wal::open`), where openraft's core runs: its
            // appends reach the log's queue without crossing threads.
            let wal = actix_wal::Wal::open(args.dir.join("log"), WalConfig::default()).await?;
            let mut log = WalLogStore::<TypeConfig>::new(wal).await?;
            let state = log.get_log_state().await?;
            let read_floor = state.last_log_id.map(|l| l.index);
            let empty = read_floor.is_none()
                && state.last_purged_log_id.is_none()
                && log.read_vote().await?.is_none();
            sm.check_covers_purged(state.last_purged_log_id.map(|l| l.index), args.id)?;
            let me = identity::Identity::settle(&args.dir, args.id, empty)?;
            let network = network::Network::new(me, secret.clone(), via, snapshot_deadlines);
            let wal = log.wal().clone();
            let raft = Raft::new(args.id, config, network.clone(), log, sm.clone()).await?;
            (raft, Some(wal), read_floor, me, network)
        }
    };
    let raft_network = network.clone();

    let elections = prevote::Elections::new(
        Duration::from_millis(args.election_ms * 2),
        Duration::from_millis(args.election_ms),
    );
    if args.election == prevote::ElectionMode::Prevote {
        let tick = Duration::from_millis((args.heartbeat_ms / 2).clamp(5, 50));
        elections
            .clone()
            .start(raft.clone(), raft_network, args.id, tick);
    }
    let state = api::AppState {
        id: args.id,
        batcher: batcher::Batcher::start(raft.clone(), args.batch_writes, MAX_BATCH_BYTES),
        raft: raft.clone(),
        sm,
        wal: wal.clone(),
        store: args.store,
        prometheus,
        max_keys: args.max_keys,
        read_floor,
        secret: secret.clone(),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        elections,
        me,
        network: network.clone(),
        intake: intake::Intake::new(args.body_timeout_ms, args.max_rpc_bytes_in_flight),
    };
    let allowed = hosts::AllowedHosts::new(args.allowed_hosts);
    let server = heads::serve(listener, args.workers, args.max_connections, move || {
        let allowed = allowed.clone();
        App::new()
            .wrap(from_fn(move |req, next| {
                hosts::guard(allowed.clone(), req, next)
            }))
            .app_data(web::Data::new(state.clone()))
            .configure(api::routes)
            .configure(network::routes)
            .configure(members::routes)
    })?;
    // A node whose log is empty must not join under an id that is already a member.
    let fresh = read_floor.is_none();
    let join = args.join.map(|at| {
        let step = members::join(secret.clone(), at, (args.id, bound), fresh);
        startup::Task::spawn(server.handle(), step)
    });
    // `--init` once the node serves: it asks its peers for their identities first. With
    // a log, the cluster exists: nothing to do.
    let init = (args.init && read_floor.is_none()).then(|| {
        let addr = peers.0.get(&args.id).map_or(bound, |a| *a).to_string();
        let own = identity::Member {
            addr,
            incarnation: me.incarnation,
        };
        let step = startup::init(
            raft.clone(),
            network.clone(),
            peers.0.clone(),
            (args.id, own),
        );
        startup::Task::spawn(server.handle(), step)
    });
    let naming = actix_rt::spawn(startup::name_the_unnamed(raft.clone(), network.clone()));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "node {} ({:?} log) in {}",
        args.id,
        args.store,
        args.dir.display()
    )?;
    writeln!(out, "listening on {bound}")?;
    out.flush()?;
    drop(out);

    hangup::stop_on_hangup(server.handle(), "raft_kv")?;
    // Returns after SIGINT, SIGTERM or SIGHUP, once requests in progress are answered.
    server.await?;
    naming.abort();
    let failed = join
        .into_iter()
        .chain(init)
        .filter_map(startup::Task::stop)
        .next();
    raft.shutdown()
        .await
        .map_err(|e| format!("raft shutdown: {e}"))?;
    if let Some(wal) = wal {
        wal.shutdown().await?;
    }
    // Let the runtime drop the Raft tasks before the process exits.
    actix_rt::time::sleep(Duration::from_millis(10)).await;
    // A startup step that failed stopped the server: say so in the exit status.
    if let Some(e) = failed {
        return Err(e.into());
    }
    println!("stopped");
    Ok(())
}

#[actix_web::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft_kv: {e}");
            ExitCode::FAILURE
        }
    }
}
