//! `LogReader::open_from` (seek by segment name, then inside the segment) and a reader
//! beside a live writer: a prefix of the log, every record as acknowledged, no error.

mod common;
use actix_wal::*;
use common::segment_count;
use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn config(segment_size_bytes: u64) -> WalConfig {
    // The builder fits the record, batch and queue sizes to the segment.
    WalConfig::default().segment_size_bytes(segment_size_bytes)
}

fn read_from(dir: &Path, lsn: u64) -> Vec<Record> {
    LogReader::open_from(dir, Lsn(lsn))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[actix::test]
async fn open_from_seeks_by_segment_then_frame_and_splits_a_transaction() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), config(16 * 1024)).await.unwrap();
    for i in 1..=200u32 {
        wal.append(format!("r{i}:{}", "x".repeat(400)))
            .await
            .unwrap();
    }
    // LSNs 201..=205: one transaction.
    let txn: Vec<Vec<u8>> = (0..5).map(|i| format!("t{i}").into_bytes()).collect();
    assert_eq!(wal.commit(txn).await.unwrap(), Lsn(201));
    wal.append("last").await.unwrap();
    wal.shutdown().await.unwrap();
    assert!(
        segment_count(d.path()) > 3,
        "the log spans several segments"
    );
    let all = read_from(d.path(), 0);
    assert_eq!(all.len(), 206);
    for from in [1u64, 2, 57, 123, 200, 201, 203, 205, 206] {
        let got = read_from(d.path(), from);
        assert_eq!(got, all[(from - 1) as usize..], "from LSN {from}");
    }
    // A record inside a transaction keeps its position in the whole transaction.
    let mid = read_from(d.path(), 203);
    assert_eq!(mid[0].lsn, Lsn(203));
    assert_eq!(mid[0].payload, b"t2");
    assert_eq!(mid[0].txn, Some(TxnPosition { index: 2, count: 5 }));
    // Below the first LSN reads from the start; past the end yields nothing.
    assert_eq!(read_from(d.path(), 0), all);
    assert!(read_from(d.path(), 207).is_empty());
    assert!(read_from(d.path(), u64::MAX).is_empty());
}

#[actix::test]
async fn open_from_after_a_checkpoint_reads_from_the_first_kept_segment() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), config(16 * 1024)).await.unwrap();
    for i in 1..=200u32 {
        wal.append(format!("r{i}:{}", "y".repeat(200)))
            .await
            .unwrap();
    }
    assert!(wal.truncate_before(Lsn(150)).await.unwrap() > 0);
    wal.shutdown().await.unwrap();
    let all = read_from(d.path(), 0);
    let first = all[0].lsn.0;
    assert!(first > 1 && first <= 150);
    // Below the first kept LSN: from the start of what is there.
    assert_eq!(read_from(d.path(), 1), all);
    assert_eq!(read_from(d.path(), 150)[0].lsn, Lsn(150));
    assert_eq!(
        LogReader::open_from(d.path().join("missing"), Lsn(1))
            .err()
            .map(|e| e.to_string()),
        LogReader::open(d.path().join("missing"))
            .err()
            .map(|e| e.to_string()),
    );
}

/// A file system whose segment files show, at the first read of each, only the bytes below
/// `stale_from` (zeros after): a reader that read its first window before a live writer
/// wrote the batches from there on, and everything after that read fresh.
#[derive(Debug)]
struct LateWriter {
    stale_from: u64,
}

#[derive(Debug)]
struct LateFile {
    inner: Box<dyn StorageFile>,
    reads: AtomicUsize,
    stale_from: u64,
}

