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

use super::dir::LogDir;
use super::recovery::{RecoveryOptions, RecoveryOutcome};
use super::scan::{SegmentCursor, SegmentData};
use super::segment::{segment_name, SegmentFile};
use super::spare::is_spare_name;
use crate::error::WalError;
use crate::format::{SegmentHeader, SEGMENT_HEADER_BYTES};
use std::path::{Path, PathBuf};

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
        let Some(last) = segments.last().cloned() else {
            return Ok(());
        };
        let candidate = temps
            .iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_spare_name)
            })
            .filter_map(|p| Some((self.spare_first_lsn(p)?, p.clone())))
            .filter(|(lsn, _)| *lsn > last.first_lsn)
            .min_by_key(|(lsn, _)| *lsn);
        let Some((first_lsn, spare)) = candidate else {
            return Ok(());
        };
        let ends_at = self.frames_end(&last, opts);
        if ends_at != Some(first_lsn) {
            tracing::warn!(
                spare = %spare.display(),
                first_lsn,
                previous_ends_at = ?ends_at,
                "a written spare does not follow the last segment: removed, not adopted"
            );
            return Ok(());
        }
        let to = SegmentFile {
            first_lsn,
            path: self.path().join(segment_name(first_lsn)),
        };
        self.storage()
            .rename(&spare, &to.path)
            .map_err(|e| WalError::io("rename", &spare, e))?;
        self.sync()?;
        tracing::warn!(spare = %spare.display(), segment = %to.path.display(), "adopted a written spare whose rename a crash lost");
        temps.retain(|p| p != &spare);
        segments.push(to.clone());
        out.adopted_spare = Some(to.path);
        Ok(())
    }

    /// The first LSN in the header of the spare at `path`, if its first 32 bytes are a
    /// valid segment header with no flag set; `None` for anything else (zeros, garbage, a
    /// short file, a file that cannot be read).
    fn spare_first_lsn(&self, path: &Path) -> Option<u64> {
        let f = self.storage().open(path, false).ok()?;
        if f.size_bytes().ok()? < SEGMENT_HEADER_BYTES as u64 {
            return None;
        }
        let mut buf = [0u8; SEGMENT_HEADER_BYTES];
        f.read_exact_at(&mut buf, 0).ok()?;
        let h = SegmentHeader::decode(&buf).ok()?;
        (h.flags == 0 && h.first_lsn > 0).then_some(h.first_lsn)
    }

    /// The LSN after the last good frame of `file` read as the last segment; `None` if it
    /// cannot be read to its end without an error (then nothing is adopted after it).
    fn frames_end(&self, file: &SegmentFile, opts: &RecoveryOptions) -> Option<u64> {
        let mut seg = SegmentData::load(self.storage().as_ref(), file).ok()?;
        let mut cursor = SegmentCursor::new(file.first_lsn, None, opts.max_record_bytes);
        loop {
            match cursor.next_frame(&mut seg) {
                Ok(Some(_)) => {}
                Ok(None) => return Some(cursor.next_lsn),
                Err(_) => return None,
            }
        }
    }
}
