//! `Cuts`: how many times the store has cut the log (truncated, purged or reset it), odd
//! while a cut is under way. The store's readers compare it before and after a read of the
//! log, as a sequence lock: a read that no cut overlapped returns what the log held at one
//! moment, and one that a cut overlapped is made again once the cut is done. The store
//! never waits for a reader.

use std::sync::Arc;
use tokio::sync::watch;

/// The count of cuts, shared by the store (which counts them) and its readers. A `watch`
/// (tokio's, which runs under any runtime) so that a reader can wait for a cut under way
/// to end without polling.
#[derive(Debug, Clone)]
pub(crate) struct Cuts {
    count: Arc<watch::Sender<u64>>,
}

/// A cut under way, until this is dropped: also when the store's call is dropped midway
/// (openraft shutting down), so that readers never wait for a cut no one finishes.
#[must_use = "the cut ends when the guard is dropped"]
pub(crate) struct Cut {
    count: Arc<watch::Sender<u64>>,
}

impl Cuts {
    /// No cut yet.
    pub(crate) fn new() -> Cuts {
        Cuts {
            count: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Marks a cut under way (before the log or the recent entries change) until the
    /// guard returned is dropped (after they changed).
    pub(crate) fn begin(&self) -> Cut {
        self.count.send_modify(|n| *n += 1);
        Cut {
            count: self.count.clone(),
        }
    }

    /// The count once no cut is under way: at once, or when the one under way ends.
    pub(crate) async fn settled(&self) -> u64 {
        let mut rx = self.count.subscribe();
        // `wait_for` fails only once the sender is gone, and `self` holds it.
        let settled = rx.wait_for(|n| n.is_multiple_of(2)).await.map(|n| *n);
        settled.unwrap_or_else(|_| *self.count.borrow())
    }

    /// Whether no cut began since [`Cuts::settled`] returned `before`.
    pub(crate) fn unchanged(&self, before: u64) -> bool {
        before.is_multiple_of(2) && *self.count.borrow() == before
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.count.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_a_cut_overlapped_is_told_so() {
        let cuts = Cuts::new();
        let before = cuts.settled().await;
        assert!(cuts.unchanged(before));
        let cut = cuts.begin();
        assert!(!cuts.unchanged(before), "under way");
        drop(cut);
        assert!(!cuts.unchanged(before), "done, after the read began");
        let after = cuts.settled().await;
        assert!(cuts.unchanged(after));
    }

    #[tokio::test]
    async fn a_reader_waits_for_the_cut_under_way() {
        let cuts = Cuts::new();
        let cut = cuts.begin();
        let waiting = {
            let cuts = cuts.clone();
            tokio::spawn(async move { cuts.settled().await })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "settled while the cut was under way"
        );
        drop(cut);
        assert_eq!(waiting.await.unwrap(), 2);
    }
}
