//! What subscribers watch ([`crate::Subscription`]): the log's durable end and the cuts
//! that removed records (rewinds, resets, rewrites), published by the queue as it moves
//! its read index (`actors/queue/reads.rs`) on a `tokio::sync::watch` channel. A watch
//! keeps only the newest value: a slow subscriber never holds up commits or other
//! subscribers, and reads what it missed from the files.
//!
//! While a subscriber follows, the queue also publishes the newest durable batches
//! themselves (shared, not copied: the buffer the flusher wrote), at most
//! [`LIVE_BATCHES_MAX_BYTES`] of them: a subscriber that keeps up takes its records from
//! there, read once for all, instead of reading the files. They go when the last
//! subscriber does.

use crate::log::Batch;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::watch;

/// Bytes of the newest durable batches kept for live subscribers (the batches' encoded
/// frames); older ones are read from the files.
pub(crate) const LIVE_BATCHES_MAX_BYTES: usize = 4 << 20;
/// Batches kept for live subscribers at most (whatever their size).
pub(crate) const LIVE_BATCHES_MAX: usize = 1024;

/// Cuts remembered for subscribers that look rarely; one that missed more is told of the
/// lowest cut still remembered (its records may have been removed).
pub(crate) const CUTS_KEPT: usize = 32;

/// The queue's progress, as subscribers see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Every LSN below this is durable (and readable, unless checkpointed away).
    pub(crate) durable_end: u64,
    /// Cuts so far (a count: a subscriber remembers the count it has seen).
    pub(crate) cuts: u64,
    /// The newest cuts: (their count, the LSN from which records were removed).
    pub(crate) recent_cuts: VecDeque<(u64, u64)>,
    /// The lowest LSN any cut since the open removed records from (`None`: no cut yet):
    /// a replay of what the log held at open ends there ([`crate::Replay`]).
    pub(crate) lowest_cut: Option<u64>,
    /// The log shut down: subscriptions end.
    pub(crate) closed: bool,
    /// The log's first LSN as of its last checkpoint here (0 before any): a chunk read
    /// ahead from below it is not handed out.
    pub(crate) first_lsn: u64,
    /// The newest durable batches, oldest first, contiguous, all below `durable_end`;
    /// kept only while a subscriber follows (see [`LIVE_BATCHES_MAX_BYTES`]).
    pub(crate) live: VecDeque<Arc<Batch>>,
    /// Bytes of `live`'s buffers.
    live_bytes: usize,
}

impl Progress {
    /// The lowest LSN of a cut made after the `seen` cuts that removed a record below
    /// `next` (one a subscriber that reached `next` already received); a subscriber that
    /// missed more cuts than are kept is given the lowest kept.
    pub(crate) fn cut_below(&self, seen: u64, next: u64) -> Option<u64> {
        if self.cuts == seen {
            return None;
        }
        let missed_some = self
            .recent_cuts
            .front()
            .is_some_and(|&(n, _)| n > seen.saturating_add(1));
        let lowest = self
            .recent_cuts
            .iter()
            .filter(|&&(n, _)| n > seen)
            .map(|&(_, lsn)| lsn)
            .min();
        match lowest {
            Some(lsn) if lsn < next || missed_some => Some(lsn.min(next)),
            _ => None,
        }
    }

    /// The kept batches from the one holding `next` on, up to about `max_bytes` of them
    /// (at least one): empty when `next` is not among them.
    pub(crate) fn live_from(&self, next: u64, max_bytes: usize) -> Vec<Arc<Batch>> {
        let first = self.live.partition_point(|b| b.end_lsn <= next);
        if self.live.get(first).is_none_or(|b| b.first_lsn > next) {
            return Vec::new();
        }
        let mut bytes = 0;
        self.live
            .iter()
            .skip(first)
            .take_while(|b| {
                let take = bytes == 0 || bytes + b.bytes() <= max_bytes;
                bytes += b.bytes();
                take
            })
            .cloned()
            .collect()
    }

