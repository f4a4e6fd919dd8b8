//! The metadata slot at the cost of an append (issue 23, item 4): after a log's first
//! `set_meta` (a `META` replace that makes the file version 3), values go into the log as
//! slot frames and are answered with the batch's `fdatasync`. Covered here: the file is not
//! rewritten for them, the value is found at open, rewinds, resets and checkpoints that
//! remove the frames keep it, a slot frame at a segment's end is read (not taken for an
//! overlap), a segment never fills with slot frames alone, and records read around them.
//! The power-loss side is in tests/torture.rs (the actor workload sets the slot, and every
//! crash image must hold the last value acknowledged or one sent after it).

mod common;

use actix_wal::files::read_meta;
use actix_wal::storage::FsStorage;
use actix_wal::*;
use common::segment_lsns;
use std::path::Path;

fn small_segments() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(4096)
        .preallocate(false)
}

/// The `META` file's value on disk (not the log's slot frames).
fn file_meta(dir: &Path) -> format::meta::LogMeta {
    read_meta(&FsStorage, dir).unwrap().expect("a META file")
}

/// Every record's payload, read with `LogReader` (which skips slot frames).
fn payloads(dir: &Path) -> Vec<Vec<u8>> {
    LogReader::open(dir)
        .unwrap()
        .map(|r| r.unwrap().payload)
        .collect()
}

