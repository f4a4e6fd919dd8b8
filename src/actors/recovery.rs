//! The `Recovery` actor: runs the recovery core when a log is opened (on a blocking
//! thread), and streams every intact record, in LSN order and bounded chunks, to the
//! application's `Recipient<Replayed>` before the log takes new appends.

use crate::error::WalError;
use crate::log::{open_log_from, LogDir, LogIndex, LogOptions, LogReader, Planner, Record};
use crate::messages::{RecoveryReport, Replayed};
use actix::prelude::*;
use std::path::PathBuf;
use std::time::Instant;
use tracing::Instrument;

/// Run recovery (and replay). Replies with the locked directory, where appends continue,
/// and the report.
#[derive(Debug)]
pub(crate) struct Recover;

/// The result of [`Recover`].
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The log directory, locked.
    pub dir: LogDir,
    /// Where appends continue.
    pub planner: Planner,
    /// What recovery did.
    pub report: RecoveryReport,
    /// The read index built during the scan.
    pub index: LogIndex,
}

impl Message for Recover {
    type Result = Result<Recovered, WalError>;
}

/// The recovery actor.
#[derive(Debug)]
pub(crate) struct Recovery {
    path: PathBuf,
    opts: LogOptions,
    replay_to: Option<Recipient<Replayed>>,
    chunk: ChunkBounds,
    /// Where a new log starts (`WalConfig::first_lsn`).
    first_lsn: u64,
    /// Replay starts here, if later than the log's first LSN (`WalConfig::replay_from`).
    replay_from: Option<crate::lsn::Lsn>,
}

impl Recovery {
    /// Sets where a new log starts and where replay starts (see `WalConfig::first_lsn`
    /// and `WalConfig::replay_from`).
    pub fn starting(mut self, first_lsn: u64, replay_from: Option<crate::lsn::Lsn>) -> Recovery {
        self.first_lsn = first_lsn;
        self.replay_from = replay_from;
        self
    }

    /// A recovery of the log in `path`; replay chunks hold at most `chunk_records` records
    /// and `chunk_bytes` bytes of payload (see [`Replayed`]).
    pub fn new(
        path: PathBuf,
        opts: LogOptions,
        replay_to: Option<Recipient<Replayed>>,
        chunk_records: usize,
        chunk_bytes: usize,
    ) -> Recovery {
        Recovery {
            path,
            opts,
            replay_to,
            chunk: ChunkBounds {
                records: chunk_records.max(1),
                bytes: chunk_bytes.max(1),
            },
            first_lsn: 1,
            replay_from: None,
        }
    }
}

impl Actor for Recovery {
    type Context = Context<Self>;
}

impl Handler<Recover> for Recovery {
    type Result = ResponseFuture<Result<Recovered, WalError>>;

    fn handle(&mut self, _: Recover, _: &mut Self::Context) -> Self::Result {
        let path = self.path.clone();
        let opts = self.opts.clone();
        let replay_to = self.replay_to.clone();
        let chunk = self.chunk;
        let first_lsn = self.first_lsn;
        let replay_from = self.replay_from.map_or(0, |l| l.0);
        let span = tracing::debug_span!("recovery", dir = %path.display());
        Box::pin(
            async move {
            let started = Instant::now();
            let p = path.clone();
            let o = opts.clone();
            let (dir, planner, mut outcome) = actix_rt::task::spawn_blocking(move || open_log_from(&p, &o, first_lsn))
                .await
                .map_err(|e| WalError::io("recovery", &path, std::io::Error::other(e.to_string())))??;
            let index = std::mem::take(&mut outcome.index);
            let mut report = RecoveryReport::from_outcome(&outcome);
            // Replay starts at the checkpoint: what cursors or retention keep below it is
            // for them and for readers, not part of the application's state to rebuild.
            let checkpoint = dir.meta().current().map_or(0, |m| m.checkpoint());
            report.checkpoint_lsn = report.checkpoint_lsn.max(crate::lsn::Lsn(checkpoint));
            let replay_from = replay_from.max(checkpoint);
            if let Some(to) = replay_to {
                report.replayed = replay(&path, &opts, to, chunk, report.records, replay_from).await?;
            }
            report.duration = started.elapsed();
            tracing::debug!(records = report.records, bytes_cut = report.bytes_cut, next_lsn = %report.next_lsn, ms = report.duration.as_millis() as u64, "recovered");
            Ok(Recovered { dir, planner, report, index })
        }
            .instrument(span),
        )
    }
}

