//! Recovery's part of the metadata file (`META`): the leftover `META.tmp` removed, the
//! file read before the scan (its first LSN hides older records), and after the scan the
//! checks of "The metadata file / Protocols / Recovery" in `docs/format.md`: a log must
//! start at or below its first LSN, reach it, and reach past the newest segment known to
//! hold durable records (else a **lost newest segment**). A log without `META` gets one.

use super::dir::LogDir;
use super::meta::META_TMP_FILE;
use super::recovery::{RecoveryOptions, RecoveryOutcome, RecoveryPolicy};
use super::recovery_plan::{meta_breach, MetaBreach};
use super::segment::SegmentFile;
use crate::error::WalError;
use crate::format::meta::{LogMeta, MetaIntent};
use crate::lsn::Lsn;
use std::io;

impl LogDir {
    /// Removes a `META.tmp` left by a crash during a replace (it never holds the truth).
    pub(super) fn remove_meta_leftover(&self, out: &mut RecoveryOutcome) -> Result<(), WalError> {
        let tmp = self.path().join(META_TMP_FILE);
        match self.storage().remove(&tmp) {
            Ok(()) => {
                out.removed.push(tmp);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WalError::io("remove", &tmp, e)),
        }
    }

    /// Takes `META` as read at the start of recovery (both copies, an intent completed
    /// since) and sets the first LSN the scan counts from: `META`'s, or for a log without
    /// one its first segment's.
    pub(super) fn load_meta(
        &self,
        segments: &[SegmentFile],
        out: &mut RecoveryOutcome,
    ) -> Result<Option<LogMeta>, WalError> {
        let found = self.meta().current().map(|m| (*m).clone());
        if let Some(m) = &found {
            if m.intent != MetaIntent::None {
                // `finish_intent` ran before and clears any intent it completes.
                return Err(WalError::Corruption {
                    segment: self.meta().path(),
                    offset: 40,
                    reason: format!("{:?} still pending after recovery completed it", m.intent),
                });
            }
        }
        // A value `MetaStore` would refuse to write (a cursor below the first LSN, an LSN
        // out of range) is refused as read, under every policy, before anything is done.
        if let Some(reason) = found.as_ref().and_then(LogMeta::conflict) {
            return Err(WalError::Corruption {
                segment: self.meta().path(),
                offset: 0,
                reason,
            });
        }
        if found.is_none() {
            self.refuse_lost_meta(segments)?;
        }
        out.start_lsn = Lsn(match &found {
            Some(m) => m.first_lsn,
            None => segments.first().map_or(0, |s| s.first_lsn),
        });
        Ok(found)
    }

    /// A log without `META` whose segments were written beside one (a readable header's
    /// `KEEPS_META`, the newest's or, if it cannot be read, an earlier one's) has lost both
    /// copies: corruption naming `META`, under every policy,
    /// before anything is scanned or changed. Starting afresh would forget the slot (a
    /// Raft vote) and the checkpoint; `walctl repair-meta --without-slot` is the explicit
    /// way on. A log written before `META` existed (no such header) gets one, as before.
    fn refuse_lost_meta(&self, segments: &[SegmentFile]) -> Result<(), WalError> {
        match super::recovery_plan::lost_meta(self.storage().as_ref(), segments) {
            Some(reason) => Err(WalError::Corruption {
                segment: self.meta().path(),
                offset: 0,
                reason,
            }),
            None => Ok(()),
        }
    }

