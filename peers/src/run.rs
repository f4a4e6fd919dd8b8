//! The closed loop every peer runs: N OS threads, each committing one record after another
//! (one durable commit outstanding per thread, as walbench's actors do), a warm-up, then a
//! measured window; and the figures of the window, CPU per commit among them.

use serde::Serialize;
use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stack of each committer thread: the peers' commit paths are shallow, and 1,024 threads
/// of the default 2 MiB would reserve 2 GiB of address space for nothing.
const THREAD_STACK_BYTES: usize = 256 * 1024;

/// The measured window of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Time run before measuring (files created, first batches).
    pub warmup: Duration,
    /// Time measured.
    pub window: Duration,
}

/// Latency percentiles of the window's commits, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// Percentiles of `ns` (sorted here), nearest rank.
    fn of(ns: &mut [u64]) -> Latency {
        if ns.is_empty() {
            return Latency::default();
        }
        ns.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len());
            ns[rank - 1] as f64 / 1000.0
        };
        Latency {
            count: ns.len() as u64,
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: at(1.0),
            mean_us: ns.iter().map(|&v| v as f64).sum::<f64>() / ns.len() as f64 / 1000.0,
        }
    }
}

/// What one run measured: the line walbench reads (examples/walbench/peers.rs mirrors it).
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// `raft-log`, `raft-engine`.
    pub system: String,
    /// Details: thread count, settings.
    pub note: String,
    /// Committer threads.
    pub threads: usize,
    /// Payload bytes per commit.
    pub payload_bytes: usize,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Durable commits completed in the window.
    pub commits: u64,
    /// Commits that failed in the window.
    pub errors: u64,
    /// Send to durable acknowledgement, as each committer saw it.
    pub latency: Latency,
    /// CPU time of this whole process (every thread: committers, the peer's own workers)
    /// over the window, in nanoseconds. walpeers runs one system per process, so this is
    /// that system's alone.
    pub process_cpu_ns: u64,
    /// fsyncs (synced batches) in the window, where the peer counts them.
    pub fsyncs: Option<u64>,
    /// Peak resident memory of the process (`VmHWM`), in bytes.
    pub peak_rss_bytes: u64,
}

/// Totals of a run's threads over the window.
pub struct Totals {
    /// Commits completed.
    pub commits: u64,
    /// Commits failed.
    pub errors: u64,
    /// Window length, in seconds.
    pub seconds: f64,
    /// Every commit's latency, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Process CPU over the window, in nanoseconds.
    pub process_cpu_ns: u64,
}

impl Totals {
    /// The figures of these totals.
    pub fn figures(
        mut self,
        system: &str,
        note: String,
        threads: usize,
        payload_bytes: usize,
        fsyncs: Option<u64>,
    ) -> Figures {
        Figures {
            system: system.into(),
            note,
            threads,
            payload_bytes,
            seconds: self.seconds,
            commits: self.commits,
            errors: self.errors,
            latency: Latency::of(&mut self.latencies_ns),
            process_cpu_ns: self.process_cpu_ns,
            fsyncs,
            peak_rss_bytes: peak_rss_bytes(),
        }
    }
}

/// Runs `threads` committers, each calling its `commit` (one durable commit) in a loop;
/// `at_window` is called at the start and at the end of the window (a peer's own counters).
/// The process CPU is read right around the window, so the warm-up and the teardown are
/// not in it.
pub fn run_threads<F>(
    threads: usize,
    timing: Timing,
    make: impl Fn(usize) -> F,
    mut at_window: impl FnMut(),
) -> io::Result<Totals>
where
    F: FnMut() -> io::Result<()> + Send + 'static,
{
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let mut commit = make(i);
        let (rec, halt) = (recording.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("peer-{i}"))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || {
                let (mut commits, mut errors, mut lat) = (0u64, 0u64, Vec::new());
                while !halt.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = commit().is_ok();
                    let ns = t.elapsed().as_nanos() as u64;
                    // A commit counts if the window was open when it finished.
                    if rec.load(Ordering::Relaxed) && !halt.load(Ordering::Relaxed) {
                        lat.push(ns);
                        if ok {
                            commits += 1;
                        } else {
                            errors += 1;
                        }
                    }
                }
                (commits, errors, lat)
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(e);
            }
        }
    }
    std::thread::sleep(timing.warmup);
    at_window();
    let cpu0 = process_cpu_ns()?;
    let t0 = Instant::now();
    recording.store(true, Ordering::Relaxed);
    std::thread::sleep(timing.window);
    stop.store(true, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let cpu1 = process_cpu_ns()?;
    at_window();
    let mut out = Totals {
        commits: 0,
        errors: 0,
        seconds,
        latencies_ns: Vec::new(),
        process_cpu_ns: cpu1.saturating_sub(cpu0),
    };
    for h in handles {
        let (c, e, l) = h
            .join()
            .map_err(|_| io::Error::other("a committer thread panicked"))?;
        out.commits += c;
        out.errors += e;
        out.latencies_ns.extend(l);
    }
    Ok(out)
}

/// CPU time of the whole process (all threads, live and exited), in nanoseconds:
/// `getrusage(RUSAGE_SELF)` as `/proc/self/stat` gives it, in clock ticks.
pub fn process_cpu_ns() -> io::Result<u64> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    ticks_to_ns(&stat).ok_or_else(|| io::Error::other("unreadable /proc/self/stat"))
}

/// `utime + stime` (fields 14 and 15) of a `stat` line, in nanoseconds. The command name
/// (field 2) may hold spaces, so fields are counted after its closing parenthesis.
fn ticks_to_ns(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field n is f[n - 3].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((utime + stime) * 10_000_000)
}

/// Peak resident memory of the process (`VmHWM`), in bytes.
fn peak_rss_bytes() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "1 (a b) S 0 0 0 0 0 0 0 0 0 0 7 3 0 0";
        assert_eq!(ticks_to_ns(line), Some(100_000_000));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut ns: Vec<u64> = (1..=1000).map(|v| v * 1000).collect();
        let l = Latency::of(&mut ns);
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50_us, 500.0);
        assert_eq!(l.p99_us, 990.0);
        assert_eq!(l.p999_us, 999.0);
        assert_eq!(l.max_us, 1000.0);
    }
}
