//! What the adapter keeps across a reopen (a restart or a crash: every call below returned
//! after its fsync), and the appends it refuses. openraft's suite never reopens a store.

use actix_wal_openraft::WalLogStore;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{blank_ent, log_id};
use openraft::{LogId, RaftLogId, RaftLogReader, Vote};
use std::path::Path;

mod common;
use common::Config;

type Store = WalLogStore<Config>;

async fn open(dir: &Path) -> Store {
    Store::open(dir, Default::default())
        .await
        .expect("log opens")
}

/// Shuts the log down (as a clean stop does; a crash loses nothing more, since every call
/// returned after its fsync) and opens it again.
async fn reopen(store: Store, dir: &Path) -> Store {
    store.wal().shutdown().await.expect("log shuts down");
    drop(store);
    open(dir).await
}

/// Appends blank entries of `term` at `indexes`, waiting for openraft's callback.
async fn append(store: &mut Store, term: u64, indexes: std::ops::Range<u64>) {
    let entries = indexes.map(|i| blank_ent::<Config>(term, 1, i));
    store
        .blocking_append(entries)
        .await
        .expect("append is durable");
}

async fn log_ids(store: &mut Store) -> Vec<LogId<u64>> {
    let entries = store.try_get_log_entries(..).await.expect("entries read");
    entries.iter().map(|e| *e.get_log_id()).collect()
}

#[tokio::test]
async fn vote_committed_purge_and_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, 1, 0..11).await;
    store.save_vote(&Vote::new(3, 1)).await.unwrap();
    // The committed log id is written with the next slot write: here, the purge's.
    store.save_committed(Some(log_id(1, 1, 7))).await.unwrap();
    store.purge(log_id(1, 1, 4)).await.unwrap();

    let mut store = reopen(store, dir.path()).await;
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 7)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 10)));
    let want: Vec<_> = (5..11).map(|i| log_id(1, 1, i)).collect();
    assert_eq!(log_ids(&mut store).await, want);
    // The log continues where it was: the next append is index 11.
    append(&mut store, 2, 11..12).await;
    assert_eq!(log_ids(&mut store).await.last(), Some(&log_id(2, 1, 11)));
}

#[tokio::test]
async fn a_purge_past_the_end_moves_the_log_on_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, 1, 0..4).await;
    // A follower installing a snapshot that reaches past its log.
    store.purge(log_id(2, 1, 20)).await.unwrap();
    assert!(log_ids(&mut store).await.is_empty());
    append(&mut store, 2, 21..23).await;

    let mut store = reopen(store, dir.path()).await;
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 1, 20)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 22)));
    assert_eq!(
        log_ids(&mut store).await,
        vec![log_id(2, 1, 21), log_id(2, 1, 22)]
    );
    assert_eq!(
        store.wal().stats().await.unwrap().next_lsn.0,
        24,
        "index i at LSN i + 1"
    );
}

#[tokio::test]
async fn truncated_entries_stay_gone_and_their_indexes_take_new_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, 1, 0..10).await;
    store.truncate(log_id(1, 1, 6)).await.unwrap();
    append(&mut store, 2, 6..8).await;

    let mut store = reopen(store, dir.path()).await;
    let mut want: Vec<_> = (0..6).map(|i| log_id(1, 1, i)).collect();
    want.extend([log_id(2, 1, 6), log_id(2, 1, 7)]);
    assert_eq!(log_ids(&mut store).await, want);
}

#[tokio::test]
async fn an_append_that_would_leave_a_hole_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, 1, 0..3).await;
    let hole = store.blocking_append([blank_ent::<Config>(1, 1, 5)]).await;
    let message = hole.expect_err("a hole is refused").to_string();
    assert!(
        message.contains("entry index 5 belongs at LSN 6, the log's next LSN is 4"),
        "{message}"
    );
    let inside = store
        .blocking_append([blank_ent::<Config>(1, 1, 3), blank_ent::<Config>(1, 1, 5)])
        .await;
    assert!(inside.is_err(), "a batch with a hole inside is refused");
    assert_eq!(log_ids(&mut store).await.len(), 3);
    append(&mut store, 1, 3..4).await;
    assert_eq!(log_ids(&mut store).await.len(), 4);
}

