//! walbench: a load generator for actix-wal, and the same workload on what a user would
//! pick instead, measured in the same run.
//!
//! ```text
//! cargo run --release --example walbench -- --actors 1024 --payload 256 --seconds 3
//! cargo run --release --example walbench -- --actors 1024 --compare
//! cargo run --release --example walbench -- --buffered --actors 1
//! cargo run --release --example walbench -- --suite            # every figure of docs/performance.md
//! cargo run --release --example walbench -- --suite --json > perf.json
//! ```
//!
//! N transaction actors each commit durably one record after another (send `Append` to
//! `Wal::queue()`, wait for the reply, send the next) for D seconds or M commits, on a log
//! in `--dir` (default: a temporary directory). The table shows commits/s, MB/s, latency
//! percentiles, fsyncs/s and records per fsync, the flusher thread's CPU as a share of one
//! core, and the peak bytes queued. `--compare` runs the same workload on the naive
//! synchronous WAL, okaywal and the raw file, in subdirectories of the same directory,
//! and prints actix-wal's ratio to each: on a shared, noisy machine only same-run ratios
//! mean anything. docs/performance.md explains every figure.

#[path = "walbench/baselines.rs"]
mod baselines;
#[path = "walbench/bulk.rs"]
mod bulk;
#[path = "walbench/interleave.rs"]
mod interleave;
#[path = "walbench/issue11.rs"]
mod issue11;
#[path = "walbench/pipeline.rs"]
mod pipeline;
#[path = "walbench/reads.rs"]
mod reads;
#[path = "walbench/recovery.rs"]
mod recovery;
#[path = "walbench/report.rs"]
mod report;
#[path = "walbench/rewind.rs"]
mod rewind;
#[path = "walbench/sys.rs"]
mod sys;

use actix::SystemRunner;
use actix_wal::{Durability, QueueThread, WalConfig};
use baselines::{Prep, Timing};
use clap::{Parser, ValueEnum};
use pipeline::{Spec, Window};
use recovery::RecoveryFigures;
use report::{print_section, thousands, Figures, Section};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Options. Every size is in bytes unless its name says otherwise.
#[derive(Parser, Debug, Clone, Serialize)]
#[command(about = "Load generator for actix-wal, with same-run baselines")]
struct Opts {
    /// Transaction actors committing concurrently (1 to 4,096).
    #[arg(short = 'n', long, default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    actors: u32,
    /// Bytes per record.
    #[arg(short = 'p', long, default_value_t = 256)]
    payload: usize,
    /// Seconds to measure each configuration (after the warm-up).
    #[arg(short = 'd', long, default_value_t = 3.0)]
    seconds: f64,
    /// Stop after this many commits instead of after --seconds.
    #[arg(short = 'm', long)]
    commits: Option<u64>,
    /// Seconds each run is warmed up before measuring.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Directory to put the logs in (each run gets a fresh subdirectory, removed after
    /// it). Default: a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Measure `Durability::Buffered` appends (the foreground path): appends/s and the
    /// caller's time in `send()`.
    #[arg(long)]
    buffered: bool,
    /// Send single-entry `Commit` messages instead of `Append`.
    #[arg(long)]
    commit: bool,
    /// Pace the actors to this many commits per second in total (default: flat out).
    #[arg(long)]
    rate: Option<f64>,
    /// Arbiters (threads) for the transaction actors; 0 runs them on the System arbiter
    /// beside the queue (on 2 cores: the queue's thread and the flusher's).
    #[arg(long, default_value_t = 0)]
    arbiters: usize,
    /// Commits each actor keeps outstanding.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Times to run each workload and its baselines in turn (A B C A B C ...); tables show
    /// each system's median round and the median of the same-round ratios.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Slices per system in the suite's one-committer comparison.
    #[arg(long, default_value_t = 20)]
    slices: usize,
    /// Length of one slice, in milliseconds.
    #[arg(long, default_value_t = 250)]
    slice_ms: u64,
    /// Run the same workload on the naive WAL, okaywal and the raw file too.
    #[arg(long)]
    compare: bool,
    /// Run every configuration docs/performance.md reports, with its baselines, and check
    /// the issue's target figures.
    #[arg(long)]
    suite: bool,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    json: bool,
    /// Also write the JSON object to this file (the tables still print).
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// okaywal thread counts to try; its best rate is the one compared.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 4, 16, 64, 256])]
    okaywal_threads: Vec<usize>,
    /// Seconds per okaywal thread count.
    #[arg(long, default_value_t = 1.5)]
    okaywal_seconds: f64,
    /// Threads of the naive baseline at most (one per actor up to this).
    #[arg(long, default_value_t = 1024)]
    naive_threads: usize,
    /// Size of the log the suite opens to time recovery, in MiB.
    #[arg(long, default_value_t = 1024)]
    recovery_mib: u64,
    /// Segment (and raw file) size, in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Also run the same workload with segments of this many MiB, in the same rounds, and
    /// print the p99 of `--segment-mib` segments over theirs (the rollover's cost on the
    /// commit path: e.g. `--segment-mib 4 --compare-segments 1024`).
    #[arg(long)]
    compare_segments: Option<u64>,
    /// With --suite: run only these parts (one, rate, bandwidth, buffered, batch, cpu,
    /// backpressure, recovery, reads, readers, bulk, rewind); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Largest write batch, in KiB (default: WalConfig's).
    #[arg(long)]
    max_batch_kib: Option<usize>,
    /// The thread the log's queue runs on (`WalConfig::queue_thread`): `caller`, the
    /// System arbiter, beside the transaction actors unless `--arbiters` places them
    /// elsewhere (the default), or `own`, an arbiter of its own. The suite also runs the
    /// other one, in the same rounds.
    #[arg(long, value_enum, default_value_t = QueueOn::Caller)]
    queue_thread: QueueOn,
}

