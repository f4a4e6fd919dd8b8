//! Request bodies in, before any handler sees them: each read whole within a deadline
//! (`--body-timeout-ms`; 408 and the connection closed otherwise), no longer than its
//! route allows (413), and, for `/raft/*` and `/cluster/*`, only after the request's head
//! is signed with the cluster's secret (`auth::Secret::verify_head`; 401 otherwise), is
//! the first of its copies (`replays`; 401 otherwise), and has its declared length
//! reserved from the byte budget of RPC bodies in flight (503 when it is spent).
//!
//! actix-web bounds the wait for a connection's first head (`client_request_timeout`,
//! 5 s), not for a body, and its `Bytes` extractor reads the body whole before a handler can check
//! a MAC over it: a stranger could hold bodies of 32 MiB for as long as it liked, or make
//! a node read and hash them. Bodies of at most [`SMALL_BODY_BYTES`] (votes, heartbeats,
//! membership requests, every client value) are not counted against the budget: a leader's
//! heartbeat is never refused for want of room, and their memory is bounded by the
//! connection cap (`--max-connections`) times that size and actix's buffers (about 145 KB
//! a held client PUT, measured). Heads, and the rest of a body a handler left unread,
//! have their own deadline (`heads`); docs/replication.md, "Denial of service", says
//! what is left.

use crate::auth::{
    self, HeadHeaders, Secret, HEAD_MAC_HEADER, MAC_HEADER, NONCE_HEADER, TIME_HEADER,
};
use crate::identity::IDENTITY_HEADER;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[path = "replays.rs"]
mod replays;

/// Bodies up to this size are not counted against the budget (see the module's doc).
pub const SMALL_BODY_BYTES: usize = 64 * 1024;
/// `--body-timeout-ms` by default: as long as an RPC may take (`network`'s client gives
/// up after 10 s).
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;
/// `--max-rpc-bytes-in-flight` by default: four RPC bodies of the largest size.
pub const DEFAULT_RPC_BYTES_IN_FLIGHT: usize = 128 << 20;

/// The body deadline and the budget of RPC bodies in flight, shared by the HTTP workers.
#[derive(Clone)]
pub struct Intake {
    /// See the module's doc.
    body_timeout: Duration,
    /// Permits are bytes of signed bodies larger than [`SMALL_BODY_BYTES`] being read or
    /// handled.
    rpc_bytes: Arc<Semaphore>,
    /// Heads taken within the clock window: a copy is refused (`replays`).
    seen: Arc<replays::Seen>,
}

/// A body read whole; the room it holds in the budget is given back when it is dropped
/// (after the handler has answered).
pub struct Body {
    /// The body.
    pub bytes: web::Bytes,
    _room: Option<OwnedSemaphorePermit>,
}

impl Intake {
    /// Bodies must arrive within `body_timeout_ms`; at most `rpc_bytes_in_flight` bytes
    /// of signed bodies larger than [`SMALL_BODY_BYTES`] are read or handled at once.
    pub fn new(body_timeout_ms: u64, rpc_bytes_in_flight: usize) -> Intake {
        Intake {
            body_timeout: Duration::from_millis(body_timeout_ms.max(1)),
            rpc_bytes: Arc::new(Semaphore::new(
                rpc_bytes_in_flight.min(Semaphore::MAX_PERMITS),
            )),
            seen: Arc::default(),
        }
    }

    /// The body of a client request (not authenticated), at most `max_bytes`.
    pub async fn client_body(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        max_bytes: usize,
    ) -> Result<Body, HttpResponse> {
        let declared = declared_bytes(req).map_err(MalformedLength::answer)?;
        if declared.is_some_and(|n| n > max_bytes) {
            return Err(too_large(max_bytes));
        }
        let bytes = self.read(payload, declared, max_bytes).await?;
        Ok(Body { bytes, _room: None })
    }