#[actix::test]
async fn values_after_the_first_go_into_the_log_not_the_file() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    wal.append(b"r1".to_vec()).await.unwrap();
    wal.set_meta(b"v1".to_vec()).await.unwrap();
    let first = file_meta(d.path());
    assert_eq!(first.slot.as_deref(), Some(&b"v1"[..]));
    assert_eq!(first.slot_gen, 1);
    let raw = std::fs::read(d.path().join("META")).unwrap();
    assert_eq!(
        &raw[8..12],
        &3u32.to_le_bytes(),
        "version 3: older builds refuse it"
    );
    for i in 2..=20u32 {
        wal.append(format!("r{i}").into_bytes()).await.unwrap();
        wal.set_meta(format!("v{i}").into_bytes()).await.unwrap();
        assert_eq!(wal.meta(), Some(format!("v{i}").into_bytes()));
    }
    // The file was not replaced for them: at most once more, by the raise of the
    // newest-segment LSN to the first segment (made off the commit path, whenever the
    // flusher's helper gets to it; it carries the newest durable value along).
    let last = file_meta(d.path());
    assert!(
        last.seq <= first.seq + 1,
        "{} replaces",
        last.seq - first.seq
    );
    assert!(last.slot_gen <= 20);
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"v20"[..]));
    assert_eq!(wal.recovery_report().meta.as_deref(), Some(&b"v20"[..]));
    // And the records around the frames read as they were appended.
    let recs: Vec<Vec<u8>> = (1..=20).map(|i| format!("r{i}").into_bytes()).collect();
    assert_eq!(payloads(d.path()), recs);
    let read = wal.read_range(Lsn(1)..Lsn(21), 1 << 20).await.unwrap();
    let read: Vec<Vec<u8>> = read.into_iter().map(|r| r.payload).collect();
    assert_eq!(read, recs);
    // A value set after the reopen continues the generations.
    wal.set_meta(b"v21".to_vec()).await.unwrap();
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"v21"[..]));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_slot_frame_at_the_end_of_a_segment_is_read_not_an_overlap() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    wal.set_meta(b"v1".to_vec()).await.unwrap();
    let mut appended = Vec::new();
    // Each round: records, a slot frame after them (a batch of its own), then a record too
    // large for the rest of the segment, which starts the next one (named by its LSN, the
    // slot frame's LSN too).
    for round in 0..6u8 {
        for i in 0..5u8 {
            let p = vec![round * 10 + i; 100];
            wal.append(p.clone()).await.unwrap();
            appended.push(p);
        }
        wal.set_meta(vec![b'v', round]).await.unwrap();
        let big = vec![200 + round; 3000];
        wal.append(big.clone()).await.unwrap();
        appended.push(big);
    }
    assert!(
        segment_lsns(d.path()).len() >= 5,
        "{:?}",
        segment_lsns(d.path())
    );
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    assert_eq!(wal.meta(), Some(vec![b'v', 5]));
    assert_eq!(payloads(d.path()), appended);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_checkpoint_that_removes_the_frames_keeps_the_value() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    wal.set_meta(b"v1".to_vec()).await.unwrap();
    wal.append(vec![1; 100]).await.unwrap();
    wal.set_meta(b"in the first segment".to_vec())
        .await
        .unwrap();
    common::append_until_segments(&wal, d.path(), 3).await;
    let end = wal.flush().await.unwrap();
    let removed = wal.truncate_before(end).await.unwrap();
    assert!(removed >= 2, "removed {removed}");
    assert_eq!(
        file_meta(d.path()).slot.as_deref(),
        Some(&b"in the first segment"[..]),
        "the file holds the value before its frame's segment goes"
    );
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"in the first segment"[..]));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_rewind_or_reset_that_cuts_the_frames_keeps_the_value() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    wal.set_meta(b"v1".to_vec()).await.unwrap();
    for i in 0..10u8 {
        wal.append(vec![i; 10]).await.unwrap();
    }
    wal.set_meta(b"after record 10".to_vec()).await.unwrap();
    for i in 10..20u8 {
        wal.append(vec![i; 10]).await.unwrap();
    }
    // The frame lies after record 10: a rewind to 5 cuts it.
    wal.truncate_after(Lsn(5)).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"after record 10"[..]));
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"after record 10"[..]));
    assert_eq!(payloads(d.path()).len(), 5);
    wal.set_meta(b"before the reset".to_vec()).await.unwrap();
    wal.append(vec![9; 10]).await.unwrap();
    wal.reset(Lsn(100)).await.unwrap();
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"before the reset"[..]));
    assert!(payloads(d.path()).is_empty());
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn slot_frames_alone_never_grow_a_segment_past_its_size() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    // No record at all: every value lands in the first segment, or (once it is full)
    // in the file. Nothing is named twice, nothing grows without bound.
    for i in 0..200u32 {
        wal.set_meta(format!("value {i:>40}").into_bytes())
            .await
            .unwrap();
    }
    let seg = d.path().join(files::segment_name(1));
    let len = std::fs::metadata(&seg).unwrap().len();
    assert!(len <= 4096, "segment of slot frames alone is {len} bytes");
    assert_eq!(segment_lsns(d.path()), vec![1]);
    // Records still go on, and the next segment starts where they need it.
    for i in 0..50u8 {
        wal.append(vec![i; 200]).await.unwrap();
    }
    wal.set_meta(b"last".to_vec()).await.unwrap();
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"last"[..]));
    assert_eq!(payloads(d.path()).len(), 50);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn concurrent_appends_and_values_keep_their_order_and_the_last_value() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    wal.set_meta(b"v0".to_vec()).await.unwrap();
    let appenders: Vec<_> = (0..8u8)
        .map(|t| {
            let wal = wal.clone();
            actix_rt::spawn(async move {
                for i in 0..100u8 {
                    wal.append(vec![t, i]).await.unwrap();
                }
            })
        })
        .collect();
    // One task sets the slot: each value answered is what `meta()` shows next.
    for i in 1..=100u32 {
        wal.set_meta(format!("v{i}").into_bytes()).await.unwrap();
        assert_eq!(wal.meta(), Some(format!("v{i}").into_bytes()));
    }
    for a in appenders {
        a.await.unwrap();
    }
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"v100"[..]));
    let got = payloads(d.path());
    assert_eq!(got.len(), 800);
    for t in 0..8u8 {
        let mine: Vec<u8> = got.iter().filter(|p| p[0] == t).map(|p| p[1]).collect();
        assert_eq!(mine, (0..100).collect::<Vec<u8>>(), "appender {t}");
    }
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_compressing_log_goes_on_over_a_plain_segment_of_slot_frames_alone() {
    let d = tempfile::tempdir().unwrap();
    // A plain log whose only segment holds slot frames and no record.
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    wal.set_meta(b"v1".to_vec()).await.unwrap();
    wal.set_meta(b"v2".to_vec()).await.unwrap();
    wal.shutdown().await.unwrap();
    // Reopened compressing: that segment may hold no compressed frame, and cannot be
    // left for a new one (which would take its name): the first records go in plain.
    let cfg = WalConfig {
        compression: Compression::Lz4 { min_bytes: 32 },
        ..WalConfig::default()
    };
    let json = |i: u32| {
        format!("{{\"id\":{i},\"ok\":true}}")
            .repeat(20)
            .into_bytes()
    };
    let wal = Wal::open(d.path(), cfg.clone()).await.unwrap();
    for i in 0..10 {
        wal.append(json(i)).await.unwrap();
    }
    wal.commit(vec![json(10), json(11)]).await.unwrap();
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"v2"[..]));
    let want: Vec<Vec<u8>> = (0..12).map(json).collect();
    assert_eq!(payloads(d.path()), want);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn subscribers_read_through_slot_frames_from_the_files_and_live() {
    use futures::StreamExt;
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_segments()).await.unwrap();
    wal.set_meta(b"v0".to_vec()).await.unwrap();
    // From the files: records with slot frames between them, across segments.
    for i in 0..200u32 {
        wal.append(i.to_le_bytes().to_vec()).await.unwrap();
        if i % 3 == 0 {
            wal.set_meta(format!("v{i}").into_bytes()).await.unwrap();
        }
    }
    let mut sub = wal.subscribe(Lsn(1));
    // Then live: more of both while it reads.
    let writer = {
        let wal = wal.clone();
        actix_rt::spawn(async move {
            for i in 200..400u32 {
                wal.append(i.to_le_bytes().to_vec()).await.unwrap();
                wal.set_meta(format!("v{i}").into_bytes()).await.unwrap();
            }
        })
    };
    for i in 0..400u32 {
        let r = sub.next().await.expect("a record").expect("no error");
        assert_eq!(
            (r.lsn.0, r.payload.clone()),
            (u64::from(i) + 1, i.to_le_bytes().to_vec())
        );
    }
    writer.await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"v399"[..]));
    wal.shutdown().await.unwrap();
}

