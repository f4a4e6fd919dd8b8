//! Membership: the `/cluster` endpoints that add a learner, change the voters and remove
//! a node (openraft's `add_learner` and `change_membership`), and `--join`.
//!
//! Every change is authenticated as `/raft/*` RPCs are (`auth`: an HMAC under the
//! cluster's secret over the node addressed, the path, the time and the body, checked
//! before a byte of the body is decoded; 401 otherwise), and every answer to an
//! authenticated request is signed for it. A follower answers 307 to the leader (the
//! client signs again for it: `admin` does). `GET /cluster` is this node's view and is
//! not authenticated, like `/raft/state`.
//!
//! Addresses and incarnations live in the membership (`identity::Member`), in the log and
//! in snapshots: a node added later is reachable by every node, and `--peers` is needed
//! only for `--init`. The leader asks a new learner for its incarnation before it adds it
//! (one that does not answer yet is added with 0, "not known yet", and named later).

#[path = "members_rules.rs"]
mod rules;

use crate::admin::Admin;
use crate::api::AppState;
use crate::auth::{self, Secret, MAC_HEADER, TIME_HEADER};
use crate::identity::Member;
use crate::NodeId;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::metrics::WaitError;
use openraft::{Membership, RaftMetrics, ServerState};
use rules::{
    check_learner, check_removal, check_settled, check_voters, NewLearner, Refusal, VotersChange,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest `POST /cluster/learners` waits for the new learner to catch up before it
/// answers 504 (the learner stays: ask again, or remove it).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `--join` keeps trying (no leader yet, another change in progress).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(180);
/// Largest body of a membership request, bytes.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// The membership routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/cluster")
            .route("", web::get().to(show))
            .route("/learners", web::post().to(add_learner))
            .route("/voters", web::post().to(change_voters))
            .route("/nodes/{id}", web::delete().to(remove_node)),
    );
}

/// Answers to one authenticated request, each signed for it.
struct Signer<'a> {
    secret: &'a Secret,
    /// The request's MAC, which the reply's MAC covers.
    request_mac: String,
}

impl Signer<'_> {
    /// The answer with `builder`'s status and headers and the JSON `body`, its status and
    /// body signed for the request (headers are not: a redirect's leader is in the body).
    fn json(&self, mut builder: HttpResponseBuilder, body: serde_json::Value) -> HttpResponse {
        let bytes = body.to_string();
        let mut answer = builder.content_type("application/json").body(bytes.clone());
        let status = answer.status().as_u16();
        let mac = self
            .secret
            .sign_reply(&self.request_mac, status, bytes.as_bytes());
        match HeaderValue::from_str(&mac) {
            Ok(v) => {
                answer
                    .headers_mut()
                    .insert(HeaderName::from_static(MAC_HEADER), v);
                answer
            }
            // Hex digits always make a header value.
            Err(e) => HttpResponse::InternalServerError().body(format!("sign the answer: {e}\n")),
        }
    }

    fn refuse(&self, refusal: Refusal) -> HttpResponse {
        match refusal {
            Refusal::Bad(text) => self.json(
                HttpResponse::BadRequest(),
                serde_json::json!({ "error": text }),
            ),
            Refusal::NotFound(text) => self.json(
                HttpResponse::NotFound(),
                serde_json::json!({ "error": text }),
            ),
            Refusal::Conflict { text, retry } => self.json(
                HttpResponse::Conflict(),
                serde_json::json!({ "error": text, "retry": retry }),
            ),
        }
    }

    fn unavailable(&self, text: impl std::fmt::Display) -> HttpResponse {
        self.json(
            HttpResponse::ServiceUnavailable(),
            serde_json::json!({ "error": text.to_string() }),
        )
    }

    /// Not the leader: 307 to the leader's same path (`x-raft-leader`: its id), or 503
    /// `{"leader": id|null}` while its address is unknown.
    fn forward(
        &self,
        req: &HttpRequest,
        leader: Option<(NodeId, Option<&Member>)>,
    ) -> HttpResponse {
        match leader {
            Some((id, Some(node))) => {
                let mut builder = HttpResponse::TemporaryRedirect();
                builder
                    .insert_header(("location", format!("http://{}{}", node.addr, req.path())))
                    .insert_header(("x-raft-leader", id.to_string()));
                let body = serde_json::json!({ "leader": id, "addr": node.addr });
                self.json(builder, body)
            }
            other => self.json(
                HttpResponse::ServiceUnavailable(),
                serde_json::json!({ "leader": other.map(|(id, _)| id) }),
            ),
        }
    }

    /// The 307 (or 503) for a request that reached a follower whose metrics are `m`.
    fn forward_to(
        &self,
        req: &HttpRequest,
        leader: Option<NodeId>,
        m: &RaftMetrics<NodeId, Member>,
    ) -> HttpResponse {
        let membership = m.membership_config.membership();
        self.forward(req, leader.map(|id| (id, membership.get_node(&id))))
    }

    /// What a failed membership write answers.
    fn write_failed(
        &self,
        req: &HttpRequest,
        e: RaftError<NodeId, ClientWriteError<NodeId, Member>>,
    ) -> HttpResponse {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => {
                self.forward(req, to.leader_id.map(|id| (id, to.leader_node.as_ref())))
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                self.refuse(match e {
                    ChangeMembershipError::InProgress(_) => Refusal::Conflict {
                        text: e.to_string(),
                        retry: true,
                    },
                    _ => Refusal::Bad(e.to_string()),
                })
            }
            RaftError::Fatal(e) => self.unavailable(e),
        }
    }
}

