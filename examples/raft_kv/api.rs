//! The client API: `PUT`/`GET /kv/{key}` (writes through Raft, linearizable reads on the
//! leader, 307 to it from a follower; 503 `{"error": "stopped", ...}` from a node whose
//! Raft core stopped, see `stopped`), `GET /raft/state`, `GET /metrics`, `GET /health`.

use crate::batcher::{Batcher, WriteError, Written};
use crate::deadline;
use crate::dedup::{self, ClientSeq};
use crate::identity::Member;
use crate::state::StateMachine;
use crate::stopped::{self, Asked};
use crate::{NodeId, Raft, StoreKind};
use actix_wal::Wal;
use actix_web::{web, HttpRequest, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;
use openraft::error::{CheckIsLeaderError, ForwardToLeader, RaftError};
use openraft::ServerState;
use std::time::{Duration, Instant};

/// Largest value accepted, bytes (`max_payload_entries` of them fit one RPC body).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Longest key accepted, bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Buckets of the `*_seconds` histograms: 100 µs to 2.5 s.
pub const SECONDS_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Seconds from a PUT's arrival to its answer, committed and applied (histogram).
const PUT_SECONDS: &str = "raft_kv_put_seconds";
/// Longest a read waits for the state machine to reach the read floor before it is
/// answered 503 (the leader recommits its log within a heartbeat or two; it waits longer
/// only when it cannot reach a majority, and then it should not serve).
const READ_FLOOR_TIMEOUT: Duration = Duration::from_secs(2);

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    /// This node's id.
    pub id: NodeId,
    /// The Raft node.
    pub raft: Raft,
    /// Where PUTs go to be proposed, many to an entry.
    pub batcher: Batcher,
    /// The state machine, for reads.
    pub sm: StateMachine,
    /// The log, with `--store wal` (for `/health`).
    pub wal: Option<Wal>,
    /// Which log.
    pub store: StoreKind,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// See `--max-keys`.
    pub max_keys: usize,
    /// The cluster's secret: every `/raft/*` request must be signed with it.
    pub secret: crate::auth::Secret,
    /// The index of the last entry in the log when this node started: no linearizable
    /// read is served before the state machine has applied it (see [`read_floor`]).
    pub read_floor: Option<u64>,
    /// `--request-timeout-ms`: a PUT or GET not done by then is answered 504 (`deadline`).
    pub request_timeout: Duration,
    /// The election timer's shared state: appends record a leader's contact in it, and it
    /// answers pre-votes (`prevote`).
    pub elections: crate::prevote::Elections,
    /// This node's id and incarnation: RPCs for another incarnation are refused.
    pub me: crate::identity::Identity,
    /// The RPC client (the leader asks a new learner for its identity through it).
    pub network: crate::network::Network,
    /// Reads request bodies: within a deadline, and signed RPCs' within a budget.
    pub intake: crate::intake::Intake,
}

/// The client routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/kv/{key}")
            .route(web::put().to(put))
            .route(web::get().to(get)),
    )
    .route("/raft/state", web::get().to(raft_state))
    .route("/metrics", web::get().to(metrics))
    .route("/health", web::get().to(health));
}

/// Headers of an idempotent PUT (`dedup`): its client and that client's sequence number.
pub const CLIENT_ID_HEADER: &str = "client-id";
/// See [`CLIENT_ID_HEADER`].
pub const CLIENT_SEQ_HEADER: &str = "client-seq";
/// Set (to `true`) on a 200 whose write was applied by an earlier attempt.
pub const REPLAY_HEADER: &str = "x-idempotent-replay";

/// `Client-Id` and `Client-Seq`: both (an idempotent PUT), neither, or why not (a 400).
fn dedup_headers(req: &HttpRequest) -> Result<Option<ClientSeq>, String> {
    let header = |name| req.headers().get(name).map(|v| v.to_str());
    let bad = |why: &str| Err(why.to_owned());
    match (header(CLIENT_ID_HEADER), header(CLIENT_SEQ_HEADER)) {
        (None, None) => Ok(None),
        (Some(Ok(client)), Some(Ok(seq))) => {
            if client.is_empty() || client.len() > dedup::MAX_CLIENT_ID_BYTES {
                return bad(&format!(
                    "Client-Id is 1 to {} bytes",
                    dedup::MAX_CLIENT_ID_BYTES
                ));
            }
            match seq.parse::<u64>() {
                Ok(seq) => Ok(Some(ClientSeq {
                    client: client.to_owned(),
                    seq,
                })),
                Err(_) => bad("Client-Seq is a number (0 to 2^64 - 1)"),
            }
        }
        (Some(_), Some(_)) => bad("Client-Id and Client-Seq are visible ASCII"),
        _ => bad("Client-Id and Client-Seq go together"),
    }
}

