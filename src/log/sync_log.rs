//! `LogWriter`: a synchronous, single-threaded log on the foundation alone (no actix).
//! Appends gather into a batch; `sync` writes and fsyncs it. Tools, tests and the
//! benchmarks' naive baseline use it; the actor pipeline uses the same pieces.

use super::batch::{Batch, Planner};
use super::dir::LogDir;
use super::options::LogOptions;
use super::recovery::RecoveryOutcome;
use super::segment::create_segment;
use super::writer::{BatchFailure, SegmentWriter};
use crate::error::WalError;
use crate::lsn::Lsn;
use std::path::Path;

/// Locks the directory. If a log of this very process still holds it — every handle
/// dropped without shutdown, its actors stopping — waits up to `LOCK_WAIT` for the
/// release instead of failing at once. Another process's lock fails at once.
fn open_dir(path: &Path, opts: &LogOptions) -> Result<LogDir, WalError> {
    const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    loop {
        match LogDir::open(path, opts.storage.clone()) {
            Err(WalError::Locked { .. })
                if LogDir::held_in_process(path) && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Opens (recovering) a log directory and returns it locked, with the planner position
/// where appends continue: the recovered tail, or a first segment created for a new log
/// (which starts at LSN 1; see [`open_log_from`]).
pub fn open_log(
    path: &Path,
    opts: &LogOptions,
) -> Result<(LogDir, Planner, RecoveryOutcome), WalError> {
    open_log_from(path, opts, 1)
}

/// [`open_log`], a new log starting at `first_lsn` (`WalConfig::first_lsn`): its `META`
/// is written first, then its first segment. An existing log's first LSN comes from its
/// `META` and `first_lsn` is ignored.
pub fn open_log_from(
    path: &Path,
    opts: &LogOptions,
    first_lsn: u64,
) -> Result<(LogDir, Planner, RecoveryOutcome), WalError> {
    opts.validate()?;
    if first_lsn == 0 || first_lsn > crate::format::MAX_LSN {
        return Err(WalError::InvalidConfig(format!(
            "first_lsn must be in 1..={}, got {first_lsn}",
            crate::format::MAX_LSN
        )));
    }
    let dir = open_dir(path, opts)?;
    let mut outcome = dir.recover(&opts.recovery_options())?;
    let (segment_first_lsn, offset) = match &outcome.tail_segment {
        Some(seg) => {
            check_writable(opts, &seg.path)?;
            (seg.first_lsn, outcome.tail_offset)
        }
        None => {
            if dir.meta().current().is_none() {
                // A new log: META (its first LSN) before its first segment.
                let first = first_lsn;
                dir.meta().update(|m| {
                    m.first_lsn = first;
                    m.newest_lsn = 0;
                })?;
                outcome.next_lsn = Lsn(first);
                outcome.start_lsn = Lsn(first);
                // The read index too (recovery built it for a log starting at 1): reads
                // and subscriptions below `first` are below the first LSN, not waiting
                // for records up to it.
                outcome.index.set_first_lsn(first);
                outcome.index.set_durable_end(first);
            }
            let first = outcome.next_lsn.0;
            create_segment(
                opts.storage.as_ref(),
                dir.path(),
                first,
                opts.segment_size_bytes,
                opts.preallocate,
            )?;
            (first, crate::format::SEGMENT_HEADER_BYTES as u64)
        }
    };
    let planner = Planner {
        segment_first_lsn,
        offset,
        next_lsn: outcome.next_lsn.0,
        segment_size_bytes: opts.segment_size_bytes,
        max_record_bytes: opts.max_record_bytes,
        files_epoch: 0,
    };
    Ok((dir, planner, outcome))
}

/// Opens the tail segment for writing, and closes it again: a tail the log may not write
/// (mode bits without write permission, the immutable or append-only attribute, a
/// read-only mount) fails the open here, typed ([`WalError::PermissionDenied`] naming it),
/// rather than the first append, which could not be cut back either and would poison the
/// log. (Recovery only read the tail unless it had a torn tail to cut.)
fn check_writable(opts: &LogOptions, tail: &Path) -> Result<(), WalError> {
    opts.storage
        .open(tail, true)
        .map(drop)
        .map_err(|e| WalError::io("open for writing", tail, e))
}

/// A synchronous log writer.
#[derive(Debug)]
pub struct LogWriter {
    dir: LogDir,
    planner: Planner,
    writer: SegmentWriter,
    batch: Batch,
    durable: Lsn,
    poisoned: Option<WalError>,
}

impl LogWriter {
    /// Opens the log in `path` (created if missing), running recovery first.
    pub fn open(
        path: impl AsRef<Path>,
        opts: LogOptions,
    ) -> Result<(LogWriter, RecoveryOutcome), WalError> {
        let (dir, planner, outcome) = open_log(path.as_ref(), &opts)?;
        let mut writer = SegmentWriter::new(
            opts.storage.clone(),
            dir.path(),
            opts.segment_size_bytes,
            opts.preallocate,
        );
        writer.meta = Some(dir.meta().clone());
        // Deterministic (prepared on this thread after a batch): the simulated disk replays it.
        writer.enable_spares(super::spare::SpareMode::Inline);
        let w = LogWriter {
            dir,
            batch: Batch::new(&planner),
            planner,
            writer,
            durable: Lsn(outcome.next_lsn.0 - 1),
            poisoned: None,
        };
        Ok((w, outcome))
    }

    /// Adds a record to the pending batch; it is durable after the next [`Self::sync`].
    pub fn append(&mut self, payload: &[u8]) -> Result<Lsn, WalError> {
        self.check()?;
        self.batch.push_record(&mut self.planner, payload)
    }

    /// Adds a transaction (all entries or none after a crash); returns its first LSN.
    pub fn append_transaction<B: AsRef<[u8]>>(&mut self, entries: &[B]) -> Result<Lsn, WalError> {
        self.check()?;
        self.batch.push_transaction(&mut self.planner, entries)
    }

    /// Writes and fsyncs the pending batch; returns the last durable LSN.
    pub fn sync(&mut self) -> Result<Lsn, WalError> {
        self.check()?;
        if self.batch.is_empty() {
            return Ok(self.durable);
        }
        let batch = std::mem::replace(&mut self.batch, Batch::new(&self.planner));
        if batch.chunks.iter().any(|c| c.creates_segment) {
            // A new segment goes through the directory's path: it must still name the
            // directory this writer locked.
            // A check that merely failed stops nothing: the write reports a failing disk.
            if let Err(err @ (WalError::FileRemoved { .. } | WalError::Locked { .. })) =
                self.dir.verify("create segment")
            {
                self.poisoned = Some(err.clone());
                return Err(err);
            }
        }
        match self.writer.write_batch(&batch) {
            Ok(()) => {}
            Err(BatchFailure::Write(e)) => {
                self.planner = batch.start;
                self.batch = Batch::new(&self.planner);
                return Err(e);
            }
            Err(BatchFailure::Sync(e)) => {
                // Never fsync that file again: rewrite the batch into a fresh segment.
                let (rewrite, after) = batch.as_rewrite();
                if let Err(f) = self.writer.write_batch(&rewrite) {
                    let err = WalError::Poisoned {
                        reason: format!("{e}; rewrite failed: {f}"),
                    };
                    self.dir.mark_poisoned(&err.to_string());
                    self.poisoned = Some(err.clone());
                    return Err(err);
                }
                self.planner = after;
                self.batch = Batch::new(&self.planner);
            }
            Err(BatchFailure::Fenced) => unreachable!("a LogWriter's writer has no fence"),
            Err(f @ BatchFailure::Unrepaired { .. }) => {
                let err = WalError::Poisoned {
                    reason: f.to_string(),
                };
                self.dir.mark_poisoned(&err.to_string());
                self.poisoned = Some(err.clone());
                return Err(err);
            }
            Err(BatchFailure::Removed(err)) => {
                self.poisoned = Some(err.clone());
                return Err(err);
            }
        }
        self.durable = Lsn(batch.end_lsn - 1);
        Ok(self.durable)
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(self.planner.next_lsn)
    }

    /// Removes whole segments below `lsn` (see [`LogDir::truncate_before`]).
    /// `lsn` is recorded as the log's first LSN (at most the next LSN after the last
    /// durable record: nothing pending is hidden). Refused on a poisoned writer, as every
    /// call that changes the log is, until the log is reopened.
    pub fn truncate_before(&mut self, lsn: Lsn) -> Result<usize, WalError> {
        self.check()?;
        let lsn = Lsn(lsn.0.min(self.durable.0 + 1));
        Ok(self.dir.truncate_before(lsn)?.len())
    }

    fn check(&self) -> Result<(), WalError> {
        match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}