/// `--queue-thread`: [`QueueThread`] on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum QueueOn {
    /// `QueueThread::Caller`.
    Caller,
    /// `QueueThread::Own`.
    Own,
}

/// One target figure of the issue and whether this run met it.
#[derive(Debug, Clone, Serialize)]
struct Check {
    figure: String,
    target: String,
    measured: String,
    met: bool,
}

/// Everything a run printed, as one JSON object.
#[derive(Debug, Serialize)]
struct Report {
    date: String,
    machine: String,
    dir: String,
    file_system: String,
    options: Opts,
    sections: Vec<Section>,
    recovery: Option<RecoveryFigures>,
    checks: Vec<Check>,
}

/// The run's context: the actix System, the base directory, and a counter for the fresh
/// subdirectory each measurement gets.
struct Bench {
    sys: SystemRunner,
    opts: Opts,
    base: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    runs: usize,
}

type Res<T> = Result<T, String>;

impl Bench {
    /// A fresh subdirectory for one measurement.
    fn fresh(&mut self, name: &str) -> PathBuf {
        self.runs += 1;
        self.base.join(format!("{:02}-{name}", self.runs))
    }

    /// Runs `run` (systems taking turns: `--slices` slices of `--slice-ms` each) in a
    /// fresh directory and builds its section.
    fn in_turns<F, Fut>(&mut self, what: &str, title: &str, run: F) -> Res<Section>
    where
        F: FnOnce(PathBuf, usize, Duration, WalConfig) -> Fut,
        Fut: std::future::Future<Output = Res<Vec<Vec<Figures>>>>,
    {
        let dir = self.fresh(&what.replace(' ', "-"));
        self.say(&format!(
            "{what}: {} slices of {} ms per system, in turn",
            self.opts.slices, self.opts.slice_ms
        ));
        let slice = Duration::from_millis(self.opts.slice_ms);
        let run = run(dir.clone(), self.opts.slices, slice, self.config());
        let rounds = self.sys.block_on(run);
        remove(&dir);
        let title = format!("{title}, in turn in {} ms slices", self.opts.slice_ms);
        Ok(Section::from_rounds(title, true, rounds?))
    }

    /// Whether `--only` asks for this part of the suite (an empty list asks for all).
    fn wants(&self, part: &str) -> bool {
        self.opts.only.is_empty() || self.opts.only.iter().any(|p| p == part)
    }

