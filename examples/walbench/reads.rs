//! Reads of the open log (issue 11): `Wal::read(lsn)` of a recent record beside a bare
//! `pread` of the same bytes, in the same loop, with the queue on an arbiter of its own
//! (reads from this thread are served in place) and on this thread (they go to the reader
//! pool); a range read of 1,000 records of 256 B, counting its positional reads per
//! segment touched through a counting storage; and the reader tasks the `readers` part
//! runs beside the committers.

use crate::pipeline::Control;
use crate::report::{new_histogram, Figures, Latency};
use crate::sys;
use actix_wal::storage::{DirLock, FsStorage, Storage, StorageFile};
use actix_wal::{Lsn, QueueThread, Wal, WalConfig};
use futures::future::join_all;
use hdrhistogram::Histogram;
use std::any::Any;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Records in the log read from.
const RECORDS: u64 = 20_000;
/// Bytes per record.
const PAYLOAD_BYTES: usize = 256;
/// Reads are of the most recent this many records, in turn.
const RECENT: u64 = 100;

/// The real file system, counting positional reads (`read_exact_at`, `read_cached_at`).
#[derive(Debug, Clone, Default)]
struct Counting(Arc<AtomicU64>);

#[derive(Debug)]
struct CountingFile(Box<dyn StorageFile>, Arc<AtomicU64>);

impl Storage for Counting {
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
        Ok(Box::new(CountingFile(
            FsStorage.open(path, writable)?,
            self.0.clone(),
        )))
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

impl StorageFile for CountingFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.read_exact_at(buf, offset)
    }
    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.read_cached_at(buf, offset)
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
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn is_linked(&self) -> io::Result<bool> {
        self.0.is_linked()
    }
}

fn row(system: &str, note: String, h: &Histogram<u64>, bytes: usize) -> Figures {
    let n = h.len();
    let secs = h.mean() * n as f64 / 1e9;
    Figures {
        system: system.into(),
        note,
        committers: 1,
        payload_bytes: bytes,
        seconds: secs,
        commits: n,
        commits_per_s: n as f64 / secs.max(1e-9),
        mb_per_s: (n as usize * bytes) as f64 / secs.max(1e-9) / 1e6,
        latency: Latency::of(h),
        peak_rss_bytes: sys::peak_rss_bytes(),
        ..Figures::default()
    }
}

/// One placement's rows: `Wal::read` of the `RECENT` newest records in turn, a bare
/// `pread` of the same bytes (the file opened once) after each, and `ranges` range reads
/// of 1,000 records with their positional reads per segment touched (in `mean_batch`).
pub async fn read_figures(
    dir: &Path,
    config: WalConfig,
    placement: QueueThread,
    reads: u64,
    ranges: u64,
) -> Result<Vec<Figures>, String> {
    fn e(what: &'static str) -> impl Fn(actix_wal::WalError) -> String {
        move |err| format!("{what}: {err}")
    }
    let counting = Counting::default();
    let preads = counting.0.clone();
    let config = WalConfig {
        queue_thread: placement,
        storage: Arc::new(counting),
        ..config
    };
    let wal = Wal::open(dir, config).await.map_err(e("open"))?;
    for chunk in 0..RECORDS / 500 {
        let appends = (0..500).map(|i| wal.append(vec![(chunk * 500 + i) as u8; PAYLOAD_BYTES]));
        for r in join_all(appends).await {
            r.map_err(e("append"))?;
        }
    }
    let last = wal.flush().await.map_err(e("flush"))?.0;
    let recent = |i: u64| Lsn(last - (i % RECENT));
    // Where the records sit, from the log itself (not timed).
    let mut places = Vec::new();
    for i in 0..RECENT {
        let r = wal.read(recent(i)).await.map_err(e("read"))?;
        let path = dir.join(actix_wal::files::segment_name(r.segment_first_lsn.0));
        let file =
            std::fs::File::open(&path).map_err(|err| format!("{}: {err}", path.display()))?;
        places.push((file, r.frame_offset));
    }
    let frame = PAYLOAD_BYTES + actix_wal::format::FRAME_HEADER_BYTES;
    let mut buf = vec![0u8; frame];
    let (mut h_read, mut h_pread) = (new_histogram(), new_histogram());
    for i in 0..reads {
        let t = Instant::now();
        let r = wal.read(recent(i)).await.map_err(e("read"))?;
        let _ = h_read.record((t.elapsed().as_nanos() as u64).max(1));
        std::hint::black_box(r);
        let (file, offset) = &places[(i % RECENT) as usize];
        let t = Instant::now();
        file.read_exact_at(&mut buf, *offset)
            .map_err(|err| format!("pread: {err}"))?;
        let _ = h_pread.record((t.elapsed().as_nanos() as u64).max(1));
    }
    let mut h_range = new_histogram();
    let (mut range_preads, mut segments) = (0u64, 0u64);
    for i in 0..ranges {
        let start = 1 + (i * 97) % (RECORDS - 1000);
        let before = preads.load(Ordering::Relaxed);
        let t = Instant::now();
        let got = wal
            .read_range(Lsn(start)..Lsn(start + 1000), 1 << 20)
            .await
            .map_err(e("read_range"))?;
        let _ = h_range.record((t.elapsed().as_nanos() as u64).max(1));
        range_preads += preads.load(Ordering::Relaxed) - before;
        let mut segs: Vec<_> = got.iter().map(|r| r.segment_first_lsn).collect();
        segs.dedup();
        segments += segs.len() as u64;
        if got.len() != 1000 {
            return Err(format!("range from {start}: {} records", got.len()));
        }
    }
    wal.shutdown().await.map_err(e("shutdown"))?;
    let how = match placement {
        QueueThread::Own => "in place (queue on its own thread)",
        QueueThread::Caller => "via the reader pool (queue on this thread)",
    };
    let mut range = row(
        "read_range",
        format!("1,000 x 256 B, {how}; mean_batch = preads per segment touched"),
        &h_range,
        1000 * PAYLOAD_BYTES,
    );
    range.mean_batch = Some(range_preads as f64 / segments.max(1) as f64);
    Ok(vec![
        row(
            "read",
            format!("Wal::read(lsn), {how}"),
            &h_read,
            PAYLOAD_BYTES,
        ),
        row(
            "bare-pread",
            format!("{frame} B, file open, same loop"),
            &h_pread,
            frame,
        ),
        range,
    ])
}

/// A reader: reads a record among the 1,000 most recently acknowledged, again and again,
/// until the run stops; returns (reads in the window, failed reads). It yields after each
/// read: a read served in place completes without a scheduler turn, and the other readers
/// share this thread.
pub async fn read_loop(wal: Wal, control: Arc<Control>, seed: u64) -> (u64, u64) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (seed + 1);
    let (mut reads, mut errors) = (0u64, 0u64);
    while !control.stop.load(Ordering::Relaxed) {
        let hi = control.acked.load(Ordering::Relaxed);
        if hi > 0 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let lsn = hi - x % hi.min(1000);
            let ok = wal.read(actix_wal::Lsn(lsn)).await.is_ok();
            if control.recording.load(Ordering::Relaxed) && !control.stop.load(Ordering::Relaxed) {
                if ok {
                    reads += 1;
                } else {
                    errors += 1;
                }
            }
        }
        actix_rt::task::yield_now().await;
    }
    (reads, errors)
}
