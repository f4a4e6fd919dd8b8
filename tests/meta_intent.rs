//! An intent in `META` is checked against the log before recovery acts on it (issue 20,
//! item 3), and a `META` whose intent conflicts with its first LSN is never written
//! (item 1): a crafted or stale `META` is refused (or outvoted by the newer copy) without
//! a file being touched, under every recovery policy.

use actix_wal::format::meta::{LogMeta, MetaIntent};
use actix_wal::internals::meta::{read_meta, MetaStore, META_COPY_FILE, META_FILE};
use actix_wal::storage::default_storage;
use actix_wal::{Lsn, RecoveryPolicy, Wal, WalConfig, WalError};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn config(policy: RecoveryPolicy) -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(1024)
        .max_record_bytes(256)
        .preallocate(false)
        .recovery_policy(policy)
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:04}").into_bytes()
}

/// A log of records 1..=`n` and the slot `vote`, shut down cleanly.
fn write_log(dir: &Path, n: u64) {
    actix::System::new().block_on(async {
        let wal = Wal::open(dir, config(RecoveryPolicy::default()))
            .await
            .unwrap();
        for i in 1..=n {
            assert_eq!(wal.append(payload(i)).await.unwrap(), Lsn(i));
        }
        wal.set_meta(b"vote".to_vec()).await.unwrap();
        wal.shutdown().await.unwrap();
    });
}

/// Every file of the directory and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Writes `meta` (with a `seq` above the current one) over every copy of `META` there is:
/// what a hand edit with a fresh CRC, or a bug, would leave.
fn craft(dir: &Path, f: impl FnOnce(&mut LogMeta)) {
    let mut meta = read_meta(&actix_wal::storage::FsStorage, dir)
        .unwrap()
        .unwrap();
    meta.seq += 1;
    f(&mut meta);
    let bytes = meta.encode(u64::MAX).unwrap();
    for name in [META_FILE, META_COPY_FILE] {
        if name == META_FILE || dir.join(name).exists() {
            fs::write(dir.join(name), &bytes).unwrap();
        }
    }
}

/// Opens the log under `policy` and returns the error, asserting that no file changed.
fn open_refused(dir: &Path, policy: RecoveryPolicy) -> WalError {
    let before = files(dir);
    let res = actix::System::new().block_on(async {
        match Wal::open(dir, config(policy)).await {
            Ok(wal) => {
                let report = wal.recovery_report().clone();
                let _ = wal.shutdown().await;
                Err(report)
            }
            Err(e) => Ok(e),
        }
    });
    let err = match res {
        Ok(e) => e,
        Err(report) => panic!("{policy:?}: the log opened: {report:?}"),
    };
    let after = files(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{policy:?}: a refused open changed the files ({err})"
    );
    assert!(
        before == after,
        "{policy:?}: a refused open changed a file ({err})"
    );
    err
}

const POLICIES: [RecoveryPolicy; 3] = [
    RecoveryPolicy::TolerateTornTail,
    RecoveryPolicy::AbsoluteConsistency,
    RecoveryPolicy::SkipToLastGood,
];

#[test]
fn a_reset_intent_the_api_would_refuse_is_refused_without_touching_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir, 200);
    // Reset(5) on a log that ends at 200: the live API refuses it (WouldReuseLsns).
    craft(dir, |m| m.intent = MetaIntent::Reset(5));
    for policy in POLICIES {
        let err = open_refused(dir, policy);
        assert!(err.is_corruption(), "{policy:?}: {err}");
    }
    // Reset(0): no log may go on at LSN 0.
    craft(dir, |m| {
        m.intent = MetaIntent::Reset(0);
        m.first_lsn = 0;
        m.newest_lsn = 0;
    });
    for policy in POLICIES {
        let err = open_refused(dir, policy);
        assert!(err.is_corruption(), "{policy:?}: {err}");
    }
}

#[test]
fn a_rewind_intent_past_the_first_lsn_is_refused_without_touching_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir, 200);
    // What a checkpoint accepted on a poisoned log used to leave: the intent's cut lies
    // below the first LSN.
    craft(dir, |m| {
        m.intent = MetaIntent::TruncateAfter(50);
        m.first_lsn = 120;
        m.newest_lsn = 0;
    });
    for policy in POLICIES {
        let err = open_refused(dir, policy);
        assert!(err.is_corruption(), "{policy:?}: {err}");
        assert!(err.to_string().contains("META"), "{err}");
    }
}