    fn say(&self, what: &str) {
        eprintln!("walbench: {what}");
    }

    fn timing(&self) -> Timing {
        Timing {
            warmup: Duration::from_secs_f64(self.opts.warmup),
            window: Duration::from_secs_f64(self.opts.seconds),
        }
    }

    fn config(&self) -> WalConfig {
        let d = WalConfig::default();
        WalConfig {
            segment_size_bytes: self.opts.segment_mib << 20,
            max_batch_bytes: self
                .opts
                .max_batch_kib
                .map_or(d.max_batch_bytes, |k| k << 10),
            queue_thread: match self.opts.queue_thread {
                QueueOn::Own => QueueThread::Own,
                QueueOn::Caller => QueueThread::Caller,
            },
            ..d
        }
    }

    fn spec(&self, actors: usize, payload: usize) -> Spec {
        Spec {
            actors,
            payload_bytes: payload,
            durability: Durability::Durable,
            commit_messages: self.opts.commit,
            window: match self.opts.commits {
                Some(m) => Window::Commits(m),
                None => Window::Time(Duration::from_secs_f64(self.opts.seconds)),
            },
            warmup: Duration::from_secs_f64(self.opts.warmup),
            rate: None,
            arbiters: self.opts.arbiters,
            pipeline: self.opts.pipeline,
            config: self.config(),
            readers: 0,
        }
    }

    fn wal(&mut self, spec: &Spec) -> Res<Figures> {
        let dir = self.fresh("actix-wal");
        self.say(&format!(
            "actix-wal: {} actors x {} B {:?}{}",
            spec.actors,
            spec.payload_bytes,
            spec.durability,
            spec.rate.map_or(String::new(), |r| format!(" at {r}/s"))
        ));
        let r = self.sys.block_on(pipeline::run(spec, &dir));
        remove(&dir);
        r
    }

    fn naive(&mut self, threads: usize, payload: usize) -> Res<Figures> {
        let threads = threads.min(self.opts.naive_threads).max(1);
        let dir = self.fresh("naive");
        self.say(&format!("naive: {threads} threads x {payload} B"));
        let r = baselines::naive(&dir, threads, payload, self.timing()).map_err(|e| e.to_string());
        remove(&dir);
        r
    }

    fn okaywal_at(&mut self, threads: usize, payload: usize) -> Res<Figures> {
        let dir = self.fresh("okaywal");
        self.say(&format!("okaywal: {threads} threads x {payload} B"));
        let timing = Timing {
            warmup: Duration::from_secs_f64(self.opts.warmup.min(0.3)),
            window: Duration::from_secs_f64(self.opts.okaywal_seconds),
        };
        let seg = u32::try_from(self.opts.segment_mib << 20).unwrap_or(u32::MAX);
        let r = baselines::okaywal(&dir, threads, payload, seg, timing).map_err(|e| e.to_string());
        remove(&dir);
        r
    }

    /// okaywal at every configured thread count, in the order given (rows keep their place
    /// from round to round).
    fn okaywal_sweep(&mut self, payload: usize) -> Res<Vec<Figures>> {
        let mut all = Vec::new();
        for t in self.opts.okaywal_threads.clone() {
            all.push(self.okaywal_at(t, payload)?);
        }
        Ok(all)
    }

    fn raw_handoff(&mut self, write_bytes: usize) -> Res<Figures> {
        let dir = self.fresh("raw-handoff");
        self.say(&format!(
            "raw: {write_bytes} B writes + fdatasync on an I/O thread"
        ));
        let r = baselines::raw_handoff(
            &dir,
            write_bytes,
            self.opts.segment_mib << 20,
            self.timing(),
        )
        .map_err(|e| e.to_string());
        remove(&dir);
        r
    }

