//! The figures of one measured run, latency summaries, and the table walbench prints.
//! Every baseline row carries its ratio to the actix-wal row of the same workload: on a
//! shared, noisy machine only same-run ratios mean anything.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A latency histogram in nanoseconds, from 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts; a failure here is a bug in walbench.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
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
    /// Summarises `h` (nanoseconds).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }

    /// Summarises raw samples in nanoseconds.
    pub fn of_samples(samples: &[u64]) -> Latency {
        let mut h = new_histogram();
        for &s in samples {
            // Samples past the 60 s bound are clamped rather than dropped.
            let _ = h.record(s.clamp(1, 60_000_000_000));
        }
        Latency::of(&h)
    }
}

/// What one system did under one workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// `actix-wal`, `naive`, `okaywal`, `raw-fsync`, `raw-seq`, ...
    pub system: String,
    /// Details: thread count, chunk size, file preparation.
    pub note: String,
    /// Committers (actors or threads).
    pub committers: usize,
    /// Payload bytes per commit.
    pub payload_bytes: usize,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Commits (or appends, or writes) completed in the window.
    pub commits: u64,
    /// `commits / seconds`.
    pub commits_per_s: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Bytes reaching the file per second (frames with their headers), in MB/s.
    pub disk_mb_per_s: f64,
    /// Commit latency as the committer saw it: from send to durable reply.
    pub latency: Latency,
    /// fsyncs (flushed batches) per second.
    pub fsyncs_per_s: Option<f64>,
    /// Records per fsync.
    pub mean_batch: Option<f64>,
    /// The flusher thread's CPU time over the window, as a share of one core.
    pub flusher_cpu: Option<f64>,
    /// The queue's thread as a share of one core: its own arbiter, or the System arbiter
    /// (`--queue-thread caller`), which also runs the transaction actors placed on it.
    pub queue_thread_cpu: Option<f64>,
    /// The whole process's CPU over the window, in cores.
    pub process_cpu: Option<f64>,
    /// Process CPU time per commit, in microseconds: `process_cpu` x `seconds` / `commits`
    /// (filled in by [`Section::from_rounds`] for every row that has both).
    pub cpu_us_per_commit: Option<f64>,
    /// `WalStats::peak_queue_bytes`: the most frame bytes queued or in flight.
    pub peak_queue_bytes: Option<u64>,
    /// Peak resident memory of the process so far (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// A caller-side time reported beside the latency (buffered: the time spent inside
    /// `send()`; batch flush: the caller's `Flush` round trip).
    pub caller: Option<CallerTime>,
    /// Commits that failed.
    pub errors: u64,
}

/// A caller-side time and what it measures.
#[derive(Debug, Clone, Serialize)]
pub struct CallerTime {
    /// What was timed.
    pub what: String,
    /// Its percentiles.
    pub latency: Latency,
}

/// How `other` compares with `base` (actix-wal): rate and p50 as `base / other`.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// The baseline's system name.
    pub system: String,
    /// Its note.
    pub note: String,
    /// actix-wal commits/s divided by the baseline's.
    pub rate: f64,
    /// actix-wal p50 latency divided by the baseline's.
    pub p50: f64,
    /// actix-wal MB/s divided by the baseline's.
    pub mb: f64,
    /// actix-wal's CPU per commit divided by the baseline's (below 1: actix-wal spends less).
    pub cpu_per_commit: f64,
}

/// Ratios of `base` to each of `others`.
pub fn ratios(base: &Figures, others: &[Figures]) -> Vec<Ratio> {
    let div = |a: f64, b: f64| if a > 0.0 && b > 0.0 { a / b } else { f64::NAN };
    others
        .iter()
        .map(|o| Ratio {
            system: o.system.clone(),
            note: o.note.clone(),
            rate: div(base.commits_per_s, o.commits_per_s),
            p50: div(base.latency.p50_us, o.latency.p50_us),
            mb: div(base.mb_per_s, o.mb_per_s),
            cpu_per_commit: div(
                base.cpu_us_per_commit.unwrap_or(f64::NAN),
                o.cpu_us_per_commit.unwrap_or(f64::NAN),
            ),
        })
        .collect()
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn times(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 10.0 {
        format!("{v:.0}x")
    } else {
        format!("{v:.2}x")
    }
}

/// One workload: actix-wal and the baselines run on it, `rounds` times in turn (A B C A B
/// C ...), so that a slow spell of the disk strikes every system alike.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// What the workload is.
    pub title: String,
    /// Rounds run.
    pub rounds: usize,
    /// actix-wal's figures: the round with the median rate.
    pub actix_wal: Option<Figures>,
    /// Each baseline's figures: its round with the median rate.
    pub baselines: Vec<Figures>,
    /// actix-wal against each baseline: the median over rounds of the same-round ratio.
    pub ratios: Vec<Ratio>,
    /// Every round's figures, actix-wal first, then the baselines in order.
    pub all_rounds: Vec<Vec<Figures>>,
}

