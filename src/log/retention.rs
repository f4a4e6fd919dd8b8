//! Retention (issue 22, item 3): how far the log's first LSN may move, and the segments
//! that go with it. The checkpoint (C, `truncate_before`), the named cursors and the
//! retention policy each hold records; the first LSN (F, the removal point) is the
//! lowest of what they hold, at segment granularity for the policy, and never moves
//! back. With no cursor and no policy it is C, exactly what `truncate_before` did before
//! cursors. docs/architecture.md ("Cursors and retention") gives the rules, and
//! docs/format.md the order of the writes: `META` first, then the removals, so a crash
//! between them leaves only segments wholly below F, hidden, removed by the next run.
//!
//! [`plan`] is pure; [`LogDir::retain_with`] lists the segments, plans, writes `META`
//! once if anything changed and removes what lies below the new F.

use super::dir::LogDir;
pub use super::retention_policy::RetentionPolicy;
use crate::error::WalError;
use crate::format::meta::{CursorMeta, LogMeta};
use std::path::PathBuf;

/// One segment as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentUse {
    /// Its first LSN.
    pub first_lsn: u64,
    /// Its size on disk in bytes (a preallocated segment in full).
    pub size_bytes: u64,
    /// Seconds since it was last written (0 when the storage cannot tell).
    pub age_secs: u64,
}

/// What a retention run decides ([`plan`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionPlan {
    /// The new first LSN: never below the old one, never above the checkpoint.
    pub first_lsn: u64,
    /// Cursors to invalidate, each with the bytes of segments it would have held.
    pub invalidate: Vec<(String, u64)>,
}

/// Bytes of the segments from the one holding `lsn` to the newest: what a cursor at `lsn`
/// keeps on disk. `segments` in LSN order.
pub fn lag_bytes(segments: &[SegmentUse], lsn: u64) -> u64 {
    let from = segments
        .partition_point(|s| s.first_lsn <= lsn)
        .saturating_sub(1);
    segments[from..].iter().map(|s| s.size_bytes).sum()
}

/// Where the policy alone would let the first LSN go: the first LSN of the oldest segment
/// wholly below `checkpoint` that it keeps (the newest such segments, as long as they
/// are within `retention_bytes` and `retention_secs`), or `checkpoint` if it keeps none.
pub fn policy_bound(segments: &[SegmentUse], checkpoint: u64, policy: &RetentionPolicy) -> u64 {
    if policy.retention_bytes == 0 && policy.retention_secs == 0 {
        return checkpoint;
    }
    // Segments wholly below the checkpoint: the next one starts at or below it.
    let below = segments
        .windows(2)
        .take_while(|w| w[1].first_lsn <= checkpoint)
        .count();
    let mut bound = checkpoint;
    let mut bytes = 0u64;
    for s in segments[..below].iter().rev() {
        bytes = bytes.saturating_add(s.size_bytes);
        let by_bytes = policy.retention_bytes == 0 || bytes <= policy.retention_bytes;
        let by_age = policy.retention_secs == 0 || s.age_secs <= policy.retention_secs;
        if !(by_bytes && by_age) {
            break;
        }
        bound = s.first_lsn;
    }
    bound
}

/// The retention run's decision for `meta` over `segments` (in LSN order). Pure.
///
/// F' = max(F, min(policy bound, every valid cursor that holds at most
/// `max_cursor_lag_bytes`)); a valid cursor below the policy bound that would hold more
/// is invalidated instead.
pub fn plan(meta: &LogMeta, segments: &[SegmentUse], policy: &RetentionPolicy) -> RetentionPlan {
    let bound = policy_bound(segments, meta.checkpoint(), policy);
    let mut floor = bound;
    let mut invalidate = Vec::new();
    for c in meta.cursors.iter().filter(|c| !c.invalidated) {
        if c.lsn >= bound {
            continue;
        }
        let held = lag_bytes(segments, c.lsn);
        if held > policy.max_cursor_lag_bytes {
            invalidate.push((c.name.clone(), held));
        } else {
            floor = floor.min(c.lsn);
        }
    }
    RetentionPlan {
        first_lsn: meta.first_lsn.max(floor),
        invalidate,
    }
}

