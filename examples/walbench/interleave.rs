//! One committer, fine-grained: actix-wal and each baseline take turns in short slices
//! (A B C ... A B C ...) with every log kept open throughout, so that the disk's swings
//! (fdatasync here moves between ~0.1 ms and ~4 ms from one second to the next) strike
//! every system alike. Each slice is a round; the ratios are medians of same-slice ratios.
//!
//! The actix-wal committer here is a loop on the System arbiter that sends `Append` to
//! the queue and awaits the durable reply: the same path a transaction actor takes. A
//! second actix-wal log, with the queue on the other thread (`WalConfig::queue_thread`),
//! takes its turn after the others, so the two placements are compared in the same slices;
//! the raw handoff through actix (`actix_handoff.rs`) goes last.

use crate::actix_handoff::ActixHandoff;
use crate::baselines::{slice_figures, Prep, RawLog};
use crate::log_under_test::open;
use crate::report::Figures;
use actix::prelude::*;
use actix_wal::{Append, LogOptions, LogWriter, QueueThread, Wal, WalConfig};
use std::cell::{Cell, RefCell};
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Calls `op` (one durable commit) until `slice` has passed; returns commits, seconds
/// and each commit's latency in nanoseconds.
fn slice_loop(
    slice: Duration,
    mut op: impl FnMut() -> io::Result<()>,
) -> io::Result<(u64, f64, Vec<u64>)> {
    let mut lat = Vec::new();
    let begin = Instant::now();
    while begin.elapsed() < slice {
        let t = Instant::now();
        op()?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    Ok((lat.len() as u64, begin.elapsed().as_secs_f64(), lat))
}

/// A raw write + fdatasync done by an I/O thread of its own, the committer waiting on a
/// channel: two thread switches per commit, as in any design with a flusher thread.
struct Handoff {
    req: Option<mpsc::Sender<()>>,
    done: mpsc::Receiver<io::Result<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handoff {
    fn new(dir: &Path, write_bytes: usize, file_bytes: u64) -> io::Result<Handoff> {
        let mut log = RawLog::new(dir, file_bytes, Prep::Fallocate)?;
        let (req, req_rx) = mpsc::channel::<()>();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raw-io".into())
            .spawn(move || {
                let buf = vec![0xA5u8; write_bytes];
                while req_rx.recv().is_ok() {
                    if done_tx
                        .send(log.write(&buf).and_then(|()| log.sync()))
                        .is_err()
                    {
                        break;
                    }
                }
            })?;
        Ok(Handoff {
            req: Some(req),
            done,
            thread: Some(thread),
        })
    }

    fn commit(&self) -> io::Result<()> {
        let gone = || io::Error::other("I/O thread gone");
        self.req
            .as_ref()
            .ok_or_else(gone)?
            .send(())
            .map_err(|_| gone())?;
        self.done.recv().map_err(|_| gone())?
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        self.req = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One slice of durable appends (`Wal::append`, what applications call) from one
/// committer on the System arbiter: commits, seconds, each commit's latency in
/// nanoseconds.
async fn wal_slice(
    wal: &Wal,
    record: &[u8],
    slice: Duration,
) -> Result<(u64, f64, Vec<u64>), String> {
    let mut lat = Vec::new();
    let begin = Instant::now();
    while begin.elapsed() < slice {
        let t = Instant::now();
        wal.append(record.to_vec())
            .await
            .map_err(|x| x.to_string())?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    Ok((lat.len() as u64, begin.elapsed().as_secs_f64(), lat))
}

/// The other placement of the queue than `q`.
pub fn other(q: QueueThread) -> QueueThread {
    match q {
        QueueThread::Own => QueueThread::Caller,
        QueueThread::Caller => QueueThread::Own,
    }
}

/// Runs `slices` rounds of `slice` each for actix-wal, the raw file (fallocated and
/// pre-written), the raw file behind an I/O thread, the naive WAL, okaywal, and actix-wal
/// with the queue on the other thread, and the raw file behind an actor on an arbiter of
/// its own, one committer each, `payload`-byte records. Returns the rounds, actix-wal
/// first.
pub async fn one_committer(
    base: &Path,
    payload: usize,
    slices: usize,
    slice: Duration,
    config: WalConfig,
) -> Result<Vec<Vec<Figures>>, String> {
    let e = |e: io::Error| e.to_string();
    let file_bytes = config.segment_size_bytes;
    let frame = payload + actix_wal::format::FRAME_HEADER_BYTES;
    let record = vec![0xA5u8; payload];
    let other_queue = other(config.queue_thread);
    let (wal, _) = open(&base.join("actix-wal"), config.clone()).await?;
    let other_config = WalConfig {
        queue_thread: other_queue,
        ..config
    };
    let (wal_other, _) = open(&base.join("actix-wal-other"), other_config).await?;
    let mut fa = RawLog::new(&base.join("raw-fa"), file_bytes, Prep::Fallocate).map_err(e)?;
    let mut pw = RawLog::new(&base.join("raw-pw"), file_bytes, Prep::Prewritten).map_err(e)?;
    let handoff = Handoff::new(&base.join("raw-handoff"), frame, file_bytes).map_err(e)?;
    let actix_handoff =
        ActixHandoff::new(&base.join("actix-handoff"), frame, file_bytes).map_err(e)?;
    let (mut naive, _) =
        LogWriter::open(base.join("naive"), LogOptions::default()).map_err(|x| x.to_string())?;
    let okay = okaywal::Configuration::default_for(base.join("okaywal"))
        .preallocate_bytes(u32::try_from(file_bytes).unwrap_or(u32::MAX))
        .checkpoint_after_bytes(file_bytes * 3 / 4)
        .open(okaywal::LogVoid)
        .map_err(e)?;
    let buf = vec![0xA5u8; frame];
    // One slice of each first, unrecorded: first writes, segment creation, page cache.
    let mut rounds = Vec::new();
    for round in 0..=slices {
        let mut row = Vec::new();
        // actix-wal: send, await the durable reply, again.
        let (n, secs, lat) = wal_slice(&wal, &record, slice).await?;
        row.push(slice_figures(
            "actix-wal",
            "durable, 1 committer".into(),
            payload,
            n,
            secs,
            &lat,
        ));
        let (n, s, l) = slice_loop(slice, || fa.write(&buf).and_then(|()| fa.sync())).map_err(e)?;
        row.push(slice_figures(
            "raw-fsync",
            format!("{frame} B writes, fallocated"),
            payload,
            n,
            s,
            &l,
        ));
        let (n, s, l) = slice_loop(slice, || pw.write(&buf).and_then(|()| pw.sync())).map_err(e)?;
        row.push(slice_figures(
            "raw-fsync",
            format!("{frame} B writes, pre-written"),
            payload,
            n,
            s,
            &l,
        ));
        let (n, s, l) = slice_loop(slice, || handoff.commit()).map_err(e)?;
        row.push(slice_figures(
            "raw-handoff",
            format!("{frame} B, I/O thread"),
            payload,
            n,
            s,
            &l,
        ));
        let (n, s, l) = slice_loop(slice, || {
            naive
                .append(&record)
                .map_err(|x| io::Error::other(x.to_string()))?;
            naive
                .sync()
                .map(|_| ())
                .map_err(|x| io::Error::other(x.to_string()))
        })
        .map_err(e)?;
        row.push(slice_figures("naive", "1 thread".into(), payload, n, s, &l));
        let (n, s, l) = slice_loop(slice, || {
            let mut entry = okay.begin_entry()?;
            entry.write_chunk(&record)?;
            entry.commit().map(|_| ())
        })
        .map_err(e)?;
        row.push(slice_figures(
            "okaywal",
            "1 thread".into(),
            payload,
            n,
            s,
            &l,
        ));
        let (n, s, l) = wal_slice(&wal_other, &record, slice).await?;
        row.push(slice_figures(
            "actix-wal",
            format!("queue: {other_queue:?}"),
            payload,
            n,
            s,
            &l,
        ));
        let (n, s, l) = actix_handoff.slice(slice, false).await.map_err(e)?;
        row.push(slice_figures(
            "raw-actix",
            format!("{frame} B, I/O actor"),
            payload,
            n,
            s,
            &l,
        ));
        let (n, s, l) = actix_handoff.slice(slice, true).await.map_err(e)?;
        row.push(slice_figures(
            "raw-actix",
            format!("{frame} B, relay + I/O actor"),
            payload,
            n,
            s,
            &l,
        ));
        if round > 0 {
            rounds.push(row);
        }
    }
    wal.shutdown().await.map_err(|x| x.to_string())?;
    wal_other.shutdown().await.map_err(|x| x.to_string())?;
    okay.shutdown().map_err(e)?;
    Ok(rounds)
}

/// A transaction actor for [`bandwidth`]: appends one record durably, waits for the
/// reply, appends the next, and counts what was acknowledged. It only runs while the
/// System arbiter runs, so a raw slice (a blocking loop on that arbiter) pauses it.
struct Looper {
    queue: actix::Addr<actix_wal::Queue>,
    payload: Vec<u8>,
    acked: Rc<Cell<u64>>,
    latencies_ns: Rc<RefCell<Vec<u64>>>,
    /// Start of the current actix-wal slice: only commits sent after it are timed.
    slice_began: Rc<Cell<Instant>>,
    errors: Rc<Cell<u64>>,
    stop: Rc<Cell<bool>>,
}

impl Actor for Looper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.next(ctx);
    }
}

impl Looper {
    fn next(&mut self, ctx: &mut Context<Self>) {
        if self.stop.get() {
            ctx.stop();
            return;
        }
        // The API takes the payload by value: one allocation per commit, as in pipeline.rs.
        let started = Instant::now();
        let request = self.queue.send(Append::new(self.payload.clone()));
        ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(Ok(_)) => {
                    act.acked.set(act.acked.get() + 1);
                    if started >= act.slice_began.get() {
                        let ns = started.elapsed().as_nanos() as u64;
                        act.latencies_ns.borrow_mut().push(ns);
                    }
                }
                _ => act.errors.set(act.errors.get() + 1),
            }
            act.next(ctx);
        }));
    }
}

