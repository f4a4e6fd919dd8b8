//! Recovery adopts a written spare: a rollover renames its spare to the segment name
//! before the directory `fsync` that makes the name durable (that `fsync` is left to the
//! spare helper, off the commit path: `log/spare.rs`), so a crash in between can bring
//! back the newest segment, acknowledged records and all, under its spare name. The rule
//! (docs/format.md, "Recovery adopts a written spare"), run before leftover `.wal.tmp`
//! files are removed:
//!
//! - only a spare (`spare-N.wal.tmp`) whose first 32 bytes are a valid segment header
//!   with `flags` 0, whose first LSN is above the last named segment's first LSN, is a
//!   candidate (a spare never written reads as zeros: never read as data);
//! - the candidate with the lowest first LSN is adopted only if the last named segment's
//!   frames end exactly at that LSN: then it is renamed into place and the directory
//!   `fsync`ed, and the scan reads it as the last segment;
//! - otherwise (the segment before it ends short of it: its batch reached the spare but
//!   not the segment before, so it was never acknowledged; or ends past it: a stale spare)
//!   it is removed with the other leftovers, and the log ends where the named segments
//!   end. That is not corruption.
//!
//! The decision ([`decide_spare`]) reads and never writes: offline readers take it too
//! ([`super::recovery_plan`]), so that they read the spare recovery will adopt.

use super::dir::LogDir;
use super::recovery::{RecoveryOptions, RecoveryOutcome};
use super::recovery_plan::Adoption;
use super::scan::{SegmentCursor, SegmentData, SegmentEnd};
use super::segment::{segment_name, SegmentFile};
use super::spare::is_spare_name;
use crate::error::WalError;
use crate::format::{SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::storage::Storage;
use std::path::{Path, PathBuf};

/// What recovery makes of the written spares among the leftover `.wal.tmp` files.
#[derive(Debug)]
pub(crate) enum SpareDecision {
    /// No written spare after the last named segment.
    Nothing,
    /// The written spare that continues the log: recovery adopts it.
    Adopt(Adoption),
    /// A written spare that does not follow the last named segment: never acknowledged, or
    /// stale. Recovery removes it with the other leftovers.
    NotAdopted {
        /// The spare.
        spare: PathBuf,
        /// The first LSN its header gives.
        first_lsn: u64,
        /// Where the last named segment's frames end (`None`: it could not be read to its end).
        previous_ends_at: Option<u64>,
    },
}

impl SpareDecision {
    /// The spare adopted, if one is.
    pub(crate) fn adoption(self) -> Option<Adoption> {
        match self {
            SpareDecision::Adopt(a) => Some(a),
            _ => None,
        }
    }
}

/// Decides which written spare recovery adopts after `segments` (the named segments, in LSN
/// order), among the leftover `.wal.tmp` files `temps` (see the module's docs). Reads only:
/// offline readers take the same decision.
pub(crate) fn decide_spare(
    storage: &dyn Storage,
    segments: &[SegmentFile],
    temps: &[PathBuf],
    max_record_bytes: u64,
) -> SpareDecision {
    let Some(found) = written_spare(storage, segments, temps) else {
        return SpareDecision::Nothing;
    };
    let (last, first_lsn, spare) = found;
    let ends_at = frames_end(storage, last, max_record_bytes);
    if ends_at != Some(first_lsn) {
        return SpareDecision::NotAdopted {
            spare,
            first_lsn,
            previous_ends_at: ends_at,
        };
    }
    let dir = spare.parent().map(Path::to_path_buf).unwrap_or_default();
    SpareDecision::Adopt(Adoption {
        spare,
        segment: SegmentFile {
            first_lsn,
            path: dir.join(segment_name(first_lsn)),
        },
    })
}

/// The last named segment and the written spare with the lowest first LSN above its own,
/// with that LSN.
fn written_spare<'a>(
    storage: &dyn Storage,
    segments: &'a [SegmentFile],
    temps: &[PathBuf],
) -> Option<(&'a SegmentFile, u64, PathBuf)> {
    let last = segments.last()?;
    let (first_lsn, spare) = temps
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_spare_name)
        })
        .filter_map(|p| Some((spare_first_lsn(storage, p)?, p.clone())))
        .filter(|(lsn, _)| *lsn > last.first_lsn)
        .min_by_key(|(lsn, _)| *lsn)?;
    Some((last, first_lsn, spare))
}

