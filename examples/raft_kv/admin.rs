//! The client side of the membership endpoints (`/cluster/*`, served by `members`):
//! requests signed with the cluster's secret, as `/raft/*` RPCs are, redirects to the
//! leader followed (signed again for it), replies checked. `--join` uses it; so do the
//! tests (tests/raft_membership.rs and raft_membership_auth.rs include this file with
//! `auth.rs`): no types of the example here.
//!
//! A request's MAC names the node it is addressed to (`auth`), so the client first asks
//! the node at the address for its id (`GET /raft/state`, unauthenticated); a 307's
//! signed body names the leader's id and address (its `Location` and `x-raft-leader`
//! headers say the same for other clients, but no MAC covers headers). Whatever answers there learns no more
//! than the request it is sent: a request is valid only at the node it names and only
//! as the operator wrote it. An answer counts only if it is signed for the request: an
//! unsigned one (a node's 401 to another secret, or a stand-in's lie) is an error that
//! says the outcome is not known.
#![allow(dead_code)]

use crate::auth::{self, Secret, HEAD_MAC_HEADER, MAC_HEADER, NONCE_HEADER, TIME_HEADER};
use reqwest::{Method, StatusCode};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Redirects followed at most (a leader changing under the request more often than this
/// is an error; the caller may retry).
const MAX_HOPS: usize = 4;
/// Longest one membership request may take, whatever it waits for: the server's own
/// limit on a learner's catch-up (`members::CATCH_UP_TIMEOUT`) and some.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(75);
/// Longest wait to learn a node's id.
const STATE_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between two tries of `--join`.
const JOIN_RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Why a membership request got no answer to act on.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The node could not be reached, or did not answer in time.
    #[error("{at}: {source}")]
    Http {
        /// Where.
        at: SocketAddr,
        /// What reqwest said.
        source: reqwest::Error,
    },
    /// `GET /cluster` answered a status other than 200 (a stopped node's 503, a 403 for a
    /// `Host` not allowed): its answer is not the cluster's view.
    #[error("{at}: GET /cluster answered {status}: {body}")]
    Status {
        /// Where.
        at: SocketAddr,
        /// The HTTP status it answered.
        status: StatusCode,
        /// Its body, as text (at most the first 1 KiB).
        body: String,
    },
    /// `/raft/state` did not say which node answers there.
    #[error("{0}: no node id in /raft/state")]
    NoId(SocketAddr),
    /// A signed 307 whose body names no leader (`{"leader": id, "addr": "IP:PORT"}`).
    #[error("{0}: a redirect that names no leader")]
    BadRedirect(SocketAddr),
    /// More redirects than [`MAX_HOPS`].
    #[error("more than {MAX_HOPS} redirects: the leader keeps changing")]
    TooManyHops,
    /// The reply is not signed for this request with the cluster's secret: it is not
    /// known to come from a node of the cluster, nor, if something there relayed the
    /// request, that the request was not applied. A node answers 401 unsigned when the
    /// request's MAC does not verify (another secret, a clock more than 30 s off).
    #[error(
        "{at} answered {status} not signed with the cluster's secret ({source}): either the \
         node refused this request's signature (another secret file, or a clock more than \
         30 s off) or something else answers there, in which case the request may have been \
         applied (`show` tells)"
    )]
    Unsigned {
        /// Where.
        at: SocketAddr,
        /// The HTTP status it answered.
        status: StatusCode,
        /// Why it did not verify.
        source: auth::AuthError,
    },
}

/// An answer: its status, and its body (JSON, or `{"text": ...}` if it is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: serde_json::Value,
}

/// Signs and sends membership requests.
#[derive(Clone)]
pub struct Admin {
    http: reqwest::Client,
    secret: Secret,
}

impl Admin {
    /// A client signing with `secret` (redirects are followed by hand: each hop is signed
    /// for the node it goes to).
    pub fn new(secret: Secret) -> Admin {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            // Fails only if the TLS backend or resolver cannot start; we build neither.
            .expect("an HTTP client without TLS always builds");
        Admin { http, secret }
    }

    /// The id of the node answering at `at`.
    async fn node_id(&self, at: SocketAddr) -> Result<u64, AdminError> {
        let http = |source| AdminError::Http { at, source };
        let state: serde_json::Value = self
            .http
            .get(format!("http://{at}/raft/state"))
            .timeout(STATE_TIMEOUT)
            .send()
            .await
            .map_err(http)?
            .json()
            .await
            .map_err(http)?;
        state["id"].as_u64().ok_or(AdminError::NoId(at))
    }