/// `LogDir::truncate_before` through a directory opened without recovery, on a log whose
/// newest slot value is only in a slot frame (a crash came before the raise that carries it
/// into `META`, which runs off the commit path): the value is folded into `META` before the
/// segment holding its frame goes. (The directory had never scanned the log, so it knew
/// of no slot frame: the segment went, and the next open reported the older value.)
#[test]
fn truncate_before_through_log_dir_keeps_a_slot_value_held_only_in_a_frame() {
    let cfg = || {
        WalConfig::default()
            .segment_size_bytes(4096)
            .preallocate(false)
    };
    let slot = |dir: std::path::PathBuf| {
        actix::System::new().block_on(async move {
            let wal = Wal::open(&dir, cfg()).await.unwrap();
            let m = wal.meta();
            wal.shutdown().await.unwrap();
            m
        })
    };
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    actix::System::new().block_on(async {
        let wal = Wal::open(&dir, cfg()).await.unwrap();
        wal.set_meta(b"v1".to_vec()).await.unwrap();
        wal.append(b"r".to_vec()).await.unwrap();
        // `META` before `v2`: what a crash leaves when it comes before the raise that
        // carries `v2` into the file (copied here, not after `set_meta(v2)`: that raise
        // runs off the commit path and may already have run by then).
        let (main, copy) = (
            std::fs::read(dir.join(files::META_FILE)).unwrap(),
            std::fs::read(dir.join(files::META_COPY_FILE)).unwrap(),
        );
        wal.set_meta(b"v2".to_vec()).await.unwrap();
        for i in 0..200u32 {
            wal.append(format!("r{i:05}").into_bytes()).await.unwrap();
        }
        wal.shutdown().await.unwrap();
        // The crash image: `META` as it was before `set_meta(v2)`; `v2` is in the log.
        std::fs::write(dir.join(files::META_FILE), main).unwrap();
        std::fs::write(dir.join(files::META_COPY_FILE), copy).unwrap();
    });
    assert_eq!(
        read_meta(&FsStorage, &dir)
            .unwrap()
            .unwrap()
            .slot
            .as_deref(),
        Some(&b"v1"[..])
    );
    let log = LogDir::open(&dir, actix_wal::storage::default_storage()).unwrap();
    assert!(!log.truncate_before(Lsn(150)).unwrap().is_empty());
    drop(log);
    assert_eq!(slot(dir).as_deref(), Some(&b"v2"[..]));
}
