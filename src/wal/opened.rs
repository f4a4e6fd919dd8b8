//! The recovery report as the application gets it: amended by the queue's first retention
//! run, which [`Wal::open`](super::Wal::open) waits for.
//!
//! Recovery reports the log it scanned. The queue then runs retention once as it starts
//! (segments left below the first LSN by a run that stopped midway, and those the policy
//! of this open no longer keeps: a log written with `retention_bytes` reopened without
//! it). That run may raise the first LSN and remove segments, so the report's
//! `first_lsn`, `segments` and `removed` are taken again after it: a read or a
//! subscription from `report.first_lsn` finds the log there.

use crate::error::WalError;
use crate::messages::{GetStats, RecoveryReport};
use crate::storage::SharedStorage;
use std::path::{Path, PathBuf};

/// The segment files in `path` now (`None` if it cannot be listed: the report then keeps
/// recovery's figures).
pub(super) fn segment_paths(storage: &SharedStorage, path: &Path) -> Option<Vec<PathBuf>> {
    crate::log::segment::list_segments(storage.as_ref(), path)
        .ok()
        .map(|(segments, _)| segments.into_iter().map(|s| s.path).collect())
}

/// Waits for the queue's first retention run (it runs before the queue handles any
/// message), then amends `report` with what it did: the first LSN the queue holds, the
/// segments left, and the ones it removed (those of `before` that are gone).
pub(super) async fn amend_report(
    report: &mut RecoveryReport,
    queue: &actix::Addr<crate::actors::queue::Queue>,
    storage: &SharedStorage,
    path: &Path,
    before: Option<Vec<PathBuf>>,
) -> Result<(), WalError> {
    let stats = queue.send(GetStats).await.map_err(super::closed)?;
    report.first_lsn = report.first_lsn.max(stats.first_lsn);
    let (Some(before), Some(after)) = (before, segment_paths(storage, path)) else {
        return Ok(());
    };
    report.segments = after.len();
    report
        .removed
        .extend(before.into_iter().filter(|p| !after.contains(p)));
    Ok(())
}
