//! openraft's network over HTTP: the client side (`RaftNetworkFactory` on reqwest, whose
//! futures are `Send` as openraft's are) and the server side (`POST /raft/append`,
//! `/raft/vote`, `/raft/snapshot`, `/raft/prevote` of `prevote` and `/raft/identity` of
//! `identity`, on actix-web). Bodies are actix-wal's codec (bincode), a request's and a
//! `Result<response, RaftError>`'s alike.
//!
//! Every request is signed with the cluster's secret and so is every reply (`auth`): a
//! node answers 401 to a request whose MAC does not verify before it decodes the body,
//! 400 to one carrying a term or index no real cluster reaches (`bounds`), and 409 to one
//! for or from another life of a node than the membership names (`identity`); a client
//! drops a reply that is not signed for its request, or that carries such a term.

use crate::api::AppState;
use crate::append_budget::AppendBudget;
use crate::auth::{self, Secret, HEAD_MAC_HEADER, MAC_HEADER, NONCE_HEADER, TIME_HEADER};
use crate::bounds::Plausible;
use crate::identity::{Identity, Member, IDENTITY_HEADER};
use crate::intake::SMALL_BODY_BYTES;
use crate::prevote::PreVote;
use crate::snapshot_send::{self, ChunkDeadlines};
use crate::{NodeId, TypeConfig};
use actix_wal::format::codec;
use actix_web::{web, HttpRequest, HttpResponse};
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{Snapshot, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest RPC body accepted, bytes: `max_payload_entries` (64) entries of at most about
/// 256 KiB of writes each (see `batcher`), or one snapshot chunk (3 MiB by default).
pub const MAX_RPC_BYTES: usize = 32 << 20;
/// Connect timeout of an RPC; openraft's TTL bounds the whole call.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest any RPC but a snapshot chunk may take, whatever openraft's TTL for it: the
/// client's own deadline. Each call also gets openraft's `hard_ttl` (the heartbeat
/// interval for an append, the shortest election timeout for a vote); a snapshot chunk
/// gets `snapshot_send`'s deadline, up to `snapshot_send::MAX_CHUNK_DEADLINE`.
const MAX_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest deadline an RPC to `path` may have: a snapshot chunk's grows with the
/// snapshot (the last one waits for the install, `snapshot_send`), any other's is capped.
fn max_ttl(path: &str) -> Duration {
    if path == "/raft/snapshot" {
        snapshot_send::MAX_CHUNK_DEADLINE
    } else {
        MAX_RPC_TIMEOUT
    }
}

/// A peer answered with something other than an encoded reply.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {text}")]
struct BadReply {
    status: u16,
    text: String,
}

/// Makes connections to peers. One HTTP client (one connection pool) for all of them.
#[derive(Clone)]
pub struct Network {
    client: reqwest::Client,
    /// Signs requests and checks replies.
    secret: Secret,
    /// `--peer-via`: peers reached at another address than their membership's (a
    /// test's proxy); at most `MAX_PEERS` entries, as parsed.
    via: Arc<BTreeMap<NodeId, SocketAddr>>,
    /// This node, as every request names it.
    me: Identity,
    /// How long each snapshot chunk may take (`snapshot_send`).
    snapshot_deadlines: ChunkDeadlines,
}

impl Network {
    /// A network with a fresh connection pool for the node `me`, signing with `secret`,
    /// sending to the peers in `via` at the address given there.
    pub fn new(
        me: Identity,
        secret: Secret,
        via: BTreeMap<NodeId, SocketAddr>,
        snapshot_deadlines: ChunkDeadlines,
    ) -> Network {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(MAX_RPC_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            // Fails only if the TLS backend or resolver cannot start; we build neither.
            .expect("an HTTP client without TLS always builds");
        Network {
            client,
            secret,
            via: Arc::new(via),
            me,
            snapshot_deadlines,
        }
    }

    /// The identity of the node `id` that listens at `addr` (`POST /raft/identity`):
    /// what a membership names it by. An error if it cannot be reached, or if another
    /// node answers there.
    pub async fn identity_of(&self, id: NodeId, addr: &str) -> Result<Identity, String> {
        let unknown = Member {
            addr: addr.to_owned(),
            incarnation: 0,
        };
        let conn = self.connect(id, &unknown);
        let option = RPCOption::new(CONNECT_TIMEOUT * 4);
        let reply: RpcResult<Identity, openraft::error::Infallible> =
            conn.call("/raft/identity", &(), &option).await;
        match reply {
            Ok(them) if them.id == id => Ok(them),
            Ok(them) => Err(format!("node {} answers at {addr}, not node {id}", them.id)),
            Err(e) => Err(format!("node {id} at {addr}: {e}")),
        }
    }

    fn connect(&self, target: NodeId, node: &Member) -> Connection {
        Connection {
            client: self.client.clone(),
            target,
            base: match self.via.get(&target) {
                Some(addr) => format!("http://{addr}"),
                None => format!("http://{}", node.addr),
            },
            secret: self.secret.clone(),
            identity: self.me.header_to(node.incarnation),
            append_budget: AppendBudget::new(MAX_RPC_BYTES),
            snapshot_deadlines: self.snapshot_deadlines,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Connection {
        self.connect(target, node)
    }
}

/// openraft's RPCs to one peer.
pub struct Connection {
    client: reqwest::Client,
    target: NodeId,
    /// `http://ADDR`.
    base: String,
    /// Signs requests and checks replies.
    secret: Secret,
    /// The identity header of every request: this node, and the peer's incarnation.
    identity: String,
    /// The bytes an append to this peer may carry (`append_budget`): an append that
    /// could not be answered within its deadline is sent as several.
    append_budget: AppendBudget,
    /// How long each snapshot chunk may take (`snapshot_send`).
    snapshot_deadlines: ChunkDeadlines,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

impl Connection {
    /// POSTs `req` to `path`, signed, and decodes the peer's `Result` once its MAC
    /// verifies and its terms are plausible. (`prevote` sends its RPC through it too.)
    pub(crate) async fn call<Req, Resp, E>(
        &self,
        path: &'static str,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize + DeserializeOwned,
        Resp: Serialize + DeserializeOwned + Plausible,
        E: std::error::Error + Serialize + DeserializeOwned,
    {
        let body = codec::encode(req).map_err(|e| network_error(&e))?;
        self.send(path, body, option).await
    }

    /// POSTs the encoded request `body` to `path`, as [`Self::call`] does.
    async fn send<Resp, E>(
        &self,
        path: &'static str,
        body: Vec<u8>,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Resp: Serialize + DeserializeOwned + Plausible,
        E: std::error::Error + Serialize + DeserializeOwned,
    {
        let network = network_error::<E>;
        let time_ms = auth::now_ms();
        let mac = self
            .secret
            .sign_request_from(self.target, path, time_ms, &self.identity, &body);
        let head = auth::Head {
            time_ms,
            identity: &self.identity,
            body_bytes: body.len() as u64,
            request_mac: &mac,
            nonce: auth::next_nonce(),
        };
        let nonce = head.nonce;
        let head_mac = self.secret.sign_head(self.target, path, head);
        let sent = self
            .client
            .post(format!("{}{path}", self.base))
            .timeout(option.hard_ttl().min(max_ttl(path)))
            .header(TIME_HEADER, time_ms.to_string())
            .header(MAC_HEADER, &mac)
            .header(HEAD_MAC_HEADER, head_mac)
            .header(NONCE_HEADER, nonce.to_string())
            .header(IDENTITY_HEADER, &self.identity)
            .body(body)
            .send()
            .await;
        let reply = match sent {
            Ok(r) => r,
            // Unreachable: openraft backs off before trying this peer again.
            Err(e) if e.is_connect() => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => return Err(network(&e)),
        };
        let status = reply.status();
        let reply_mac = reply
            .headers()
            .get(MAC_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = reply.bytes().await.map_err(|e| network(&e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            return Err(network(&BadReply {
                status: status.as_u16(),
                text,
            }));
        }
        // Whoever answers on the peer's port must know the secret (a process that took the
        // port of a node that is down does not).
        self.secret
            .verify_reply(&mac, (status.as_u16(), reply_mac.as_deref()), &bytes)
            .map_err(|e| network(&e))?;
        let decoded: Result<Resp, RaftError<NodeId, E>> =
            codec::decode(&bytes).map_err(|e| network(&e))?;
        if let Ok(resp) = &decoded {
            resp.check().map_err(|e| network(&e))?;
        }
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A transport error, for openraft.
fn network_error<E: std::error::Error>(
    e: &(dyn std::error::Error + 'static),
) -> RPCError<NodeId, Member, RaftError<NodeId, E>> {
    RPCError::Network(NetworkError::new(&AnyText(e.to_string())))
}

/// An error known only by its text (reqwest's and the codec's errors, boxed for openraft).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AnyText(String);

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let entries = req.entries.len();
        let body = codec::encode(&req).map_err(|e| network_error(&e))?;
        if let Some(hint) = self.append_budget.entries_hint(entries, body.len()) {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(hint),
            ));
        }
        let watch = self.append_budget.watch(body.len(), option.hard_ttl());
        let answer = self.send("/raft/append", body, &option).await;
        watch.finished(answer.is_ok());
        answer
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call("/raft/snapshot", &req, &option).await
    }

    /// The whole snapshot, in chunks whose deadlines fit what each must do
    /// (`snapshot_send`), in place of openraft's sender.
    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let deadlines = self.snapshot_deadlines;
        snapshot_send::send(self, deadlines, (vote, snapshot), cancel, option).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call("/raft/vote", &req, &option).await
    }
}

/// The raft RPC routes (their bodies are read by `intake`, each within its route's limit).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/raft")
            .route("/append", web::post().to(append))
            .route("/vote", web::post().to(vote))
            .route("/prevote", web::post().to(prevote))
            .route("/snapshot", web::post().to(snapshot))
            .route("/identity", web::post().to(identity)),
    );
}

/// Reads the body of a request whose head is signed (`intake`: 401 before a byte of it
/// otherwise, 413 past `max_bytes`, 408 if it does not arrive in time, 503 when the bodies
/// in flight fill the budget), checks the request's MAC (401 if it does not verify:
/// nothing is decoded), decodes it, checks its terms and indexes (400 if implausible)
/// and, but for `/raft/identity`, that it is for this node's incarnation and from the
/// sender's that the membership names (409), runs `handle` on it, and answers what it
/// returns, encoded and signed for it.
async fn serve<Req, Resp, F, Fut>(
    state: &AppState,
    http: &HttpRequest,
    (path, max_bytes): (&'static str, usize),
    payload: web::Payload,
    handle: F,
) -> HttpResponse
where
    Req: DeserializeOwned + Plausible,
    Resp: Serialize + DeserializeOwned,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Resp>,
{
    let signer = (&state.secret, state.id, path);
    let body = match state
        .intake
        .signed_body(http, payload, signer, max_bytes)
        .await
    {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let body = &body.bytes;
    let header = |name| http.headers().get(name).and_then(|v| v.to_str().ok());
    let identity = header(IDENTITY_HEADER);
    let verified = state.secret.verify_request_from(
        state.id,
        path,
        (header(TIME_HEADER), header(MAC_HEADER), identity),
        body,
        auth::now_ms(),
    );
    let request_mac = match verified {
        Ok(mac) => mac,
        Err(e) => return HttpResponse::Unauthorized().body(format!("{e}\n")),
    };
    let req = match codec::decode::<Req>(body) {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadRequest().body(format!("not a raft request: {e}\n")),
    };
    if let Err(e) = req.check() {
        return HttpResponse::BadRequest().body(format!("refused: {e}\n"));
    }
    if path != "/raft/identity" {
        let metrics = state.raft.metrics();
        let checked = state
            .me
            .check(identity, metrics.borrow().membership_config.membership());
        if let Err(e) = checked {
            return HttpResponse::Conflict().body(format!("refused: {e}\n"));
        }
    }
    let reply = handle(req).await;
    match codec::encode(&reply) {
        Ok(bytes) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header((
                MAC_HEADER,
                state.secret.sign_reply(&request_mac, 200, &bytes),
            ))
            .body(bytes),
        Err(e) => HttpResponse::InternalServerError().body(format!("encode the reply: {e}\n")),
    }
}

async fn append(state: web::Data<AppState>, http: HttpRequest, body: web::Payload) -> HttpResponse {
    serve(
        &state,
        &http,
        ("/raft/append", MAX_RPC_BYTES),
        body,
        |req: AppendEntriesRequest<TypeConfig>| async {
            let answer = state.raft.append_entries(req).await;
            // Accepted (not refused for a higher vote): a leader is alive for this node.
            if matches!(&answer, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
                state.elections.leader_seen();
            }
            answer
        },
    )
    .await
}

/// `POST /raft/prevote`: would this node vote for the sender now (`prevote`)? A node
/// whose Raft core stopped answers the error that stopped it, as `/raft/vote` does.
async fn prevote(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let st = &state;
    let path = ("/raft/prevote", SMALL_BODY_BYTES);
    serve(&state, &http, path, body, |req: PreVote| async move {
        st.elections
            .answer(&st.raft, &req)
            .map_err(|fatal| RaftError::<NodeId>::Fatal(*fatal))
    })
    .await
}

async fn vote(state: web::Data<AppState>, http: HttpRequest, body: web::Payload) -> HttpResponse {
    serve(
        &state,
        &http,
        ("/raft/vote", SMALL_BODY_BYTES),
        body,
        |req: VoteRequest<NodeId>| state.raft.vote(req),
    )
    .await
}

async fn snapshot(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    serve(
        &state,
        &http,
        ("/raft/snapshot", MAX_RPC_BYTES),
        body,
        |req: InstallSnapshotRequest<TypeConfig>| async {
            let sender = req.vote;
            let answer = state.raft.install_snapshot(req).await;
            // Accepted (the sender's vote at least this node's): a leader is alive for
            // this node, as with an append; the last chunk answers after the install.
            if matches!(&answer, Ok(r) if r.vote <= sender) {
                state.elections.leader_seen();
            }
            answer
        },
    )
    .await
}

/// `POST /raft/identity`: this node's id and incarnation (`identity`).
async fn identity(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let me = state.me;
    let path = ("/raft/identity", SMALL_BODY_BYTES);
    serve(&state, &http, path, body, |()| async move {
        Ok::<_, RaftError<NodeId>>(me)
    })
    .await
}