/// The first LSN in the header of the spare at `path`, if its first 32 bytes are a valid
/// segment header with no flag set but `COMPRESSED` (a spare of a compressing log);
/// `None` for anything else (zeros, garbage, a short file, a file that cannot be read, a
/// rewrite).
fn spare_first_lsn(storage: &dyn Storage, path: &Path) -> Option<u64> {
    let f = storage.open(path, false).ok()?;
    if f.size_bytes().ok()? < SEGMENT_HEADER_BYTES as u64 {
        return None;
    }
    let mut buf = [0u8; SEGMENT_HEADER_BYTES];
    f.read_exact_at(&mut buf, 0).ok()?;
    let h = SegmentHeader::decode(&buf).ok()?;
    let flags = h.flags & !crate::format::SEGMENT_FLAG_COMPRESSED;
    (flags == 0 && h.first_lsn > 0).then_some(h.first_lsn)
}

/// The LSN after the last good frame of `file` read as the last segment; `None` if it
/// cannot be read to its end without an error, or if a torn tail follows its frames
/// (then nothing is adopted after it). A torn tail means the batch that reached the spare
/// was not durable in this segment; its frames may still reach the spare's first LSN
/// when the torn bytes were slot frames, which take no LSN.
fn frames_end(storage: &dyn Storage, file: &SegmentFile, max_record_bytes: u64) -> Option<u64> {
    let mut seg = SegmentData::load(storage, file).ok()?;
    let mut cursor = SegmentCursor::new(file.first_lsn, None, max_record_bytes);
    loop {
        match cursor.next_frame(&mut seg) {
            Ok(Some(_)) => {}
            Ok(None) if matches!(cursor.end, Some(SegmentEnd::TornTail { .. })) => return None,
            Ok(None) => return Some(cursor.next_lsn),
            Err(_) => return None,
        }
    }
}

impl LogDir {
    /// Adopts the written spare that continues the log, if there is one (see the module's
    /// docs): renames it to its segment name, `fsync`s the directory, adds it to
    /// `segments` and takes it out of `temps` (the leftovers recovery removes next).
    pub(super) fn adopt_spare(
        &self,
        segments: &mut Vec<SegmentFile>,
        temps: &mut Vec<PathBuf>,
        opts: &RecoveryOptions,
        out: &mut RecoveryOutcome,
    ) -> Result<(), WalError> {
        let storage = self.storage().as_ref();
        let (spare, to) = match decide_spare(storage, segments, temps, opts.max_record_bytes) {
            SpareDecision::Nothing => return Ok(()),
            SpareDecision::NotAdopted {
                spare,
                first_lsn,
                previous_ends_at,
            } => {
                tracing::warn!(
                    spare = %spare.display(),
                    first_lsn,
                    ?previous_ends_at,
                    "a written spare does not follow the last segment: removed, not adopted"
                );
                return Ok(());
            }
            SpareDecision::Adopt(Adoption { spare, segment }) => (spare, segment),
        };
        storage
            .rename(&spare, &to.path)
            .map_err(|e| WalError::io("rename", &spare, e))?;
        self.sync()?;
        tracing::warn!(spare = %spare.display(), segment = %to.path.display(), "adopted a written spare whose rename a crash lost");
        temps.retain(|p| p != &spare);
        segments.push(to.clone());
        out.adopted_spare = Some(to.path);
        Ok(())
    }
}