    fn raw(&mut self, write_bytes: usize, prep: Prep) -> Res<Figures> {
        let dir = self.fresh("raw");
        self.say(&format!(
            "raw: {write_bytes} B writes + fdatasync, {prep:?}"
        ));
        let r = baselines::raw(
            &dir,
            write_bytes,
            self.opts.segment_mib << 20,
            prep,
            self.timing(),
        )
        .map_err(|e| e.to_string());
        remove(&dir);
        r
    }
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// One system's run within a round; returns one row (or several: okaywal's sweep).
type Runner<'a> = Box<dyn Fn(&mut Bench) -> Res<Vec<Figures>> + 'a>;

fn one<'a>(f: impl Fn(&mut Bench) -> Res<Figures> + 'a) -> Runner<'a> {
    Box::new(move |b: &mut Bench| f(b).map(|x| vec![x]))
}

impl Bench {
    /// Runs the runners in turn, `--rounds` times, and builds the section.
    fn measure(&mut self, title: &str, has_base: bool, runners: &[Runner]) -> Res<Section> {
        let mut all = Vec::new();
        for r in 0..self.opts.rounds.max(1) {
            if self.opts.rounds > 1 {
                self.say(&format!("{title}: round {} of {}", r + 1, self.opts.rounds));
            }
            let mut round = Vec::new();
            for run in runners {
                round.extend(run(self)?);
            }
            all.push(round);
        }
        Ok(Section::from_rounds(title.into(), has_base, all))
    }
}

fn best_okaywal(round: &[Figures]) -> f64 {
    round
        .iter()
        .filter(|f| f.system == "okaywal")
        .map(|f| f.commits_per_s)
        .fold(f64::NAN, f64::max)
}