/// Bounds of one `Replayed` chunk: records and payload bytes.
#[derive(Debug, Clone, Copy)]
struct ChunkBounds {
    records: usize,
    bytes: usize,
}

/// Reads the log on a blocking thread and sends it to `to` in chunks, waiting for each.
///
/// A chunk ends once it holds `replay_chunk_records` records or `max_queue_bytes` bytes of
/// payload (a single larger record travels alone), but never inside a transaction: its
/// records always arrive in one chunk. Any failure of the reader, a panic included, is an
/// error, and so is a count of records that differs from what recovery found: an
/// application rebuilding its state from replay must never start from less without knowing.
/// Records below the log's first LSN are never read (the reader honours `META`), and those
/// below `from` (`WalConfig::replay_from`) are read, counted and not sent.
async fn replay(
    path: &std::path::Path,
    opts: &LogOptions,
    to: Recipient<Replayed>,
    bounds: ChunkBounds,
    expected: u64,
    from: u64,
) -> Result<u64, WalError> {
    let fail = |what: String| WalError::io("replay", path, std::io::Error::other(what));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Record>, WalError>>(2);
    let p = path.to_path_buf();
    let storage = opts.storage.clone();
    let max = opts.max_record_bytes;
    let skipped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let skipped_in = skipped.clone();
    let reader = actix_rt::task::spawn_blocking(move || {
        let records = match LogReader::open_with(&p, storage, max) {
            Ok(r) => r,
            Err(WalError::NoLog { .. }) => return,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        // Never preallocate from a caller's number: a chunk grows as records arrive.
        let mut buf = Vec::with_capacity(bounds.records.min(1024));
        let mut bytes = 0usize;
        // The unit being read: a record, or a transaction's records so far (never split).
        let (mut unit, mut unit_bytes) = (Vec::new(), 0usize);
        for r in records {
            #[cfg(feature = "failpoints")]
            fail::fail_point!("replay::read");
            match r {
                // A transaction that reaches `from` is replayed whole.
                Ok(rec) if rec.frame_last_lsn() < from => {
                    skipped_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(rec) => {
                    let inside_txn = rec.txn.is_some_and(|t| t.index + 1 < t.count);
                    unit_bytes = unit_bytes.saturating_add(rec.payload.len());
                    unit.push(rec);
                    if inside_txn {
                        continue;
                    }
                    // The chunk ends before a unit that would take it past a bound (a
                    // unit past a bound on its own travels alone), and once it is full.
                    let over = buf.len() + unit.len() > bounds.records
                        || bytes.saturating_add(unit_bytes) > bounds.bytes;
                    if over && !buf.is_empty() {
                        bytes = 0;
                        if tx.blocking_send(Ok(std::mem::take(&mut buf))).is_err() {
                            return;
                        }
                    }
                    bytes = bytes.saturating_add(std::mem::take(&mut unit_bytes));
                    buf.append(&mut unit);
                    if buf.len() >= bounds.records || bytes >= bounds.bytes {
                        bytes = 0;
                        if tx.blocking_send(Ok(std::mem::take(&mut buf))).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        // A transaction the log ends inside of (not expected: the reader yields whole
        // frames) goes with the rest.
        buf.append(&mut unit);
        if !buf.is_empty() {
            let _ = tx.blocking_send(Ok(buf));
        }
    });
    let mut sent = 0u64;
    while let Some(chunk) = rx.recv().await {
        let records = chunk?;
        sent += records.len() as u64;
        to.send(Replayed { records })
            .await
            .map_err(|e| fail(format!("replay recipient: {e}")))?;
    }
    reader
        .await
        .map_err(|e| fail(format!("replay reader failed: {e}")))?;
    let skipped = skipped.load(std::sync::atomic::Ordering::Relaxed);
    if sent + skipped != expected {
        return Err(fail(format!(
            "replayed {sent} records (and skipped {skipped} below replay_from) but recovery found {expected}"
        )));
    }
    Ok(sent)
}
