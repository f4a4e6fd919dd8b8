//! The HTTP side: the handlers of `/kv/{key}`, `/metrics` and `/health`, and how a
//! write's outcome becomes a status code.

use crate::store::{Get, Op, Store, Write, WriteError};
use crate::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use actix::prelude::*;
use actix_wal::{Wal, WalError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::Duration;

/// What the HTTP handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Addr<Store>,
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

/// `PUT /kv/{key}`: the body is the value.
pub(crate) async fn put(
    state: web::Data<AppState>,
    key: web::Path<String>,
    body: web::Payload,
) -> HttpResponse {
    let key = key.into_inner();
    if let Some(r) = bad_key(&key) {
        return r;
    }
    let value = match read_body(body, state.body_timeout).await {
        Ok(v) => v,
        Err(BodyError::TooLarge) => {
            return HttpResponse::PayloadTooLarge()
                .force_close()
                .body(format!("a value is at most {MAX_VALUE_BYTES} bytes\n"))
        }
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
    write(&state, op).await
}

/// `DELETE /kv/{key}`: 404 if the key is not there.
pub(crate) async fn delete(state: web::Data<AppState>, key: web::Path<String>) -> HttpResponse {
    let key = key.into_inner();
    if let Some(r) = bad_key(&key) {
        return r;
    }
    write(&state, Op::Delete { key }).await
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
    /// Not all there within the body timeout.
    TimedOut,
    /// The connection failed or the body was malformed.
    Broken(actix_web::error::PayloadError),
}

/// Reads a request body of at most `MAX_VALUE_BYTES`, all of it within `timeout`.
///
/// actix-web bounds the wait for a request's head (`client_request_timeout`, 5 s), not
/// for its body: a client sending a byte now and then would hold a connection, and the
/// bytes so far, for as long as it liked. The deadline is for the whole body, not per
/// chunk, so a trickle is cut off as surely as a stall.
async fn read_body(mut body: web::Payload, timeout: Duration) -> Result<Vec<u8>, BodyError> {
    let read = async {
        let mut value = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BodyError::Broken)?;
            if value.len() + chunk.len() > MAX_VALUE_BYTES {
                return Err(BodyError::TooLarge);
            }
            value.extend_from_slice(&chunk);
        }
        Ok(value)
    };
    actix_rt::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}
