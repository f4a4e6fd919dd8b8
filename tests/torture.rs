//! Power-loss torture: seeded workloads on the simulated disk ([`sim::SimStorage`]), a
//! crash point before every mutating operation, recovery on the crashed image, and the
//! checks of [`sim::check`]; then appending goes on on a recovered image, for several
//! generations. docs/testing.md describes the fault model, the budget and how to replay.
//!
//! - `TORTURE_SEEDS=N`: seeded crash points in all, half per engine (default 5,000).
//! - `TORTURE_SEED=actors:SEED` or `writer:SEED`: replays one workload seed, as printed
//!   by a failure.

mod sim;

use actix_wal::log::LogWriter;
use actix_wal::{
    Append, Durability, LogOptions, Lsn, RecoveryPolicy, SharedStorage, Wal, WalConfig, WalError,
    WalMode,
};
use futures::future::join_all;
use sim::broken::{Broken, BrokenStorage};
use sim::check::{
    before_last_batch, read_log, recover, verify, Event, Expect, Kind, Oracle, Rec, Tag, Violation,
};
use sim::{mix, Fault, Rng, SimStorage, Snapshot};
use std::path::Path;
use std::time::Duration;

const DIR: &str = "/wal";
const MAX_RECORD_BYTES: u64 = 512;
/// Crash points per CI run, across both engines.
const DEFAULT_CRASH_POINTS: u64 = 5_000;

/// What drives the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    /// The actor pipeline: `Wal::open`, concurrent clients, group commit.
    Actors,
    /// The synchronous `LogWriter`: deterministic, so a seed replays exactly.
    Writer,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Actors => "actors",
            Engine::Writer => "writer",
        }
    }
}

/// A torture run's shape, and the broken variant (if any) it runs with.
#[derive(Debug, Clone)]
struct Setup {
    engine: Engine,
    /// Storage the log runs (and recovers) on, broken as this says.
    broken: Option<Broken>,
    /// The policy recovery runs with in the checks.
    policy: RecoveryPolicy,
    /// Broken client: a transaction's entries appended (and synced) one by one.
    split_txn: bool,
    /// Always inject faults (else: one generation in three).
    always_faults: bool,
    /// Inject only this fault (else: any).
    fault: Option<Fault>,
    gens: u32,
    points_per_gen: usize,
    seeds_per_point: u64,
}

impl Setup {
    fn new(engine: Engine) -> Setup {
        Setup {
            engine,
            broken: None,
            policy: RecoveryPolicy::TolerateTornTail,
            split_txn: false,
            always_faults: false,
            fault: None,
            gens: 4,
            points_per_gen: match engine {
                Engine::Actors => 14,
                Engine::Writer => 24,
            },
            seeds_per_point: 2,
        }
    }

    fn storage(&self, sim: &SimStorage) -> SharedStorage {
        match self.broken {
            Some(b) => BrokenStorage::wrap(sim.shared(), b),
            None => sim.shared(),
        }
    }

    fn log_options(&self, p: &Params, storage: SharedStorage) -> LogOptions {
        LogOptions {
            segment_size_bytes: p.segment_size_bytes,
            max_record_bytes: MAX_RECORD_BYTES,
            preallocate: p.preallocate,
            recovery_policy: self.policy,
            storage,
        }
    }
}

/// The workload of one seed.
#[derive(Debug, Clone)]
struct Params {
    segment_size_bytes: u64,
    preallocate: bool,
    clients: u16,
    ops_per_client: u32,
    max_body: u64,
    truncate: bool,
}

impl Params {
    fn new(rng: &mut Rng, engine: Engine) -> Params {
        Params {
            segment_size_bytes: rng.range(1024, 4096),
            preallocate: rng.chance(1, 2),
            clients: match engine {
                Engine::Actors => rng.range(2, 5) as u16,
                Engine::Writer => 1,
            },
            ops_per_client: match engine {
                Engine::Actors => rng.range(10, 30) as u32,
                Engine::Writer => rng.range(40, 90) as u32,
            },
            max_body: rng.range(8, 100),
            truncate: rng.chance(2, 3),
        }
    }
}

/// What a workload seed found.
#[derive(Debug, Default)]
struct Found {
    crash_points: u64,
    recovery_crashes: u64,
    flips: u64,
    /// Crash images whose recovery cut a torn tail.
    torn_tails: u64,
    violations: Vec<String>,
    kinds: Vec<&'static str>,
}

fn definite(e: &WalError) -> bool {
    matches!(
        e,
        WalError::Io { .. } | WalError::DiskFull { .. } | WalError::PermissionDenied { .. }
    )
}

/// A unit of client work: tags and payloads of one append or one transaction.
fn make_entries(
    rng: &mut Rng,
    p: &Params,
    gen: u32,
    client: u16,
    seq: u32,
    kind: Kind,
) -> (Vec<Tag>, Vec<Vec<u8>>) {
    let count = match kind {
        Kind::Append => 1,
        Kind::Commit => rng.range(1, 4) as u16,
    };
    let tags: Vec<Tag> = (0..count)
        .map(|idx| Tag {
            kind,
            gen: gen as u16,
            client,
            seq,
            idx,
            count,
        })
        .collect();
    let payloads = tags
        .iter()
        .map(|t| t.payload(rng.below(p.max_body + 1) as usize))
        .collect();
    (tags, payloads)
}