    fn clear_live(&mut self) {
        self.live.clear();
        self.live_bytes = 0;
    }
}

/// The queue's end of the channel.
#[derive(Debug)]
pub(crate) struct ProgressTx {
    /// Shared (weakly) with the subscribers, so that the last to go drops the batches
    /// kept for them ([`Following`]); only the queue's keeps the channel open.
    tx: Arc<watch::Sender<Progress>>,
    /// `Progress::cuts`, readable without the watch's lock (a subscriber checks it before
    /// every record it yields).
    cuts: Arc<AtomicU64>,
    /// Subscriptions alive: batches are kept for them only while there is one.
    subscribers: Arc<AtomicUsize>,
}

/// A subscriber's end.
#[derive(Debug, Clone)]
pub(crate) struct ProgressRx {
    /// The values.
    pub(crate) rx: watch::Receiver<Progress>,
    cuts: Arc<AtomicU64>,
    subscribers: Arc<AtomicUsize>,
    /// The queue's end, while it is there (weak: a subscriber does not keep the channel
    /// open, it learns of its close).
    tx: Weak<watch::Sender<Progress>>,
}

/// A subscription's place in the count of subscribers ([`ProgressRx::follow`]); dropping
/// it leaves.
#[derive(Debug)]
pub(crate) struct Following {
    subscribers: Arc<AtomicUsize>,
    tx: Weak<watch::Sender<Progress>>,
}

impl Drop for Following {
    /// The last subscriber to go drops the batches kept for subscribers (up to
    /// [`LIVE_BATCHES_MAX_BYTES`]), rather than leave them to the next commit: a log that
    /// then idles would hold them for nobody. The count is read again under the watch's
    /// lock, as [`durable_batch`] reads it: a subscriber that came meanwhile keeps them.
    fn drop(&mut self) {
        if self.subscribers.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(tx) = self.tx.upgrade() else {
            return; // the log shut down: nothing kept
        };
        tx.send_if_modified(|p| {
            if self.subscribers.load(Ordering::Acquire) == 0 {
                p.clear_live();
            }
            false // nobody to wake
        });
    }
}

impl ProgressRx {
    /// Cuts so far (as `Progress::cuts`, without taking the watch's lock).
    pub(crate) fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Acquire)
    }

    /// Counts a subscriber in until the returned value is dropped.
    pub(crate) fn follow(&self) -> Following {
        self.subscribers.fetch_add(1, Ordering::AcqRel);
        Following {
            subscribers: self.subscribers.clone(),
            tx: self.tx.clone(),
        }
    }
}

/// A channel starting at `durable_end`.
pub(crate) fn channel(durable_end: u64) -> (ProgressTx, ProgressRx) {
    let (tx, rx) = watch::channel(Progress {
        durable_end,
        ..Progress::default()
    });
    let tx = Arc::new(tx);
    let cuts = Arc::new(AtomicU64::new(0));
    let subscribers = Arc::new(AtomicUsize::new(0));
    (
        ProgressTx {
            tx: tx.clone(),
            cuts: cuts.clone(),
            subscribers: subscribers.clone(),
        },
        ProgressRx {
            rx,
            cuts,
            subscribers,
            tx: Arc::downgrade(&tx),
        },
    )
}

/// Publishes that the durable end is `end`.
pub(crate) fn durable(tx: &ProgressTx, end: u64) {
    tx.tx.send_modify(|p| p.durable_end = end);
}

