//! Files deleted or moved behind an open log's back (issue 15, items 3 and 7): the writer
//! checks after each fsync that its segment still has a name, and before each rollover,
//! in the health check and at shutdown that the directory is still the one it locked.
//! Whatever is found fails the batch and stops the log with [`WalError::FileRemoved`]:
//! nothing is acknowledged after the writer could have known, health turns unhealthy and
//! shutdown does not return `Ok`. A failure that cannot be cut back names its step.

mod sim;

use actix_wal::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn config() -> WalConfig {
    WalConfig {
        // Large enough that the load below never rolls over: the active segment is the
        // only one.
        segment_size_bytes: 8 * 1024 * 1024,
        max_record_bytes: 1024,
        ..WalConfig::default()
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// What the load saw: every acknowledgement, with whether its append was sent after the
/// deletion had completed, and the error each task stopped at.
#[derive(Default)]
struct Seen {
    acked: Vec<(Lsn, bool)>,
    errors: Vec<WalError>,
}

/// Appends from 8 tasks until each gets an error, running `delete` once 1,000 appends
/// were acknowledged. Fails the test if the load does not stop within 30 s (it used to
/// run on forever, acknowledged into the deleted file).
async fn load_and_delete(wal: &Wal, delete: impl FnOnce()) -> Seen {
    let deleted = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (wal, deleted, acks, seen) =
                (wal.clone(), deleted.clone(), acks.clone(), seen.clone());
            actix_rt::spawn(async move {
                for i in 0u64.. {
                    let after = deleted.load(Ordering::SeqCst);
                    match wal.append(format!("t{t}:{i}").into_bytes()).await {
                        Ok(lsn) => {
                            acks.fetch_add(1, Ordering::SeqCst);
                            seen.lock().unwrap().acked.push((lsn, after));
                        }
                        Err(e) => {
                            seen.lock().unwrap().errors.push(e);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    while acks.load(Ordering::SeqCst) < 1_000 {
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    delete();
    deleted.store(true, Ordering::SeqCst);
    let all = futures::future::join_all(tasks);
    actix_rt::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("appends kept being acknowledged after the deletion");
    Arc::try_unwrap(seen)
        .ok()
        .expect("the tasks are done")
        .into_inner()
        .unwrap()
}

/// The checks both deletions share: typed errors naming a file of the log, nothing
/// acknowledged that was sent after the deletion, unhealthy, and no `Ok` from shutdown.
async fn assert_stopped(wal: &Wal, seen: &Seen, dir: &Path) {
    assert_eq!(seen.errors.len(), 8, "every task stops at an error");
    for e in &seen.errors {
        match e {
            WalError::FileRemoved { path, .. } => {
                assert!(path.starts_with(dir), "{path:?} is not in the log")
            }
            other => panic!("expected FileRemoved, got {other:?}"),
        }
    }
    let late: Vec<_> = seen.acked.iter().filter(|(_, after)| *after).collect();
    assert!(
        late.is_empty(),
        "{} appends sent after the deletion were acknowledged, e.g. {:?}",
        late.len(),
        late.first()
    );
    assert!(matches!(
        wal.append(b"later".to_vec()).await,
        Err(WalError::FileRemoved { .. })
    ));
    let health = wal.health().await.unwrap();
    assert!(!health.healthy && health.poisoned, "{health:?}");
    assert!(matches!(
        wal.shutdown().await,
        Err(WalError::FileRemoved { .. })
    ));
}

#[actix::test]
async fn deleting_the_active_segment_under_load_stops_the_log_with_file_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(tmp.path(), config()).await.unwrap();
    let segs = segments(tmp.path());
    assert_eq!(segs.len(), 1);
    let seen = load_and_delete(&wal, || std::fs::remove_file(&segs[0]).unwrap()).await;
    for e in &seen.errors {
        assert!(
            matches!(e, WalError::FileRemoved { op: "fdatasync", path } if *path == segs[0]),
            "{e:?}"
        );
    }
    assert_stopped(&wal, &seen, tmp.path()).await;
}

#[actix::test]
async fn removing_the_log_directory_under_load_stops_the_log_with_file_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let wal = Wal::open(&dir, config()).await.unwrap();
    let seen = load_and_delete(&wal, || std::fs::remove_dir_all(&dir).unwrap()).await;
    assert_stopped(&wal, &seen, &dir).await;
}

#[actix::test]
async fn a_segment_removed_after_the_last_ack_fails_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(tmp.path(), config()).await.unwrap();
    for i in 0..10u32 {
        wal.append(i.to_le_bytes().to_vec()).await.unwrap();
    }
    let seg = segments(tmp.path()).remove(0);
    std::fs::remove_file(&seg).unwrap();
    match wal.shutdown().await {
        Err(WalError::FileRemoved {
            op: "shutdown",
            path,
        }) => assert_eq!(path, seg),
        other => panic!("shutdown after the segment was removed: {other:?}"),
    }
}

#[actix::test]
async fn a_segment_removed_after_the_last_ack_turns_health_unhealthy() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(tmp.path(), config()).await.unwrap();
    wal.append(b"one".to_vec()).await.unwrap();
    assert!(wal.health().await.unwrap().healthy);
    let seg = segments(tmp.path()).remove(0);
    std::fs::remove_file(&seg).unwrap();
    let health = wal.health().await.unwrap();
    assert!(!health.healthy && health.poisoned, "{health:?}");
    match wal.append(b"two".to_vec()).await {
        Err(WalError::FileRemoved {
            op: "health check",
            path,
        }) => assert_eq!(path, seg),
        other => panic!("append after the health check: {other:?}"),
    }
}

/// Item 7: after the directory was renamed, the error names the step that found it (the
/// creation of the next segment), and what was acknowledged before is in the moved
/// directory, whole.
#[actix::test]
async fn a_renamed_directory_is_reported_at_the_next_segment_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let moved = tmp.path().join("moved");
    let cfg = WalConfig {
        segment_size_bytes: 64 * 1024,
        max_batch_bytes: 16 * 1024,
        ..config()
    };
    let wal = Wal::open(&dir, cfg).await.unwrap();
    wal.append(b"before".to_vec()).await.unwrap();
    std::fs::rename(&dir, &moved).unwrap();
    let mut acked = Vec::new();
    let error = loop {
        // 64 KiB segments of 1 KiB records: a rollover within about 64 appends.
        assert!(
            acked.len() < 1_000,
            "no error after {} appends",
            acked.len()
        );
        match wal.append(vec![7u8; 1000]).await {
            Ok(lsn) => acked.push(lsn),
            Err(e) => break e,
        }
    };
    match &error {
        WalError::FileRemoved {
            op: "create segment",
            path,
        } => assert_eq!(*path, dir),
        other => panic!("expected FileRemoved at create segment, got {other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains("create segment"), "{text}");
    assert!(!text.contains("a failed write"), "{text}");
    assert!(wal.shutdown().await.is_err());
    let records: Vec<Lsn> = LogReader::open(&moved)
        .unwrap()
        .map(|r| r.map(|r| r.lsn))
        .collect::<Result<_, _>>()
        .unwrap();
    for lsn in &acked {
        assert!(
            records.contains(lsn),
            "acknowledged {lsn} not in the moved log"
        );
    }
}

/// Item 7: a segment creation that fails, and whose cut-back fails too, poisons the log
/// with a reason naming the step ("create segment") and both errors, not "a failed write".
#[actix::test]
async fn an_unrepaired_segment_creation_names_its_step() {
    use actix_wal::format::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
    let sim = sim::SimStorage::new();
    let segment_size_bytes = 16 * 1024;
    let cfg = WalConfig {
        segment_size_bytes,
        max_batch_bytes: 8 * 1024,
        preallocate: false,
        storage: sim.shared(),
        ..config()
    };
    let wal = Wal::open("/log", cfg).await.unwrap();
    let payload = vec![1u8; 100];
    let frame = (FRAME_HEADER_BYTES + payload.len()) as u64;
    let fit = (segment_size_bytes - SEGMENT_HEADER_BYTES as u64) / frame;
    for _ in 0..fit {
        wal.append(payload.clone()).await.unwrap();
    }
    // The next append rolls over: its batch fsyncs the full segment, creates the new one
    // (the header write fails), and the cut-back's directory fsync fails too.
    sim.inject_chain(sim.ops(), sim::Fault::WriteError, sim::Fault::DirSyncError);
    let error = wal.append(payload.clone()).await.unwrap_err();
    let WalError::Poisoned { reason } = &error else {
        panic!("expected Poisoned, got {error:?}");
    };
    assert!(reason.starts_with("create segment failed"), "{reason}");
    assert!(reason.contains("write header"), "{reason}");
    assert!(reason.contains("fsync dir"), "{reason}");
    assert!(!reason.contains("a failed write"), "{reason}");
    assert!(!wal.health().await.unwrap().healthy);
}
