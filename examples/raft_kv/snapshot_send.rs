//! The leader's side of sending a snapshot (`RaftNetwork::full_snapshot`): the body in
//! chunks of `snapshot_max_chunk_size`, each with a deadline sized for what it must do,
//! a chunk that fails sent again from where it starts, not from the body's first byte.
//!
//! openraft 0.9.25's own sender (`Chunked::send_snapshot`) gives every chunk
//! `install_snapshot_timeout` (200 ms by default), and on a timeout ends the send; its
//! replication then starts a new one, from offset 0. The last chunk is answered only
//! once the follower has decoded, written and installed the whole map, so a map that
//! takes longer than the deadline to install was sent again and again: a probe on
//! 2026-12-07 saw 654 chunks of 3 MiB (2.06 GB) sent for one 410 MB snapshot, and a
//! follower that caught up 110 s after the load. Here a chunk's deadline is
//! `--install-snapshot-timeout-ms` (it must carry `snapshot_max_chunk_size` bytes over
//! the follower's link), and the last chunk's that plus `--snapshot-install-ms-per-mib`
//! for every MiB of the body (the follower's install). The receiving side is openraft's
//! (`Raft::install_snapshot`), unchanged: a chunk sent again at its offset overwrites
//! what the follower holds there.

use crate::network::Connection;
use crate::{NodeId, TypeConfig};
use openraft::error::{
    Fatal, InstallSnapshotError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError,
};
use openraft::network::{RPCOption, RaftNetwork};
use openraft::raft::{InstallSnapshotRequest, SnapshotResponse};
use openraft::{Snapshot, Vote};
use std::future::Future;
use std::time::Duration;

/// `--install-snapshot-timeout-ms` by default: a 3 MiB chunk over a link of 3 MiB/s,
/// below the floor appends already set (docs/replication.md).
pub const DEFAULT_CHUNK_TIMEOUT_MS: u64 = 1_000;
/// `--snapshot-install-ms-per-mib` by default: a follower that installs 50 MiB/s.
pub const DEFAULT_INSTALL_MS_PER_MIB: u64 = 20;
/// Consecutive failures of one chunk (a timeout, a network error, an unreachable peer)
/// after which the send ends and openraft's replication decides what next.
const MAX_CHUNK_ATTEMPTS: u32 = 4;
/// Wait before a chunk is sent again after its `n`th consecutive failure: `n` times this.
const RETRY_WAIT: Duration = Duration::from_millis(50);
/// Chunk size if openraft gives none (it always does for `full_snapshot`): its default.
const DEFAULT_CHUNK_BYTES: usize = 3 << 20;
/// Longest deadline of any chunk, the last included, however large the body.
pub const MAX_CHUNK_DEADLINE: Duration = Duration::from_secs(600);

/// How long a snapshot chunk may take, from `--install-snapshot-timeout-ms` and
/// `--snapshot-install-ms-per-mib`.
#[derive(Debug, Clone, Copy)]
pub struct ChunkDeadlines {
    /// Every chunk's: carrying it over the follower's link, writing it there.
    pub chunk: Duration,
    /// Added to the last chunk's for every MiB of the whole body: the follower decodes
    /// the map, writes and fsyncs its snapshot file, and installs it before it answers.
    pub install_per_mib: Duration,
}

impl ChunkDeadlines {
    /// The deadline of a chunk; `body_bytes` is the whole body's size for the last one.
    pub fn of(&self, last_of_body_bytes: Option<usize>) -> Duration {
        let install = last_of_body_bytes.map_or(Duration::ZERO, |bytes| {
            // Rounded up: a body of a few bytes still gets one MiB's allowance.
            let mib = u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX);
            self.install_per_mib.saturating_mul(mib)
        });
        self.chunk.saturating_add(install).min(MAX_CHUNK_DEADLINE)
    }
}

/// The chunks of a body of `len` bytes: `(start, end)` of each, in order (one empty chunk
/// for an empty body: the follower still needs the `done` one).
pub fn chunks(len: usize, chunk_bytes: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = chunk_bytes.max(1);
    let count = len.div_ceil(step).max(1);
    (0..count).map(move |i| (i * step, ((i + 1) * step).min(len)))
}

type SendResult = Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>>;

