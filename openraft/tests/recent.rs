//! The entries the store keeps in memory for replication (issue 21, item 6) always read as
//! the log does: after seeded sequences of appends, truncations (conflicting entries
//! overwritten in a later term) and purges, the store's reader (served from memory where
//! it can) and a reader made on the log alone (`WalLogReader::new`, which reads the log)
//! return the same entries for every range, and a bound of 0 keeps nothing in memory.

mod common;

use actix_wal_openraft::{WalLogReader, WalLogStore};
use common::{Config, Rng};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{blank_ent, log_id};
use openraft::{Entry, RaftLogId, RaftLogReader};

fn ids(entries: &[Entry<Config>]) -> Vec<(u64, u64)> {
    entries
        .iter()
        .map(|e| (e.get_log_id().leader_id.term, e.get_log_id().index))
        .collect()
}

/// Every range `a..b` over the log (and past it) reads the same through both readers.
async fn same_reads(
    seed: u64,
    step: usize,
    cached: &mut WalLogReader<Config>,
    plain: &mut WalLogReader<Config>,
    end: u64,
) {
    for a in 0..=end + 1 {
        for b in [a, a + 1, a + 3, end + 2] {
            let x = cached.try_get_log_entries(a..b).await.map(|v| ids(&v));
            let y = plain.try_get_log_entries(a..b).await.map(|v| ids(&v));
            assert_eq!(
                x.as_ref().ok(),
                y.as_ref().ok(),
                "seed {seed}, step {step}: try_get_log_entries({a}..{b})"
            );
            let x = cached.limited_get_log_entries(a, b).await.map(|v| ids(&v));
            let y = plain.limited_get_log_entries(a, b).await.map(|v| ids(&v));
            assert_eq!(
                x.is_ok(),
                y.is_ok(),
                "seed {seed}, step {step}: limited_get_log_entries({a}, {b}): {x:?} / {y:?}"
            );
            if let (Ok(x), Ok(y)) = (x, y) {
                // A limited read may return a shorter prefix; both start the same way.
                let n = x.len().min(y.len());
                assert_eq!(
                    x[..n],
                    y[..n],
                    "seed {seed}, step {step}: limited({a}, {b})"
                );
                assert!(!x.is_empty() || y.is_empty(), "seed {seed}, step {step}");
            }
        }
    }
}

#[tokio::test]
async fn reads_from_memory_match_reads_from_the_log_after_appends_truncations_and_purges() {
    for seed in 1..=12u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut store = WalLogStore::<Config>::open(dir.path(), Default::default())
            .await
            .unwrap();
        let mut cached = store.get_log_reader().await;
        let mut plain = WalLogReader::<Config>::new(store.wal().clone());
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (mut term, mut next, mut purged) = (1u64, 0u64, None::<u64>);
        for step in 0..30 {
            match rng.below(10) {
                // Append 1 to 5 entries of the current term.
                0..=5 => {
                    let n = 1 + rng.below(5);
                    let entries = (next..next + n).map(|i| blank_ent::<Config>(term, 1, i));
                    store.blocking_append(entries).await.unwrap();
                    next += n;
                }
                // A new leader overwrites a suffix: truncate, then append in a later term.
                6 | 7 if next > purged.map_or(0, |p| p + 1) + 1 => {
                    let low = purged.map_or(0, |p| p + 1) + 1;
                    let at = low + rng.below(next - low);
                    store.truncate(log_id(term, 1, at)).await.unwrap();
                    term += 1;
                    next = at;
                }
                // Purge a prefix that is there.
                8 if next > purged.map_or(0, |p| p + 1) + 1 => {
                    let low = purged.map_or(0, |p| p + 1);
                    let at = low + rng.below(next - 1 - low);
                    store.purge(log_id(term, 1, at)).await.unwrap();
                    purged = Some(at);
                }
                _ => {}
            }
            same_reads(seed, step, &mut cached, &mut plain, next).await;
        }
        store.wal().clone().shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_bound_of_zero_keeps_nothing_and_reads_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = WalLogStore::<Config>::open(dir.path(), Default::default())
        .await
        .unwrap()
        .with_recent_bytes(0);
    let entries = (0..10).map(|i| blank_ent::<Config>(1, 1, i));
    store.blocking_append(entries).await.unwrap();
    let mut reader = store.get_log_reader().await;
    let all = reader.try_get_log_entries(3..7).await.unwrap();
    assert_eq!(ids(&all), vec![(1, 3), (1, 4), (1, 5), (1, 6)]);
}
