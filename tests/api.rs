//! The small API: what call sites write (`Commit::new` from any byte-like entries, `Lsn`
//! arithmetic), `SetMode` takes only the modes a caller may ask for, and config knobs that do what their
//! docs say (`notify_to`, shrinking `segment_size_bytes`).

use actix::prelude::*;
use actix_wal::*;
use std::sync::{Arc, Mutex};

/// `Commit::new` takes any iterator of byte-like entries, as `Append::new` takes any
/// byte-like payload; the entries land in order at `first + i`.
#[actix::test]
async fn commit_new_takes_any_byte_like_entries() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let first = wal.send(Commit::new(["debit", "credit"])).await.unwrap();
    let second = wal
        .send(Commit::new([b"x".as_slice(), b"yz".as_slice()]))
        .await
        .unwrap();
    let third = wal
        .send(Commit::new(vec![String::from("s")]))
        .await
        .unwrap();
    let fourth = wal.commit(vec![b"v".to_vec()]).await.unwrap();
    assert_eq!(
        (first, second, third, fourth),
        (Lsn(1), Lsn(3), Lsn(5), Lsn(6))
    );
    // An empty transaction is still refused, typed.
    assert!(matches!(
        wal.send(Commit::new(Vec::<Vec<u8>>::new())).await,
        Err(WalError::InvalidTransaction { .. })
    ));
    assert!(matches!(
        wal.commit(vec![]).await,
        Err(WalError::InvalidTransaction { .. })
    ));
    wal.shutdown().await.unwrap();
    let payloads: Vec<Vec<u8>> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap().payload)
        .collect();
    let want: Vec<&[u8]> = vec![b"debit", b"credit", b"x", b"yz", b"s", b"v"];
    assert_eq!(payloads, want);
}

#[test]
fn lsn_arithmetic() {
    let first = Lsn(41);
    assert_eq!(first + 2, Lsn(43));
    let mut l = first;
    l += 3;
    assert_eq!(l, Lsn(44));
    assert_eq!(first.checked_sub(41), Some(Lsn(0)));
    assert_eq!(first.checked_sub(42), None);
    assert_eq!(first.saturating_sub(100), Lsn(0));
    assert_eq!(Lsn(1).prev(), Some(Lsn(0)));
    assert_eq!(Lsn(0).prev(), None);
    assert_eq!(Lsn(u64::MAX).checked_add(1), None);
    assert_eq!(Lsn(1).checked_add(1), Some(Lsn(2)));
}

/// `SetMode` takes a `CommitMode`, and `WalStats` reports the mode asked for and the mode
/// in force as `WalMode`s equal to it. (Asking for `WalMode::Degraded` does not compile:
/// the `compile_fail` doctests of `SetMode`.)
#[actix::test]
async fn set_mode_takes_a_commit_mode_and_stats_report_it() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    wal.send(SetMode(CommitMode::Sync)).await.unwrap();
    let stats = wal.stats().await.unwrap();
    assert_eq!(
        (stats.mode, stats.requested_mode),
        (WalMode::Sync, WalMode::Sync)
    );
    assert_eq!(stats.mode, CommitMode::Sync);
    wal.set_mode(CommitMode::Async).await.unwrap();
    assert_eq!(wal.stats().await.unwrap().mode, WalMode::Async);
    wal.shutdown().await.unwrap();
}

/// Notifications received: token and result.
type Acks = Arc<Mutex<Vec<(u64, Result<Lsn, WalError>)>>>;

struct Collector(Acks);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<DurabilityReply> for Collector {
    type Result = ();
    fn handle(&mut self, msg: DurabilityReply, _: &mut Self::Context) {
        self.0.lock().unwrap().push((msg.token, msg.result));
    }
}

/// Answered after every notification sent before it (one mailbox, in order).
#[derive(Message)]
#[rtype(result = "()")]
struct Sync;

impl Handler<Sync> for Collector {
    type Result = ();
    fn handle(&mut self, _: Sync, _: &mut Self::Context) {}
}

