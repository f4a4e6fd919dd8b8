//! Rewind (`Wal::truncate_after`) and reset (`Wal::reset`) on the open log (issue 11,
//! items 3 and 4): the next LSN, reads, replay, `LogReader` and a reopen all see the
//! rewound log (no markers); appends in flight above the cut fail typed; bad input is
//! refused with a typed error and changes nothing.

mod common;

use actix_wal::LogReader;
use actix_wal::*;
use common::segment_lsns;
use std::path::Path;

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(4096)
        .max_record_bytes(256)
        .preallocate(false)
}

fn reader(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    LogReader::open(dir)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.lsn.0, r.payload)
        })
        .collect()
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:05}").into_bytes()
}

async fn fill(wal: &Wal, n: u64) {
    for i in 1..=n {
        assert_eq!(wal.append(payload(i)).await.unwrap(), Lsn(i));
    }
}

#[actix::test]
async fn rewind_removes_the_suffix_and_appends_continue_after_it() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 400).await;
    let before = segment_lsns(d.path());
    assert!(before.len() > 3, "{before:?}");
    wal.truncate_after(Lsn(150)).await.unwrap();
    assert!(matches!(
        wal.read(Lsn(151)).await,
        Err(WalError::NotFound { .. })
    ));
    assert_eq!(wal.read(Lsn(150)).await.unwrap().payload, payload(150));
    let stats = wal.stats().await.unwrap();
    assert_eq!(stats.next_lsn, Lsn(151));
    // Later segments are gone (not markers): only segments starting at or below 151 stay.
    assert!(segment_lsns(d.path()).iter().all(|&s| s <= 151));
    assert!(segment_lsns(d.path()).len() < before.len());
    assert_eq!(wal.append(b"after".to_vec()).await.unwrap(), Lsn(151));
    assert_eq!(wal.read(Lsn(151)).await.unwrap().payload, b"after");
    wal.shutdown().await.unwrap();

    let got = reader(d.path());
    assert_eq!(got.len(), 151);
    for (i, (lsn, p)) in got.iter().enumerate().take(150) {
        assert_eq!((*lsn, p), (i as u64 + 1, &payload(i as u64 + 1)));
    }
    assert_eq!(got[150], (151, b"after".to_vec()));

    let wal = Wal::open(d.path(), small()).await.unwrap();
    assert_eq!(wal.recovery_report().next_lsn, Lsn(152));
    assert_eq!(wal.recovery_report().records, 151);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn rewind_to_a_segment_boundary_and_to_the_start() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 300).await;
    let segs = segment_lsns(d.path());
    let boundary = segs[2];
    wal.truncate_after(Lsn(boundary - 1)).await.unwrap();
    // The segment starting at the cut is kept, cut to its header.
    assert_eq!(*segment_lsns(d.path()).last().unwrap(), boundary);
    assert_eq!(wal.append(b"x".to_vec()).await.unwrap(), Lsn(boundary));
    // Everything: lsn + 1 == first LSN empties the log.
    wal.truncate_after(Lsn(0)).await.unwrap();
    assert!(matches!(
        wal.read(Lsn(1)).await,
        Err(WalError::NotFound { .. })
    ));
    assert_eq!(wal.append(b"first".to_vec()).await.unwrap(), Lsn(1));
    wal.shutdown().await.unwrap();
    assert_eq!(reader(d.path()), vec![(1, b"first".to_vec())]);
}