/// What a retention run did.
#[derive(Debug, Clone, Default)]
pub struct Retained {
    /// Segment files removed, oldest first.
    pub removed: Vec<PathBuf>,
    /// Cursors invalidated by this run, with the bytes each would have held.
    pub invalidated: Vec<(String, u64)>,
    /// The first LSN after the run.
    pub first_lsn: u64,
    /// The segments left.
    pub segments: Vec<SegmentUse>,
    /// The removal that failed after `META` was replaced (its new first LSN, checkpoint
    /// and cursors stand; the segments below are removed by a later run): the caller
    /// applies the run, then reports this.
    pub removal_failed: Option<WalError>,
}

impl LogDir {
    /// Every segment with its size and age, in LSN order (a listing, then an `open` and
    /// an `fstat` each; a segment gone meanwhile is left out).
    pub fn segment_uses(&self) -> Result<Vec<SegmentUse>, WalError> {
        let (segments, _) = self.list()?;
        let now = std::time::SystemTime::now();
        Ok(segments
            .iter()
            .filter_map(|s| {
                let f = self.storage().open(&s.path, false).ok()?;
                let size_bytes = f.size_bytes().ok()?;
                let age_secs = match f.modified() {
                    Ok(Some(t)) => now.duration_since(t).map_or(0, |d| d.as_secs()),
                    _ => 0,
                };
                Some(SegmentUse {
                    first_lsn: s.first_lsn,
                    size_bytes,
                    age_secs,
                })
            })
            .collect())
    }

    /// One retention run: `change` applied to the current `META` value (a new checkpoint,
    /// a cursor moved or removed), then `plan` with this directory's policy; `META`
    /// replaced once, durably, if any field changed (F raised, C raised, cursors changed
    /// or invalidated); then every segment wholly below the new F removed, oldest first.
    /// A removal that fails once `META` was replaced is in [`Retained::removal_failed`]:
    /// the run's changes stand, and the caller must apply them.
    /// The caller checked `change` (and that a new checkpoint is durable). A log without
    /// a `META` file gets none for a checkpoint alone (as before cursors).
    pub fn retain_with(&self, change: impl FnOnce(&mut LogMeta)) -> Result<Retained, WalError> {
        // Decided from the value on disk (a directory opened without recovery has not
        // read it yet: segments went below a first LSN left at 1, and the log no longer
        // opened).
        self.meta().ensure_read()?;
        let mut segments = self.segment_uses()?;
        let before = self.meta().current().map(|m| (*m).clone());
        let mut next = before.clone().unwrap_or_default();
        change(&mut next);
        let plan = plan(&next, &segments, &self.retention_policy());
        next.first_lsn = plan.first_lsn;
        for (name, _) in &plan.invalidate {
            if let Some(c) = next.cursors.iter_mut().find(|c| &c.name == name) {
                c.invalidated = true;
            }
        }
        if removes_before_meta() {
            // The order the protocol forbids, for the teeth of tests/retention_crash.rs.
            self.remove_below(next.first_lsn)?;
        }
        let changed = match &before {
            Some(b) => {
                b.first_lsn != next.first_lsn
                    || b.checkpoint() != next.checkpoint()
                    || b.cursors != next.cursors
            }
            None => !next.cursors.is_empty(),
        };
        if changed {
            let (first, checkpoint, cursors) =
                (next.first_lsn, next.checkpoint(), next.cursors.clone());
            // Applied to the value under the store's lock (the spare helper may have
            // raised N since): F and C only ever go up; the cursors are written only
            // through this directory's owner, so `next`'s are the current ones changed.
            self.meta().update(|m| {
                m.first_lsn = m.first_lsn.max(first);
                m.checkpoint_lsn = m.checkpoint().max(checkpoint);
                m.cursors = cursors;
            })?;
        }
        if !plan.invalidate.is_empty() {
            tracing::warn!(invalidated = ?plan.invalidate, max_cursor_lag_bytes = self.retention_policy().max_cursor_lag_bytes, "cursors invalidated");
        }
        let (removed, removal_failed) = match self.remove_below(next.first_lsn) {
            Ok(removed) => (removed, None),
            Err(e) if changed => {
                tracing::warn!(error = %e, first_lsn = next.first_lsn, "segments below the new first LSN not removed; the next run removes them");
                (Vec::new(), Some(e))
            }
            Err(e) => return Err(e),
        };
        segments.drain(..removed.len());
        Ok(Retained {
            removed,
            invalidated: plan.invalidate,
            first_lsn: next.first_lsn,
            segments,
            removal_failed,
        })
    }