#[test]
fn a_stale_meta_copy_restored_later_is_not_obeyed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir, 100);
    // The META a copy taken during a rewind to 50 would hold: the intent, one generation
    // above the value before the rewind.
    let mut stale = read_meta(&actix_wal::storage::FsStorage, dir)
        .unwrap()
        .unwrap();
    stale.seq += 1;
    stale.intent = MetaIntent::TruncateAfter(50);
    stale.newest_lsn = 0;
    let stale = stale.encode(u64::MAX).unwrap();
    actix::System::new().block_on(async {
        let wal = Wal::open(dir, config(RecoveryPolicy::default()))
            .await
            .unwrap();
        wal.truncate_after(Lsn(50)).await.unwrap();
        for i in 51..=200 {
            assert_eq!(wal.append(payload(i)).await.unwrap(), Lsn(i));
        }
        wal.shutdown().await.unwrap();
    });
    // Restored from the backup over META.
    fs::write(dir.join(META_FILE), &stale).unwrap();
    actix::System::new().block_on(async {
        let wal = Wal::open(dir, config(RecoveryPolicy::default()))
            .await
            .unwrap();
        let report = wal.recovery_report().clone();
        assert_eq!(report.next_lsn, Lsn(201), "{report:?}");
        assert_eq!(report.records, 200, "{report:?}");
        assert_eq!(wal.meta().as_deref(), Some(&b"vote"[..]));
        let problem = report
            .meta_repair
            .clone()
            .expect("the stale copy is reported");
        assert!(problem.contains("META"), "{problem}");
        wal.shutdown().await.unwrap();
    });
}