/// The 400 answer for a key out of bounds, if it is.
fn bad_key(key: &str) -> Option<HttpResponse> {
    (key.is_empty() || key.len() > MAX_KEY_BYTES)
        .then(|| HttpResponse::BadRequest().body(format!("a key is 1 to {MAX_KEY_BYTES} bytes\n")))
}

/// Not the leader: 307 to the leader's same path, or 503 with `{"leader": id|null}`.
fn forward(req: &HttpRequest, to: &ForwardToLeader<NodeId, Member>) -> HttpResponse {
    match &to.leader_node {
        Some(node) => HttpResponse::TemporaryRedirect()
            .insert_header((
                "location",
                format!("http://{}{}", node.addr, req.uri().path()),
            ))
            .insert_header(("x-raft-leader", to.leader_id.map_or(0, |id| id).to_string()))
            .finish(),
        None => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "leader": to.leader_id }))
        }
    }
}

/// `PUT /kv/{key}`: 200 once committed by a majority and applied here.
async fn put(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let started = Instant::now();
    let key = key.into_inner();
    if let Some(r) = bad_key(&key) {
        return r;
    }
    if let Some(r) = stopped::refusal(&state.raft, state.id, Asked::WriteNotProposed) {
        return r;
    }
    let body = match state
        .intake
        .client_body(&req, payload, MAX_VALUE_BYTES)
        .await
    {
        Ok(body) => body.bytes,
        Err(refused) => return refused,
    };
    // A soft bound (writes in flight are not counted): the map cannot grow without limit.
    let (known, keys) = state.sm.contains(&key);
    if !known && keys >= state.max_keys {
        return HttpResponse::InsufficientStorage().body("too many keys\n");
    }
    let once = match dedup_headers(&req) {
        Ok(once) => once,
        Err(why) => return HttpResponse::BadRequest().body(format!("{why}\n")),
    };
    let write = state.batcher.write(key, body.to_vec(), once);
    let Some(written) = deadline::within(state.request_timeout, write).await else {
        return deadline::write_unknown(state.request_timeout, current_leader(&state));
    };
    match written {
        Ok(Written { index, replay }) => {
            metrics::histogram!(PUT_SECONDS).record(started.elapsed().as_secs_f64());
            let mut ok = HttpResponse::Ok();
            ok.insert_header(("x-raft-index", index.to_string()));
            if replay {
                ok.insert_header((REPLAY_HEADER, "true"));
            }
            ok.body(format!("{index}\n"))
        }
        Err(WriteError::Stale) => HttpResponse::Conflict().json(serde_json::json!({
            "error": "stale",
            "outcome": "unknown",
            "detail": format!("Client-Seq older than the last {} kept for this client: not applied now; whether an earlier attempt was is no longer known", dedup::SEQS_PER_CLIENT),
        })),
        Err(WriteError::Forward(to)) => forward(&req, &to),
        Err(WriteError::Failed(e)) => {
            stopped::refusal(&state.raft, state.id, Asked::WriteInFlight)
                .unwrap_or_else(|| HttpResponse::ServiceUnavailable().body(format!("{e}\n")))
        }
    }
}

/// How long a GET waits before it asks again for a quorum that one round missed.
const QUORUM_RETRY: Duration = Duration::from_millis(50);

/// `GET /kv/{key}`: linearizable on the leader (its leadership confirmed by a quorum, its
/// state machine caught up to the commit index), 404 if absent.
async fn get(state: web::Data<AppState>, req: HttpRequest, key: web::Path<String>) -> HttpResponse {
    let key = key.into_inner();
    if let Some(r) = bad_key(&key) {
        return r;
    }
    if let Some(r) = stopped::refusal(&state.raft, state.id, Asked::Read) {
        return r;
    }
    let confirm = async {
        loop {
            match state.raft.ensure_linearizable().await {
                Ok(_) => return Ok(read_floor(&state).await),
                // One round of heartbeats missed a quorum (a follower slow or paused):
                // asked again until the deadline, which answers 504 as for a PUT.
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                    tokio::time::sleep(QUORUM_RETRY).await
                }
                Err(e) => return Err(e),
            }
        }
    };
    let Some(confirmed) = deadline::within(state.request_timeout, confirm).await else {
        return deadline::read_expired(state.request_timeout, current_leader(&state));
    };
    match confirmed {
        Ok(floor) => match floor {
            Err(e) => HttpResponse::ServiceUnavailable().body(format!("{e}\n")),
            Ok(()) => match state.sm.get(&key) {
                Some(value) => HttpResponse::Ok()
                    .content_type("application/octet-stream")
                    .body(value),
                None => HttpResponse::NotFound().body("no such key\n"),
            },
        },
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => forward(&req, &to),
        Err(e) => stopped::refusal(&state.raft, state.id, Asked::Read)
            .unwrap_or_else(|| HttpResponse::ServiceUnavailable().body(format!("{e}\n"))),
    }
}

