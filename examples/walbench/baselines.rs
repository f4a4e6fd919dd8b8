//! What a user would pick instead, measured on the same directory type in the same run:
//! the naive synchronous WAL (one mutex, write + fdatasync per commit), okaywal (the
//! closest Rust peer, with its own group commit), and the raw device through the file
//! system: one thread's write + fdatasync loop (the floor for one committer) and large
//! sequential writes (the bandwidth ceiling).

use crate::report::{Figures, Latency};
use crate::sys;
use actix_wal::{LogOptions, LogWriter};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The measured window of a thread-based run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Time run before measuring.
    pub warmup: Duration,
    /// Time measured.
    pub window: Duration,
}

/// What the threads of a run measured.
struct ThreadResult {
    commits: u64,
    seconds: f64,
    latencies_ns: Vec<u64>,
    errors: u64,
    process_cpu: f64,
}

/// Runs `threads` OS threads, each calling its operation (one durable commit) in a loop,
/// and measures the window after the warm-up.
fn run_threads<F>(threads: usize, timing: Timing, make: impl Fn(usize) -> F) -> ThreadResult
where
    F: FnMut() -> io::Result<()> + Send + 'static,
{
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let mut op = make(i);
        let (recording, stop) = (recording.clone(), stop.clone());
        let h = std::thread::Builder::new()
            .name(format!("baseline-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let (mut commits, mut errors, mut lat) = (0u64, 0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = op().is_ok();
                    let ns = t.elapsed().as_nanos() as u64;
                    if recording.load(Ordering::Relaxed) {
                        lat.push(ns);
                        if !ok {
                            errors += 1;
                        } else if !stop.load(Ordering::Relaxed) {
                            commits += 1;
                        }
                    }
                }
                (commits, errors, lat)
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("walbench: could not start thread {i}: {e}");
                break;
            }
        }
    }
    std::thread::sleep(timing.warmup);
    let cpu0 = sys::process_cpu_ns().unwrap_or(0);
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(timing.window);
    stop.store(true, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let cpu1 = sys::process_cpu_ns().unwrap_or(0);
    let mut out = ThreadResult {
        commits: 0,
        seconds,
        latencies_ns: Vec::new(),
        errors: 0,
        process_cpu: cpu1.saturating_sub(cpu0) as f64 / 1e9 / seconds,
    };
    for h in handles {
        if let Ok((c, e, l)) = h.join() {
            out.commits += c;
            out.errors += e;
            out.latencies_ns.extend(l);
        }
    }
    out
}

/// Figures of a run of `commits` in `seconds` with these latencies.
pub fn slice_figures(
    system: &str,
    note: String,
    payload: usize,
    commits: u64,
    seconds: f64,
    latencies_ns: &[u64],
) -> Figures {
    let rate = commits as f64 / seconds;
    Figures {
        system: system.into(),
        note,
        committers: 1,
        payload_bytes: payload,
        seconds,
        commits,
        commits_per_s: rate,
        mb_per_s: rate * payload as f64 / 1e6,
        latency: Latency::of_samples(latencies_ns),
        fsyncs_per_s: Some(rate),
        mean_batch: Some(1.0),
        peak_rss_bytes: sys::peak_rss_bytes(),
        ..Figures::default()
    }
}

fn figures(system: &str, note: String, threads: usize, payload: usize, r: ThreadResult) -> Figures {
    let rate = r.commits as f64 / r.seconds;
    Figures {
        system: system.into(),
        note,
        committers: threads,
        payload_bytes: payload,
        seconds: r.seconds,
        commits: r.commits,
        commits_per_s: rate,
        mb_per_s: rate * payload as f64 / 1e6,
        disk_mb_per_s: 0.0,
        latency: Latency::of_samples(&r.latencies_ns),
        process_cpu: Some(r.process_cpu),
        peak_rss_bytes: sys::peak_rss_bytes(),
        errors: r.errors,
        ..Figures::default()
    }
}