#[actix::test]
async fn bad_rewinds_and_resets_are_refused_and_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 100).await;
    let txn = wal
        .commit(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()])
        .await
        .unwrap();
    assert_eq!(txn, Lsn(101));
    wal.truncate_before(Lsn(40)).await.unwrap();
    let files = segment_lsns(d.path());

    let below = wal.truncate_after(Lsn(38)).await;
    assert!(
        matches!(
            below,
            Err(WalError::BelowFirstLsn {
                lsn: Lsn(38),
                first_lsn: Lsn(40)
            })
        ),
        "{below:?}"
    );
    let above = wal.truncate_after(Lsn(104)).await;
    assert!(
        matches!(above, Err(WalError::LsnNotAssigned { .. })),
        "{above:?}"
    );
    let split = wal.truncate_after(Lsn(101)).await;
    assert!(
        matches!(split, Err(WalError::SplitsTransaction { lsn: Lsn(101) })),
        "{split:?}"
    );
    let reuse = wal.reset(Lsn(50)).await;
    assert!(
        matches!(reuse, Err(WalError::WouldReuseLsns { .. })),
        "{reuse:?}"
    );
    let zero = wal.reset(Lsn(0)).await;
    assert!(
        matches!(zero, Err(WalError::LsnOutOfRange { .. })),
        "{zero:?}"
    );

    // Nothing changed: same files, same next LSN, every record still there.
    assert_eq!(segment_lsns(d.path()), files);
    assert_eq!(wal.stats().await.unwrap().next_lsn, Lsn(104));
    for lsn in [40, 99, 100, 101, 102, 103] {
        wal.read(Lsn(lsn)).await.unwrap();
    }
    // The end itself is allowed and changes nothing; so is the whole transaction.
    wal.truncate_after(Lsn(103)).await.unwrap();
    wal.truncate_after(Lsn(100)).await.unwrap();
    assert_eq!(wal.append(b"n".to_vec()).await.unwrap(), Lsn(101));
    // Down to the checkpoint: first LSN minus one empties what is readable.
    wal.truncate_after(Lsn(39)).await.unwrap();
    assert_eq!(wal.append(b"m".to_vec()).await.unwrap(), Lsn(40));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn reset_removes_every_record_keeps_meta_and_continues_at_the_new_lsn() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 200).await;
    wal.set_meta(b"vote".to_vec()).await.unwrap();
    wal.reset(Lsn(1000)).await.unwrap();
    assert_eq!(segment_lsns(d.path()), vec![1000]);
    let stats = wal.stats().await.unwrap();
    assert_eq!((stats.first_lsn, stats.next_lsn), (Lsn(1000), Lsn(1000)));
    assert!(matches!(
        wal.read(Lsn(5)).await,
        Err(WalError::NotFound { .. })
    ));
    assert_eq!(wal.append(b"snap+1".to_vec()).await.unwrap(), Lsn(1000));
    assert_eq!(wal.meta(), Some(b"vote".to_vec()));
    wal.shutdown().await.unwrap();

    assert_eq!(reader(d.path()), vec![(1000, b"snap+1".to_vec())]);
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let report = wal.recovery_report();
    assert_eq!(report.first_lsn, Lsn(1000));
    assert_eq!(report.next_lsn, Lsn(1001));
    assert_eq!(report.meta, Some(b"vote".to_vec()));
    // An emptied log goes on forward, never back: the LSNs below its next one were given
    // out (issue 20, item 6).
    wal.truncate_after(Lsn(999)).await.unwrap();
    let back = wal.reset(Lsn(7)).await;
    assert!(
        matches!(back, Err(WalError::WouldReuseLsns { .. })),
        "{back:?}"
    );
    wal.reset(Lsn(5000)).await.unwrap();
    assert_eq!(wal.append(b"5000".to_vec()).await.unwrap(), Lsn(5000));
    wal.shutdown().await.unwrap();
    assert_eq!(reader(d.path()), vec![(5000, b"5000".to_vec())]);
}

#[actix::test]
async fn appends_in_flight_above_the_cut_fail_typed_and_acknowledged_ones_stay() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 50).await;
    let mut inflight = Vec::new();
    for i in 0..200u64 {
        let w = wal.clone();
        inflight.push(actix_rt::spawn(async move {
            (i, w.append(format!("late {i}").into_bytes()).await)
        }));
    }
    // Give some of them time to reach the queue first.
    actix_rt::task::yield_now().await;
    wal.truncate_after(Lsn(50)).await.unwrap();
    let mut acked = Vec::new();
    let mut removed = 0;
    for h in inflight {
        match h.await.unwrap() {
            (i, Ok(lsn)) => acked.push((lsn, format!("late {i}").into_bytes())),
            (_, Err(WalError::TruncatedAway { lsn })) => {
                assert!(lsn.0 > 50);
                removed += 1;
            }
            (_, Err(e)) => panic!("unexpected error {e}"),
        }
    }
    // Every acknowledged append reads back with its own payload after the rewind.
    for (lsn, p) in &acked {
        assert!(lsn.0 > 50);
        assert_eq!(&wal.read(*lsn).await.unwrap().payload, p);
    }
    assert_eq!(acked.len() + removed, 200);
    wal.shutdown().await.unwrap();
    let got = reader(d.path());
    assert_eq!(got.len(), 50 + acked.len());
    for (lsn, p) in acked {
        assert_eq!(got[(lsn.0 - 1) as usize], (lsn.0, p));
    }
}