/// Arms faults for a generation, from operation `from` on.
fn arm_faults(sim: &SimStorage, only: Option<Fault>, rng: &mut Rng, from: u64, span: u64) {
    for _ in 0..rng.range(1, 2) {
        let at = from + rng.below(span.max(1));
        if let Some(f) = only {
            sim.inject(at, f);
            continue;
        }
        match rng.below(6) {
            0 => sim.inject(at, Fault::WriteError),
            1 => sim.inject(at, Fault::ShortWrite),
            2 => sim.inject(at, Fault::NoSpace),
            3 => sim.inject(at, Fault::SyncError),
            4 => sim.inject(at, Fault::DirSyncError),
            _ => sim.inject_chain(at, Fault::SyncError, Fault::NoSpace),
        }
    }
}

/// One client of the actor workload: durable appends, transactions, buffered appends
/// acknowledged by a later flush, mode switches and truncations. A definite failure is
/// retried once, sometimes later.
async fn actor_client(wal: Wal, p: Params, gen: u32, client: u16, seed: u64, oracle: Oracle) {
    let mut rng = Rng::new(mix(seed, u64::from(client)));
    let mut buffered: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut retry: Option<(Vec<Tag>, Vec<Vec<u8>>, Kind)> = None;
    for seq in 0..p.ops_per_client {
        let r = rng.below(100);
        if r < 4 && p.truncate {
            if let Ok(s) = wal.stats().await {
                let t = s.durable_lsn.0.saturating_sub(rng.below(30));
                oracle.push(Event::Truncate(t));
                if wal.truncate_before(Lsn(t)).await.is_ok() {
                    oracle.push(Event::Checkpointed(t));
                }
            }
            continue;
        }
        if r < 8 {
            let mode = if rng.chance(1, 2) {
                WalMode::Sync
            } else {
                WalMode::Async
            };
            let _ = wal.set_mode(mode).await;
            continue;
        }
        if r < 14 {
            if let Ok(d) = wal.flush().await {
                // Buffered LSNs are given out again after a failed write: trust them only
                // if no write has failed so far.
                let clean = wal.stats().await.is_ok_and(|s| s.write_failures == 0);
                for (lsn, payload) in buffered.drain(..) {
                    if clean && lsn <= d.0 {
                        oracle.push(Event::Acked {
                            lsn,
                            payloads: vec![payload],
                        });
                    }
                }
            }
            continue;
        }
        let (tags, payloads, kind) = match retry.take() {
            Some(x) if rng.chance(1, 2) => x,
            _ => {
                let kind = if r < 40 { Kind::Commit } else { Kind::Append };
                let (t, pl) = make_entries(&mut rng, &p, gen, client, seq, kind);
                (t, pl, kind)
            }
        };
        let is_buffered = kind == Kind::Append && r >= 90;
        oracle.push(Event::Submitted(tags.clone()));
        let res = match kind {
            Kind::Commit => wal.commit(payloads.clone()).await,
            Kind::Append if is_buffered => {
                wal.send(Append::new(payloads[0].clone()).durability(Durability::Buffered))
                    .await
            }
            Kind::Append => wal.append(payloads[0].clone()).await,
        };
        match res {
            Ok(lsn) if is_buffered => buffered.push((lsn.0, payloads[0].clone())),
            Ok(lsn) => oracle.push(Event::Acked {
                lsn: lsn.0,
                payloads,
            }),
            Err(e) if definite(&e) => {
                oracle.push(Event::Failed(tags.clone()));
                if !is_buffered {
                    retry = Some((tags, payloads, kind));
                }
            }
            // Poisoned or shut down: the outcome is unknown, and the log takes no more.
            Err(_) => return,
        }
    }
}

/// One generation of the actor workload on `sim` (which must hold the crash image).
fn run_actors(
    setup: &Setup,
    p: &Params,
    gen: u32,
    seed: u64,
    sim: &SimStorage,
    oracle: &Oracle,
) -> Result<(), String> {
    let storage = setup.storage(sim);
    let p = p.clone();
    let sim = sim.clone();
    let oracle = oracle.clone();
    let faults = setup.always_faults || Rng::new(mix(seed, 77)).chance(1, 3);
    let fault = setup.fault;
    actix::System::new().block_on(async move {
        let cfg = WalConfig {
            segment_size_bytes: p.segment_size_bytes,
            max_record_bytes: MAX_RECORD_BYTES,
            max_batch_bytes: (p.segment_size_bytes as usize - 32).min(2048),
            preallocate: p.preallocate,
            flush_interval_ms: 2,
            storage,
            ..WalConfig::default()
        };
        let wal = Wal::open(DIR, cfg)
            .await
            .map_err(|e| format!("Wal::open on the crashed image: {e}"))?;
        if faults {
            let span = u64::from(p.clients) * u64::from(p.ops_per_client) * 2;
            arm_faults(&sim, fault, &mut Rng::new(mix(seed, 78)), sim.ops(), span);
        }
        let clients = (0..p.clients)
            .map(|c| actor_client(wal.clone(), p.clone(), gen, c, seed, oracle.clone()));
        actix_rt::time::timeout(Duration::from_secs(120), join_all(clients))
            .await
            .map_err(|_| "workload did not finish within 120 s".to_string())?;
        let _ = wal.shutdown().await;
        Ok(())
    })
}