fn io_err(e: actix_wal::WalError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The design the spec replaces: one `std::sync::Mutex` around a synchronous log; each
/// committer takes it, appends its record, writes and fdatasyncs, and lets go.
pub fn naive(dir: &Path, threads: usize, payload: usize, timing: Timing) -> io::Result<Figures> {
    let (log, _) = LogWriter::open(dir, LogOptions::default()).map_err(io_err)?;
    let log = Arc::new(Mutex::new(log));
    let r = run_threads(threads, timing, |_| {
        let log = log.clone();
        let record = vec![0xA5u8; payload];
        move || {
            let mut log = log.lock().map_err(|_| io::Error::other("poisoned"))?;
            log.append(&record).map_err(io_err)?;
            log.sync().map_err(io_err)?;
            Ok(())
        }
    });
    let mut f = figures(
        "naive",
        format!("{threads} threads, mutex"),
        threads,
        payload,
        r,
    );
    f.fsyncs_per_s = Some(f.commits_per_s);
    f.mean_batch = Some(1.0);
    Ok(f)
}

/// okaywal with `threads` committers, each `begin_entry`, `write_chunk`, `commit` (which
/// returns once the entry is fsynced; okaywal batches concurrent commits into one fsync).
/// Its files are preallocated to `segment_bytes`, like actix-wal's segments.
pub fn okaywal(
    dir: &Path,
    threads: usize,
    payload: usize,
    segment_bytes: u32,
    timing: Timing,
) -> io::Result<Figures> {
    let config = okaywal::Configuration::default_for(dir)
        .preallocate_bytes(segment_bytes)
        .checkpoint_after_bytes(u64::from(segment_bytes) * 3 / 4);
    let wal = config.open(okaywal::LogVoid)?;
    let r = run_threads(threads, timing, |_| {
        let wal = wal.clone();
        let record = vec![0xA5u8; payload];
        move || {
            let mut entry = wal.begin_entry()?;
            entry.write_chunk(&record)?;
            entry.commit()?;
            Ok(())
        }
    });
    wal.shutdown()?;
    let note = format!("{threads} threads, {} MiB files", segment_bytes >> 20);
    Ok(figures("okaywal", note, threads, payload, r))
}

/// How a raw file is prepared before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prep {
    /// `fallocate`, as actix-wal prepares its segments: the blocks are reserved but
    /// unwritten, so the first write to each makes fdatasync commit an extent change too.
    Fallocate,
    /// Written full of zeros and fsynced first: later writes overwrite blocks that are
    /// already initialised, and fdatasync has only data to flush.
    Prewritten,
}

/// A sequence of preallocated files written front to back, a new one when one is full:
/// the same I/O pattern as a log's segments, without a log's format.
pub struct RawLog {
    dir: PathBuf,
    file_bytes: u64,
    prep: Prep,
    file: File,
    offset: u64,
    next: u32,
}

impl RawLog {
    /// A raw log in `dir` whose files are `file_bytes` long, each prepared as `prep` says.
    pub fn new(dir: &Path, file_bytes: u64, prep: Prep) -> io::Result<RawLog> {
        std::fs::create_dir_all(dir)?;
        let file = Self::prepare(dir, 0, file_bytes, prep)?;
        Ok(RawLog {
            dir: dir.to_path_buf(),
            file_bytes,
            prep,
            file,
            offset: 0,
            next: 1,
        })
    }

    fn prepare(dir: &Path, index: u32, bytes: u64, prep: Prep) -> io::Result<File> {
        let path = dir.join(format!("raw-{index:06}"));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        match prep {
            Prep::Fallocate => {
                rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, bytes)
                    .map_err(io::Error::from)?;
            }
            Prep::Prewritten => {
                let zeros = vec![0u8; 4 << 20];
                let mut at = 0;
                while at < bytes {
                    let n = zeros.len().min((bytes - at) as usize);
                    f.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
            }
        }
        f.sync_all()?;
        File::open(dir)?.sync_all()?;
        Ok(f)
    }

