//! Reads through `WalLogReader`: `try_get_log_entries` returns the entries of a range that
//! the log holds; `limited_get_log_entries` (replication's read) starts exactly where it
//! is asked to, or returns nothing (a purged start: openraft 0.9.25 takes that as a
//! heartbeat, where an error would stop the node; see `WalLogReader`).

mod common;

use actix_wal_openraft::WalLogStore;
use common::Config;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{blank_ent, log_id};
use openraft::{RaftLogId, RaftLogReader};

fn indexes(entries: &[openraft::Entry<Config>]) -> Vec<u64> {
    entries.iter().map(|e| e.get_log_id().index).collect()
}

#[tokio::test]
async fn a_limited_read_from_a_purged_index_returns_nothing_instead_of_starting_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = WalLogStore::<Config>::open(dir.path(), Default::default())
        .await
        .unwrap();
    let entries = (0..10).map(|i| blank_ent::<Config>(1, 1, i));
    store.blocking_append(entries).await.unwrap();
    store.purge(log_id(1, 1, 4)).await.unwrap();
    let mut reader = store.get_log_reader().await;

    let purged_start = reader.limited_get_log_entries(2, 8).await.unwrap();
    assert!(purged_start.is_empty(), "got {purged_start:?}");
    let kept = reader.limited_get_log_entries(5, 8).await.unwrap();
    assert!(!kept.is_empty() && kept.len() <= 3);
    assert_eq!(kept[0].get_log_id().index, 5);
    // try_get_log_entries may leave out what is not there: the purged part of the range.
    assert_eq!(
        indexes(&reader.try_get_log_entries(0..8).await.unwrap()),
        vec![5, 6, 7]
    );
    assert_eq!(
        indexes(&reader.try_get_log_entries(8..).await.unwrap()),
        vec![8, 9]
    );
    assert!(reader.try_get_log_entries(10..20).await.unwrap().is_empty());
}
