//! What recovery will make of a log directory, decided without writing anything: the
//! written spare it adopts (`super::adopt`) and the rewind or reset a crash left
//! unfinished in `META` that it completes ([`kept_by_intent`]). Recovery acts on the same
//! decisions; [`crate::LogReader`] (and so `walctl`) reads the log as this plan says, so
//! an offline reader sees the records `Wal::open` will open, not fewer (a spare not yet
//! adopted) and not more (segments a reset removes), and never "no log" where recovery
//! finds one (issue 20, item 7).
//!
//! What the plan leaves to the scan, which reader and recovery share (`scan.rs`): a torn
//! tail of the last segment ends both cleanly (recovery then cuts it), and damage before
//! it stops both. What it does not check: `META`'s promises against the log (a lost
//! newest segment, a first segment above the log's first LSN), which recovery refuses and
//! a reader reads up to.

use super::adopt::decide_spare;
use super::meta::read_meta;
use super::segment::{list_segments, SegmentFile};
use crate::error::WalError;
use crate::format::meta::{LogMeta, MetaIntent};
use crate::storage::Storage;
use std::path::{Path, PathBuf};

/// A written spare that recovery adopts as the log's last segment (its rename lost in a
/// crash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The spare file (`spare-N.wal.tmp`), where the segment is now.
    pub spare: PathBuf,
    /// The segment it becomes: the first LSN its header gives, and its segment path.
    pub segment: SegmentFile,
}

/// Recovery's decisions on one log directory, read-only (see the module's docs).
#[derive(Debug, Clone)]
pub struct RecoveryPlan {
    /// The files under a segment name, in LSN order.
    pub named: Vec<SegmentFile>,
    /// The written spare recovery adopts after them, if any.
    pub adoption: Option<Adoption>,
    /// `META` as read (`None`: there is none).
    pub meta: Option<LogMeta>,
}

impl RecoveryPlan {
    /// Lists the log in `dir` and decides as recovery will. Damage in `META` is an error,
    /// as it is for recovery.
    pub fn read(
        storage: &dyn Storage,
        dir: &Path,
        max_record_bytes: u64,
    ) -> Result<RecoveryPlan, WalError> {
        let (named, temps) = list_segments(storage, dir)?;
        let adoption = decide_spare(storage, &named, &temps, max_record_bytes).adoption();
        let meta = read_meta(storage, dir)?;
        Ok(RecoveryPlan {
            named,
            adoption,
            meta,
        })
    }

    /// Whether recovery finds a log here: a segment, or a `META` (a log whose segments a
    /// reset removed before it created the new one, or a new log whose first segment a
    /// crash prevented: recovery opens both, empty).
    pub fn is_log(&self) -> bool {
        !self.named.is_empty() || self.meta.is_some()
    }

    /// The rewind or reset recovery completes before it scans (`None` if there is none).
    pub fn intent(&self) -> MetaIntent {
        self.meta.as_ref().map_or(MetaIntent::None, |m| m.intent)
    }

    /// The segments the log holds once recovery has run, in LSN order, each where it can
    /// be read now: the named ones, then the adopted spare (under its spare name), less
    /// those an unfinished intent removes.
    pub fn segments(&self) -> Vec<SegmentFile> {
        let intent = self.intent();
        self.named
            .iter()
            .cloned()
            .chain(self.adoption.as_ref().map(|a| SegmentFile {
                first_lsn: a.segment.first_lsn,
                path: a.spare.clone(),
            }))
            .filter(|s| kept_by_intent(intent, s))
            .collect()
    }

    /// Records at or past this LSN are not in the log once recovery has run: an
    /// unfinished rewind to `x` ends it at `x + 1`, a reset removes every record (0).
    /// `u64::MAX` when there is no intent.
    pub fn end_lsn(&self) -> u64 {
        match self.intent() {
            MetaIntent::None => u64::MAX,
            MetaIntent::TruncateAfter(x) => x.saturating_add(1),
            MetaIntent::Reset(_) => 0,
        }
    }

    /// The log's first LSN from `META` (records below it are not read); 0 without one.
    pub fn start_lsn(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.first_lsn)
    }
}

/// Whether segment `s` stays when `intent` is completed (step 2 of its protocol in
/// docs/format.md): a rewind to `x` removes every segment whose first LSN is above
/// `x + 1`, a reset removes them all. Recovery's completion and the plan both ask this.
pub fn kept_by_intent(intent: MetaIntent, s: &SegmentFile) -> bool {
    match intent {
        MetaIntent::None => true,
        MetaIntent::TruncateAfter(x) => s.first_lsn <= x.saturating_add(1),
        MetaIntent::Reset(_) => false,
    }
}