impl Storage for LateWriter {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        FsStorage.is_dir(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        FsStorage.create(path)
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(LateFile {
            inner: FsStorage.open(path, writable)?,
            reads: AtomicUsize::new(0),
            stale_from: self.stale_from,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
        FsStorage.lock(path)
    }
}

impl StorageFile for LateFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        // The first read (the header's, which fills the first window): the writer has
        // not got further yet.
        if self.reads.fetch_add(1, Ordering::SeqCst) == 0 && end > self.stale_from {
            let from = self.stale_from.saturating_sub(offset) as usize;
            buf[from..].fill(0);
        }
        Ok(())
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
}

#[actix::test]
async fn a_batch_written_while_the_reader_looks_is_not_called_corruption() {
    // One segment larger than the reader's window (4 MiB), one batch per durable append:
    // the reader's first window ends before the writer's later batches, which it then
    // reads fresh, after damage (zeros) that was only the writer not there yet.
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), config(16 << 20)).await.unwrap();
    let payload = |i: u32| vec![i as u8 | 1; 128 * 1024];
    for i in 0..48u32 {
        wal.append(payload(i)).await.unwrap();
    }
    wal.shutdown().await.unwrap();
    assert_eq!(segment_count(d.path()), 1);
    let all = read_from(d.path(), 0);
    assert_eq!(all.len(), 48);
    // The reader's first window holds the log only up to record 5's frame.
    let stale_from = all[4].frame_offset;
    let storage: SharedStorage = Arc::new(LateWriter { stale_from });
    let late: Vec<Record> = LogReader::open_with(d.path(), storage, 4 << 20)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .expect("a batch the writer finished after the first read is no corruption");
    assert_eq!(
        late, all,
        "read again from the file, the whole log is there"
    );
}

#[test]
fn a_reader_beside_a_live_writer_sees_a_prefix_of_what_is_acknowledged_and_never_errs() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let wal = Wal::open_blocking(&dir, config(256 * 1024)).unwrap();
    // The first record exists before the reader starts (a reader needs a segment).
    futures::executor::block_on(wal.append("first")).unwrap();
    let acked: Arc<Mutex<HashMap<u64, Vec<u8>>>> = Arc::default();
    acked.lock().unwrap().insert(1, b"first".to_vec());
    let stop = Arc::new(AtomicBool::new(false));
    // The reader: passes over the live log, from the start or from an LSN it saw before.
    let reader = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen: HashMap<u64, u32> = HashMap::new();
            let mut passes = 0u64;
            let mut longest = 0u64;
            while !stop.load(Ordering::SeqCst) || passes < 2 {
                let from = if passes % 3 == 2 { longest / 2 } else { 0 };
                let reader = LogReader::open_from(&dir, Lsn(from)).expect("open beside a writer");
                let mut expect = from.max(1);
                for r in reader {
                    let r = r.unwrap_or_else(|e| panic!("pass {passes}: the reader erred: {e}"));
                    assert_eq!(r.lsn, Lsn(expect), "pass {passes}: a prefix, no gap");
                    expect += 1;
                    let crc = crc32fast::hash(&r.payload);
                    assert_eq!(*seen.entry(r.lsn.0).or_insert(crc), crc, "a record changed");
                }
                longest = longest.max(expect - 1);
                passes += 1;
            }
            (seen, passes)
        })
    };
    let writers: Vec<_> = (0..8u32)
        .map(|t| {
            let (wal, acked) = (wal.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..150u32 {
                    let payload = format!("{t}:{i}:{}", "p".repeat((i as usize * 37) % 3000));
                    let append = Append::new(payload.clone().into_bytes());
                    let append = if i % 4 == 0 {
                        append.durability(Durability::Buffered)
                    } else {
                        append
                    };
                    let lsn = futures::executor::block_on(wal.send(append)).unwrap();
                    acked.lock().unwrap().insert(lsn.0, payload.into_bytes());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    futures::executor::block_on(wal.flush()).unwrap();
    stop.store(true, Ordering::SeqCst);
    let (seen, passes) = reader.join().unwrap();
    futures::executor::block_on(wal.shutdown()).unwrap();
    let acked = acked.lock().unwrap();
    assert_eq!(acked.len(), 1 + 8 * 150);
    assert!(segment_count(&dir) > 2, "the reader crossed rollovers");
    assert!(passes >= 2 && !seen.is_empty());
    for (lsn, crc) in &seen {
        let payload = acked.get(lsn).expect("every record read was acknowledged");
        assert_eq!(
            crc32fast::hash(payload),
            *crc,
            "LSN {lsn} reads as acknowledged"
        );
    }
    eprintln!(
        "{passes} reader passes, {} distinct records read of {}",
        seen.len(),
        acked.len()
    );
}
