//! Reads beside the store's cuts: a read of the log (`limited_get_log_entries`,
//! replication's read, and `try_get_log_entries`) that a truncation, a purge or a reset
//! overtakes returns the entries of its range that the log still holds, as the log held them
//! at one moment, from the index asked for (a replication read whose first index is gone
//! returns nothing), and never an error: openraft 0.9.25 stops the node on a replication
//! read's error, and a replication task left over from an earlier leadership, or reading
//! for a node just removed, is not covered by its purge guard.
//!
//! The first three are deterministic (feature `failpoints`: actix-wal's
//! `flusher::before_sync` holds the fsync of the last append back, so that the read waits
//! for it when the cut comes; found by a probe, 2026-12-07, which got
//! `Err("LSN 20 was removed by truncate_after or reset before it was acknowledged")` and
//! `Err("LSN 6 is not in the log")`); the last is a bounded random race of reads beside
//! appends, truncations, purges and resets.

mod common;

use actix_wal::WalConfig;
use actix_wal_openraft::WalLogStore;
use common::{Config, Rng};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftLogId, RaftLogReader};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Store = WalLogStore<Config>;

/// The entry at `index` written in `term`: its payload names both, so that a read can
/// tell an entry from another's bytes.
fn ent(term: u64, index: u64) -> Entry<Config> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(format!("{term}/{index}")),
    }
}

/// `(term, index)` of each entry, after checking that its payload is its own.
fn ids(entries: &[Entry<Config>]) -> Vec<(u64, u64)> {
    entries
        .iter()
        .map(|e| {
            let id = e.get_log_id();
            let (term, index) = (id.leader_id.term, id.index);
            match &e.payload {
                EntryPayload::Normal(s) => assert_eq!(*s, format!("{term}/{index}"), "wrong data"),
                other => panic!("wrong data at {id}: {other:?}"),
            }
            (term, index)
        })
        .collect()
}

#[cfg(feature = "failpoints")]
mod held_back {
    //! A read that waits for an append's fsync (held back) when the cut comes.

    use super::*;
    use actix_wal_openraft::WalLogReader;

    /// How the read is made.
    #[derive(Debug, Clone, Copy)]
    pub enum Read {
        /// `limited_get_log_entries(5, 20)`: replication's read.
        Limited,
        /// `try_get_log_entries(5..20)`.
        TryGet,
    }

    /// What the store does while the read waits.
    #[derive(Debug, Clone, Copy)]
    pub enum Cut {
        /// `truncate` at this index (a follower's conflict).
        Truncate(u64),
        /// `purge` up to this index (a snapshot; past the end of the log, a reset).
        Purge(u64),
    }