    /// Writes `buf` after the last write, in a new file when this one is full.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.offset + buf.len() as u64 > self.file_bytes {
            self.file = Self::prepare(&self.dir, self.next, self.file_bytes, self.prep)?;
            self.next += 1;
            self.offset = 0;
        }
        self.file.write_all_at(buf, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// `fdatasync`s the file being written.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// One thread: write `write_bytes` at the end of the file, fdatasync, again. With
/// `write_bytes` = one frame this is the physical floor of one committer's latency; with
/// large writes it is the device's durable sequential bandwidth.
pub fn raw(
    dir: &Path,
    write_bytes: usize,
    file_bytes: u64,
    prep: Prep,
    timing: Timing,
) -> io::Result<Figures> {
    let log = Arc::new(Mutex::new(RawLog::new(dir, file_bytes, prep)?));
    let r = run_threads(1, timing, |_| {
        let log = log.clone();
        let buf = vec![0xA5u8; write_bytes];
        move || {
            let mut log = log.lock().map_err(|_| io::Error::other("poisoned"))?;
            log.write(&buf)?;
            log.sync()
        }
    });
    let prep_name = match prep {
        Prep::Fallocate => "fallocated",
        Prep::Prewritten => "pre-written",
    };
    let (system, note) = if write_bytes >= 1 << 20 {
        (
            "raw-seq",
            format!("{} MiB writes, {prep_name}", write_bytes >> 20),
        )
    } else {
        ("raw-fsync", format!("{write_bytes} B writes, {prep_name}"))
    };
    let mut f = figures(system, note, 1, write_bytes, r);
    f.fsyncs_per_s = Some(f.commits_per_s);
    f.mean_batch = Some(1.0);
    Ok(f)
}

/// One committer that hands each write + fdatasync to a dedicated I/O thread and waits for
/// its answer (std channels, two thread switches per commit): the floor of any design with
/// a flusher thread of its own, which actix-wal's one-committer latency is measured beside.
pub fn raw_handoff(
    dir: &Path,
    write_bytes: usize,
    file_bytes: u64,
    timing: Timing,
) -> io::Result<Figures> {
    let mut log = RawLog::new(dir, file_bytes, Prep::Fallocate)?;
    let (req_tx, req_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    let io_thread = std::thread::Builder::new()
        .name("raw-io".into())
        .spawn(move || {
            let buf = vec![0xA5u8; write_bytes];
            while req_rx.recv().is_ok() {
                let r = log.write(&buf).and_then(|()| log.sync());
                if done_tx.send(r).is_err() {
                    break;
                }
            }
        })?;
    let chan = Arc::new(Mutex::new((req_tx, done_rx)));
    let r = run_threads(1, timing, |_| {
        let chan = chan.clone();
        move || {
            let chan = chan.lock().map_err(|_| io::Error::other("poisoned"))?;
            chan.0
                .send(())
                .map_err(|_| io::Error::other("I/O thread gone"))?;
            chan.1
                .recv()
                .map_err(|_| io::Error::other("I/O thread gone"))?
        }
    });
    drop(chan);
    let _ = io_thread.join();
    let mut f = figures(
        "raw-handoff",
        format!("{write_bytes} B, I/O thread, fallocated"),
        1,
        write_bytes,
        r,
    );
    f.fsyncs_per_s = Some(f.commits_per_s);
    f.mean_batch = Some(1.0);
    Ok(f)
}

/// Reads every file of `dir` front to back in 4 MiB reads; returns bytes and seconds.
/// With `cold`, the files' pages are dropped from the page cache first.
pub fn read_dir_files(dir: &Path, cold: bool) -> io::Result<(u64, f64)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    paths.sort();
    if cold {
        for p in &paths {
            sys::evict(p)?;
        }
    }
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    let t = Instant::now();
    for p in &paths {
        let f = File::open(p)?;
        let mut at = 0u64;
        loop {
            let n = f.read_at(&mut buf, at)?;
            if n == 0 {
                break;
            }
            at += n as u64;
        }
        total += at;
    }
    Ok((total, t.elapsed().as_secs_f64()))
}