/// `notify_to` gets a notification for every append and commit that names no recipient of
/// its own, durable or buffered, with its LSN as the token; one that names its own goes
/// only there.
#[actix::test]
async fn notify_to_receives_notifications_for_appends_without_their_own() {
    let d = tempfile::tempdir().unwrap();
    let (default_acks, own_acks) = (Acks::default(), Acks::default());
    let default_to = Collector(default_acks.clone()).start();
    let own_to = Collector(own_acks.clone()).start();
    let cfg = WalConfig {
        notify_to: Some(default_to.clone().recipient()),
        ..WalConfig::default()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.append(b"durable".to_vec()).await.unwrap(), Lsn(1));
    let buffered = Append::new(b"buffered".to_vec()).durability(Durability::Buffered);
    assert_eq!(wal.send(buffered).await.unwrap(), Lsn(2));
    assert_eq!(
        wal.commit(vec![b"a".to_vec(), b"b".to_vec()])
            .await
            .unwrap(),
        Lsn(3)
    );
    let own = Append::new(b"own".to_vec()).notify(own_to.clone().recipient(), 777);
    assert_eq!(wal.send(own).await.unwrap(), Lsn(5));
    assert_eq!(wal.flush().await.unwrap(), Lsn(5));
    default_to.send(Sync).await.unwrap();
    own_to.send(Sync).await.unwrap();

    let mut got = default_acks.lock().unwrap().clone();
    got.sort_by_key(|(token, _)| *token);
    let got: Vec<(u64, Lsn)> = got.into_iter().map(|(t, r)| (t, r.unwrap())).collect();
    assert_eq!(got, vec![(1, Lsn(1)), (2, Lsn(2)), (3, Lsn(3))]);
    let own: Vec<(u64, Lsn)> = own_acks
        .lock()
        .unwrap()
        .iter()
        .map(|(t, r)| (*t, r.clone().unwrap()))
        .collect();
    assert_eq!(own, vec![(777, Lsn(5))]);
    wal.shutdown().await.unwrap();
}

/// Shrinking `segment_size_bytes` with struct update syntax fails once, naming every size
/// that no longer fits with a value that does; those values then validate.
#[test]
fn shrinking_the_segment_names_every_size_that_does_not_fit_in_one_error() {
    let cfg = WalConfig {
        segment_size_bytes: 64 * 1024,
        ..WalConfig::default()
    };
    let Err(WalError::InvalidConfig(msg)) = cfg.validate() else {
        panic!("a 64 KiB segment cannot hold 1 MiB records or 4 MiB batches");
    };
    // 65,536 - 32 (segment header) - 24 (frame header) = 65,480 for a record.
    assert!(msg.contains("max_record_bytes = 65480"), "{msg}");
    assert!(msg.contains("max_batch_bytes = 65504"), "{msg}");
    assert!(!msg.contains("max_queue_bytes"), "{msg}");
    let fixed = WalConfig {
        segment_size_bytes: 64 * 1024,
        max_record_bytes: 65_480,
        max_batch_bytes: 65_504,
        ..WalConfig::default()
    };
    fixed.validate().unwrap();

    // Raising max_record_bytes past max_batch_bytes: the batch (not the record) is named.
    let big = WalConfig {
        max_record_bytes: 8 << 20,
        ..WalConfig::default()
    };
    let Err(WalError::InvalidConfig(msg)) = big.validate() else {
        panic!("8 MiB records do not fit 4 MiB batches");
    };
    assert!(
        msg.contains(&format!("max_batch_bytes = {}", (8 << 20) + 24)),
        "{msg}"
    );
    assert!(!msg.contains("max_record_bytes ="), "{msg}");

    // A segment that cannot hold a single frame is refused with the smallest that can.
    let tiny = WalConfig::default().segment_size_bytes(40);
    let Err(WalError::InvalidConfig(msg)) = tiny.validate() else {
        panic!("a 40-byte segment holds no frame");
    };
    assert!(msg.contains("at least 57"), "{msg}");
}

/// The setter fits the sizes that depend on the segment, and the log works with them: a
/// record of the fitted `max_record_bytes` is taken, one byte more is refused.
#[actix::test]
async fn segment_size_setter_fits_the_dependent_sizes() {
    let cfg = WalConfig::default()
        .segment_size_bytes(64 * 1024)
        .durability(Durability::Durable)
        .preallocate(false);
    assert_eq!(cfg.max_record_bytes, 65_480);
    assert_eq!(cfg.max_batch_bytes, 65_504);
    assert_eq!(cfg.max_queue_bytes, WalConfig::default().max_queue_bytes);
    cfg.validate().unwrap();
    let raised = WalConfig::default().max_record_bytes(8 << 20);
    assert_eq!(raised.max_batch_bytes, (8 << 20) + 24);
    raised.validate().unwrap();

    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.append(vec![7u8; 65_480]).await.unwrap(), Lsn(1));
    assert!(matches!(
        wal.append(vec![7u8; 65_481]).await,
        Err(WalError::RecordTooLarge { .. })
    ));
    assert_eq!(wal.append(vec![8u8; 65_480]).await.unwrap(), Lsn(2));
    wal.shutdown().await.unwrap();
    let lens: Vec<usize> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap().payload.len())
        .collect();
    assert_eq!(lens, vec![65_480, 65_480]);
}