/// The median of `v` (NaN for none); even counts average the middle two.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Section {
    /// Builds a section from its rounds (each: actix-wal first if `has_base`, then the
    /// baselines, the same systems in the same order every round).
    pub fn from_rounds(
        title: String,
        has_base: bool,
        mut all_rounds: Vec<Vec<Figures>>,
    ) -> Section {
        for f in all_rounds.iter_mut().flatten() {
            if f.cpu_us_per_commit.is_none() {
                f.cpu_us_per_commit = f
                    .process_cpu
                    .filter(|_| f.commits > 0)
                    .map(|cores| cores * f.seconds * 1e6 / f.commits as f64);
            }
        }
        let width = all_rounds.first().map_or(0, Vec::len);
        let pick = |i: usize| -> Figures {
            let mut runs: Vec<&Figures> = all_rounds.iter().filter_map(|r| r.get(i)).collect();
            runs.sort_by(|a, b| a.commits_per_s.total_cmp(&b.commits_per_s));
            runs.get(runs.len() / 2)
                .map(|f| (*f).clone())
                .unwrap_or_default()
        };
        let first_other = usize::from(has_base);
        let base = has_base.then(|| pick(0));
        let baselines: Vec<Figures> = (first_other..width).map(pick).collect();
        let ratios = if has_base {
            (first_other..width)
                .map(|i| {
                    let per: Vec<Ratio> = all_rounds
                        .iter()
                        .filter(|r| r.len() > i)
                        .map(|r| ratios(&r[0], std::slice::from_ref(&r[i])).remove(0))
                        .collect();
                    Ratio {
                        system: all_rounds[0][i].system.clone(),
                        note: all_rounds[0][i].note.clone(),
                        rate: median(per.iter().map(|r| r.rate).collect()),
                        p50: median(per.iter().map(|r| r.p50).collect()),
                        mb: median(per.iter().map(|r| r.mb).collect()),
                        cpu_per_commit: median(per.iter().map(|r| r.cpu_per_commit).collect()),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Section {
            title,
            rounds: all_rounds.len(),
            actix_wal: base,
            baselines,
            ratios,
            all_rounds,
        }
    }

    /// The median over rounds of `f(round)`, where a round is actix-wal first, then the
    /// baselines.
    pub fn per_round(&self, f: impl Fn(&[Figures]) -> f64) -> f64 {
        median(self.all_rounds.iter().map(|r| f(r)).collect())
    }
}

/// Prints one section: actix-wal first, then each baseline with actix-wal's ratio to it.
pub fn print_section(s: &Section) {
    let rounds = if s.rounds > 1 {
        format!(
            " ({} rounds: the median round of each; ratios are medians of same-round ratios)",
            s.rounds
        )
    } else {
        String::new()
    };
    println!("\n{}{rounds}", s.title);
    println!(
        "  {:<11} {:<28} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>5} {:>7} {:>8}  vs actix-wal",
        "system", "note", "commits/s", "MB/s", "p50 us", "p99 us", "p999 us", "fsyncs/s", "batch",
        "flusher", "queue", "cpu", "cpu/c", "peak q"
    );
    let row = |f: &Figures, vs: String| {
        println!(
            "  {:<11} {:<28} {:>10} {:>7.1} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>5} {:>7} {:>8}  {vs}",
            f.system,
            f.note,
            thousands(f.commits_per_s),
            f.mb_per_s,
            us(f.latency.p50_us),
            us(f.latency.p99_us),
            us(f.latency.p999_us),
            opt(f.fsyncs_per_s, thousands),
            opt(f.mean_batch, |v| format!("{v:.1}")),
            opt(f.flusher_cpu, |v| format!("{:.1}%", v * 100.0)),
            opt(f.queue_thread_cpu, |v| format!("{:.0}%", v * 100.0)),
            opt(f.process_cpu, |v| format!("{v:.2}")),
            opt(f.cpu_us_per_commit, |v| format!("{v:.2}us")),
            f.peak_queue_bytes
                .map_or_else(|| "-".into(), |b| format!("{:.1}MB", b as f64 / 1e6)),
        );
    };
    if let Some(b) = &s.actix_wal {
        row(b, String::new());
        if let Some(c) = &b.caller {
            println!(
                "  {:<39} {}: p50 {} us, p99 {} us, mean {} us",
                "",
                c.what,
                us(c.latency.p50_us),
                us(c.latency.p99_us),
                us(c.latency.mean_us)
            );
        }
    }
    for (i, o) in s.baselines.iter().enumerate() {
        let vs = s.ratios.get(i).map_or_else(String::new, |r| {
            format!(
                "rate {} | p50 {} | MB/s {} | cpu/c {}",
                times(r.rate),
                times(r.p50),
                times(r.mb),
                times(r.cpu_per_commit)
            )
        });
        row(o, vs);
    }
}