/// `--suite`: each configuration the issue sets a figure for, and the checks.
fn suite(b: &mut Bench) -> Res<(Vec<Section>, Option<RecoveryFigures>, Vec<Check>)> {
    let mut sections = Vec::new();
    let mut checks = Vec::new();
    let mut recovered = None;
    if b.wants("one") {
        // 1. One committer: latency against the raw write + fdatasync floor, in short slices
        // taken in turn (the disk's fdatasync time swings from one second to the next).
        let s = b.in_turns(
            "one committer",
            "1 committer, 256 B durable",
            |dir, slices, slice, cfg| async move {
                interleave::one_committer(&dir, 256, slices, slice, cfg).await
            },
        )?;
        let floor = |r: &[Figures]| r[1].latency.p50_us.min(r[2].latency.p50_us);
        let ratio = s.per_round(|r| r[0].latency.p50_us / floor(r));
        let fa = s.per_round(|r| r[0].latency.p50_us / r[1].latency.p50_us);
        let handoff = s.per_round(|r| r[0].latency.p50_us / r[3].latency.p50_us);
        checks.push(Check {
            figure: "one committer, 256 B: p50 <= 1.25x raw write + fdatasync p50".into(),
            target: "<= 1.25x".into(),
            measured: format!(
                "{ratio:.2}x the faster raw file's p50 ({fa:.2}x the fallocated one's, \
                 {handoff:.2}x a raw write + fdatasync handed to an I/O thread); medians \
                 {:.0} us vs {:.0} us",
                s.per_round(|r| r[0].latency.p50_us),
                s.per_round(floor)
            ),
            met: ratio <= 1.25,
        });
        // Issue 14's "keep": the same slices against the handoff to an I/O thread.
        checks.push(Check {
            figure: "one committer, 256 B: p50 <= 1.1x the raw handoff's p50 (issue 14)".into(),
            target: "<= 1.1x".into(),
            measured: format!("{handoff:.2}x a raw write + fdatasync handed to an I/O thread"),
            met: handoff <= 1.1,
        });
        sections.push(s);
    }

    if b.wants("rate") {
        // 2. 1,024 actors: rate against okaywal's best at 1..256 threads and the naive WAL.
        let s = b.measure(
            "1,024 actors, 256 B durable",
            true,
            &[
                one(|b| b.wal(&b.spec(1024, 256))),
                one(|b| b.naive(1024, 256)),
                Box::new(|b: &mut Bench| b.okaywal_sweep(256)),
                // The queue on the other thread (`--queue-thread`), in the same rounds.
                one(|b| {
                    let mut spec = b.spec(1024, 256);
                    spec.config.queue_thread = interleave::other(spec.config.queue_thread);
                    b.wal(&spec)
                }),
            ],
        )?;
        let rate = s.per_round(|r| r[0].commits_per_s);
        checks.push(Check {
            figure: "1,024 actors, 256 B: >= 300,000 durable commits/s".into(),
            target: ">= 300,000/s".into(),
            measured: format!(
                "{}/s (median round; {:.0} fsyncs/s)",
                thousands(rate),
                s.per_round(|r| r[0].fsyncs_per_s.unwrap_or(f64::NAN))
            ),
            met: rate >= 300_000.0,
        });
        let ratio = s.per_round(|r| r[0].commits_per_s / best_okaywal(r));
        checks.push(Check {
            figure: "1,024 actors, 256 B: >= 3x okaywal's best rate (1..256 threads)".into(),
            target: ">= 3x".into(),
            measured: format!(
                "{ratio:.2}x (okaywal's best: {}/s, median round)",
                thousands(s.per_round(best_okaywal))
            ),
            met: ratio >= 3.0,
        });
        sections.push(s);
    }

    if b.wants("bandwidth") {
        // 3. Bandwidth: 4 KiB records from 256 actors against raw sequential writes.
        let s = b.measure(
            "256 actors, 4 KiB durable",
            true,
            &[
                one(|b| b.wal(&b.spec(256, 4096))),
                one(|b| b.raw(4 << 20, Prep::Fallocate)),
                one(|b| b.raw(16 << 20, Prep::Fallocate)),
                // All that 256 actors x 4 KiB can have in flight, in one write + fdatasync.
                one(|b| b.raw(1 << 20, Prep::Fallocate)),
            ],
        )?;
        // The ceiling is the best chunk size of the run: on this virtual disk 1 MiB writes
        // can outrun 4 MiB ones several times over.
        let ceiling = |r: &[Figures]| r[1].mb_per_s.max(r[2].mb_per_s).max(r[3].mb_per_s);
        let long_ratio = s.per_round(|r| r[0].mb_per_s / ceiling(r));
        let per_fsync = s.per_round(|r| {
            r[0].disk_mb_per_s * 1e6 / r[0].fsyncs_per_s.unwrap_or(f64::NAN) / 1024.0
        });
        sections.push(s);
        // The same, in turns of short slices: the disk's throttling episodes (about a
        // second) otherwise land on one system's whole round and decide the ratio.
        let s = b.in_turns(
            "bandwidth",
            "256 actors, 4 KiB durable",
            |dir, slices, slice, cfg| async move {
                let chunks = [1 << 20, 4 << 20];
                interleave::bandwidth(&dir, 256, 4096, &chunks, slices, slice, cfg).await
            },
        )?;
        let ceiling = |r: &[Figures]| r[1].mb_per_s.max(r[2].mb_per_s);
        let ratio = s.per_round(|r| r[0].mb_per_s / ceiling(r));
        checks.push(Check {
            figure: "4 KiB, 256 actors: >= 90% of raw sequential write bandwidth (issue 14)".into(),
            target: ">= 90%".into(),
            measured: format!(
                "{:.0}% of the best raw chunk size in same-slice turns (median slice {:.0} MB/s \
                 vs {:.0} MB/s); {:.0}% in the {}-round runs above, {per_fsync:.0} KiB per \
                 fdatasync",
                ratio * 100.0,
                s.per_round(|r| r[0].mb_per_s),
                s.per_round(ceiling),
                long_ratio * 100.0,
                b.opts.rounds,
            ),
            met: ratio >= 0.9,
        });
        sections.push(s);
    }

    if b.wants("buffered") {
        // 4. Buffered appends from one arbiter (the queue's own).
        let buffered = |actors: usize, pipeline: usize| {
            one(move |b: &mut Bench| {
                b.wal(&Spec {
                    durability: Durability::Buffered,
                    pipeline,
                    ..b.spec(actors, 256)
                })
            })
        };
        let s = b.measure(
            "buffered, 256 B, one arbiter (1 actor; 64 actors; 1 actor with 64 outstanding)",
            false,
            &[buffered(1, 1), buffered(64, 1), buffered(1, 64)],
        )?;
        let best = s.per_round(|r| r.iter().map(|f| f.commits_per_s).fold(0.0, f64::max));
        checks.push(Check {
            figure: "buffered appends from one arbiter: >= 1,000,000/s".into(),
            target: ">= 1,000,000/s".into(),
            measured: format!("{}/s (best configuration, median round)", thousands(best)),
            met: best >= 1_000_000.0,
        });
        let send_us = s.per_round(|r| {
            r.iter()
                .filter_map(|f| f.caller.as_ref().map(|c| c.latency.mean_us))
                .fold(f64::NAN, f64::min)
        });
        checks.push(Check {
            figure: "buffered appends: under 1 us each on the caller's side".into(),
            target: "< 1 us".into(),
            measured: format!(
                "{send_us:.2} us mean inside send(); {:.2} us of the shared arbiter per append",
                1e6 / best
            ),
            met: send_us < 1.0 && best >= 1_000_000.0,
        });
        sections.push(s);
    }

    if b.wants("batch") {
        // 5. One batch of 1,000 x 1 KiB: write + fdatasync time.
        let batch_bytes = 1000 * (1024 + actix_wal::format::FRAME_HEADER_BYTES);
        let s = b.measure(
            "batch of 1,000 x 1 KiB: the flusher's write + fdatasync",
            true,
            &[
                one(|b| {
                    let dir = b.fresh("batch");
                    b.say("actix-wal: batches of 1,000 x 1 KiB");
                    let secs = Duration::from_secs_f64(b.opts.seconds);
                    let cfg = b.config();
                    let r = b
                        .sys
                        .block_on(pipeline::batch_flush(&dir, 1000, 1024, secs, cfg));
                    remove(&dir);
                    r
                }),
                one(move |b| b.raw(batch_bytes, Prep::Fallocate)),
            ],
        )?;
        let p99 = s.per_round(|r| r[0].latency.p99_us);
        checks.push(Check {
            figure: "batch of 1,000 x 1 KiB flushed (write + fsync) in < 10 ms at p99".into(),
            target: "< 10 ms".into(),
            measured: format!(
                "{:.2} ms p99 ({:.2}x a raw 1 MB write + fdatasync's p99)",
                p99 / 1000.0,
                s.per_round(|r| r[0].latency.p99_us / r[1].latency.p99_us)
            ),
            met: p99 < 10_000.0,
        });
        sections.push(s);
    }

    if b.wants("cpu") {
        // 6. The flusher's CPU at 50,000 durable commits/s.
        let s = b.measure(
            "1,024 actors paced to 50,000 commits/s",
            true,
            &[one(|b| {
                b.wal(&Spec {
                    rate: Some(50_000.0),
                    ..b.spec(1024, 256)
                })
            })],
        )?;
        let cpu = s.per_round(|r| r[0].flusher_cpu.unwrap_or(f64::NAN));
        let rate = s.per_round(|r| r[0].commits_per_s);
        checks.push(Check {
            figure: "flusher thread < 20% of a core at 50,000 durable commits/s".into(),
            target: "< 20%".into(),
            measured: format!("{:.1}% at {}/s", cpu * 100.0, thousands(rate)),
            met: cpu < 0.2 && rate >= 45_000.0,
        });
        sections.push(s);
    }

    if b.wants("backpressure") {
        // 7. Back-pressure: many actors, large records.
        let s = b.measure(
            "4,096 actors, 16 KiB durable (back-pressure)",
            true,
            &[one(|b| b.wal(&b.spec(4096, 16 * 1024)))],
        )?;
        sections.push(s);
        let peak = sections
            .iter()
            .flat_map(|s| s.all_rounds.iter().flatten())
            .filter_map(|f| f.peak_queue_bytes)
            .max()
            .unwrap_or(0);
        checks.push(Check {
            figure: "queue memory < 100 MB at any load (peak over every run)".into(),
            target: "< 100 MB".into(),
            measured: format!(
                "{:.1} MB of queued frames at most (max_queue_bytes {:.1} MB); process peak RSS {:.0} MB",
                peak as f64 / 1e6,
                b.config().max_queue_bytes as f64 / 1e6,
                sys::peak_rss_bytes() as f64 / 1e6
            ),
            met: peak < 100_000_000,
        });
    }

    if b.wants("recovery") {
        // 8. Recovery: time to open a large log.
        let dir = b.fresh("recovery");
        b.say(&format!(
            "recovery: building a {} MiB log",
            b.opts.recovery_mib
        ));
        let rec = b
            .sys
            .block_on(recovery::measure(&dir, b.opts.recovery_mib, 1024));
        remove(&dir);
        let rec = rec?;
        recovered = Some(rec.clone());
        checks.push(Check {
            figure: format!(
                "recovery scans >= 500 MB/s (open a {} MiB log)",
                b.opts.recovery_mib
            ),
            target: ">= 500 MB/s".into(),
            measured: format!(
                "cold {:.0} MB/s ({:.2}x the time of a plain read of the files), warm {:.0} MB/s ({:.2}x)",
                rec.cold_mb_per_s(),
                rec.open_cold_s / rec.read_cold_s,
                rec.warm_mb_per_s(),
                rec.open_warm_s / rec.read_warm_s
            ),
            met: rec.cold_mb_per_s() >= 500.0,
        });
    }

    issue11::parts(b, &mut sections, &mut checks)?;

    if b.wants("rewind") {
        // 9. Rewind: its cost is its segment removals, not its bytes.
        let dir = b.fresh("rewind");
        b.say(&format!(
            "rewind: building a {} MiB log",
            b.opts.recovery_mib
        ));
        let r = b
            .sys
            .block_on(rewind::measure(&dir, b.opts.recovery_mib, 1024));
        remove(&dir);
        let r = r?;
        let removed = r.big_segments_removed + r.small_segments_removed;
        let ratio = (r.big_ms + r.small_ms) / r.plain_removals_ms;
        checks.push(Check {
            figure: format!(
                "rewind of {:.0} MiB of tail bounded by segment removals, not bytes",
                r.big_bytes as f64 / (1 << 20) as f64
            ),
            target: "both rewinds within 1.5x of removing as many plain files".into(),
            measured: format!(
                "{:.1} ms ({} segments) + {:.1} ms ({} segments) = {:.2}x of {} plain removals ({:.1} ms); reading the log once from the cache {:.0} ms",
                r.big_ms, r.big_segments_removed, r.small_ms, r.small_segments_removed, ratio, removed, r.plain_removals_ms, r.read_warm_ms
            ),
            met: ratio <= 1.5,
        });
    }

    Ok((sections, recovered, checks))
}