/// Bandwidth in turns: `actors` transaction actors appending `payload`-byte records
/// durably, then one thread writing `chunk`-byte chunks + fdatasync to a raw file (for
/// each size of `chunks`), in slices of `slice`, `slices` times (one more first,
/// unrecorded). The disk's throttling episodes last about a second here, longer than a
/// slice and shorter than a round of long runs; taking turns in short slices lets them
/// strike every system alike. Returns the rounds, actix-wal first.
pub async fn bandwidth(
    base: &Path,
    actors: usize,
    payload: usize,
    chunks: &[usize],
    slices: usize,
    slice: Duration,
    config: WalConfig,
) -> Result<Vec<Vec<Figures>>, String> {
    let e = |e: io::Error| e.to_string();
    let file_bytes = config.segment_size_bytes;
    let (wal, _) = open(&base.join("actix-wal"), config).await?;
    let mut raws = Vec::new();
    for &c in chunks {
        let log =
            RawLog::new(&base.join(format!("raw-{c}")), file_bytes, Prep::Fallocate).map_err(e)?;
        raws.push((c, log, vec![0xA5u8; c]));
    }
    let latencies = Rc::new(RefCell::new(Vec::new()));
    let slice_began = Rc::new(Cell::new(Instant::now()));
    let (acked, errors, stop) = (
        Rc::new(Cell::new(0u64)),
        Rc::new(Cell::new(0u64)),
        Rc::new(Cell::new(false)),
    );
    for _ in 0..actors {
        let looper = Looper {
            queue: wal.queue().clone(),
            payload: vec![0xA5u8; payload],
            acked: acked.clone(),
            latencies_ns: latencies.clone(),
            slice_began: slice_began.clone(),
            errors: errors.clone(),
            stop: stop.clone(),
        };
        looper.start();
    }
    let mut rounds = Vec::new();
    for round in 0..=slices {
        let mut row = Vec::new();
        latencies.borrow_mut().clear();
        let (a0, begin) = (acked.get(), Instant::now());
        slice_began.set(begin);
        actix_rt::time::sleep(slice).await;
        let (n, secs) = (acked.get() - a0, begin.elapsed().as_secs_f64());
        // Latencies of the commits sent in this slice and answered in it (those sent
        // before it waited through the raw slices and are not counted in the latency).
        let lat = std::mem::take(&mut *latencies.borrow_mut());
        let mut f = slice_figures(
            "actix-wal",
            format!("{actors} actors, durable"),
            payload,
            n,
            secs,
            &lat,
        );
        f.committers = actors;
        f.fsyncs_per_s = None;
        f.mean_batch = None;
        row.push(f);
        for (chunk, log, buf) in raws.iter_mut() {
            let (n, s, l) =
                slice_loop(slice, || log.write(buf).and_then(|()| log.sync())).map_err(e)?;
            let mut f = slice_figures(
                "raw-seq",
                format!("{} MiB writes", *chunk >> 20),
                *chunk,
                n,
                s,
                &l,
            );
            f.mean_batch = None;
            row.push(f);
        }
        if round > 0 {
            rounds.push(row);
        }
    }
    stop.set(true);
    wal.shutdown().await.map_err(|x| x.to_string())?;
    if errors.get() > 0 {
        return Err(format!(
            "{} appends failed during the bandwidth run",
            errors.get()
        ));
    }
    Ok(rounds)
}