    /// Indexes 0..10 durable and 10..20 appended with their fsync held back 1.5 s (nothing
    /// kept in memory: every read reads the log); a read of 5..20 that waits for that
    /// fsync; then `cut` on the store. What the read returned, as `(term, index)`.
    pub async fn read_beside(read: Read, cut: Cut) -> Result<Vec<(u64, u64)>, String> {
        let scenario = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Default::default())
            .await
            .unwrap()
            .with_recent_bytes(0);
        store
            .blocking_append((0..10).map(|i| ent(1, i)))
            .await
            .unwrap();
        let mut reader: WalLogReader<Config> = store.get_log_reader().await;
        fail::cfg("flusher::before_sync", "1*sleep(1500)").unwrap();
        // openraft's append returns before its callback; the wait for the callback is
        // given up (the entries stay enqueued).
        let pending = store.blocking_append((10..20).map(|i| ent(1, i)));
        let waited = tokio::time::timeout(Duration::from_millis(300), pending).await;
        assert!(waited.is_err(), "the fsync was not held back");
        let reading = tokio::spawn(async move {
            match read {
                Read::Limited => reader.limited_get_log_entries(5, 20).await,
                Read::TryGet => reader.try_get_log_entries(5..20).await,
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await; // it waits in wait_durable
        match cut {
            Cut::Truncate(index) => store.truncate(log_id(2, 1, index)).await.unwrap(),
            Cut::Purge(index) => store.purge(log_id(1, 1, index)).await.unwrap(),
        }
        let got = reading.await.unwrap();
        fail::remove("flusher::before_sync");
        store.wal().shutdown().await.unwrap();
        scenario.teardown();
        got.map(|es| ids(&es)).map_err(|e| e.to_string())
    }
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_overtaken_by_a_truncation_returns_the_entries_before_the_cut() {
    use held_back::{read_beside, Cut, Read};
    // A follower's conflict: keeps 0..=11.
    let truncate = Cut::Truncate(12);
    let kept: Vec<(u64, u64)> = (5..12).map(|i| (1, i)).collect();

    let limited = read_beside(Read::Limited, truncate).await;
    let limited = limited.expect("limited_get_log_entries(5, 20) beside truncate(12)");
    assert!(
        !limited.is_empty() && kept.starts_with(&limited),
        "limited_get_log_entries(5, 20) beside truncate(12): {limited:?}"
    );
    let all = read_beside(Read::TryGet, truncate).await;
    let all = all.expect("try_get_log_entries(5..20) beside truncate(12)");
    assert_eq!(all, kept, "try_get_log_entries(5..20) beside truncate(12)");
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_overtaken_by_a_purge_returns_what_is_left_and_a_replication_read_from_a_purged_index_nothing(
) {
    use held_back::{read_beside, Cut, Read};
    // A snapshot's purge: drops 0..=7.
    let purge = Cut::Purge(7);

    let limited = read_beside(Read::Limited, purge).await;
    let limited = limited.expect("limited_get_log_entries(5, 20) beside purge(7)");
    assert_eq!(
        limited,
        vec![],
        "limited_get_log_entries(5, 20) beside purge(7): its first index is purged"
    );
    let all = read_beside(Read::TryGet, purge).await;
    let all = all.expect("try_get_log_entries(5..20) beside purge(7)");
    let left: Vec<(u64, u64)> = (8..20).map(|i| (1, i)).collect();
    assert_eq!(all, left, "try_get_log_entries(5..20) beside purge(7)");
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_overtaken_by_a_reset_returns_nothing() {
    use held_back::{read_beside, Cut, Read};
    // A snapshot installed past the end of the log: the log resets to index 26.
    let reset = Cut::Purge(25);
    for read in [Read::Limited, Read::TryGet] {
        let got = read_beside(read, reset).await;
        assert_eq!(got, Ok(vec![]), "{read:?} of 5..20 beside purge(25)");
    }
}

/// What the writer did, for the readers to choose ranges and to check what they got.
#[derive(Debug, Default)]
struct Model {
    /// The first index not purged.
    first: u64,
    /// The index after the last entry.
    end: u64,
    /// Every entry written, by index: its term, and the term in which a truncation cut it
    /// (`u64::MAX`: never). Each truncation starts a new term, so the entry `(term, index)`
    /// was in the log from term `term` until the term that cut it.
    written: HashMap<u64, Vec<(u64, u64)>>,
}

impl Model {
    /// Whether the log held all of `got` at one moment: some term lies within the life
    /// of every entry (entries written before a cut next to ones written after it fail).
    fn one_moment(&self, got: &[(u64, u64)]) -> Result<(), String> {
        let (mut born, mut cut) = (0, u64::MAX);
        for &(term, index) in got {
            let mut lives = self.written.get(&index).into_iter().flatten();
            let Some(&(_, cut_in)) = lives.find(|(t, _)| *t == term) else {
                return Err(format!("({term}, {index}) was never written"));
            };
            born = born.max(term);
            cut = cut.min(cut_in);
        }
        match born < cut {
            true => Ok(()),
            false => Err(format!("not in the log at one moment: {got:?}")),
        }
    }
}

/// For `secs` seconds: a writer appends, truncates (a new term after each), purges and
/// purges past the end (a reset) at random, as a follower's store does, while two tasks
/// read random ranges around the log through the store's reader (one
/// `limited_get_log_entries`, as a replication task left over from an earlier leadership,
/// one `try_get_log_entries`). Every read must answer Ok with entries of its range,
/// consecutive, as the log held them at one moment, a limited one from the index asked for.
async fn race(seed: u64, recent_bytes: Option<usize>, segment_bytes: Option<u64>, secs: u64) {
    // One at a time with this file's failpoint tests: its fsyncs would take the one they
    // hold back (failpoints are the process's).
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::default();
    if let Some(bytes) = segment_bytes {
        config = config.segment_size_bytes(bytes);
    }
    let mut store = Store::open(dir.path(), config).await.unwrap();
    if let Some(bytes) = recent_bytes {
        store = store.with_recent_bytes(bytes);
    }
    let reader = store.get_log_reader().await;
    let model = Arc::new(Mutex::new(Model::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // Set once the writer has truncated, purged and reset at least once each: the readers
    // go on past `secs` until then (a loaded machine gets few rounds in), up to a minute.
    let varied = Arc::new(AtomicBool::new(false));

    let writer = {
        let (model, stop, varied) = (model.clone(), stop.clone(), varied.clone());
        tokio::spawn(async move {
            let mut rng = Rng(seed);
            let (mut term, mut cuts, mut purges, mut resets) = (1u64, 0u64, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let (first, next) = {
                    let m = model.lock().unwrap();
                    (m.first, m.end)
                };
                let n = 1 + rng.below(20);
                {
                    // Written into the model first: a reader may see the entries as soon
                    // as the log takes them.
                    let mut m = model.lock().unwrap();
                    for i in next..next + n {
                        m.written.entry(i).or_default().push((term, u64::MAX));
                    }
                    m.end = next + n;
                }
                let entries = (next..next + n).map(|i| ent(term, i));
                store.blocking_append(entries).await.unwrap();
                let next = next + n;
                match rng.below(10) {
                    0 | 1 if next > first + 2 => {
                        // A conflict: the entries from `cut` on go; the next term begins.
                        let cut = next - 1 - rng.below((next - first - 2).min(30));
                        {
                            let mut m = model.lock().unwrap();
                            for i in cut..next {
                                for life in m.written.get_mut(&i).into_iter().flatten() {
                                    if life.1 == u64::MAX {
                                        life.1 = term + 1;
                                    }
                                }
                            }
                        }
                        store.truncate(log_id(term + 1, 1, cut)).await.unwrap();
                        model.lock().unwrap().end = cut;
                        term += 1;
                        cuts += 1;
                    }
                    2 if next > first + 40 => {
                        // A snapshot's purge, keeping some entries.
                        let upto = next - 1 - rng.below(30);
                        store.purge(log_id(term, 1, upto)).await.unwrap();
                        model.lock().unwrap().first = upto + 1;
                        purges += 1;
                    }
                    3 if rng.below(5) == 0 => {
                        // A snapshot installed past the end: the log resets.
                        let upto = next + rng.below(10);
                        store.purge(log_id(term, 1, upto)).await.unwrap();
                        let mut m = model.lock().unwrap();
                        (m.first, m.end) = (upto + 1, upto + 1);
                        resets += 1;
                    }
                    _ => {}
                }
                if cuts > 0 && purges > 0 && resets > 0 {
                    varied.store(true, Ordering::Relaxed);
                }
            }
            store.wal().shutdown().await.unwrap();
            (cuts, purges, resets)
        })
    };

    let readers: Vec<_> = [true, false]
        .into_iter()
        .enumerate()
        .map(|(k, limited)| {
            let (model, mut reader, varied) = (model.clone(), reader.clone(), varied.clone());
            // A seed of its own for each reader, never 0 (xorshift stays at 0).
            let mut rng = Rng(seed.rotate_left(8 * (k as u32 + 1)) | 1);
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(secs);
                let cap = deadline + Duration::from_secs(60);
                let (mut reads, mut entries, mut empty) = (0u64, 0u64, 0u64);
                loop {
                    let now = Instant::now();
                    if now >= cap || (now >= deadline && varied.load(Ordering::Relaxed)) {
                        break;
                    }
                    let (first, end) = {
                        let m = model.lock().unwrap();
                        (m.first, m.end)
                    };
                    let lo = first.saturating_sub(5) + rng.below(end + 10 - first);
                    let hi = lo + 1 + rng.below(64);
                    let got = match limited {
                        true => reader.limited_get_log_entries(lo, hi).await,
                        false => reader.try_get_log_entries(lo..hi).await,
                    };
                    let what = match limited {
                        true => format!("seed {seed}: limited_get_log_entries({lo}, {hi})"),
                        false => format!("seed {seed}: try_get_log_entries({lo}..{hi})"),
                    };
                    let got = ids(&got.unwrap_or_else(|e| panic!("{what}: {e}")));
                    let indexes: Vec<u64> = got.iter().map(|g| g.1).collect();
                    if let (Some(&a), Some(&b)) = (indexes.first(), indexes.last()) {
                        assert!(a >= lo && b < hi, "{what}: outside the range: {got:?}");
                        assert!(!limited || a == lo, "{what}: started elsewhere: {got:?}");
                        let consecutive = indexes.windows(2).all(|w| w[0] + 1 == w[1]);
                        assert!(consecutive, "{what}: not consecutive: {got:?}");
                    }
                    if let Err(e) = model.lock().unwrap().one_moment(&got) {
                        panic!("{what}: {e}");
                    }
                    reads += 1;
                    entries += got.len() as u64;
                    empty += u64::from(got.is_empty());
                    if rng.below(4) == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                (reads, entries, empty)
            })
        })
        .collect();

    let mut read = Vec::new();
    for r in readers {
        read.push(r.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let (cuts, purges, resets) = writer.await.unwrap();
    println!(
        "seed {seed}, recent {recent_bytes:?}, segments {segment_bytes:?}: reads (count, entries, empty) {read:?}; \
         truncations {cuts}, purges {purges}, resets {resets}"
    );
    assert!(
        cuts > 0 && purges > 0 && resets > 0,
        "the writer cut too little"
    );
    assert!(
        read.iter().all(|&(n, e, _)| n > 0 && e > 0),
        "too little read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_truncations_purges_and_resets_answer_the_log_of_one_moment() {
    // Nothing kept in memory (every read reads the log); the same on 16 KiB segments (a
    // read crosses from one to the next, each part checked on its own by the log); the
    // default.
    race(0xD1B5_4A32_D192_ED03, Some(0), None, 2).await;
    race(0x9E37_79B9_7F4A_7C15, Some(0), Some(16 << 10), 2).await;
    race(0x2545_F491_4F6C_DD1D, None, None, 2).await;
}