/// The default mode and `--compare`: one workload, and its baselines if asked.
fn single(b: &mut Bench) -> Res<(Vec<Section>, Vec<Check>)> {
    let o = b.opts.clone();
    let mut spec = b.spec(o.actors as usize, o.payload);
    spec.rate = o.rate;
    if o.buffered {
        spec.durability = Durability::Buffered;
    }
    let title = format!(
        "{} actors x {} B {}",
        o.actors,
        o.payload,
        if o.buffered { "buffered" } else { "durable" }
    );
    let mut runners: Vec<Runner> = vec![one(move |b| b.wal(&spec))];
    if o.compare && o.buffered {
        b.say("--compare has no baseline for buffered appends: every other system here acknowledges after its fsync");
    } else if o.compare {
        let frame = o.payload + actix_wal::format::FRAME_HEADER_BYTES;
        let (n, p) = (o.actors as usize, o.payload);
        runners.push(one(move |b| b.raw(frame, Prep::Fallocate)));
        runners.push(one(move |b| b.raw(frame, Prep::Prewritten)));
        if n == 1 {
            runners.push(one(move |b| b.raw_handoff(frame)));
        }
        runners.push(one(|b| b.raw(4 << 20, Prep::Fallocate)));
        runners.push(one(|b| b.raw(16 << 20, Prep::Fallocate)));
        runners.push(one(move |b| b.naive(n, p)));
        runners.push(Box::new(move |b: &mut Bench| b.okaywal_sweep(p)));
    }
    if let Some(mib) = o.compare_segments {
        let mut other = b.spec(o.actors as usize, o.payload);
        other.rate = o.rate;
        other.durability = if o.buffered {
            Durability::Buffered
        } else {
            Durability::Durable
        };
        other.config.segment_size_bytes = mib << 20;
        runners.push(one(move |b| {
            let mut f = b.wal(&other)?;
            f.note = format!("{}, {mib} MiB segments", f.note);
            Ok(f)
        }));
    }
    let section = b.measure(&title, true, &runners)?;
    let mut checks = Vec::new();
    if let Some(mib) = o.compare_segments {
        // actix-wal with `--segment-mib` is first in each round, the same workload with
        // `--compare-segments` last.
        let ratio = |r: &[Figures]| r[0].latency.p99_us / r[r.len() - 1].latency.p99_us;
        let per_round: Vec<String> = section
            .all_rounds
            .iter()
            .map(|r| {
                format!(
                    "{:.2} ms / {:.2} ms = {:.2}x",
                    r[0].latency.p99_us / 1000.0,
                    r[r.len() - 1].latency.p99_us / 1000.0,
                    ratio(r)
                )
            })
            .collect();
        let median = section.per_round(ratio);
        checks.push(Check {
            figure: format!(
                "p99 with {} MiB segments vs {mib} MiB segments, same rounds",
                o.segment_mib
            ),
            target: "<= 1.2x".into(),
            measured: format!("median {median:.2}x; rounds: {}", per_round.join(", ")),
            met: median <= 1.2,
        });
    }
    Ok((vec![section], checks))
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let (base, tmp) = match &opts.dir {
        Some(d) => (d.clone(), None),
        None => match tempfile::tempdir() {
            Ok(t) => (t.path().to_path_buf(), Some(t)),
            Err(e) => {
                eprintln!("walbench: cannot make a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if let Err(e) = std::fs::create_dir_all(&base) {
        eprintln!("walbench: {}: {e}", base.display());
        return ExitCode::FAILURE;
    }
    let mut b = Bench {
        sys: actix::System::new(),
        opts: opts.clone(),
        base: base.clone(),
        _tmp: tmp,
        runs: 0,
    };
    let result = if opts.suite {
        suite(&mut b)
    } else {
        single(&mut b).map(|(s, c)| (s, None, c))
    };
    let (sections, recovery, checks) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("walbench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = Report {
        date: sys::today(),
        machine: sys::machine(),
        dir: base.display().to_string(),
        file_system: sys::fs_type(&base),
        options: opts,
        sections,
        recovery,
        checks,
    };
    let json = match serde_json::to_string_pretty(&report) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("walbench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &report.options.json_out {
        if let Err(e) = std::fs::write(path, &json) {
            eprintln!("walbench: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if report.options.json {
        println!("{json}");
    } else {
        print_report(&report);
    }
    ExitCode::SUCCESS
}

fn print_report(r: &Report) {
    println!(
        "walbench {}: {}; {} on {}",
        r.date, r.machine, r.dir, r.file_system
    );
    println!(
        "latency = send to durable reply; flusher/queue = that thread's CPU as a share of one core; \
         'vs actix-wal' = actix-wal's figure divided by the row's"
    );
    for s in &r.sections {
        print_section(s);
    }
    if let Some(rec) = &r.recovery {
        println!(
            "\nrecovery: {:.0} MB of log ({} records of {} B, {:.0} MB of files): open {:.2} s cold \
             ({:.0} MB/s), {:.2} s warm ({:.0} MB/s); plain read {:.2} s cold, {:.2} s warm",
            rec.log_bytes as f64 / 1e6,
            thousands(rec.records as f64),
            rec.record_bytes,
            rec.file_bytes as f64 / 1e6,
            rec.open_cold_s,
            rec.cold_mb_per_s(),
            rec.open_warm_s,
            rec.warm_mb_per_s(),
            rec.read_cold_s,
            rec.read_warm_s
        );
    }
    if !r.checks.is_empty() {
        println!("\ntarget figures:");
        for c in &r.checks {
            println!(
                "  [{}] {}: {}",
                if c.met { "met " } else { "MISS" },
                c.figure,
                c.measured
            );
        }
    }
}