/// Reads the body of a request to this node whose head is signed (`intake`: refused
/// before a byte of it otherwise) and checks the request's MAC for this node and its path;
/// the answer to send if either fails (401: not signed, nothing to sign it for).
async fn authenticate<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Signer<'a>, web::Bytes), HttpResponse> {
    let path = req.path();
    let signer = (&state.secret, state.id, path);
    let body = state
        .intake
        .signed_body(req, payload, signer, MAX_BODY_BYTES)
        .await?
        .bytes;
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let verified = state.secret.verify_request(
        state.id,
        path,
        header(TIME_HEADER),
        header(MAC_HEADER),
        &body,
        auth::now_ms(),
    );
    match verified {
        Ok(request_mac) => Ok((
            Signer {
                secret: &state.secret,
                request_mac,
            },
            body,
        )),
        Err(e) => Err(HttpResponse::Unauthorized().body(format!("{e}\n"))),
    }
}

/// This node's metrics, and `Some(leader)` (the one it knows of, if any) unless it is
/// the leader itself.
fn leader_here(state: &AppState) -> (RaftMetrics<NodeId, Member>, Option<Option<NodeId>>) {
    let m = state.raft.metrics().borrow().clone();
    let leads = m.state == ServerState::Leader && m.current_leader == Some(state.id);
    let elsewhere = (!leads).then_some(m.current_leader);
    (m, elsewhere)
}

/// The membership as JSON: voters, learners, every node's address and incarnation,
/// whether a change is half done (joint), the log index of its entry.
fn view(
    id: NodeId,
    leader: Option<NodeId>,
    log_index: Option<u64>,
    m: &Membership<NodeId, Member>,
) -> serde_json::Value {
    let nodes: BTreeMap<String, String> = m
        .nodes()
        .map(|(id, n)| (id.to_string(), n.addr.clone()))
        .collect();
    // Hex; "0" while not known yet (`identity`).
    let incarnations: BTreeMap<String, String> = m
        .nodes()
        .map(|(id, n)| (id.to_string(), format!("{:x}", n.incarnation)))
        .collect();
    serde_json::json!({
        "id": id,
        "leader": leader,
        "log_index": log_index,
        "joint": m.get_joint_config().len() > 1,
        "voters": m.voter_ids().collect::<Vec<_>>(),
        "learners": m.learner_ids().collect::<Vec<_>>(),
        "nodes": nodes,
        "incarnations": incarnations,
    })
}

