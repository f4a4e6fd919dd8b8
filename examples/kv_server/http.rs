//! The HTTP side: the handlers of `/kv/{key}`, `/metrics` and `/health`, and how a
//! write's outcome becomes a status code.

use crate::budget::{Budget, Refused, Reservation};
use crate::store::{Get, Op, Store, Write, WriteError};
use crate::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use actix::prelude::*;
use actix_wal::{Wal, WalError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;

/// How much more room a chunked body (no `Content-Length`) reserves each time it
/// outgrows what it has, in bytes: its buffer grows by this much, not by doubling, so
/// what it reserves stays within this of what arrived.
const CHUNKED_STEP_BYTES: usize = 64 * 1024;

/// What the HTTP handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Addr<Store>,
    /// `--max-bytes`: each PUT body is reserved here before it is read.
    pub(crate) budget: Arc<Budget>,
    pub(crate) wal: Wal,
    pub(crate) prometheus: PrometheusHandle,
    /// How long a request body may take to arrive (`Args::body_timeout_ms`).
    pub(crate) body_timeout: Duration,
}

/// The 400 answer for a key out of bounds, if it is.
fn bad_key(key: &str) -> Option<HttpResponse> {
    (key.is_empty() || key.len() > MAX_KEY_BYTES)
        .then(|| HttpResponse::BadRequest().body(format!("a key is 1 to {MAX_KEY_BYTES} bytes\n")))
}

/// The answer to a body refused for want of room in `--max-bytes`. The body is left
/// unread, so the connection is closed after the answer.
fn refused(why: Refused) -> HttpResponse {
    match why {
        Refused::MapFull => HttpResponse::InsufficientStorage()
            .force_close()
            .body("too many bytes held\n"),
        Refused::BodiesInFlight => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .force_close()
            .body(concat!(
                "too many bytes in flight: the bodies being received and written hold ",
                "the rest of --max-bytes\n"
            )),
    }
}

/// Answers a write: 200 (with the LSN) only once the operation is durable.
async fn write(state: &AppState, op: Op, reservation: Option<Reservation>) -> HttpResponse {
    let reply = match state.store.send(Write(op, reservation)).await {
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
        Err(WriteError::TooManyBytes) => (
            StatusCode::INSUFFICIENT_STORAGE,
            "too many bytes held".to_owned(),
        ),
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

/// The 413 answer to a value longer than `MAX_VALUE_BYTES`; its body is left unread.
fn too_large() -> HttpResponse {
    HttpResponse::PayloadTooLarge()
        .force_close()
        .body(format!("a value is at most {MAX_VALUE_BYTES} bytes\n"))
}

/// `PUT /kv/{key}`: the body is the value. Its bytes (the key and the `Content-Length`,
/// or a chunked body's as it grows) are reserved in `--max-bytes` before it is read:
/// refused with 503 (or 507 if the map alone is full) rather than held in memory.
pub(crate) async fn put(
    state: web::Data<AppState>,
    key: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let key = key.into_inner();
    if let Some(r) = bad_key(&key) {
        return r;
    }
    // actix-web has answered 400 to a `Content-Length` that is not a number.
    let declared_bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if declared_bytes > MAX_VALUE_BYTES {
        return too_large();
    }
    let mut reservation = match state.budget.reserve(key.len() + declared_bytes) {
        Ok(r) => r,
        Err(why) => return refused(why),
    };
    let read = read_body(body, declared_bytes, &mut reservation, state.body_timeout);
    let value = match read.await {
        Ok(v) => v,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Refused(why)) => return refused(why),
        // The connection is closed after the answer: the rest of the body never comes.
        Err(BodyError::TimedOut) => {
            return HttpResponse::RequestTimeout().force_close().body(format!(
                "the body did not arrive within {} ms\n",
                state.body_timeout.as_millis()
            ))
        }
        Err(BodyError::Broken(e)) => {
            return HttpResponse::BadRequest()
                .force_close()
                .body(format!("{e}\n"))
        }
    };
    let op = Op::Put { key, value };
    write(&state, op, Some(reservation)).await
}

/// `DELETE /kv/{key}`: 404 if the key is not there.
pub(crate) async fn delete(state: web::Data<AppState>, key: web::Path<String>) -> HttpResponse {
    let key = key.into_inner();
    if let Some(r) = bad_key(&key) {
        return r;
    }
    write(&state, Op::Delete { key }, None).await
}

/// `GET /kv/{key}`: the value, or 404.
pub(crate) async fn get(state: web::Data<AppState>, key: web::Path<String>) -> HttpResponse {
    match state.store.send(Get(key.into_inner())).await {
        Ok(Some(value)) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(value),
        Ok(None) => HttpResponse::NotFound().body("no such key\n"),
        Err(_) => HttpResponse::ServiceUnavailable().body("the store is stopped\n"),
    }
}

/// `GET /metrics`: every metric of the process in Prometheus text format.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.prometheus.render())
}

/// `GET /health`: the log's `Health` as JSON; 503 unless it is healthy.
pub(crate) async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.wal.health().await {
        Ok(h) if h.healthy => HttpResponse::Ok().json(h),
        Ok(h) => HttpResponse::ServiceUnavailable().json(h),
        Err(e) => HttpResponse::ServiceUnavailable().body(format!("{e}\n")),
    }
}

/// Why a body was not read.
#[derive(Debug)]
enum BodyError {
    /// Longer than `MAX_VALUE_BYTES`.
    TooLarge,
    /// A chunked body outgrew its reservation and `--max-bytes` had no more room.
    Refused(Refused),
    /// Not all there within the body timeout.
    TimedOut,
    /// The connection failed or the body was malformed.
    Broken(actix_web::error::PayloadError),
}

/// Reads a request body of at most `MAX_VALUE_BYTES`, all of it within `timeout`, into
/// a buffer of `declared_bytes` (already reserved); a chunked body, or one longer than it
/// said, grows its buffer and `reservation` by `CHUNKED_STEP_BYTES` at a time.
///
/// actix-web bounds the wait for a request's head (`client_request_timeout`, 5 s), not
/// for its body: a client sending a byte now and then would hold a connection, and the
/// bytes so far, for as long as it liked. The deadline is for the whole body, not per
/// chunk, so a trickle is cut off as surely as a stall.
async fn read_body(
    mut body: web::Payload,
    declared_bytes: usize,
    reservation: &mut Reservation,
    timeout: Duration,
) -> Result<Vec<u8>, BodyError> {
    let read = async {
        let mut value = Vec::with_capacity(declared_bytes);
        let mut room_bytes = declared_bytes;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BodyError::Broken)?;
            let len = value.len() + chunk.len();
            if len > MAX_VALUE_BYTES {
                return Err(BodyError::TooLarge);
            }
            if len > room_bytes {
                let grown = (room_bytes + CHUNKED_STEP_BYTES).clamp(len, MAX_VALUE_BYTES);
                reservation
                    .grow(grown - room_bytes)
                    .map_err(BodyError::Refused)?;
                value.reserve_exact(grown - value.len());
                room_bytes = grown;
            }
            value.extend_from_slice(&chunk);
        }
        Ok(value)
    };
    actix_rt::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}