#[actix::test]
async fn rewinding_again_and_again_never_writes_through_a_removed_file() {
    // Segments removed by a rewind are created again by later appends under the same
    // names: the flusher must write to the new files, never through a handle it held on
    // a removed one.
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 20).await;
    for round in 0..4u64 {
        for i in 21..=300 {
            assert_eq!(wal.append(tagged(round, i)).await.unwrap(), Lsn(i));
        }
        if round < 3 {
            wal.truncate_after(Lsn(20)).await.unwrap();
        }
    }
    wal.shutdown().await.unwrap();
    let got = reader(d.path());
    assert_eq!(got.len(), 300);
    for (lsn, p) in got {
        let want = if lsn <= 20 {
            payload(lsn)
        } else {
            tagged(3, lsn)
        };
        assert_eq!(p, want, "lsn {lsn}");
    }
}

fn tagged(round: u64, i: u64) -> Vec<u8> {
    format!("round {round} {i:05}").into_bytes()
}

#[actix::test]
async fn reads_racing_rewinds_get_a_record_of_that_lsn_or_not_found() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 300).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4u64 {
        let (w, stop) = (wal.clone(), stop.clone());
        readers.push(actix_rt::spawn(async move {
            let (mut found, mut missing, mut i) = (0u64, 0u64, r);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i = (i * 7919 + 13) % 300 + 1;
                match w.read(Lsn(i)).await {
                    Ok(rec) => {
                        assert_eq!(rec.lsn, Lsn(i));
                        let ok = rec.payload == payload(i)
                            || (0..4).any(|round| rec.payload == tagged(round, i));
                        assert!(
                            ok,
                            "LSN {i} read {:?}",
                            String::from_utf8_lossy(&rec.payload)
                        );
                        found += 1;
                    }
                    Err(WalError::NotFound { .. }) => missing += 1,
                    Err(e) => panic!("read of LSN {i}: {e}"),
                }
                actix_rt::task::yield_now().await;
            }
            (found, missing)
        }));
    }
    for round in 0..4u64 {
        wal.truncate_after(Lsn(100)).await.unwrap();
        for i in 101..=300 {
            assert_eq!(wal.append(tagged(round, i)).await.unwrap(), Lsn(i));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut found = 0;
    for r in readers {
        found += r.await.unwrap().0;
    }
    assert!(found > 0, "the readers read nothing");
    wal.shutdown().await.unwrap();
}

/// Issue 20, item 2: an `append_batch` waiting for its fsync when `truncate_after(x)`
/// arrives with `x` inside it was answered `TruncatedAway` while its records up to `x`
/// stayed in the log (a caller that retried wrote them twice). A cut inside a batch not
/// yet answered is refused (`SplitsBatch`), changing nothing; the batch is then answered
/// as it would have been. The outcome the other way round (the batch answered before the
/// rewind was handled, then cut as any acknowledged records) is honest too.
#[actix::test]
async fn a_rewind_never_cuts_inside_an_append_batch_not_yet_answered() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 1).await;
    let records: Vec<Vec<u8>> = (2..=201).map(payload).collect();
    // Both messages are in the queue's mailbox, in this order, before either is handled.
    let batch = wal.queue().send(AppendBatch::new(records));
    let rewind = wal.queue().send(TruncateAfter(Lsn(100)));
    let (batch, rewind) = futures::join!(batch, rewind);
    let (batch, rewind) = (batch.unwrap(), rewind.unwrap());
    let readable = |lsn: u64| {
        let wal = wal.clone();
        async move { wal.read(Lsn(lsn)).await.is_ok() }
    };
    let last = match (&batch, &rewind) {
        (
            Ok(Lsn(2)),
            Err(WalError::SplitsBatch {
                lsn,
                first_lsn,
                last_lsn,
            }),
        ) => {
            assert_eq!((*lsn, *first_lsn, *last_lsn), (Lsn(100), Lsn(2), Lsn(201)));
            assert!(readable(201).await, "the refused rewind removed records");
            assert_eq!(wal.stats().await.unwrap().next_lsn, Lsn(202));
            201
        }
        (Ok(Lsn(2)), Ok(())) => {
            // Answered first, then cut like any acknowledged records.
            assert!(readable(100).await && !readable(101).await);
            100
        }
        (Err(WalError::TruncatedAway { lsn }), Ok(())) => {
            // Only honest if none of its records stayed.
            assert_eq!(*lsn, Lsn(2));
            assert!(
                !readable(2).await,
                "append_batch answered TruncatedAway {{ lsn: 2 }}, yet LSNs 2..=100 stay in the log"
            );
            1
        }
        other => panic!("unexpected outcome {other:?}"),
    };
    wal.shutdown().await.unwrap();
    // What replay rebuilds is what the caller was told.
    let got = reader(d.path());
    assert_eq!(got.last().map(|r| r.0), Some(last));
    assert_eq!(got.len() as u64, last);
}

