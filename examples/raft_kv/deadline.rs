//! The server's deadline on client requests: a PUT (or a linearizable GET) that has not
//! finished within `--request-timeout-ms` is answered 504 with a JSON body, instead of
//! being held for as long as the leader cannot reach a majority (a partition, a follower
//! pair down). For a PUT the outcome is unknown: the write may already be in the log and
//! still commit later (once the partition heals), or be overwritten by a new leader. A
//! client that must know retries with the same `Client-Id`/`Client-Seq` (`dedup`), which
//! applies it at most once and answers with the first result.

use actix_web::HttpResponse;
use std::future::Future;
use std::time::Duration;

/// Default of `--request-timeout-ms`: well above a PUT's latency under load (p99 about
/// 0.2 s, max 0.4 s on 2 shared vCPUs, docs/performance.md) and above a failover, so
/// that a write only waits on a leader cut off from its majority.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 2_000;
/// Shortest and longest `--request-timeout-ms` accepted.
pub const REQUEST_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 50..=600_000;

/// Runs `work` for at most `limit`: `None` when the deadline passed first (`work` is
/// dropped; what it proposed to Raft stays proposed).
pub async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, work).await.ok()
}

/// The 504 for a PUT past its deadline: it may or may not commit.
pub fn write_unknown(limit: Duration, leader: Option<u64>) -> HttpResponse {
    HttpResponse::GatewayTimeout().json(serde_json::json!({
        "error": "deadline",
        "outcome": "unknown",
        "timeout_ms": limit.as_millis() as u64,
        "leader": leader,
        "detail": "not committed within the deadline; it may still commit: retry with the same Client-Id and Client-Seq to learn its result",
    }))
}

/// The 504 for a read past its deadline (a read changes nothing: just retry).
pub fn read_expired(limit: Duration, leader: Option<u64>) -> HttpResponse {
    HttpResponse::GatewayTimeout().json(serde_json::json!({
        "error": "deadline",
        "timeout_ms": limit.as_millis() as u64,
        "leader": leader,
        "detail": "leadership not confirmed by a majority within the deadline",
    }))
}