/// One generation of the `LogWriter` workload: deterministic.
fn run_writer(
    setup: &Setup,
    p: &Params,
    gen: u32,
    seed: u64,
    sim: &SimStorage,
    oracle: &Oracle,
) -> Result<(), String> {
    let opts = setup.log_options(p, setup.storage(sim));
    let (mut w, _) = LogWriter::open(DIR, opts)
        .map_err(|e| format!("LogWriter::open on the crashed image: {e}"))?;
    let mut rng = Rng::new(mix(seed, 1));
    if setup.always_faults || rng.chance(1, 3) {
        let span = u64::from(p.ops_per_client) * 2;
        arm_faults(sim, setup.fault, &mut rng, sim.ops(), span);
    }
    type Pending = (Vec<Tag>, Vec<Vec<u8>>, u64);
    let mut batch: Vec<Pending> = Vec::new();
    let mut retry: Vec<Pending> = Vec::new();
    let mut durable = 0u64;
    let append = |w: &mut LogWriter, tags: &[Tag], payloads: &[Vec<u8>], split: bool| {
        if tags[0].kind == Kind::Append {
            w.append(&payloads[0])
        } else if split {
            // Broken: a transaction as separate records, each synced on its own.
            let first = w.append(&payloads[0])?;
            for pl in &payloads[1..] {
                w.sync()?;
                w.append(pl)?;
            }
            Ok(first)
        } else {
            w.append_transaction(payloads)
        }
    };
    for seq in 0..p.ops_per_client {
        if p.truncate && rng.chance(1, 25) && durable > 0 {
            let t = durable.saturating_sub(rng.below(30));
            oracle.push(Event::Truncate(t));
            if w.truncate_before(Lsn(t)).is_ok() {
                oracle.push(Event::Checkpointed(t));
            }
        }
        let (tags, payloads) = if !retry.is_empty() && rng.chance(1, 2) {
            let (t, pl, _) = retry.remove(0);
            (t, pl)
        } else {
            let kind = if rng.chance(1, 3) {
                Kind::Commit
            } else {
                Kind::Append
            };
            make_entries(&mut rng, p, gen, 0, seq, kind)
        };
        oracle.push(Event::Submitted(tags.clone()));
        match append(&mut w, &tags, &payloads, setup.split_txn) {
            Ok(lsn) => batch.push((tags, payloads, lsn.0)),
            Err(e) if definite(&e) => {
                // A split transaction's sync failed midway.
                oracle.push(Event::Failed(tags.clone()));
                for (t, pl, _) in batch.drain(..) {
                    oracle.push(Event::Failed(t.clone()));
                    retry.push((t, pl, 0));
                }
                continue;
            }
            Err(_) => return Ok(()),
        }
        if rng.chance(1, 3) || seq + 1 == p.ops_per_client {
            match w.sync() {
                Ok(d) => {
                    durable = d.0;
                    for (_, pl, lsn) in batch.drain(..) {
                        oracle.push(Event::Acked { lsn, payloads: pl });
                    }
                }
                Err(e) if definite(&e) => {
                    for (t, pl, _) in batch.drain(..) {
                        oracle.push(Event::Failed(t.clone()));
                        if rng.chance(2, 3) {
                            retry.push((t, pl, 0));
                        }
                    }
                }
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// Recovers a crash image and checks it: the records, idempotence, a crash during
/// recovery, and (sometimes) a bit flip before the last batch. Returns the records.
fn check_image(
    setup: &Setup,
    p: &Params,
    image: &SimStorage,
    expect: &Expect<'_>,
    rng: &mut Rng,
    found: &mut Found,
) -> Result<Vec<Rec>, Vec<Violation>> {
    let dir = Path::new(DIR);
    let pristine = image.fork();
    let storage = setup.storage(image);
    let opts = setup.log_options(p, storage.clone());
    image.record(|| 0);
    let first = recover(&storage, dir, &opts);
    let during = image.take_snapshots();
    match first {
        Err(e) => return Err(vec![Violation::RecoveryFailed(e.to_string())]),
        Ok(o) if o.bytes_cut > 0 => found.torn_tails += 1,
        Ok(_) => {}
    }
    let recs = read_log(&storage, dir, MAX_RECORD_BYTES)
        .map_err(|e| vec![Violation::ReadFailed(e.to_string())])?;
    let mut v = verify(&recs, expect);
    // Idempotent: recovering the recovered log changes nothing.
    match recover(&storage, dir, &opts).and_then(|_| read_log(&storage, dir, MAX_RECORD_BYTES)) {
        Ok(again) if again == recs => {}
        Ok(again) => v.push(Violation::NotIdempotent(format!(
            "second recovery: {} records, first: {}",
            again.len(),
            recs.len()
        ))),
        Err(e) => v.push(Violation::NotIdempotent(format!(
            "second recovery failed: {e}"
        ))),
    }
    // A crash during recovery, then recovery again: the same records.
    if !during.is_empty() {
        let snap = &during[rng.below(during.len() as u64) as usize];
        let img = snap.crash(rng.next_u64());
        let st = setup.storage(&img);
        let o = setup.log_options(p, st.clone());
        found.recovery_crashes += 1;
        match recover(&st, dir, &o).and_then(|_| read_log(&st, dir, MAX_RECORD_BYTES)) {
            Ok(again) if again == recs => {}
            Ok(again) => v.push(Violation::NotIdempotent(format!(
                "crash at recovery op {} ({}): {} records, clean recovery: {}",
                snap.op,
                snap.desc,
                again.len(),
                recs.len()
            ))),
            Err(e) => v.push(Violation::NotIdempotent(format!(
                "recovery after a crash at recovery op {} ({}) failed: {e}",
                snap.op, snap.desc
            ))),
        }
    }
    // A bit flipped at rest before the last batch is reported.
    if rng.chance(1, 3) {
        let ranges = before_last_batch(image, dir, &recs);
        let total: u64 = ranges.iter().map(|(_, a, b)| b - a).sum();
        if total > 0 {
            let mut at = rng.below(total);
            for (name, a, b) in &ranges {
                if at < b - a {
                    let f = image.fork();
                    let path = dir.join(name);
                    let bit = rng.below(8) as u8;
                    f.flip_bit(&path, a + at, bit);
                    let st = setup.storage(&f);
                    let o = setup.log_options(p, st.clone());
                    found.flips += 1;
                    match recover(&st, dir, &o) {
                        Err(e) if e.is_corruption() => {}
                        other => v.push(Violation::FlipMissed(format!(
                            "bit {bit} of byte {} of {name}: recovery gave {:?}",
                            a + at,
                            other.map(|o| o.records)
                        ))),
                    }
                    break;
                }
                at -= b - a;
            }
        }
    }
    drop(pristine);
    if v.is_empty() {
        Ok(recs)
    } else {
        Err(v)
    }
}

/// Chooses the crash points to check: the end of the run, then a third at random, a third
/// among the operations where ordering matters most (namespace and size changes) and a
/// third just before an fsync (where un-synced data can tear).
fn choose_points(snaps: &[Snapshot], n: usize, rng: &mut Rng) -> Vec<usize> {
    if snaps.len() <= n {
        return (0..snaps.len()).collect();
    }
    let of = |pred: &dyn Fn(sim::OpKind) -> bool| -> Vec<usize> {
        (0..snaps.len())
            .filter(|&i| pred(snaps[i].desc.kind))
            .collect()
    };
    let namespace =
        of(&|k| k.is_namespace() || matches!(k, sim::OpKind::SetLen | sim::OpKind::Allocate));
    let fsync = of(&|k| matches!(k, sim::OpKind::SyncData | sim::OpKind::SyncAll));
    let mut out = vec![snaps.len() - 1];
    while out.len() < n {
        let pool = match rng.below(3) {
            0 if !namespace.is_empty() => &namespace,
            1 if !fsync.is_empty() => &fsync,
            _ => {
                let i = rng.below(snaps.len() as u64) as usize;
                if !out.contains(&i) {
                    out.push(i);
                }
                continue;
            }
        };
        let i = pool[rng.below(pool.len() as u64) as usize];
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

/// Runs one workload seed through all its generations.
fn run_seed(setup: &Setup, seed: u64, stop_at_first: bool) -> Found {
    let mut rng = Rng::new(seed);
    let p = Params::new(&mut rng, setup.engine);
    let mut found = Found::default();
    let mut base = SimStorage::new();
    let mut required: Vec<Rec> = Vec::new();
    for gen in 0..setup.gens {
        let gen_seed = mix(seed, u64::from(gen) + 1000);
        let oracle = Oracle::default();
        let sim = base;
        sim.record(oracle.probe());
        let ran = match setup.engine {
            Engine::Actors => run_actors(setup, &p, gen, gen_seed, &sim, &oracle),
            Engine::Writer => run_writer(setup, &p, gen, gen_seed, &sim, &oracle),
        };
        let mut snaps = sim.take_snapshots();
        if let Err(e) = ran {
            found.kinds.push("recovery-failed");
            found.violations.push(format!(
                "TORTURE_SEED={}:{seed} gen {gen}: {e}",
                setup.engine.name()
            ));
            return found;
        }
        snaps.push(sim.snapshot(oracle.mark()));
        let points = choose_points(&snaps, setup.points_per_gen, &mut rng);
        let mut next: Option<(SimStorage, Vec<Rec>)> = None;
        for &i in &points {
            let snap = &snaps[i];
            let events = oracle.upto(snap.mark);
            let expect = Expect {
                required: &required,
                events: &events,
            };
            for s in 0..setup.seeds_per_point {
                let image_seed = mix(gen_seed, (snap.op << 8) | s);
                let image = snap.crash(image_seed);
                let keep = image.fork();
                found.crash_points += 1;
                match check_image(setup, &p, &image, &expect, &mut rng, &mut found) {
                    Ok(recs) => {
                        let last = i == snaps.len() - 1;
                        if next.is_none() || last || rng.chance(1, 4) {
                            next = Some((keep, recs));
                        }
                    }
                    Err(vs) => {
                        let window = snaps[i.saturating_sub(8)..=i]
                            .iter()
                            .map(|s| format!("#{} {}", s.op, s.desc))
                            .collect::<Vec<_>>()
                            .join(", ");
                        found.kinds.extend(vs.iter().map(Violation::kind));
                        if std::env::var_os("TORTURE_VERBOSE").is_some() {
                            eprintln!(
                                "--- gen {gen}: every operation, with the events seen before it"
                            );
                            let all = oracle.upto(oracle.mark());
                            let mut shown = 0;
                            for s in &snaps {
                                while shown < s.mark as usize {
                                    eprintln!("      event {shown}: {:?}", all[shown]);
                                    shown += 1;
                                }
                                eprintln!("  #{} {}", s.op, s.desc);
                            }
                        }
                        let history = attempt_history(&events, &vs);
                        found.violations.push(format!(
                            "TORTURE_SEED={}:{seed} gen {gen}, crash before op #{} ({}), image seed {image_seed}: {}\n    ops before it: {window}{history}",
                            setup.engine.name(),
                            snap.op,
                            snap.desc,
                            summarize(&vs),
                        ));
                        if stop_at_first {
                            return found;
                        }
                    }
                }
            }
        }
        match next {
            Some((image, recs)) => {
                base = image;
                required = recs;
            }
            None => return found,
        }
    }
    found
}

/// For a ghost or a duplicate: what the workload saw of that attempt.
fn attempt_history(events: &[Event], vs: &[Violation]) -> String {
    let Some(attempt) = vs.iter().find_map(|v| match v {
        Violation::Ghost { tag } | Violation::Duplicate { tag } => Some(tag.attempt()),
        _ => None,
    }) else {
        return String::new();
    };
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        let line = match e {
            Event::Submitted(t) if t[0].attempt() == attempt => "submitted".to_string(),
            Event::Failed(t) if t[0].attempt() == attempt => "failed".to_string(),
            Event::Acked { lsn, payloads } => match Tag::decode(&payloads[0]) {
                Some(t) if t.attempt() == attempt => format!("acked at LSN {lsn}"),
                _ => continue,
            },
            _ => continue,
        };
        out.push_str(&format!("\n    event {i}: {line}"));
    }
    out
}

/// One line for the violations of one image: how many of each kind, and the first few.
fn summarize(vs: &[Violation]) -> String {
    let mut kinds: Vec<&str> = vs.iter().map(Violation::kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let counts: Vec<String> = kinds
        .iter()
        .map(|k| format!("{k} x{}", vs.iter().filter(|v| v.kind() == *k).count()))
        .collect();
    let first: Vec<String> = vs.iter().take(3).map(|v| format!("{v:?}")).collect();
    format!("{} [{}]", counts.join(", "), first.join("; "))
}

/// Crash points for one engine: half of `TORTURE_SEEDS` (or of the default).
fn points_budget() -> u64 {
    let total = std::env::var("TORTURE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CRASH_POINTS);
    total.div_ceil(2)
}

/// `Some(seed)` when `TORTURE_SEED` names this engine; `None` when it is unset; the test
/// is skipped (`Some(None)`) when it names the other engine.
fn replay_seed(engine: Engine) -> Option<Option<u64>> {
    let v = std::env::var("TORTURE_SEED").ok()?;
    let (name, seed) = v.split_once(':').unwrap_or(("", &v));
    if name != engine.name() {
        return Some(None);
    }
    let seed = seed.parse().expect("TORTURE_SEED=engine:u64");
    Some(Some(seed))
}

fn torture(engine: Engine) {
    let setup = Setup::new(engine);
    let mut total = Found::default();
    let mut seeds = 0u64;
    let run = |seed: u64, total: &mut Found| {
        let f = run_seed(&setup, seed, false);
        total.crash_points += f.crash_points;
        total.recovery_crashes += f.recovery_crashes;
        total.flips += f.flips;
        total.torn_tails += f.torn_tails;
        total.violations.extend(f.violations);
    };
    match replay_seed(engine) {
        Some(None) => return,
        Some(Some(seed)) => {
            run(seed, &mut total);
            seeds = 1;
        }
        None => {
            let budget = points_budget();
            while total.crash_points < budget && total.violations.len() < 20 {
                run(mix(0x7042_7572_6521, seeds), &mut total);
                seeds += 1;
            }
        }
    }
    eprintln!(
        "torture {}: {seeds} workload seeds, {} crash points ({} with a torn tail), {} crashes during recovery, {} bit flips, {} violations",
        engine.name(),
        total.crash_points,
        total.torn_tails,
        total.recovery_crashes,
        total.flips,
        total.violations.len()
    );
    assert!(
        total.violations.is_empty(),
        "{} violations:\n{}",
        total.violations.len(),
        total.violations.join("\n")
    );
}

#[test]
fn acknowledged_records_survive_power_cuts_through_the_actor_pipeline() {
    torture(Engine::Actors);
}

#[test]
fn acknowledged_records_survive_power_cuts_through_the_log_writer() {
    torture(Engine::Writer);
}

// ---------------------------------------------------------------------------------------
// Exhaustive: every bit of a small log.
// ---------------------------------------------------------------------------------------

/// Flips every bit of every segment of a ~3 KiB log (several segments, records and
/// transactions, several write batches), one at a time, and checks that each is caught:
/// recovery under `AbsoluteConsistency` refuses the log, the reader never returns a record
/// that differs from what was written, and under the default policy a flip before the last
/// write batch is refused too (in the last batch it reads as a torn write and is cut).
#[test]
fn every_bit_flip_of_a_small_log_is_caught() {
    let dir = Path::new(DIR);
    let sim = SimStorage::new();
    let opts = LogOptions {
        segment_size_bytes: 1024,
        max_record_bytes: MAX_RECORD_BYTES,
        preallocate: false,
        storage: sim.shared(),
        ..LogOptions::default()
    };
    let p = Params {
        segment_size_bytes: 1024,
        preallocate: false,
        clients: 1,
        ops_per_client: 0,
        max_body: 60,
        truncate: false,
    };
    let (mut w, _) = LogWriter::open(DIR, opts.clone()).unwrap();
    let mut rng = Rng::new(7);
    let mut seq = 0;
    while w.next_lsn().0 < 50 {
        for _ in 0..rng.range(1, 4) {
            let kind = if seq % 3 == 0 {
                Kind::Commit
            } else {
                Kind::Append
            };
            let (_, payloads) = make_entries(&mut rng, &p, 0, 0, seq, kind);
            if kind == Kind::Commit {
                w.append_transaction(&payloads).unwrap();
            } else {
                w.append(&payloads[0]).unwrap();
            }
            seq += 1;
        }
        w.sync().unwrap();
    }
    drop(w);
    let good = read_log(&sim.shared(), dir, MAX_RECORD_BYTES).unwrap();
    let guarded = before_last_batch(&sim, dir, &good);
    let segments: Vec<String> = sim
        .names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    assert!(segments.len() >= 3, "the log spans several segments");
    let mut bits = 0u64;
    let mut missed = Vec::new();
    for name in &segments {
        let path = dir.join(name);
        let len = sim.read_file(&path).unwrap().len() as u64;
        for byte in 0..len {
            let before_tail = guarded
                .iter()
                .any(|(n, a, b)| n == name && (*a..*b).contains(&byte));
            for bit in 0..8u8 {
                bits += 1;
                let f = sim.fork();
                f.flip_bit(&path, byte, bit);
                let st = f.shared();
                if let Ok(reader) =
                    actix_wal::LogReader::open_with(dir, st.clone(), MAX_RECORD_BYTES)
                {
                    for (i, r) in reader.enumerate() {
                        let Ok(r) = r else { break };
                        let same = good
                            .get(i)
                            .is_some_and(|g| g.lsn == r.lsn.0 && g.payload == r.payload);
                        if !same {
                            missed.push(format!(
                                "{name} byte {byte} bit {bit}: reader returned altered LSN {}",
                                r.lsn
                            ));
                            break;
                        }
                    }
                }
                let strict = LogOptions {
                    storage: st.clone(),
                    recovery_policy: RecoveryPolicy::AbsoluteConsistency,
                    ..opts.clone()
                };
                if recover(&st, dir, &strict).is_ok() {
                    missed.push(format!(
                        "{name} byte {byte} bit {bit}: AbsoluteConsistency accepted it"
                    ));
                }
                let tolerant = LogOptions {
                    storage: st.clone(),
                    ..opts.clone()
                };
                if before_tail && recover(&st, dir, &tolerant).is_ok() {
                    missed.push(format!(
                        "{name} byte {byte} bit {bit}: before the last batch, yet recovered"
                    ));
                }
            }
        }
    }
    eprintln!("bit flips: {bits} bits flipped, {} missed", missed.len());
    assert!(bits >= 8 * 2048, "a log of a few KiB: {bits} bits");
    assert!(
        missed.is_empty(),
        "{} flips missed:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Teeth: each check catches a deliberately broken variant.
// ---------------------------------------------------------------------------------------

/// Runs workload seeds of a broken setup (each through all its crash points, since another
/// check may fire first) until the check named `kind` reports a violation; fails if none
/// does within `max_seeds` seeds.
fn assert_caught(setup: Setup, kind: &str, max_seeds: u64) {
    let mut seen = Vec::new();
    for i in 0..max_seeds {
        let f = run_seed(&setup, mix(0x7EE7, i), false);
        if f.kinds.contains(&kind) {
            return;
        }
        seen.extend(f.kinds);
    }
    seen.sort_unstable();
    seen.dedup();
    panic!(
        "{setup:?}: the {kind} check did not catch it in {max_seeds} seeds (other violations: {seen:?})"
    );
}

fn broken(engine: Engine, b: Broken) -> Setup {
    Setup {
        broken: Some(b),
        gens: 2,
        ..Setup::new(engine)
    }
}

#[test]
fn acknowledging_before_fsync_is_caught() {
    assert_caught(
        broken(Engine::Writer, Broken::AckBeforeFsync),
        "lost-ack",
        5,
    );
    assert_caught(
        broken(Engine::Actors, Broken::AckBeforeFsync),
        "lost-ack",
        5,
    );
}

#[test]
fn a_checkpoint_that_never_reaches_meta_is_caught() {
    assert_caught(
        broken(Engine::Writer, Broken::MetaNotRenamed),
        "below-checkpoint",
        10,
    );
    assert_caught(
        broken(Engine::Actors, Broken::MetaNotRenamed),
        "below-checkpoint",
        10,
    );
}

/// A spare segment renamed to its segment name before its header and frames are fsynced
/// (the rollover's order reversed): a crash leaves a segment without a durable header.
/// Both engines prepare spares (the writer on its own thread, the flusher on a helper).
#[test]
fn renaming_a_spare_before_its_fsync_is_caught() {
    assert_caught(
        broken(Engine::Writer, Broken::SpareRenamedUnsynced),
        "recovery-failed",
        10,
    );
    assert_caught(
        broken(Engine::Actors, Broken::SpareRenamedUnsynced),
        "recovery-failed",
        10,
    );
}

/// The flusher acknowledges a rollover before its rename is durable (the directory
/// `fsync` is left to the spare helper); a recovery that never adopts a written spare
/// (here: spares left out of the directory listing) loses acknowledged records.
#[test]
fn a_recovery_that_never_adopts_a_written_spare_is_caught() {
    assert_caught(
        broken(Engine::Actors, Broken::SparesUnlisted),
        "lost-ack",
        40,
    );
}

#[test]
fn skipping_the_directory_fsync_is_caught() {
    assert_caught(broken(Engine::Writer, Broken::SkipDirSync), "lost-ack", 10);
    assert_caught(broken(Engine::Actors, Broken::SkipDirSync), "lost-ack", 10);
}

#[test]
fn fsyncing_again_after_an_fsync_failure_is_caught() {
    // A seed of the actor workload catches it about one time in four: 40 seeds miss it
    // with a probability of about 2e-6.
    for (engine, seeds) in [(Engine::Writer, 20), (Engine::Actors, 40)] {
        let setup = Setup {
            always_faults: true,
            fault: Some(Fault::SyncError),
            ..broken(engine, Broken::RetryFsync)
        };
        assert_caught(setup, "lost-ack", seeds);
    }
}

#[test]
fn leaving_a_failed_write_in_place_is_caught() {
    let setup = Setup {
        always_faults: true,
        fault: Some(Fault::ShortWrite),
        ..broken(Engine::Writer, Broken::SkipCutBack)
    };
    assert_caught(setup, "ghost", 20);
}

#[test]
fn a_recovery_that_refuses_torn_tails_is_caught() {
    let setup = Setup {
        policy: RecoveryPolicy::AbsoluteConsistency,
        gens: 1,
        ..Setup::new(Engine::Writer)
    };
    assert_caught(setup, "recovery-failed", 5);
}

#[test]
fn a_recovery_that_cuts_in_the_wrong_place_is_caught() {
    assert_caught(
        broken(Engine::Writer, Broken::CutOneByteShort),
        "not-idempotent",
        10,
    );
}

#[test]
fn a_transaction_written_as_separate_records_is_caught() {
    let setup = Setup {
        split_txn: true,
        gens: 1,
        ..Setup::new(Engine::Writer)
    };
    assert_caught(setup, "txn-split", 5);
}

#[test]
fn a_recovery_that_salvages_past_flipped_bits_is_caught() {
    let setup = Setup {
        policy: RecoveryPolicy::SkipToLastGood,
        gens: 1,
        ..Setup::new(Engine::Writer)
    };
    assert_caught(setup, "flip-missed", 5);
}

/// The checks that no broken storage can reach without also breaking a CRC (the reader
/// already refuses it) are shown on tampered record lists instead.
#[test]
fn the_checker_flags_tampered_logs() {
    let tag = |seq: u32, idx: u16, count: u16| Tag {
        kind: if count > 1 {
            Kind::Commit
        } else {
            Kind::Append
        },
        gen: 0,
        client: 0,
        seq,
        idx,
        count,
    };
    let rec = |lsn: u64, t: Tag| Rec {
        lsn,
        payload: t.payload(10),
        txn: (t.count > 1).then_some((t.idx, t.count)),
        segment: 1,
        frame_offset: 0,
    };
    let tags = [tag(0, 0, 1), tag(1, 0, 2), tag(1, 1, 2), tag(2, 0, 1)];
    let good: Vec<Rec> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| rec(i as u64 + 1, *t))
        .collect();
    let events = vec![
        Event::Submitted(vec![tags[0]]),
        Event::Acked {
            lsn: 1,
            payloads: vec![good[0].payload.clone()],
        },
        Event::Submitted(vec![tags[1], tags[2]]),
        Event::Acked {
            lsn: 2,
            payloads: vec![good[1].payload.clone(), good[2].payload.clone()],
        },
        Event::Submitted(vec![tags[3]]),
    ];
    let expect = Expect {
        required: &[],
        events: &events,
    };
    let kinds = |recs: &[Rec]| -> Vec<&'static str> {
        verify(recs, &expect).iter().map(Violation::kind).collect()
    };
    assert!(kinds(&good).is_empty(), "{:?}", verify(&good, &expect));
    assert!(kinds(&good[..2]).contains(&"lost-ack")); // LSN 3 acknowledged, missing
    assert!(kinds(&good[..2]).contains(&"txn-split"));
    let mut dup = good.clone();
    dup[3] = rec(4, tags[0]);
    assert!(kinds(&dup).contains(&"duplicate"));
    let mut gap = good.clone();
    gap[3].lsn = 6;
    assert!(kinds(&gap).contains(&"gap"));
    let mut altered = good.clone();
    altered[0].payload[TAG_BODY_BYTE] ^= 1;
    assert!(kinds(&altered).contains(&"altered"));
    let mut swapped = good.clone();
    swapped[0] = rec(1, tags[3]);
    swapped[3] = rec(4, tags[0]);
    assert!(kinds(&swapped).contains(&"wrong-payload"));
    let mut phantom = good.clone();
    phantom.push(rec(5, tag(9, 0, 1)));
    assert!(kinds(&phantom).contains(&"phantom"));
    let mut failed = events.clone();
    failed.push(Event::Failed(vec![tags[3]]));
    let expect_failed = Expect {
        required: &[],
        events: &failed,
    };
    assert!(verify(&good, &expect_failed)
        .iter()
        .any(|v| v.kind() == "ghost"));
}

/// A byte of a payload's body (after its tag).
const TAG_BODY_BYTE: usize = sim::check::TAG_BYTES + 3;

// ---------------------------------------------------------------------------------------
// The simulator itself.
// ---------------------------------------------------------------------------------------

fn file_of(sim: &SimStorage, name: &str) -> Option<Vec<u8>> {
    sim.read_file(&Path::new(DIR).join(name))
}

fn sim_with_dir() -> SimStorage {
    use actix_wal::Storage;
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

#[test]
fn sim_keeps_synced_writes_and_may_lose_the_rest() {
    use actix_wal::Storage;
    let sim = sim_with_dir();
    let f = sim.create(&Path::new(DIR).join("a")).unwrap();
    sim.sync_dir(Path::new(DIR)).unwrap();
    f.write_all_at(&[1; 100], 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(&[2; 100], 100).unwrap();
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let data = file_of(&sim.crash(seed), "a").unwrap();
        assert_eq!(&data[..100], &[1; 100], "synced bytes survive every crash");
        outcomes.insert(data.len());
    }
    assert!(
        outcomes.contains(&100) && outcomes.contains(&200),
        "{outcomes:?}"
    );
}

#[test]
fn sim_tears_an_unsynced_write_per_sector() {
    use actix_wal::Storage;
    let sim = sim_with_dir();
    let f = sim.create(&Path::new(DIR).join("a")).unwrap();
    f.allocate(4 * 512).unwrap();
    f.sync_all().unwrap();
    sim.sync_dir(Path::new(DIR)).unwrap();
    f.write_all_at(&[9; 4 * 512], 0).unwrap();
    let torn = (0..256).any(|seed| {
        let d = file_of(&sim.crash(seed), "a").unwrap();
        let kept: Vec<bool> = d.chunks(512).map(|s| s == [9; 512]).collect();
        // Some sectors kept, some not, and not only a prefix: out of order.
        kept.contains(&true) && kept.contains(&false) && !kept[0]
    });
    assert!(torn, "a 4-sector write can survive in part, out of order");
}

#[test]
fn sim_forgets_entries_without_a_directory_fsync() {
    use actix_wal::Storage;
    let sim = sim_with_dir();
    let f = sim.create(&Path::new(DIR).join("a.tmp")).unwrap();
    f.write_all_at(b"hdr", 0).unwrap();
    f.sync_all().unwrap();
    sim.rename(&Path::new(DIR).join("a.tmp"), &Path::new(DIR).join("a"))
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        seen.insert(sim.crash(seed).names(Path::new(DIR)));
    }
    assert!(seen.contains(&vec![]), "neither name survives: {seen:?}");
    assert!(seen.contains(&vec!["a".to_string()]), "{seen:?}");
    sim.sync_dir(Path::new(DIR)).unwrap();
    for seed in 0..16 {
        let c = sim.crash(seed);
        assert_eq!(c.names(Path::new(DIR)), vec!["a".to_string()]);
        assert_eq!(file_of(&c, "a").unwrap(), b"hdr");
    }
}

#[test]
fn sim_fsync_failure_drops_the_pages_and_a_second_fsync_lies() {
    use actix_wal::Storage;
    let sim = sim_with_dir();
    let f = sim.create(&Path::new(DIR).join("a")).unwrap();
    sim.sync_dir(Path::new(DIR)).unwrap();
    f.write_all_at(&[5; 64], 0).unwrap();
    sim.inject(sim.ops(), Fault::SyncError);
    assert!(f.sync_data().is_err());
    f.sync_data().expect("the second fsync succeeds");
    let mut buf = [0u8; 64];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [5; 64], "the page cache still holds the data");
    let lost = (0..64).any(|seed| file_of(&sim.crash(seed), "a").unwrap() != [5; 64]);
    assert!(
        lost,
        "after the failed fsync the data may be gone despite the second one"
    );
}

#[test]
fn sim_faults_strike_at_the_chosen_operation() {
    use actix_wal::Storage;
    let sim = sim_with_dir();
    let f = sim.create(&Path::new(DIR).join("a")).unwrap();
    sim.inject(sim.ops() + 1, Fault::ShortWrite);
    f.write_all_at(&[1; 10], 0).unwrap(); // the operation before the chosen one
    assert!(f.write_all_at(&[2; 10], 10).is_err());
    assert_eq!(
        f.size_bytes().unwrap(),
        15,
        "half of the short write landed"
    );
    sim.inject(sim.ops(), Fault::NoSpace);
    let e = f.write_all_at(&[3; 9], 15).unwrap_err();
    assert!(matches!(
        WalError::io("write", "a", e),
        WalError::DiskFull { .. }
    ));
    sim.inject(sim.ops(), Fault::DirSyncError);
    assert!(sim.sync_dir(Path::new(DIR)).is_err());
    sim.die_at(sim.ops());
    assert!(
        f.write_all_at(&[4; 1], 0).is_err(),
        "a dead machine writes nothing"
    );
}

// ---------------------------------------------------------------------------------------
// Reopening after failed fsyncs (fixed: recovery rewrites and fsyncs the last batch).
// ---------------------------------------------------------------------------------------

/// After an fsync fails, Linux marks the pages clean: reads still return the bytes, the
/// disk may never get them. If the rewrite's fsync fails too, the log is poisoned and asks
/// to be reopened; reopened in the same boot, recovery reads the lost batch back from the
/// page cache and accepts it, later appends go after it and are acknowledged, and a power
/// cut then leaves a hole before acknowledged records: recovery refuses the log. (The batch
/// here spans pages, as on Linux only pages no later write touches stay lost.)
#[test]
fn reopening_after_failed_fsyncs_never_trusts_bytes_the_disk_lost() {
    use actix_wal::Storage;
    let dir = Path::new(DIR);
    let sim = SimStorage::new();
    sim.create_dir_all(dir).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let opts = LogOptions {
        segment_size_bytes: 64 * 1024,
        max_record_bytes: 1024,
        preallocate: false,
        storage: sim.shared(),
        ..LogOptions::default()
    };
    let (mut w, _) = LogWriter::open(DIR, opts.clone()).unwrap();
    w.append(b"A").unwrap();
    w.sync().unwrap();
    for _ in 0..12 {
        w.append(&[b'B'; 700]).unwrap();
    }
    // The batch's fsync fails (op +1), then the rewrite's (op +8: create, header, fsync,
    // rename, fsync dir, write, fsync).
    let n = sim.ops();
    sim.inject(n + 1, Fault::SyncError);
    sim.inject(n + 8, Fault::SyncError);
    assert!(matches!(w.sync(), Err(WalError::Poisoned { .. })));
    drop(w);
    // "Reopen the log to run recovery", in the same boot.
    let (mut w, _) = LogWriter::open(DIR, opts.clone()).unwrap();
    let c = w.append(b"C").unwrap();
    w.sync().unwrap();
    drop(w);
    for seed in 0..32 {
        let image = sim.crash(seed);
        let st = image.shared();
        let o = LogOptions {
            storage: st.clone(),
            ..opts.clone()
        };
        let out = recover(&st, dir, &o)
            .unwrap_or_else(|e| panic!("crash seed {seed}: recovery refused the log: {e}"));
        assert!(
            out.next_lsn.0 > c.0,
            "crash seed {seed}: acknowledged C is gone"
        );
    }
}
