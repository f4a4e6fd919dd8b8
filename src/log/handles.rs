//! Open segment files kept between reads of the open log, so a read costs one `pread`
//! and not an `open`, a `pread` and a `close` (the open and close were about 4 us of a
//! 20 us read; docs/performance.md).
//!
//! The cache lives inside the [read index](super::index) and follows it: every change of
//! the index that can change which file a segment name stands for, or remove one (a cut,
//! a checkpoint's removals, a new first LSN, shutdown), gives the index a new
//! **generation** and drops every cached handle on the spot, under the index's write lock.
//! So a handle on a removed segment does not keep its disk space past the index update,
//! and a segment removed and created again under the same name (a rewind, a reset) is
//! never read through a handle on the old file. A reader takes a handle out (it is not
//! `Sync`), reads, and puts it back only if the generation it looked the LSN up in is
//! still current; otherwise it drops the handle and the bytes it read, and looks again.

use crate::storage::StorageFile;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Handles kept at most, over all segments. Enough for every reader thread and a few
/// callers reading in place at once; more concurrent readers open and close their own.
pub const MAX_CACHED_HANDLES: usize = 16;

/// Generations come from one process-wide counter, so an index built afresh (at open, or
/// replaced whole) never reuses a generation a reader may still hold.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// A generation never handed out before.
pub fn fresh_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Open segment files, by segment first LSN (see the module docs).
#[derive(Default)]
pub struct SegmentHandles {
    /// `(segment first LSN, open file)`; at most [`MAX_CACHED_HANDLES`]. A short `Vec`
    /// (a linear search over 16 is faster than any map here); a `Mutex` because
    /// `StorageFile` is `Send` but not `Sync`, held only to take or put one handle.
    open: Mutex<Vec<(u64, Box<dyn StorageFile>)>>,
}

impl SegmentHandles {
    fn open(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Box<dyn StorageFile>)>> {
        // A panic while holding it cannot leave the Vec half changed (push, swap_remove).
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a cached handle on segment `segment_first_lsn` out of the cache, if one is.
    pub fn take(&self, segment_first_lsn: u64) -> Option<Box<dyn StorageFile>> {
        let mut open = self.open();
        let i = open.iter().position(|(s, _)| *s == segment_first_lsn)?;
        Some(open.swap_remove(i).1)
    }

    /// Puts a handle back (the caller checked the generation); dropped if the cache is full.
    pub fn put(&self, segment_first_lsn: u64, file: Box<dyn StorageFile>) {
        let mut open = self.open();
        if open.len() < MAX_CACHED_HANDLES {
            open.push((segment_first_lsn, file));
        }
    }

    /// Drops every cached handle (closing the files).
    pub fn clear(&self) {
        self.open().clear();
    }

    /// Handles cached now (for tests).
    pub fn len(&self) -> usize {
        self.open().len()
    }

    /// Whether none is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Clone for SegmentHandles {
    /// A clone of an index starts with no open files (handles are not shared).
    fn clone(&self) -> SegmentHandles {
        SegmentHandles::default()
    }
}

impl fmt::Debug for SegmentHandles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentHandles({} open)", self.len())
    }
}