/// A queue message's reply flattens with `??`: a stopped mailbox is `WalError::ShutDown`,
/// with no `map_err` at the call site.
async fn append_through_the_queue(queue: &Addr<Queue>, payload: &str) -> Result<Lsn, WalError> {
    let lsn = queue.send(Append::new(payload)).await??;
    Ok(lsn)
}

#[actix::test]
async fn mailbox_errors_convert_into_wal_errors() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert_eq!(
        append_through_the_queue(wal.queue(), "one").await.unwrap(),
        Lsn(1)
    );
    assert!(matches!(
        WalError::from(MailboxError::Closed),
        WalError::ShutDown
    ));
    assert!(matches!(
        WalError::from(MailboxError::Timeout),
        WalError::Timeout
    ));
    wal.shutdown().await.unwrap();
    assert!(matches!(
        append_through_the_queue(wal.queue(), "two").await,
        Err(WalError::ShutDown)
    ));
}

/// A first start: `LogReader::open` on a directory that does not exist yet, or exists and
/// holds nothing, is an empty log. A directory whose `META` names a log but holds no
/// segment is not empty: that stays an error.
#[test]
fn log_reader_on_a_missing_or_empty_directory_reads_nothing() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("not-yet");
    assert_eq!(LogReader::open(&missing).unwrap().count(), 0);
    assert!(
        !missing.exists(),
        "the reader created {}",
        missing.display()
    );
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(LogReader::open(&empty).unwrap().count(), 0);
    assert_eq!(LogReader::open_from(&empty, Lsn(5)).unwrap().count(), 0);

    // A log whose segments were deleted: its META remains.
    let gone = d.path().join("gone");
    let (mut log, _) = LogWriter::open(&gone, LogOptions::default()).unwrap();
    log.append(b"x").unwrap();
    log.sync().unwrap();
    drop(log);
    for e in std::fs::read_dir(&gone).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "wal") {
            std::fs::remove_file(p).unwrap();
        }
    }
    assert!(gone.join("META").exists());
    assert!(matches!(
        LogReader::open(&gone),
        Err(WalError::NoLog { .. })
    ));
    // A path that is a file is still refused.
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        LogReader::open(&file),
        Err(WalError::NotADirectory { .. })
    ));
}

/// The README's and operations.md's `cargo install` lines install with `--locked`: the
/// versions the crate was tested with, not whatever is newest.
#[test]
fn install_lines_in_the_docs_are_locked() {
    for (name, text) in [
        ("README.md", include_str!("../README.md")),
        ("docs/operations.md", include_str!("../docs/operations.md")),
    ] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("cargo install"))
            .collect();
        assert!(!lines.is_empty(), "{name} has no install line");
        for l in lines {
            assert!(l.contains("--locked"), "{name}: {l}");
        }
    }
}

/// Issue 20, item 12: `META` is rewritten from outside the crate only through a `LogDir`,
/// which holds the directory lock: beside a live writer it is refused (`Locked`), and the
/// writer's records stay readable from its first LSN. (The old back door, a public
/// `MetaStore::replace`, is a `compile_fail` doctest in `src/lib.rs`.)
#[test]
fn meta_is_rewritten_only_under_the_directory_lock() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = LogWriter::open(d.path(), LogOptions::default()).unwrap();
    for i in 0..3u8 {
        w.append(&[i]).unwrap();
    }
    w.sync().unwrap();
    match LogDir::open(d.path(), storage::default_storage()) {
        Err(WalError::Locked { .. }) => {}
        Err(e) => panic!("expected Locked beside a live writer, got {e}"),
        Ok(_) => panic!("a LogDir opened beside a live writer: META writable without the lock"),
    }
    drop(w);
    let log = LogDir::open(d.path(), storage::default_storage()).unwrap();
    let read = log.reload_meta().unwrap();
    assert_eq!(read.meta.as_ref().map(|m| m.first_lsn), Some(1));
    log.update_meta(|_| {}).unwrap();
    drop(log);
    let lsns: Vec<u64> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap().lsn.0)
        .collect();
    assert_eq!(lsns, vec![1, 2, 3]);
}
