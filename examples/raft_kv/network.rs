//! openraft's network over HTTP: the client side (`RaftNetworkFactory` on reqwest, whose
//! futures are `Send` as openraft's are) and the server side (`POST /raft/append`,
//! `/raft/vote`, `/raft/snapshot` on actix-web). Bodies are actix-wal's codec (bincode),
//! a request's and a `Result<response, RaftError>`'s alike.

use crate::api::AppState;
use crate::{NodeId, TypeConfig};
use actix_wal::format::codec;
use actix_web::{web, HttpResponse};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;

/// Largest RPC body accepted, bytes: `max_payload_entries` (64) entries of at most about
/// 256 KiB of writes each (see `batcher`), or one snapshot chunk (3 MiB by default).
pub const MAX_RPC_BYTES: usize = 32 << 20;
/// Connect timeout of an RPC; openraft's TTL bounds the whole call.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

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
}

impl Network {
    /// A network with a fresh connection pool.
    pub fn new() -> Network {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            // Fails only if the TLS backend or resolver cannot start; we build neither.
            .expect("an HTTP client without TLS always builds");
        Network { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        Connection {
            client: self.client.clone(),
            target,
            base: format!("http://{}/raft/", node.addr),
        }
    }
}

/// openraft's RPCs to one peer.
pub struct Connection {
    client: reqwest::Client,
    target: NodeId,
    /// `http://ADDR/raft/`.
    base: String,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Connection {
    /// POSTs `req` to `/raft/{path}` and decodes the peer's `Result`.
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize + DeserializeOwned,
        Resp: Serialize + DeserializeOwned,
        E: std::error::Error + Serialize + DeserializeOwned,
    {
        let network = |e: &(dyn std::error::Error + 'static)| {
            RPCError::Network(NetworkError::new(&AnyText(e.to_string())))
        };
        let body = codec::encode(req).map_err(|e| network(&e))?;
        let sent = self
            .client
            .post(format!("{}{path}", self.base))
            .timeout(option.hard_ttl())
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
        let bytes = reply.bytes().await.map_err(|e| network(&e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            return Err(network(&BadReply {
                status: status.as_u16(),
                text,
            }));
        }
        let decoded: Result<Resp, RaftError<NodeId, E>> =
            codec::decode(&bytes).map_err(|e| network(&e))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
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
        self.call("append", &req, &option).await
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call("snapshot", &req, &option).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call("vote", &req, &option).await
    }
}

/// The raft RPC routes, with their own body limit.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/raft")
            .app_data(web::PayloadConfig::new(MAX_RPC_BYTES))
            .route("/append", web::post().to(append))
            .route("/vote", web::post().to(vote))
            .route("/snapshot", web::post().to(snapshot)),
    );
}

/// Decodes the request, runs `handle` on it, encodes what it returns.
async fn serve<Req, Resp, F, Fut>(body: web::Bytes, handle: F) -> HttpResponse
where
    Req: DeserializeOwned,
    Resp: Serialize + DeserializeOwned,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Resp>,
{
    let req = match codec::decode::<Req>(&body) {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadRequest().body(format!("not a raft request: {e}\n")),
    };
    let reply = handle(req).await;
    match codec::encode(&reply) {
        Ok(bytes) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes),
        Err(e) => HttpResponse::InternalServerError().body(format!("encode the reply: {e}\n")),
    }
}

async fn append(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    serve(body, |req: AppendEntriesRequest<TypeConfig>| {
        state.raft.append_entries(req)
    })
    .await
}

async fn vote(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    serve(body, |req: VoteRequest<NodeId>| state.raft.vote(req)).await
}

async fn snapshot(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    serve(body, |req: InstallSnapshotRequest<TypeConfig>| {
        state.raft.install_snapshot(req)
    })
    .await
}
