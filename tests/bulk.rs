//! Bulk appends keep the disk busy: when a batch completes and the next one is already
//! closed (full, with a later one gathering), the queue hands it to the flusher at once.
//! Holding it for a scheduler turn (so the callers just answered could join it, which
//! they cannot: they land in a later batch) left the disk idle between batches: 99 batches
//! of 1 MiB a second against 176 raw 1 MiB writes (docs/performance.md).

use actix_wal::*;
use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the gated segment files saw, and how many of their fdatasyncs may proceed.
#[derive(Debug, Default)]
struct State {
    /// `None`: fdatasyncs run freely; `Some(n)`: n more may run, later ones wait.
    permits: Option<usize>,
    /// Writes to segment files so far.
    writes: usize,
}

#[derive(Debug, Default)]
struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

impl Gate {
    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
        self.changed.notify_all();
    }
    fn writes(&self) -> usize {
        self.state.lock().unwrap().writes
    }
    /// Waits (blocking the thread) until `done` holds, for `limit` at most.
    fn wait_until(&self, limit: Duration, done: impl Fn(&State) -> bool) -> bool {
        let guard = self.state.lock().unwrap();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, limit, |s| !done(s))
            .unwrap();
        done(&guard)
    }
}

/// The real file system; segment files count their writes and wait at `sync_data` for a
/// permit while the gate is armed.
#[derive(Debug, Clone, Default)]
struct Gated(Arc<Gate>);

#[derive(Debug)]
struct GatedFile(Box<dyn StorageFile>, Option<Arc<Gate>>);

impl Gated {
    fn wrap(&self, path: &Path, f: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        let segment = path.extension().is_some_and(|e| e == "wal");
        Box::new(GatedFile(f, segment.then(|| self.0.clone())))
    }
}

impl Storage for Gated {
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
        Ok(self.wrap(path, FsStorage.create(path)?))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(path, FsStorage.open(path, writable)?))
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
    fn lock_dir(&self, dir: &Path, lock_name: &str) -> io::Result<Box<dyn storage::DirLock>> {
        FsStorage.lock_dir(dir, lock_name)
    }
}

impl StorageFile for GatedFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let r = self.0.write_all_at(buf, offset);
        if let Some(g) = &self.1 {
            g.update(|s| s.writes += 1);
        }
        r
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.0.size_bytes()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.0.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if let Some(g) = &self.1 {
            // Generous: the test releases permits within milliseconds, or gives up and
            // opens the gate.
            g.wait_until(Duration::from_secs(30), |s| s.permits != Some(0));
            g.update(|s| {
                if let Some(n) = s.permits.as_mut() {
                    *n -= 1;
                }
            });
        }
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn is_linked(&self) -> io::Result<bool> {
        self.0.is_linked()
    }
}

#[actix::test]
async fn a_closed_batch_goes_to_the_flusher_as_soon_as_the_one_before_is_durable() {
    let d = tempfile::tempdir().unwrap();
    let storage = Gated::default();
    let gate = storage.0.clone();
    // Frames of 1,024 bytes, four to a batch.
    let cfg = WalConfig::default()
        .max_record_bytes(1024)
        .max_batch_bytes(4096)
        .storage(Arc::new(storage));
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    wal.append(vec![0u8; 1000]).await.unwrap(); // the segment exists, META is raised
    gate.update(|s| s.permits = Some(1));
    let start = gate.writes();
    // Batch M (X alone) goes out and is fsynced (the one permit) ...
    let x = wal.queue().send(Append::new(vec![1u8; 1000]));
    // ... while A and B gather into batch N, with eight buffered records behind them:
    // N is closed (full), N+1 closed, N+2 gathering.
    let a = wal.queue().send(Append::new(vec![2u8; 1000]));
    let b = wal.queue().send(Append::new(vec![3u8; 1000]));
    let buffered: Vec<_> = (0..8)
        .map(|i| {
            wal.queue()
                .send(Append::new(vec![4 + i as u8; 1000]).durability(Durability::Buffered))
        })
        .collect();
    x.await.unwrap().unwrap();
    // M and N are written (one write each: one segment), and N waits for its fsync.
    assert!(
        gate.wait_until(Duration::from_secs(10), |s| s.writes >= start + 2),
        "batch N never reached the flusher"
    );
    for r in futures::future::join_all(buffered).await {
        r.unwrap().unwrap();
    }
    let before = gate.writes();
    gate.update(|s| s.permits = Some(1)); // N's fsync: A and B are answered
                                          // A task on this thread (the queue's), like the callers of a bulk load: when A's
                                          // reply wakes it, N+1 must already be on its way; it blocks the thread until then.
    let waiter = {
        let gate = gate.clone();
        actix::spawn(async move {
            let a_lsn = a.await.unwrap().unwrap();
            let dispatched = gate.wait_until(Duration::from_secs(5), |s| s.writes > before);
            gate.update(|s| s.permits = None);
            (a_lsn, dispatched)
        })
    };
    let (a_lsn, dispatched) = waiter.await.unwrap();
    let b_lsn = b.await.unwrap().unwrap();
    assert_eq!(b_lsn.0, a_lsn.0 + 1);
    assert!(
        dispatched,
        "the closed batch after A and B was not written while their callers ran"
    );
    wal.shutdown().await.unwrap();
}
