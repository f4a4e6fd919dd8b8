//! The check of a rewind or reset intent found in `META` against the log's segments,
//! before recovery acts on it (docs/format.md, "Recovery", step 3). Pure: it reads no
//! file, so offline readers can apply the same rule to what they listed and read.

use crate::format::meta::{LogMeta, MetaIntent};

/// What the check knows of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    /// The segment's first LSN (its name).
    pub first_lsn: u64,
    /// The LSN after its last whole frame, when the caller read it (`None`: not read;
    /// then whether its frames reach the cut is left to the walk that finds the cut,
    /// `LogDir::locate_cut`, which reads only).
    pub end_lsn: Option<u64>,
}

/// Why an intent was refused: recovery must not act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentConflict {
    /// What conflicts, in words.
    pub reason: String,
}

impl std::fmt::Display for IntentConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for IntentConflict {}

/// Checks `meta`'s intent against `segments` (in LSN order): `Ok` when recovery may
/// complete it, which it then does; else what is wrong, and nothing may be touched.
///
/// - Every intent: its fields agree with each other ([`LogMeta::conflict`]: a cut at or
///   above the first LSN F and N at or below it; a reset to `1..=2^63-1` with F at its
///   LSN and N at 0). A `Reset(0)`, or a `Reset(5)` written into the `META` of a log
///   whose F is 1, is refused here.
/// - `TruncateAfter(x)`: a segment S with first LSN at or below `x + 1` (the last such
///   is where the cut falls), and if S was read, its frames reach `x + 1` (every record
///   up to `x` was durable before the intent was written). Segments above S may or may
///   not be there: a crash during the removals keeps any subset.
/// - `Reset(n)`: nothing more to check in the segments. Any subset of the old segments
///   may survive a crash during the removals, and a reset of an empty log may go below
///   its old records, so no segment contradicts it.
///
/// A `META` copy that is older than the other (a backup restored over one copy) never
/// gets here: the newer copy is taken (`read_meta_copies`).
pub fn check_intent(meta: &LogMeta, segments: &[SegmentSpan]) -> Result<(), IntentConflict> {
    if let Some(reason) = meta.conflict() {
        return Err(IntentConflict { reason });
    }
    let MetaIntent::TruncateAfter(x) = meta.intent else {
        return Ok(());
    };
    // `conflict` refused x = u64::MAX.
    let cut = x + 1;
    let s = segments
        .iter()
        .rev()
        .find(|s| s.first_lsn <= cut)
        .ok_or_else(|| IntentConflict {
            reason: format!(
                "truncate after LSN {x} pending, but no segment starts at or below LSN {cut}"
            ),
        })?;
    match s.end_lsn {
        Some(end) if end < cut => Err(IntentConflict {
            reason: format!(
                "truncate after LSN {x} pending, but the segment from LSN {} ends at LSN {}",
                s.first_lsn,
                end.saturating_sub(1)
            ),
        }),
        _ => Ok(()),
    }
}