#[tokio::test]
async fn a_purge_cut_short_after_the_slot_was_written_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, 1, 0..4).await;
    // A crash inside `purge(20)`: the slot says purged to 20, the records 0..=3 remain.
    // The slot is the adapter's (vote, committed, last_purged) struct, which bincode
    // writes as its fields in order, as it writes this tuple (u64 node ids: an i32 would
    // be written zigzag).
    let slot = (
        None::<Vote<u64>>,
        None::<LogId<u64>>,
        Some(log_id::<u64>(2, 1, 20)),
    );
    let bytes = actix_wal::format::codec::encode(&slot).unwrap();
    store.wal().set_meta(bytes).await.unwrap();

    let mut store = reopen(store, dir.path()).await;
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 1, 20)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 20)));
    assert!(
        log_ids(&mut store).await.is_empty(),
        "the purged records are gone"
    );
    append(&mut store, 2, 21..22).await;
    assert_eq!(log_ids(&mut store).await, vec![log_id(2, 1, 21)]);
}

#[tokio::test]
async fn a_fresh_log_refusing_a_batch_with_a_hole_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    let holed = [blank_ent::<Config>(1, 1, 5), blank_ent::<Config>(1, 1, 7)];
    assert!(store.blocking_append(holed).await.is_err());
    let stats = store.wal().stats().await.unwrap();
    assert_eq!((stats.first_lsn.0, stats.next_lsn.0), (1, 1), "not moved");
    append(&mut store, 1, 0..2).await;
    assert_eq!(
        log_ids(&mut store).await,
        vec![log_id(1, 1, 0), log_id(1, 1, 1)]
    );
}

/// Issue 23, item 4: a slot write costs an append now, so `save_committed` writes the
/// committed log id into the log (a slot frame with the next group commit, not awaited in
/// openraft's core loop): after a reopen it is there, with no vote or purge after it.
#[tokio::test]
async fn the_committed_log_id_survives_reopen_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, 1, 0..11).await;
    store.save_vote(&Vote::new(3, 1)).await.unwrap();
    store.save_committed(Some(log_id(1, 1, 9))).await.unwrap();
    // The next append's fsync makes it durable at the latest.
    append(&mut store, 1, 11..12).await;
    let mut store = reopen(store, dir.path()).await;
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 9)));
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
}

/// One `append` of more entries than the log's queue takes at once (`max_queue_bytes`),
/// each within the record bound: stored in parts, one after another, and read back whole
/// after a reopen. (It was one `AppendBatch`, refused whole with `BatchTooLarge`: a
/// `StorageError`, which stops openraft, for entries the log could hold.)
#[tokio::test]
async fn an_append_larger_than_the_queue_takes_is_stored_in_parts() {
    use openraft::{EntryPayload, RaftLogId};
    let dir = tempfile::tempdir().unwrap();
    let cfg = actix_wal::WalConfig {
        max_record_bytes: 256 * 1024,
        max_batch_bytes: 512 * 1024,
        max_queue_bytes: 1 << 20,
        ..Default::default()
    };
    let mut store = Store::open(dir.path(), cfg.clone()).await.unwrap();
    let entries = (0..20u64).map(|i| openraft::Entry::<Config> {
        log_id: log_id(1, 1, i),
        payload: EntryPayload::Normal(format!("{i}-{}", "x".repeat(100 * 1024))),
    });
    store.blocking_append(entries).await.unwrap();
    store.wal().shutdown().await.unwrap();
    drop(store);
    let mut store = Store::open(dir.path(), cfg).await.unwrap();
    let got = store.try_get_log_entries(0..20).await.unwrap();
    assert_eq!(got.len(), 20);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.get_log_id().index, i as u64);
        match &e.payload {
            EntryPayload::Normal(s) => assert!(s.starts_with(&format!("{i}-"))),
            other => panic!("entry {i}: {other:?}"),
        }
    }
    store.wal().shutdown().await.unwrap();
}

/// A purge whose index the log cannot reach (index `i` is LSN `i + 1`, and the log ends
/// at 2^63 - 1) is refused before the purge point is written: a probe's purge at 2^63
/// wrote it, failed its second step, and every later open failed the same way.
#[tokio::test]
async fn a_purge_past_the_last_lsn_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, 1, 0..3).await;
    for index in [1u64 << 63, (1 << 63) - 2, u64::MAX] {
        let refused = store.purge(log_id(2, 1, index)).await;
        assert!(refused.is_err(), "purge({index}) taken");
    }
    let mut store = reopen(store, dir.path()).await;
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(
        log_ids(&mut store).await,
        (0..3).map(|i| log_id(1, 1, i)).collect::<Vec<_>>()
    );
    // The highest purge the log can reach is taken (the log moves on past it).
    let highest = (1u64 << 63) - 3;
    store.purge(log_id(2, 1, highest)).await.unwrap();
    let store = reopen(store, dir.path()).await;
    let mut store = store;
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 1, highest)));
}