    /// After the scan: checks the log against `META` (salvaging under `SkipToLastGood`),
    /// or writes `META` for a log that has segments but none. A new log (no segment, no
    /// `META`) is left to `open_log`, which knows `first_lsn`.
    /// The refusal [`Self::settle_meta`] would make of a scan that ends at `next`, made
    /// before a torn tail is cut or the last segment rebuilt: a refused open changes
    /// nothing. (Under `SkipToLastGood` there is no refusal: `settle_meta` lowers `META`.)
    pub(super) fn refuse_breach_before_cutting(
        &self,
        found: Option<&LogMeta>,
        segments: &[SegmentFile],
        next: u64,
        opts: &RecoveryOptions,
    ) -> Result<(), WalError> {
        let Some(m) = found else { return Ok(()) };
        if opts.policy == RecoveryPolicy::SkipToLastGood {
            return Ok(());
        }
        match meta_breach(m, segments.first().map(|s| s.first_lsn), next) {
            Some(breach) => Err(WalError::Corruption {
                segment: self.meta().path(),
                offset: 0,
                reason: breach.reason(),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn settle_meta(
        &self,
        found: Option<LogMeta>,
        repair: bool,
        opts: &RecoveryOptions,
        out: &mut RecoveryOutcome,
    ) -> Result<(), WalError> {
        let segments = self.list()?.0;
        let Some(m) = found else {
            if segments.is_empty() {
                return Ok(());
            }
            let newest = newest_with_record(&segments, out);
            let first = out.start_lsn.0;
            self.meta().update(|m| {
                m.first_lsn = first;
                m.newest_lsn = newest;
            })?;
            tracing::warn!(
                first_lsn = first,
                newest_lsn = newest,
                "wrote META for a log without one"
            );
            out.meta_repair = Some(format!(
                "the log had no META: written from its segments (first LSN {first}, \
                 newest-segment LSN {newest}, no slot)"
            ));
            return Ok(());
        };
        out.meta = m.slot.clone();
        let path = self.meta().path();
        let corrupt = |reason: String| WalError::Corruption {
            segment: path.clone(),
            offset: 0,
            reason,
        };
        let next = out.next_lsn.0;
        let (mut first, mut newest) = (m.first_lsn, m.newest_lsn);
        if segments.is_empty() {
            out.next_lsn = Lsn(next.max(m.first_lsn));
        }
        let breach = meta_breach(&m, segments.first().map(|s| s.first_lsn), next);
        // Under `SkipToLastGood`, what `META` is lowered to: the log found.
        match breach {
            Some(MetaBreach::FirstSegmentAbove { segment, .. }) => first = segment,
            Some(MetaBreach::EndsBelowFirst { .. }) => {
                first = next;
                newest = 0;
            }
            Some(MetaBreach::LostNewest { .. }) => newest = newest_with_record(&segments, out),
            Some(MetaBreach::NoSegment { .. }) => newest = 0,
            None => {}
        }
        let problem = breach.map(|b| corrupt(b.reason()));
        if let Some(err) = problem {
            if opts.policy != RecoveryPolicy::SkipToLastGood {
                return Err(err);
            }
            tracing::warn!(error = %err, first_lsn = first, newest_lsn = newest, "salvaging: META lowered to the log found");
            let end = out.next_lsn.0.max(first);
            self.meta().update(|m| {
                // The checkpoint follows the first LSN up, and down to the log found.
                m.checkpoint_lsn = match first < m.first_lsn {
                    true => first,
                    false => m.checkpoint().max(first),
                };
                m.first_lsn = first;
                m.newest_lsn = newest;
                // A cursor whose records are missing is invalidated; one past the log
                // found goes back to its end.
                for c in m.cursors.iter_mut() {
                    if !c.invalidated && c.lsn < first {
                        c.invalidated = true;
                    }
                    c.lsn = c.lsn.min(end);
                }
            })?;
            out.salvaged_from.get_or_insert(err);
        } else if repair {
            // A copy damaged, missing or stale: both written back from the value taken.
            // That value may also be one whose replace failed (`META.copy` written, its
            // fsync failed, only in the page cache in the same boot): written again, whole,
            // so that the value this open reports is the one a power cut keeps.
            tracing::warn!(problem = ?out.meta_repair, "repairing META");
            self.meta().update(|_| {})?;
        }
        // Else nothing is written: both copies whole and equal means `META.copy` was
        // written and fsynced before `META` was touched, so the value is durable (and a
        // log on a full disk opens).
        out.start_lsn = Lsn(first);
        Ok(())
    }
}

/// First LSN of the segment holding the log's last record (0 if it has none).
fn newest_with_record(segments: &[SegmentFile], out: &RecoveryOutcome) -> u64 {
    if out.records == 0 {
        return 0;
    }
    let last = out.next_lsn.0.saturating_sub(1);
    segments
        .iter()
        .rev()
        .find(|s| s.first_lsn <= last)
        .map_or(0, |s| s.first_lsn)
}