/// The leader this node knows of, if any.
fn current_leader(state: &AppState) -> Option<NodeId> {
    state.raft.metrics().borrow().current_leader
}

/// Waits until the state machine has applied the read floor, the last entry the log held
/// when this node started (at once once it has: one look at the metrics).
///
/// openraft 0.9.25 restores a node that led before its restart as the leader of the same
/// term, with its read barrier at `max(first entry of its term, committed)`, and the
/// committed id it restarts with is the one last written to the log's slot, which the
/// adapter writes lazily: older than writes this node acknowledged before it died. Every
/// write acknowledged before a read began is in this log at start (docs/replication.md,
/// "Reads after a restart", gives the argument), so a state machine that has applied
/// the floor holds them all. The floor is reached only by commitment: it never applies
/// what is not committed, it waits.
async fn read_floor(state: &AppState) -> Result<(), openraft::metrics::WaitError> {
    let Some(floor) = state.read_floor else {
        return Ok(());
    };
    let applied = state.raft.metrics().borrow().last_applied.map(|l| l.index);
    if applied >= Some(floor) {
        return Ok(());
    }
    let wait = state.raft.wait(Some(READ_FLOOR_TIMEOUT));
    wait.applied_index_at_least(Some(floor), "the read floor")
        .await
        .map(drop)
}

/// `GET /raft/state`: this node's view of the cluster, as JSON, with the number of keys
/// its state machine holds.
async fn raft_state(state: web::Data<AppState>) -> HttpResponse {
    let m = state.raft.metrics().borrow().clone();
    HttpResponse::Ok().json(serde_json::json!({
        "id": state.id,
        "leader": m.current_leader,
        "term": m.current_term,
        "state": format!("{:?}", m.state),
        "last_log_index": m.last_log_index,
        "last_applied": m.last_applied.map(|l| l.index),
        "snapshot": m.snapshot.map(|l| l.index),
        "purged": m.purged.map(|l| l.index),
        "store": format!("{:?}", state.store).to_lowercase(),
        "keys": state.sm.key_count(),
        "running": m.running_state.is_ok(),
    }))
}

/// `GET /metrics`: openraft's basic figures (gauges set now) and every metric of the
/// process (actix-wal's among them) in Prometheus text.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = state.raft.metrics().borrow().clone();
    let index = |l: Option<u64>| l.map_or(-1.0, |i| i as f64);
    metrics::gauge!("raft_term").set(m.current_term as f64);
    metrics::gauge!("raft_last_log_index").set(index(m.last_log_index));
    metrics::gauge!("raft_last_applied_index").set(index(m.last_applied.map(|l| l.index)));
    metrics::gauge!("raft_snapshot_index").set(index(m.snapshot.map(|l| l.index)));
    metrics::gauge!("raft_purged_index").set(index(m.purged.map(|l| l.index)));
    metrics::gauge!("raft_current_leader").set(m.current_leader.map_or(-1.0, |id| id as f64));
    metrics::gauge!("raft_is_leader").set(if m.state == ServerState::Leader {
        1.0
    } else {
        0.0
    });
    let since_quorum = m.millis_since_quorum_ack.map_or(-1.0, |ms| ms as f64);
    metrics::gauge!("raft_millis_since_quorum_ack").set(since_quorum);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.prometheus.render())
}

/// `GET /health`: healthy while the Raft node runs and (with `--store wal`) the log is
/// healthy; 503 otherwise.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let raft_running = state.raft.metrics().borrow().running_state.is_ok();
    let (wal_healthy, wal) = match &state.wal {
        None => (true, serde_json::Value::Null),
        Some(wal) => match wal.health().await {
            Ok(h) => (h.healthy, serde_json::to_value(&h).unwrap_or_default()),
            Err(e) => (false, serde_json::Value::String(e.to_string())),
        },
    };
    let healthy = raft_running && wal_healthy;
    let body = serde_json::json!({ "healthy": healthy, "raft_running": raft_running, "wal": wal });
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
