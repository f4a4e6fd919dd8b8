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
//! it stops both. `META`'s promises against the log ([`meta_breach`]: a first segment
//! above the log's first LSN, a lost newest segment, a log ending below its first LSN, no
//! segment where one held records) are one predicate that recovery refuses by (or
//! salvages past) and the reader reports as corruption, as is a log with no `META` whose
//! segments were written beside one ([`RecoveryPlan::lost_meta`]).

use super::adopt::decide_spare;
use super::dir::POISON_MARKER;
use super::meta::{read_meta, META_RESERVE_FILE, META_TMP_FILE};
use super::segment::{list_segments, read_header, SegmentFile};
use crate::error::WalError;
use crate::format::meta::{LogMeta, MetaIntent};
use crate::storage::{not_a_file_kind, Storage};
use std::path::{Path, PathBuf};

/// Names the log owns besides its segments, the leftover `.wal.tmp` files and the two
/// copies of `META` (which are refused as they are read when not regular files): recovery
/// removes `META.tmp`, the writer removes and makes `META.reserve` again, and `POISONED`
/// makes recovery rebuild the newest segment.
const OWNED_NAMES: [&str; 3] = [META_TMP_FILE, META_RESERVE_FILE, POISON_MARKER];

/// Refuses (`WalError::NotAFile`, naming it) a leftover `.wal.tmp` file in `temps`, or a
/// `META.tmp`, `META.reserve` or `POISONED` in `dir`, that is not a regular file (a
/// directory, a FIFO, a symbolic link...). Recovery would otherwise fail removing it after
/// changing the log, or act on it (a directory named `POISONED` made it rebuild the newest
/// segment), while offline readers skipped it: each opener refuses it alike, before
/// anything is read or changed (docs/format.md, "The log directory"). Opens each with the storage's
/// `O_NOFOLLOW | O_NONBLOCK` rules and reads nothing; a name that is absent or cannot be
/// opened for another reason is left to the step that uses it.
pub(crate) fn refuse_non_files(
    storage: &dyn Storage,
    dir: &Path,
    temps: &[PathBuf],
) -> Result<(), WalError> {
    let owned = OWNED_NAMES.iter().map(|name| dir.join(name));
    for path in temps.iter().cloned().chain(owned) {
        if let Err(e) = storage.open(&path, false) {
            if not_a_file_kind(&e).is_some() {
                return Err(WalError::io("open", &path, e));
            }
        }
    }
    Ok(())
}

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
        refuse_non_files(storage, dir, &temps)?;
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

/// A promise of `META` that the log's files break (docs/format.md, "The metadata file /
/// Protocols / Recovery"), for a log whose first segment starts at `first_segment`
/// (`None`: no segment) and whose scan ended cleanly before `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaBreach {
    /// The first segment starts above the log's first LSN: records are missing.
    FirstSegmentAbove {
        /// The first segment's first LSN.
        segment: u64,
        /// `META`'s first LSN.
        first: u64,
    },
    /// The log ends below its first LSN.
    EndsBelowFirst {
        /// Where the log ends.
        next: u64,
        /// `META`'s first LSN.
        first: u64,
    },
    /// A lost newest segment: the log ends cleanly at or below the segment `META` says
    /// held acknowledged records.
    LostNewest {
        /// Where the log ends.
        next: u64,
        /// `META`'s newest-segment LSN.
        newest: u64,
    },
    /// No segment is left, but one held acknowledged records.
    NoSegment {
        /// `META`'s newest-segment LSN.
        newest: u64,
    },
}

impl MetaBreach {
    /// What recovery's corruption says.
    pub fn reason(&self) -> String {
        match *self {
            MetaBreach::FirstSegmentAbove { segment, first } => format!(
                "the first segment starts at LSN {segment} above the log's first LSN {first}: records are missing"
            ),
            MetaBreach::EndsBelowFirst { next, first } => format!(
                "the log ends at LSN {} below its first LSN {first}",
                next.saturating_sub(1)
            ),
            MetaBreach::LostNewest { next, newest } => format!(
                "lost newest segment: the log ends cleanly at LSN {} but the segment from LSN {newest} held acknowledged records",
                next.saturating_sub(1)
            ),
            MetaBreach::NoSegment { newest } => format!(
                "no segment left, but the segment from LSN {newest} held acknowledged records: the log was lost"
            ),
        }
    }
}

/// The first promise of `m` the log breaks (see [`MetaBreach`]), if any.
pub fn meta_breach(m: &LogMeta, first_segment: Option<u64>, next: u64) -> Option<MetaBreach> {
    let Some(segment) = first_segment else {
        return (m.newest_lsn > 0).then_some(MetaBreach::NoSegment {
            newest: m.newest_lsn,
        });
    };
    if segment > m.first_lsn {
        Some(MetaBreach::FirstSegmentAbove {
            segment,
            first: m.first_lsn,
        })
    } else if next < m.first_lsn {
        Some(MetaBreach::EndsBelowFirst {
            next,
            first: m.first_lsn,
        })
    } else if m.newest_lsn > 0 && next <= m.newest_lsn {
        Some(MetaBreach::LostNewest {
            next,
            newest: m.newest_lsn,
        })
    } else {
        None
    }
}

impl RecoveryPlan {
    /// A log with no `META` whose segments were written beside one (a header's
    /// `KEEPS_META`): both copies are lost, which recovery refuses before it scans
    /// (`recovery_meta.rs`). The reason, if so.
    pub fn lost_meta(&self, storage: &dyn Storage) -> Option<String> {
        if self.meta.is_some() {
            return None;
        }
        lost_meta(storage, &self.segments())
    }

    /// Why `META`'s value is one no writer writes, if it is ([`LogMeta::conflict`]: a
    /// cursor below the first LSN, an LSN out of range), which recovery refuses as read.
    pub fn meta_conflict(&self) -> Option<String> {
        self.meta.as_ref()?.conflict()
    }

    /// The promise of `META` broken by a log whose scan ended cleanly before `next`, if
    /// any (none with an unfinished rewind or reset, which recovery completes first).
    pub fn breach_at_end(&self, next: u64) -> Option<MetaBreach> {
        let m = self.meta.as_ref()?;
        if self.intent() != MetaIntent::None {
            return None;
        }
        meta_breach(m, self.segments().first().map(|s| s.first_lsn), next)
    }
}

/// For a log with no `META`: why it is lost, if any of its segments was written beside
/// one (a readable header that says `KEEPS_META`; the newest first). A log written before
/// `META` existed (no such header) is not. A header that cannot be read (damaged, or not a
/// file) says nothing: the others are asked, so that a damaged newest segment does not
/// make a log that lost `META` pass for one that never had it.
pub fn lost_meta(storage: &dyn Storage, segments: &[SegmentFile]) -> Option<String> {
    let keeps = segments
        .iter()
        .rev()
        .find(|s| read_header(storage, s).is_ok_and(|h| h.keeps_meta()))?;
    Some(format!(
        "no copy of META (META, {}) beside segments written with one (the header of {} \
         says so): the slot and the checkpoint are lost; `walctl repair-meta \
         --without-slot` writes a META without them",
        super::meta::META_COPY_FILE,
        keeps.path.display()
    ))
}