/// `GET /cluster`: this node's view of the membership (not authenticated).
async fn show(state: web::Data<AppState>) -> HttpResponse {
    let m = state.raft.metrics().borrow().clone();
    let stored = &m.membership_config;
    let index = stored.log_id().map(|l| l.index);
    HttpResponse::Ok().json(view(state.id, m.current_leader, index, stored.membership()))
}

/// `POST /cluster/learners` `{"id": N, "addr": "IP:PORT"}`: adds the node as a learner
/// and answers once it has caught up (replicated up to the entry that added it); 504 if
/// it has not within [`CATCH_UP_TIMEOUT`].
async fn add_learner(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (signer, body) = match authenticate(&state, &req, payload).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let learner: NewLearner = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(e) => return signer.refuse(Refusal::Bad(format!("not {{\"id\", \"addr\"}}: {e}"))),
    };
    let (m, elsewhere) = leader_here(&state);
    if let Some(leader) = elsewhere {
        return signer.forward_to(&req, leader, &m);
    }
    let membership = m.membership_config.membership();
    let present = match check_learner(membership, &learner) {
        Ok(present) => present,
        Err(refusal) => return signer.refuse(refusal),
    };
    // Already a member at this address: nothing to write, only the catch-up to wait for.
    let entry_index = if present {
        m.membership_config.log_id().map_or(0, |l| l.index)
    } else {
        if let Err(refusal) = check_settled(membership) {
            return signer.refuse(refusal);
        }
        // Not answering yet (started after this request): added as "not known yet", and
        // named once it answers (`startup::name_the_unnamed`).
        let incarnation = match state.network.identity_of(learner.id, &learner.addr).await {
            Ok(them) => them.incarnation,
            Err(_) => 0,
        };
        let node = Member {
            addr: learner.addr.clone(),
            incarnation,
        };
        match state.raft.add_learner(learner.id, node, false).await {
            Ok(resp) => resp.log_id.index,
            Err(e) => return signer.write_failed(&req, e),
        }
    };
    let waited = state
        .raft
        .wait(Some(CATCH_UP_TIMEOUT))
        .metrics(
            |m| caught_up(m, learner.id, entry_index) != CatchUp::Waiting,
            "the new learner caught up",
        )
        .await;
    match waited.map(|m| caught_up(&m, learner.id, entry_index)) {
        Ok(CatchUp::Done { matched }) => signer.json(
            HttpResponse::Ok(),
            serde_json::json!({ "id": learner.id, "addr": learner.addr, "matched": matched, "entry": entry_index }),
        ),
        Ok(CatchUp::NotLeader) => {
            signer.unavailable("this node stopped leading before the learner caught up: ask again")
        }
        Ok(CatchUp::Removed | CatchUp::Waiting) => signer.refuse(Refusal::Conflict {
            text: format!("node {} was removed before it caught up", learner.id),
            retry: false,
        }),
        Err(WaitError::Timeout(..)) => signer.json(
            HttpResponse::GatewayTimeout(),
            serde_json::json!({ "error": format!("node {} added as a learner, not caught up within {CATCH_UP_TIMEOUT:?}: ask again, or remove it", learner.id) }),
        ),
        Err(e) => signer.unavailable(e),
    }
}

/// Where a learner's catch-up stands, as the leader's metrics say.
#[derive(Debug, PartialEq, Eq)]
enum CatchUp {
    /// Not yet.
    Waiting,
    /// It holds the log up to `matched`, at or past the entry that added it.
    Done { matched: u64 },
    /// This node does not lead any more (no replication metrics).
    NotLeader,
    /// The node is not a member any more.
    Removed,
}