    /// `method path` with `body` to the node at `at`, signed; 307s followed to the leader.
    pub async fn send(
        &self,
        at: SocketAddr,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Reply, AdminError> {
        let mut at = at;
        let mut id = None;
        for _hop in 0..=MAX_HOPS {
            let to = match id {
                Some(id) => id,
                None => self.node_id(at).await?,
            };
            let http = |source| AdminError::Http { at, source };
            let time_ms = auth::now_ms();
            let mac = self.secret.sign_request(to, path, time_ms, body);
            let head = auth::Head {
                time_ms,
                identity: "",
                body_bytes: body.len() as u64,
                request_mac: &mac,
                nonce: auth::next_nonce(),
            };
            let nonce = head.nonce;
            let head_mac = self.secret.sign_head(to, path, head);
            let reply = self
                .http
                .request(method.clone(), format!("http://{at}{path}"))
                .header(TIME_HEADER, time_ms.to_string())
                .header(MAC_HEADER, &mac)
                .header(HEAD_MAC_HEADER, head_mac)
                .header(NONCE_HEADER, nonce.to_string())
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .map_err(http)?;
            let status = reply.status();
            let reply_mac = reply
                .headers()
                .get(MAC_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = reply.bytes().await.map_err(http)?;
            // Every answer, a 401 too: an unsigned one is not the node's word. The MAC
            // covers the status and the body, not the headers: a redirect's leader and
            // address are read from its body.
            self.secret
                .verify_reply(&mac, (status.as_u16(), reply_mac.as_deref()), &bytes)
                .map_err(|source| AdminError::Unsigned { at, status, source })?;
            if status == StatusCode::TEMPORARY_REDIRECT {
                let signed: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let next = signed["addr"].as_str().and_then(|a| a.parse().ok());
                let leader = signed["leader"].as_u64();
                match (next, leader) {
                    (Some(next), Some(leader)) => {
                        (at, id) = (next, Some(leader));
                        continue;
                    }
                    _ => return Err(AdminError::BadRedirect(at)),
                }
            }
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::json!({ "text": String::from_utf8_lossy(&bytes) }));
            return Ok(Reply { status, body });
        }
        Err(AdminError::TooManyHops)
    }

    /// `GET /cluster` at `at` (unauthenticated: that node's view of the membership); an
    /// answer other than 200 is [`AdminError::Status`].
    pub async fn cluster(&self, at: SocketAddr) -> Result<serde_json::Value, AdminError> {
        let http = |source| AdminError::Http { at, source };
        let reply = self
            .http
            .get(format!("http://{at}/cluster"))
            .timeout(STATE_TIMEOUT)
            .send()
            .await
            .map_err(http)?;
        let status = reply.status();
        if status != StatusCode::OK {
            let text = reply.text().await.unwrap_or_default();
            let body = text.chars().take(1024).collect();
            return Err(AdminError::Status { at, status, body });
        }
        reply.json().await.map_err(http)
    }

    /// `--join`: asks the cluster that the node at `at` belongs to to add node `id` (at
    /// `addr`) as a learner, which it answers once the learner has caught up, then to make
    /// it a voter. Retries what may pass (no leader yet, another change in progress, a
    /// node unreachable) until `timeout`; gives up at once on a refusal (400, 409 for an
    /// id or address taken) and on an answer not signed (a 401 to another secret).
    ///
    /// `fresh`: this node's log was empty when it started. Such a node whose id is already
    /// a member lost its directory (or crashed before it had anything): it forgot its
    /// vote, and must not come back under that id. Refused before anything is asked.
    pub async fn join(
        &self,
        at: SocketAddr,
        id: u64,
        addr: SocketAddr,
        fresh: bool,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        if fresh {
            let view = loop {
                match self.cluster(at).await {
                    Ok(view) => break view,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("GET /cluster: {e}"));
                    }
                    Err(_) => tokio::time::sleep(JOIN_RETRY_PAUSE).await,
                }
            };
            if let Some(was) = view["nodes"][id.to_string()].as_str() {
                return Err(format!(
                    "node {id} is already a member (at {was}) and this node's log is empty: \
                     it lost its directory, or never finished joining; remove node {id} and \
                     join under a new id"
                ));
            }
        }
        let learner = serde_json::json!({ "id": id, "addr": addr.to_string() }).to_string();
        let voter = serde_json::json!({ "add": [id] }).to_string();
        for (path, body) in [("/cluster/learners", learner), ("/cluster/voters", voter)] {
            loop {
                let last = match self.send(at, Method::POST, path, body.as_bytes()).await {
                    Ok(r) if r.status == StatusCode::OK => break,
                    Ok(r) if !retryable(&r) => {
                        return Err(format!("POST {path}: {} {}", r.status, r.body))
                    }
                    Ok(r) => format!("{} {}", r.status, r.body),
                    // A node's refusal of the signature (another secret), or not a node:
                    // asking again does not help either.
                    Err(e @ AdminError::Unsigned { .. }) => {
                        return Err(format!("POST {path}: {e}"))
                    }
                    Err(e) => e.to_string(),
                };
                if Instant::now() >= deadline {
                    return Err(format!("POST {path}: not done within {timeout:?}: {last}"));
                }
                tokio::time::sleep(JOIN_RETRY_PAUSE).await;
            }
        }
        Ok(())
    }
}

/// Whether a refusal may pass by itself: no leader known (503), the learner not caught
/// up yet (504), or another membership change in progress (409 with `"retry": true`).
fn retryable(r: &Reply) -> bool {
    match r.status {
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => true,
        StatusCode::CONFLICT => r.body["retry"].as_bool() == Some(true),
        _ => false,
    }
}
