//! What a read of the open log costs in system calls, and what the segment handles it
//! keeps open between reads may never do: a read opens no file once its segment's handle
//! is cached, a range read costs at most two positional reads per segment, and a
//! checkpoint closes the cached handles of the segments it removes (no disk space held,
//! no removed record read back). Run with the queue on an arbiter of its own (reads from
//! the test's thread are served in place) and on the test's thread (reads go to the pool).

use actix_wal::storage::{DirLock, FsStorage, Storage, StorageFile};
use actix_wal::*;
use futures::future::join_all;
use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The real file system, counting the read-only opens, the positional reads through them,
/// and the read-only handles alive per path.
#[derive(Debug, Default)]
struct Counting {
    opens: AtomicUsize,
    preads: AtomicUsize,
    /// Of `preads`, those that asked for bytes in memory only (reads in place).
    in_place: AtomicUsize,
    /// Bytes asked for by `preads`.
    bytes: AtomicUsize,
    live: Mutex<HashMap<PathBuf, usize>>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn StorageFile>,
    /// Set for read-only handles (the readers'): counted and tracked.
    counted: Option<(Arc<Counting>, PathBuf)>,
}

#[derive(Debug, Clone, Default)]
struct CountingStorage(Arc<Counting>);

impl Counting {
    fn live_on(&self, path: &Path) -> usize {
        self.live.lock().unwrap().get(path).copied().unwrap_or(0)
    }
    fn reset(&self) {
        self.opens.store(0, Ordering::SeqCst);
        self.preads.store(0, Ordering::SeqCst);
        self.in_place.store(0, Ordering::SeqCst);
        self.bytes.store(0, Ordering::SeqCst);
    }
}

impl Storage for CountingStorage {
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
        let inner = FsStorage.open(path, writable)?;
        let counted = (!writable).then(|| {
            self.0.opens.fetch_add(1, Ordering::SeqCst);
            *self.0.live.lock().unwrap().entry(path.into()).or_default() += 1;
            (self.0.clone(), path.to_path_buf())
        });
        Ok(Box::new(CountingFile { inner, counted }))
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
    fn lock_dir(&self, dir: &Path, lock_name: &str) -> io::Result<Box<dyn DirLock>> {
        FsStorage.lock_dir(dir, lock_name)
    }
}

impl CountingFile {
    fn count_read(&self, bytes: usize) {
        if let Some((c, _)) = &self.counted {
            c.preads.fetch_add(1, Ordering::SeqCst);
            c.bytes.fetch_add(bytes, Ordering::SeqCst);
        }
    }
}

impl Drop for CountingFile {
    fn drop(&mut self) {
        if let Some((c, path)) = &self.counted {
            *c.live.lock().unwrap().entry(path.clone()).or_default() -= 1;
        }
    }
}

impl StorageFile for CountingFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.count_read(buf.len());
        self.inner.read_exact_at(buf, offset)
    }
    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        self.count_read(buf.len());
        if let Some((c, _)) = &self.counted {
            c.in_place.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.read_cached_at(buf, offset)
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
    fn is_linked(&self) -> io::Result<bool> {
        self.inner.is_linked()
    }
}

const PLACEMENTS: [QueueThread; 2] = [QueueThread::Own, QueueThread::Caller];

/// A log of `n` records of 256 B (each tagged with its index) in 64 KiB segments.
async fn log_of(d: &Path, placement: QueueThread, n: usize) -> (Wal, Arc<Counting>, Vec<Lsn>) {
    let storage = CountingStorage::default();
    let counting = storage.0.clone();
    let cfg = WalConfig::default()
        .segment_size_bytes(64 * 1024)
        .queue_thread(placement)
        .storage(Arc::new(storage));
    let wal = Wal::open(d, cfg).await.unwrap();
    let mut lsns = Vec::new();
    for chunk in 0..n.div_ceil(100) {
        let appends = (chunk * 100..((chunk + 1) * 100).min(n)).map(|i| wal.append(record(i)));
        for r in join_all(appends).await {
            lsns.push(r.unwrap());
        }
    }
    (wal, counting, lsns)
}

fn record(i: usize) -> Vec<u8> {
    let mut p = i.to_le_bytes().to_vec();
    p.resize(256, (i % 251) as u8);
    p
}