    /// The cursor `name`, created durably at the log's first LSN if it does not exist
    /// (after a retention run, so that it starts where the log now starts). Checked for a
    /// new one: the name ([`WalError::InvalidCursorName`]), the count
    /// ([`WalError::TooManyCursors`]);
    /// an invalidated cursor is [`WalError::CursorInvalidated`]; a directory with no
    /// `META` (no log yet, or one not opened since `META` existed) is
    /// [`WalError::NoLog`]. With the retention run that preceded a creation, if there was
    /// one.
    pub fn open_cursor(
        &self,
        name: &str,
        max_cursors: usize,
        max_name_bytes: usize,
    ) -> Result<(CursorMeta, Option<Retained>), WalError> {
        // An existing cursor first: the limits on names and counts are for new ones (a
        // cursor made under a longer `max_cursor_name_bytes` is still its consumer's).
        self.meta().ensure_read()?;
        let current = self.meta().current();
        if let Some(c) = current.as_ref().and_then(|m| m.cursor(name)) {
            return valid(c).map(|c| (c, None));
        }
        // No `META`: no log here yet, or one written before `META` existed, which its next
        // open gives one. A cursor made now would write a `META` with a first LSN of 0, which
        // the log's first segment then breaks: refused until the log is opened.
        if current.is_none() {
            return Err(WalError::NoLog {
                path: self.path().to_path_buf(),
            });
        }
        if let Some(reason) = crate::format::meta_cursors::check_cursor_name(name, max_name_bytes) {
            return Err(WalError::InvalidCursorName {
                name: crate::format::meta_cursors::shown_name(name),
                reason,
            });
        }
        let count = current.as_ref().map_or(0, |m| m.cursors.len());
        if count >= max_cursors {
            return Err(WalError::TooManyCursors { max: max_cursors });
        }
        let retained = self.retain_with(|_| {})?;
        let first = retained.first_lsn;
        let cursor = CursorMeta {
            name: name.to_string(),
            lsn: first,
            invalidated: false,
        };
        let put = cursor.clone();
        self.meta().update(|m| m.put_cursor(put))?;
        tracing::debug!(name, lsn = first, "cursor created");
        Ok((cursor, Some(retained)))
    }

    /// Moves the cursor `name` to `lsn` (durable before it returns), then runs retention.
    /// `lsn` equal to where it stands changes nothing (`None`). Refused, changing nothing: no such
    /// cursor, an invalidated one, `lsn` below it ([`WalError::CursorBackwards`]) or past
    /// `durable_end` ([`WalError::CursorPastEnd`]).
    pub fn advance_cursor(
        &self,
        name: &str,
        lsn: u64,
        durable_end: u64,
    ) -> Result<Option<Retained>, WalError> {
        let current = self.cursor_meta(name)?;
        valid(&current)?;
        if lsn < current.lsn {
            return Err(WalError::CursorBackwards {
                name: name.to_string(),
                lsn: crate::lsn::Lsn(lsn),
                current: crate::lsn::Lsn(current.lsn),
            });
        }
        if lsn > durable_end {
            return Err(WalError::CursorPastEnd {
                name: name.to_string(),
                lsn: crate::lsn::Lsn(lsn),
                durable_end: crate::lsn::Lsn(durable_end),
            });
        }
        if lsn == current.lsn {
            return Ok(None);
        }
        self.retain_with(|m| {
            m.put_cursor(CursorMeta {
                lsn,
                ..current.clone()
            })
        })
        .map(Some)
    }

    /// Removes the cursor `name` (valid or invalidated), durably, then runs retention.
    pub fn remove_cursor(&self, name: &str) -> Result<Retained, WalError> {
        self.cursor_meta(name)?;
        self.retain_with(|m| {
            m.remove_cursor(name);
        })
    }

    /// The cursor `name` as `META` holds it, or [`WalError::CursorNotFound`].
    fn cursor_meta(&self, name: &str) -> Result<CursorMeta, WalError> {
        self.meta().ensure_read()?;
        self.meta()
            .current()
            .and_then(|m| m.cursor(name).cloned())
            .ok_or_else(|| WalError::CursorNotFound {
                name: crate::format::meta_cursors::shown_name(name),
            })
    }
}

