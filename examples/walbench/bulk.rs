//! Bulk appends (issue 11): `Wal::append_batch` of many 256 B records a message from a
//! few actors, durable, in MB/s of payload, to set beside raw sequential writes.

use crate::baselines::Timing;
use crate::report::{new_histogram, Figures, Latency};
use crate::sys;
use actix_wal::WalConfig;
use futures::future::join_all;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// `actors` tasks on this arbiter, each sending `append_batch` of `records` records of
/// `record_bytes` and waiting for the durable reply before the next, for the warm-up and
/// then the window. The latency is one message's, send to durable reply.
pub async fn append_batches(
    dir: &Path,
    actors: usize,
    records: usize,
    record_bytes: usize,
    timing: Timing,
    config: WalConfig,
) -> Result<Figures, String> {
    let (wal, threads) = crate::log_under_test::open(dir, config).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let recording = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let latency = Rc::new(std::cell::RefCell::new(new_histogram()));
    let errors = Rc::new(std::cell::Cell::new(0u64));
    let batch: Rc<Vec<Vec<u8>>> = Rc::new(vec![vec![0xA5u8; record_bytes]; records]);
    let tasks: Vec<_> = (0..actors)
        .map(|_| {
            let (wal, stop, recording, done) =
                (wal.clone(), stop.clone(), recording.clone(), done.clone());
            let (latency, errors, batch) = (latency.clone(), errors.clone(), batch.clone());
            actix::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    // The API takes the records by value: one copy per message, here.
                    let r = wal.append_batch((*batch).clone()).await;
                    if recording.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        match r {
                            Ok(_) => {
                                done.fetch_add(records as u64, Ordering::Relaxed);
                                let ns = (t.elapsed().as_nanos() as u64).max(1);
                                let _ = latency.borrow_mut().record(ns);
                            }
                            Err(_) => errors.set(errors.get() + 1),
                        }
                    }
                }
            })
        })
        .collect();
    // The flusher's own write + fdatasync time of the latest batch, sampled every 5 ms:
    // beside the batches per second it tells time on the disk from time between batches.
    let sampler = {
        let (wal, stop, recording) = (wal.clone(), stop.clone(), recording.clone());
        actix::spawn(async move {
            let mut h = new_histogram();
            let mut last_flushes = 0;
            while !stop.load(Ordering::Relaxed) {
                actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
                let Ok(s) = wal.stats().await else { break };
                if recording.load(Ordering::Relaxed) && s.flushes != last_flushes {
                    let _ = h.record((s.last_flush_us * 1000).max(1));
                }
                last_flushes = s.flushes;
            }
            h
        })
    };
    actix_rt::time::sleep(timing.warmup).await;
    let s0 = wal.stats().await.map_err(|e| format!("stats: {e}"))?;
    let q0 = sys::thread_cpu_ns(threads.queue).unwrap_or(0);
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    actix_rt::time::sleep(timing.window).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let q1 = sys::thread_cpu_ns(threads.queue).unwrap_or(0);
    let s1 = wal.stats().await.map_err(|e| format!("stats: {e}"))?;
    join_all(tasks).await;
    let flush = sampler.await.map_err(|e| format!("sampler: {e}"))?;
    wal.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    let n = done.load(Ordering::Relaxed);
    let flushes = s1.flushes - s0.flushes;
    let latency = Latency::of(&latency.borrow());
    Ok(Figures {
        system: "actix-wal".into(),
        note: format!("append_batch of {records} x {record_bytes} B, {actors} actors"),
        committers: actors,
        payload_bytes: record_bytes,
        seconds,
        commits: n,
        commits_per_s: n as f64 / seconds,
        mb_per_s: (n as usize * record_bytes) as f64 / seconds / 1e6,
        disk_mb_per_s: (s1.bytes_written - s0.bytes_written) as f64 / seconds / 1e6,
        latency,
        fsyncs_per_s: Some(flushes as f64 / seconds),
        mean_batch: (flushes > 0)
            .then(|| (s1.entries_written - s0.entries_written) as f64 / flushes as f64),
        queue_thread_cpu: Some(q1.saturating_sub(q0) as f64 / 1e9 / seconds),
        peak_queue_bytes: Some(s1.peak_queue_bytes as u64),
        peak_rss_bytes: sys::peak_rss_bytes(),
        errors: errors.get(),
        caller: Some(crate::report::CallerTime {
            what: "flusher write + fdatasync per batch (sampled)".into(),
            latency: Latency::of(&flush),
        }),
        ..Figures::default()
    })
}