#[test]
fn a_meta_whose_intent_conflicts_with_its_first_lsn_is_never_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut store = MetaStore::open_default(default_storage(), dir).unwrap();
    store
        .update(|m| {
            m.first_lsn = 10;
            m.slot = Some(b"vote".to_vec());
        })
        .unwrap();
    store
        .update(|m| m.intent = MetaIntent::TruncateAfter(40))
        .unwrap();
    let on_disk = || {
        read_meta(&actix_wal::storage::FsStorage, dir)
            .unwrap()
            .unwrap()
    };
    let before = on_disk();
    // A checkpoint past the pending rewind's cut: refused, nothing written.
    let err = store.update(|m| m.first_lsn = 60).unwrap_err();
    assert!(matches!(err, WalError::MetaConflict { .. }), "{err}");
    // A raise of N past the cut, a reset intent with another first LSN, a reset to 0.
    for bad in [
        LogMeta {
            newest_lsn: 45,
            ..before.clone()
        },
        LogMeta {
            intent: MetaIntent::Reset(70),
            ..before.clone()
        },
        LogMeta {
            intent: MetaIntent::Reset(0),
            first_lsn: 0,
            newest_lsn: 0,
            ..before.clone()
        },
        LogMeta {
            intent: MetaIntent::TruncateAfter(u64::MAX),
            ..before.clone()
        },
    ] {
        let err = store.replace(bad.clone()).unwrap_err();
        assert!(
            matches!(err, WalError::MetaConflict { .. }),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(on_disk(), before);
    assert!(store.is_settled());
    // What the live operations write is accepted.
    store
        .update(|m| {
            m.intent = MetaIntent::None;
            m.first_lsn = 60;
        })
        .unwrap();
    store
        .update(|m| {
            m.intent = MetaIntent::Reset(500);
            m.first_lsn = 500;
            m.newest_lsn = 0;
        })
        .unwrap();
}

#[test]
fn check_intent_is_a_pure_check_of_meta_against_the_segments() {
    use actix_wal::internals::{check_intent, SegmentSpan};
    let meta = |intent, first_lsn, newest_lsn| LogMeta {
        seq: 3,
        first_lsn,
        newest_lsn,
        intent,
        slot: None,
        checkpoint_lsn: first_lsn,
        cursors: Vec::new(),
        slot_gen: 0,
    };
    let spans = [
        SegmentSpan {
            first_lsn: 1,
            end_lsn: Some(40),
        },
        SegmentSpan {
            first_lsn: 40,
            end_lsn: Some(90),
        },
        SegmentSpan {
            first_lsn: 90,
            end_lsn: None,
        },
    ];
    // A rewind interrupted after its intent: fine, wherever the cut falls.
    for x in [0, 10, 39, 40, 89, 95] {
        let n = if x >= 40 { 40 } else { 0 };
        check_intent(&meta(MetaIntent::TruncateAfter(x), 1, n), &spans).unwrap();
    }
    assert!(check_intent(&meta(MetaIntent::None, 1, 90), &spans).is_ok());
    // The cut below the first LSN, N past the cut, no segment at or below the cut, a
    // segment that ends before the cut.
    assert!(check_intent(&meta(MetaIntent::TruncateAfter(50), 60, 40), &spans).is_err());
    assert!(check_intent(&meta(MetaIntent::TruncateAfter(50), 1, 90), &spans).is_err());
    assert!(check_intent(&meta(MetaIntent::TruncateAfter(50), 1, 0), &spans[2..]).is_err());
    let short = [SegmentSpan {
        first_lsn: 1,
        end_lsn: Some(30),
    }];
    assert!(check_intent(&meta(MetaIntent::TruncateAfter(50), 1, 0), &short).is_err());
    // A reset: F must be its LSN, N 0, the LSN in range.
    assert!(check_intent(&meta(MetaIntent::Reset(500), 500, 0), &spans).is_ok());
    assert!(check_intent(&meta(MetaIntent::Reset(500), 1, 0), &spans).is_err());
    assert!(check_intent(&meta(MetaIntent::Reset(500), 500, 90), &spans).is_err());
    assert!(check_intent(&meta(MetaIntent::Reset(0), 0, 0), &spans).is_err());
    assert!(check_intent(&meta(MetaIntent::Reset(u64::MAX), u64::MAX, 0), &spans).is_err());
}

/// A change made to `META`'s value by [`craft`].
type Edit = dyn Fn(&mut LogMeta);

/// A `META` whose values conflict though it has no intent is refused when it is loaded,
/// as `MetaStore` refuses to write one (`LogMeta::conflict`), under every policy and by
/// the reader: a valid cursor below the first LSN (it was obeyed: the cursor read from LSN
/// 5, records the log no longer keeps, and the next checkpoint failed with
/// `MetaConflict`), and LSNs outside `1..=2^63-1` (the first LSN, the checkpoint, a cursor).
#[test]
fn a_meta_whose_values_conflict_is_refused_when_loaded() {
    use actix_wal::format::meta::CursorMeta;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir, 200);
    let cursor = |lsn: u64| CursorMeta {
        name: "c2".into(),
        lsn,
        invalidated: false,
    };
    let cases: [(&str, Box<Edit>); 3] = [
        (
            "a cursor below the first LSN",
            Box::new(move |m| {
                m.first_lsn = 50;
                m.checkpoint_lsn = 50;
                m.cursors = vec![cursor(5)];
            }),
        ),
        (
            "a checkpoint past 2^63-1",
            Box::new(|m| m.checkpoint_lsn = u64::MAX),
        ),
        (
            "a cursor past 2^63-1",
            Box::new(move |m| m.cursors = vec![cursor(u64::MAX)]),
        ),
    ];
    let pristine = files(dir);
    for (what, f) in &cases {
        for (name, bytes) in &pristine {
            fs::write(dir.join(name), bytes).unwrap();
        }
        craft(dir, f);
        for policy in POLICIES {
            let err = open_refused(dir, policy);
            assert!(err.is_corruption(), "{what}, {policy:?}: {err}");
            assert!(
                err.to_string().contains("META"),
                "{what}, {policy:?}: {err}"
            );
        }
        match actix_wal::LogReader::open(dir) {
            Err(e) => assert!(e.is_corruption(), "{what}: reader: {e}"),
            Ok(_) => panic!("{what}: the reader opened the log"),
        }
    }
}