    /// The body of a request to node `to` at `path` signed with `secret`: its head is
    /// checked first (it must declare its length, at most `max_bytes`), then room for it
    /// is taken from the budget, then it is read. The caller still checks the request's
    /// MAC over the body.
    pub async fn signed_body(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        (secret, to, path): (&Secret, u64, &str),
        max_bytes: usize,
    ) -> Result<Body, HttpResponse> {
        let Some(declared) = declared_bytes(req).map_err(MalformedLength::answer)? else {
            return Err(HttpResponse::LengthRequired()
                .force_close()
                .body("a signed request declares its Content-Length\n"));
        };
        if declared > max_bytes {
            return Err(too_large(max_bytes));
        }
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let head = HeadHeaders {
            time: header(TIME_HEADER),
            head_mac: header(HEAD_MAC_HEADER),
            identity: header(IDENTITY_HEADER),
            mac: header(MAC_HEADER),
            nonce: header(NONCE_HEADER),
        };
        let now_ms = auth::now_ms();
        let sent_ms = match secret.verify_head((to, path), head, declared as u64, now_ms) {
            Ok(sent_ms) => sent_ms,
            Err(e) => {
                return Err(HttpResponse::Unauthorized()
                    .force_close()
                    .body(format!("{e}\n")))
            }
        };
        // Verified, so there is a head MAC.
        let head_mac = head.head_mac.unwrap_or_default();
        match self.seen.first_sight(head_mac, sent_ms, now_ms) {
            Ok(()) => {}
            Err(replays::Refused::Replayed) => {
                return Err(HttpResponse::Unauthorized()
                    .force_close()
                    .body("a copy of a request already taken\n"))
            }
            Err(replays::Refused::Full) => {
                return Err(HttpResponse::ServiceUnavailable()
                    .force_close()
                    .body("too many signed requests in the clock window: try again\n"))
            }
        }
        let room = if declared > SMALL_BODY_BYTES {
            // `declared <= max_bytes`, far below u32::MAX.
            let permits = u32::try_from(declared).unwrap_or(u32::MAX);
            match Arc::clone(&self.rpc_bytes).try_acquire_many_owned(permits) {
                Ok(room) => Some(room),
                Err(_) => {
                    return Err(HttpResponse::ServiceUnavailable()
                        .force_close()
                        .body("too many RPC bodies in flight: try again\n"))
                }
            }
        } else {
            None
        };
        let bytes = self.read(payload, Some(declared), max_bytes).await?;
        Ok(Body { bytes, _room: room })
    }

    /// Reads a body of `declared` bytes (or, if not declared, of at most `max_bytes`)
    /// within the body timeout: the deadline is for the whole body, so a trickle is cut
    /// off as surely as a stall.
    async fn read(
        &self,
        mut payload: web::Payload,
        declared: Option<usize>,
        max_bytes: usize,
    ) -> Result<web::Bytes, HttpResponse> {
        let read = async {
            let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    HttpResponse::BadRequest()
                        .force_close()
                        .body(format!("{e}\n"))
                })?;
                if body.len() + chunk.len() > declared.unwrap_or(max_bytes) {
                    return Err(too_large(declared.unwrap_or(max_bytes)));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        match actix_rt::time::timeout(self.body_timeout, read).await {
            Ok(read) => read,
            Err(_) => Err(HttpResponse::RequestTimeout().force_close().body(format!(
                "the body did not arrive within {} ms\n",
                self.body_timeout.as_millis()
            ))),
        }
    }
}

/// A `Content-Length` that is not a number (actix-web has refused most such already).
struct MalformedLength;

impl MalformedLength {
    fn answer(self) -> HttpResponse {
        HttpResponse::BadRequest()
            .force_close()
            .body("a malformed Content-Length\n")
    }
}

/// The request's `Content-Length`; 0 if it has neither that nor a `Transfer-Encoding`
/// (an empty body: an HTTP client may send no length for it); None for a chunked body.
fn declared_bytes(req: &HttpRequest) -> Result<Option<usize>, MalformedLength> {
    let Some(v) = req.headers().get(CONTENT_LENGTH) else {
        let chunked = req.headers().contains_key(TRANSFER_ENCODING);
        return Ok((!chunked).then_some(0));
    };
    match v.to_str().ok().and_then(|v| v.parse().ok()) {
        Some(n) => Ok(Some(n)),
        None => Err(MalformedLength),
    }
}

/// The 413 to a body longer than `max_bytes`; the rest of it is left unread.
fn too_large(max_bytes: usize) -> HttpResponse {
    HttpResponse::PayloadTooLarge()
        .force_close()
        .body(format!("a body here is at most {max_bytes} bytes\n"))
}