/// Whether the failpoint `retention::remove_before_meta` (feature `failpoints`) asks a run
/// to remove its segments before it replaces `META`: broken on purpose, so that the crash
/// test shows it would catch that order. Always false without the feature.
fn removes_before_meta() -> bool {
    fail::fail_point!("retention::remove_before_meta", |_| true);
    false
}

/// `c`, or [`WalError::CursorInvalidated`] if it was invalidated.
fn valid(c: &CursorMeta) -> Result<CursorMeta, WalError> {
    if c.invalidated {
        return Err(WalError::CursorInvalidated {
            name: c.name.clone(),
            lsn: crate::lsn::Lsn(c.lsn),
            lag_bytes: 0,
        });
    }
    Ok(c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(list: &[(u64, u64, u64)]) -> Vec<SegmentUse> {
        list.iter()
            .map(|&(first_lsn, size_bytes, age_secs)| SegmentUse {
                first_lsn,
                size_bytes,
                age_secs,
            })
            .collect()
    }

    fn cursor(name: &str, lsn: u64) -> CursorMeta {
        CursorMeta {
            name: name.into(),
            lsn,
            invalidated: false,
        }
    }

    #[test]
    fn without_cursors_or_policy_the_first_lsn_is_the_checkpoint() {
        let s = segs(&[(1, 100, 50), (11, 100, 40), (21, 100, 0)]);
        let meta = LogMeta {
            first_lsn: 1,
            checkpoint_lsn: 15,
            ..LogMeta::default()
        };
        let p = plan(&meta, &s, &RetentionPolicy::default());
        assert_eq!(p.first_lsn, 15);
        assert!(p.invalidate.is_empty());
        // Never back: a first LSN above what the rest would allow stays.
        let higher = LogMeta {
            first_lsn: 18,
            ..meta
        };
        assert_eq!(plan(&higher, &s, &RetentionPolicy::default()).first_lsn, 18);
    }

    #[test]
    fn bytes_and_age_keep_the_newest_segments_below_the_checkpoint() {
        // Segments 1, 11, 21, 31 wholly below the checkpoint 45; 41 holds it.
        let s = segs(&[
            (1, 100, 90),
            (11, 100, 60),
            (21, 100, 30),
            (31, 100, 10),
            (41, 100, 0),
        ]);
        let meta = LogMeta {
            first_lsn: 1,
            checkpoint_lsn: 45,
            ..LogMeta::default()
        };
        let by = |bytes, secs| {
            let policy = RetentionPolicy {
                retention_bytes: bytes,
                retention_secs: secs,
                ..RetentionPolicy::default()
            };
            plan(&meta, &s, &policy).first_lsn
        };
        assert_eq!(by(250, 0), 21);
        assert_eq!(by(99, 0), 45);
        assert_eq!(by(0, 40), 21);
        assert_eq!(by(0, 5), 45);
        assert_eq!(by(1000, 20), 31, "both: at most each");
        assert_eq!(by(1000, 1000), 1);
    }

    #[test]
    fn a_cursor_holds_until_it_would_hold_more_than_the_cap() {
        let s = segs(&[(1, 100, 0), (11, 100, 0), (21, 100, 0), (31, 100, 0)]);
        let meta = LogMeta {
            first_lsn: 1,
            checkpoint_lsn: 35,
            cursors: vec![cursor("a", 12), cursor("b", 33)],
            ..LogMeta::default()
        };
        let p = plan(&meta, &s, &RetentionPolicy::default());
        assert_eq!(p.first_lsn, 12);
        assert_eq!(lag_bytes(&s, 12), 300);
        let capped = RetentionPolicy {
            max_cursor_lag_bytes: 299,
            ..RetentionPolicy::default()
        };
        let p = plan(&meta, &s, &capped);
        assert_eq!(p.invalidate, vec![("a".to_string(), 300)]);
        assert_eq!(p.first_lsn, 33);
        // An invalidated cursor holds nothing; a cursor above the checkpoint neither.
        let mut gone = meta.clone();
        gone.cursors[0].invalidated = true;
        gone.cursors[1].lsn = 40;
        assert_eq!(plan(&gone, &s, &RetentionPolicy::default()).first_lsn, 35);
    }
}