/// A cut just before an unanswered batch is no cut inside it: the whole batch goes, and
/// `TruncatedAway` is then exactly what happened to it.
#[actix::test]
async fn a_rewind_just_before_an_unanswered_append_batch_removes_all_of_it() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 1).await;
    let records: Vec<Vec<u8>> = (2..=201).map(payload).collect();
    let batch = wal.queue().send(AppendBatch::new(records));
    let rewind = wal.queue().send(TruncateAfter(Lsn(1)));
    let (batch, rewind) = futures::join!(batch, rewind);
    rewind.unwrap().unwrap();
    match batch.unwrap() {
        Err(WalError::TruncatedAway { lsn: Lsn(2) }) | Ok(Lsn(2)) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(wal.read(Lsn(2)).await.is_err());
    assert_eq!(wal.stats().await.unwrap().next_lsn, Lsn(2));
    wal.shutdown().await.unwrap();
    assert_eq!(reader(d.path()), vec![(1, payload(1))]);
}

/// Issue 20, item 6: LSNs are never given out twice, and `wait_durable` answers
/// `LsnNotAssigned` for an LSN the log never gave out. `reset(1)` after a checkpoint that
/// emptied the log used to be accepted (LSN 1 given out again); `wait_durable(0)`, and
/// `wait_durable(1000)` after `reset(2^63-1)` on a new log, answered `Ok`.
#[actix::test]
async fn lsns_are_never_given_out_twice_and_wait_durable_knows_which_were() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 10).await;
    wal.truncate_before(Lsn(u64::MAX)).await.unwrap();
    let stats = wal.stats().await.unwrap();
    assert_eq!((stats.first_lsn, stats.next_lsn), (Lsn(11), Lsn(11)));
    let again = wal.reset(Lsn(1)).await;
    assert!(
        matches!(
            again,
            Err(WalError::WouldReuseLsns {
                lsn: Lsn(1),
                next_lsn: Lsn(11)
            })
        ),
        "reset(1) on a log that gave out 1..=10: {again:?}"
    );
    assert_eq!(wal.append(b"eleven".to_vec()).await.unwrap(), Lsn(11));
    // Given out and durable, then checkpointed away: durable it was.
    assert_eq!(wal.wait_durable(Lsn(5)).await.unwrap(), Lsn(5));
    let zero = wal.wait_durable(Lsn(0)).await;
    assert!(
        matches!(zero, Err(WalError::LsnNotAssigned { lsn: Lsn(0), .. })),
        "wait_durable(0): {zero:?}"
    );
    wal.shutdown().await.unwrap();

    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let top = u64::MAX / 2;
    wal.reset(Lsn(top)).await.unwrap();
    for lsn in [1, 1000, top - 1, top] {
        let r = wal.wait_durable(Lsn(lsn)).await;
        assert!(
            matches!(r, Err(WalError::LsnNotAssigned { .. })),
            "wait_durable({lsn}) after reset({top}) on a new log: {r:?}"
        );
    }
    assert_eq!(wal.append(b"top".to_vec()).await.unwrap(), Lsn(top));
    assert_eq!(wal.wait_durable(Lsn(top)).await.unwrap(), Lsn(top));
    wal.shutdown().await.unwrap();
    // The same after a reopen: the log never gave out what lies below where it started.
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let r = wal.wait_durable(Lsn(1000)).await;
    assert!(matches!(r, Err(WalError::LsnNotAssigned { .. })), "{r:?}");
    let lower = wal.reset(Lsn(7)).await;
    assert!(
        matches!(lower, Err(WalError::WouldReuseLsns { .. })),
        "{lower:?}"
    );
    wal.shutdown().await.unwrap();
}

/// A reset to the next LSN skips nothing: the LSNs below it were given out, and a wait
/// for one is answered (it was durable before the reset removed it). A reset past it
/// skips LSNs, and the log keeps no record of which LSNs below it were given out: all of
/// them are then `LsnNotAssigned` (documented).
#[actix::test]
async fn wait_durable_below_a_reset_answers_what_was_given_out() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    fill(&wal, 10).await;
    wal.reset(Lsn(11)).await.unwrap();
    assert_eq!(wal.wait_durable(Lsn(5)).await.unwrap(), Lsn(5));
    wal.reset(Lsn(100)).await.unwrap();
    for lsn in [5, 11, 99] {
        let r = wal.wait_durable(Lsn(lsn)).await;
        assert!(
            matches!(r, Err(WalError::LsnNotAssigned { .. })),
            "{lsn}: {r:?}"
        );
    }
    wal.shutdown().await.unwrap();
}