/// Publishes that `batch` is durable: the durable end moves to its end, and while a
/// subscriber follows, the batch is kept for it (the oldest kept go past the bounds).
/// With no subscriber the value changes but nobody is woken (tokio's `watch` wakes
/// through eight locked shards per send: a few hundred instructions per commit). Safe
/// because the count is read under the watch's lock, and a subscriber counts itself in
/// before it first reads the value: either the write comes first and the subscriber's
/// first read sees it, or the count does and the write wakes it.
pub(crate) fn durable_batch(tx: &ProgressTx, batch: &Arc<Batch>) {
    tx.tx.send_if_modified(|p| {
        p.durable_end = batch.end_lsn;
        let following = tx.subscribers.load(Ordering::Acquire) > 0;
        if !following || batch.is_empty() {
            p.clear_live();
            return following;
        }
        if p.live.back().is_some_and(|b| b.end_lsn != batch.first_lsn) {
            p.clear_live(); // kept batches are contiguous
        }
        p.live_bytes += batch.bytes();
        p.live.push_back(batch.clone());
        while p.live.len() > LIVE_BATCHES_MAX
            || (p.live_bytes > LIVE_BATCHES_MAX_BYTES && p.live.len() > 1)
        {
            if let Some(old) = p.live.pop_front() {
                p.live_bytes -= old.bytes();
            }
        }
        true
    });
}

/// Publishes a checkpoint at `first_lsn`: kept batches that start below it are dropped
/// (their records are no longer the log's; a subscriber there reads the files, and is
/// told it is behind).
pub(crate) fn checkpoint(tx: &ProgressTx, first_lsn: u64) {
    tx.tx.send_if_modified(|p| {
        let moved = p.first_lsn != first_lsn;
        p.first_lsn = first_lsn;
        let before = p.live.len();
        while p.live.front().is_some_and(|b| b.first_lsn < first_lsn) {
            if let Some(old) = p.live.pop_front() {
                p.live_bytes -= old.bytes();
            }
        }
        moved || p.live.len() != before
    });
}

/// Publishes a cut: records from `lsn` on were removed; the durable end is at most `lsn`.
pub(crate) fn cut(tx: &ProgressTx, lsn: u64) {
    tx.tx.send_modify(|p| {
        p.cuts += 1;
        tx.cuts.store(p.cuts, Ordering::Release);
        if p.recent_cuts.len() == CUTS_KEPT {
            p.recent_cuts.pop_front();
        }
        p.recent_cuts.push_back((p.cuts, lsn));
        p.lowest_cut = Some(p.lowest_cut.map_or(lsn, |c| c.min(lsn)));
        p.durable_end = p.durable_end.min(lsn);
        p.clear_live();
    });
}

/// Publishes that the log shut down.
pub(crate) fn close(tx: &ProgressTx) {
    tx.tx.send_modify(|p| {
        p.closed = true;
        p.clear_live();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_matters_only_below_what_a_subscriber_received() {
        let (tx, rx) = channel(10);
        cut(&tx, 8);
        assert_eq!(rx.cuts(), 1);
        let p = rx.rx.borrow().clone();
        assert_eq!(p.cut_below(0, 8), None, "nothing received at or past 8");
        assert_eq!(p.cut_below(0, 9), Some(8));
        assert_eq!(p.cut_below(1, 9), None, "seen already");
        assert_eq!(p.durable_end, 8);
    }

    #[test]
    fn the_lowest_cut_since_the_open_is_kept_past_the_cuts_remembered() {
        let (tx, rx) = channel(1_000);
        assert_eq!(rx.rx.borrow().lowest_cut, None);
        cut(&tx, 500);
        for i in 0..(CUTS_KEPT as u64 + 5) {
            cut(&tx, 900 - i);
        }
        assert_eq!(rx.rx.borrow().lowest_cut, Some(500));
    }

    #[test]
    fn a_subscriber_that_missed_forgotten_cuts_is_told() {
        let (tx, rx) = channel(1_000);
        for i in 0..(CUTS_KEPT as u64 + 5) {
            cut(&tx, 900 - i);
        }
        let p = rx.rx.borrow().clone();
        assert!(
            p.cut_below(0, 10).is_some(),
            "may have missed a cut below 10"
        );
        assert_eq!(p.cut_below(p.cuts - 1, 10), None);
    }
}