#[actix::test]
async fn reads_of_one_segment_open_it_once_not_per_read() {
    for placement in PLACEMENTS {
        let d = tempfile::tempdir().unwrap();
        let (wal, counting, lsns) = log_of(d.path(), placement, 150).await;
        counting.reset();
        // The first 150 records of 280 B sit in the first 64 KiB segment.
        for round in 0..4 {
            for (i, &lsn) in lsns.iter().enumerate() {
                let got = wal.read(lsn).await.unwrap();
                assert_eq!(
                    got.payload,
                    record(i),
                    "{placement:?} round {round} LSN {lsn}"
                );
            }
        }
        let opens = counting.opens.load(Ordering::SeqCst);
        assert!(
            opens <= 4,
            "{placement:?}: {opens} opens for {} reads of one segment",
            4 * lsns.len()
        );
        // Reads in place only where the queue is not on the reading thread.
        let in_place = counting.in_place.load(Ordering::SeqCst);
        match placement {
            QueueThread::Own => assert!(in_place >= 4 * lsns.len(), "{in_place} in place"),
            QueueThread::Caller => assert_eq!(in_place, 0, "a read on the queue's thread"),
        }
        wal.shutdown().await.unwrap();
    }
}

#[actix::test]
async fn a_range_read_costs_at_most_two_preads_per_segment() {
    for placement in PLACEMENTS {
        let d = tempfile::tempdir().unwrap();
        let (wal, counting, lsns) = log_of(d.path(), placement, 2_001).await;
        for start in [0usize, 333, 1_000] {
            counting.reset();
            let got = wal
                .read_range(lsns[start]..lsns[start + 1_000], 1 << 20)
                .await
                .unwrap();
            assert_eq!(got.len(), 1_000, "{placement:?} from {start}");
            for (k, r) in got.iter().enumerate() {
                assert_eq!(r.payload, record(start + k), "{placement:?} from {start}");
            }
            let mut segments: Vec<_> = got.iter().map(|r| r.segment_first_lsn).collect();
            segments.dedup();
            let preads = counting.preads.load(Ordering::SeqCst);
            assert!(
                preads <= 2 * segments.len(),
                "{placement:?} from {start}: {preads} preads over {} segments",
                segments.len()
            );
        }
        wal.shutdown().await.unwrap();
    }
}

#[actix::test]
async fn a_checkpoint_closes_the_cached_handles_of_the_segments_it_removes() {
    for placement in PLACEMENTS {
        let d = tempfile::tempdir().unwrap();
        let (wal, counting, lsns) = log_of(d.path(), placement, 1_000).await;
        // Read every record once: handles on every segment are cached (up to the cap).
        let mut first_segments = Vec::new();
        for &lsn in &lsns {
            let r = wal.read(lsn).await.unwrap();
            if first_segments.last() != Some(&r.segment_first_lsn) {
                first_segments.push(r.segment_first_lsn);
            }
        }
        let first = d.path().join(files::segment_name(first_segments[0].0));
        assert!(
            counting.live_on(&first) > 0,
            "{placement:?}: no handle kept"
        );
        let cut = first_segments[2];
        assert!(wal.truncate_before(cut).await.unwrap() >= 2);
        for s in &first_segments[..2] {
            let path = d.path().join(files::segment_name(s.0));
            assert!(!path.exists(), "{placement:?}: {} kept", path.display());
            assert_eq!(
                counting.live_on(&path),
                0,
                "{placement:?}: a handle on removed {} is still open",
                path.display()
            );
        }
        for &lsn in lsns.iter().filter(|&&l| l < cut) {
            match wal.read(lsn).await {
                Err(WalError::NotFound { lsn: l }) => assert_eq!(l, lsn),
                other => panic!("{placement:?} LSN {lsn}: expected NotFound, got {other:?}"),
            }
        }
        for (i, &lsn) in lsns.iter().enumerate().filter(|&(_, &l)| l >= cut) {
            assert_eq!(wal.read(lsn).await.unwrap().payload, record(i));
        }
        wal.shutdown().await.unwrap();
    }
}

/// A read of one of the newest records reads its frame alone (the index keeps the exact
/// place of the newest frames), not the stride of frames before it.
#[actix::test]
async fn a_read_of_a_recent_record_reads_its_frame_alone() {
    for placement in PLACEMENTS {
        let d = tempfile::tempdir().unwrap();
        let (wal, counting, lsns) = log_of(d.path(), placement, 1_000).await;
        counting.reset();
        for (i, &lsn) in lsns.iter().enumerate().rev().take(500) {
            assert_eq!(wal.read(lsn).await.unwrap().payload, record(i));
        }
        let preads = counting.preads.load(Ordering::SeqCst);
        let bytes = counting.bytes.load(Ordering::SeqCst);
        let frame = 256 + format::FRAME_HEADER_BYTES;
        assert!(preads >= 500, "{placement:?}: {preads} preads");
        assert_eq!(
            bytes,
            preads * frame,
            "{placement:?}: {bytes} bytes in {preads} preads"
        );
        wal.shutdown().await.unwrap();
    }
}