fn caught_up(m: &RaftMetrics<NodeId, Member>, id: NodeId, entry_index: u64) -> CatchUp {
    let Some(replication) = &m.replication else {
        return CatchUp::NotLeader;
    };
    let membership_index = m.membership_config.log_id().map_or(0, |l| l.index);
    if membership_index >= entry_index && m.membership_config.membership().get_node(&id).is_none() {
        return CatchUp::Removed;
    }
    match replication
        .get(&id)
        .and_then(|l| l.as_ref())
        .map(|l| l.index)
    {
        Some(matched) if matched >= entry_index => CatchUp::Done { matched },
        _ => CatchUp::Waiting,
    }
}

/// `POST /cluster/voters` `{"voters": [ids]}`, `{"add": [ids]}` or `{"remove": [ids]}`:
/// answers once the new configuration is committed (both steps of openraft's joint
/// change). Voters no longer voting stay as learners.
async fn change_voters(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (signer, body) = match authenticate(&state, &req, payload).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let change: VotersChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return signer.refuse(Refusal::Bad(format!("not a voters change: {e}"))),
    };
    let (m, elsewhere) = leader_here(&state);
    if let Some(leader) = elsewhere {
        return signer.forward_to(&req, leader, &m);
    }
    let stored = &m.membership_config;
    let change = match check_voters(stored.membership(), change) {
        Ok(Some(c)) => c,
        // The voters are already those asked for: nothing to write.
        Ok(None) => {
            let index = stored.log_id().map_or(0, |l| l.index);
            return changed(&state, &signer, index, Some(stored.membership()));
        }
        Err(refusal) => return signer.refuse(refusal),
    };
    match state.raft.change_membership(change, true).await {
        Ok(resp) => changed(&state, &signer, resp.log_id.index, resp.membership.as_ref()),
        Err(e) => signer.write_failed(&req, e),
    }
}

/// 200 with the membership a change committed.
fn changed(
    state: &AppState,
    signer: &Signer<'_>,
    index: u64,
    membership: Option<&Membership<NodeId, Member>>,
) -> HttpResponse {
    let leader = state.raft.metrics().borrow().current_leader;
    let body = match membership {
        Some(m) => view(state.id, leader, Some(index), m),
        None => serde_json::json!({ "log_index": index }),
    };
    signer.json(HttpResponse::Ok(), body)
}

/// `DELETE /cluster/nodes/{id}`: removes the node from the cluster (a voter leaves the
/// voters and the nodes in one joint change); once this answers, stop the node. The
/// leader may remove itself: it steps down once the change is committed.
async fn remove_node(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<NodeId>,
    payload: web::Payload,
) -> HttpResponse {
    let (signer, _body) = match authenticate(&state, &req, payload).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let id = id.into_inner();
    let (m, elsewhere) = leader_here(&state);
    if let Some(leader) = elsewhere {
        return signer.forward_to(&req, leader, &m);
    }
    let membership = m.membership_config.membership();
    let change = match check_removal(membership, id) {
        Ok(c) => c,
        Err(refusal) => return signer.refuse(refusal),
    };
    match state.raft.change_membership(change, false).await {
        Ok(resp) => changed(&state, &signer, resp.log_id.index, resp.membership.as_ref()),
        Err(e) => signer.write_failed(&req, e),
    }
}

/// `--join AT`: once this node serves, asks the cluster at `AT` to add it as a learner
/// and then as a voter ([`Admin::join`]; `fresh`: this node's log was empty at start).
/// Run as a `startup::Task`.
pub async fn join(
    secret: Secret,
    at: SocketAddr,
    (id, addr): (NodeId, SocketAddr),
    fresh: bool,
) -> Result<String, String> {
    Admin::new(secret)
        .join(at, id, addr, fresh, JOIN_TIMEOUT)
        .await
        .map(|()| format!("joined the cluster at {at} as voter {id}"))
        .map_err(|e| format!("join {at}: {e}"))
}