/// Sends `snapshot` to `conn`'s peer as the leader of `vote`; see the module's comment.
pub async fn send(
    conn: &mut Connection,
    deadlines: ChunkDeadlines,
    (vote, snapshot): (Vote<NodeId>, Snapshot<TypeConfig>),
    cancel: impl Future<Output = ReplicationClosed>,
    option: RPCOption,
) -> SendResult {
    let body: &[u8] = snapshot.snapshot.bytes();
    let chunk_bytes = option.snapshot_chunk_size().unwrap_or(DEFAULT_CHUNK_BYTES);
    let all: Vec<(usize, usize)> = chunks(body.len(), chunk_bytes).collect();
    let mut cancel = std::pin::pin!(cancel);
    let mut next = 0;
    let mut failures = 0u32;
    while let Some(&(start, end)) = all.get(next) {
        let done = next + 1 == all.len();
        let req = InstallSnapshotRequest {
            vote,
            meta: snapshot.meta.clone(),
            offset: start as u64,
            // The one copy of the chunk the request needs; the body is not copied.
            data: body[start..end].to_vec(),
            done,
        };
        let ttl = deadlines.of(done.then_some(body.len()));
        let sent = tokio::select! {
            closed = &mut cancel => return Err(closed.into()),
            sent = conn.install_snapshot(req, RPCOption::new(ttl)) => sent,
        };
        let err = match sent {
            Ok(resp) if resp.vote > vote || done => return Ok(SnapshotResponse::new(resp.vote)),
            Ok(_) => {
                next += 1;
                failures = 0;
                continue;
            }
            Err(e) => e,
        };
        failures += 1;
        match err {
            RPCError::RemoteError(RemoteError {
                target,
                target_node,
                source: RaftError::Fatal(fatal),
            }) => {
                return Err(RemoteError {
                    target,
                    target_node,
                    source: fatal,
                }
                .into())
            }
            // The follower holds no stream of this snapshot (it restarted, or took
            // another's since): from the first chunk again.
            RPCError::RemoteError(RemoteError {
                source: RaftError::APIError(InstallSnapshotError::SnapshotMismatch(_)),
                ..
            }) if failures < MAX_CHUNK_ATTEMPTS => next = 0,
            // A last chunk that failed may be being installed still: sent again, it would
            // find no stream; openraft's replication looks at the follower first.
            e if done || failures >= MAX_CHUNK_ATTEMPTS => return Err(streaming_error(e)),
            _ => {}
        }
        tokio::select! {
            closed = &mut cancel => return Err(closed.into()),
            _ = tokio::time::sleep(RETRY_WAIT * failures) => {}
        }
    }
    unreachable!("chunks() yields at least one chunk, and the last one returns")
}

/// An RPC error as openraft's replication takes it from a snapshot send.
fn streaming_error(
    e: RPCError<NodeId, crate::identity::Member, RaftError<NodeId, InstallSnapshotError>>,
) -> StreamingError<TypeConfig, Fatal<NodeId>> {
    match e {
        RPCError::Timeout(t) => t.into(),
        RPCError::Unreachable(u) => u.into(),
        RPCError::Network(n) => n.into(),
        other => openraft::error::NetworkError::new(&other).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_body_once_in_order() {
        let got: Vec<_> = chunks(10, 4).collect();
        assert_eq!(got, vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(chunks(8, 4).collect::<Vec<_>>(), vec![(0, 4), (4, 8)]);
        assert_eq!(chunks(0, 4).collect::<Vec<_>>(), vec![(0, 0)]);
    }

    #[test]
    fn the_last_chunk_has_time_to_install_the_whole_body() {
        let d = ChunkDeadlines {
            chunk: Duration::from_millis(1_000),
            install_per_mib: Duration::from_millis(20),
        };
        assert_eq!(d.of(None), Duration::from_millis(1_000));
        // 410 MB, as in the probe: 391 MiB.
        assert_eq!(
            d.of(Some(410_000_000)),
            Duration::from_millis(1_000 + 20 * 392)
        );
        assert_eq!(d.of(Some(1)), Duration::from_millis(1_020));
        assert_eq!(d.of(Some(usize::MAX)), MAX_CHUNK_DEADLINE);
    }
}
