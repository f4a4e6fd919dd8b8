//! The torture run's shape: which engine drives the log, the broken variant it runs
//! with, a seed's workload parameters, and the client work and faults it is made of.

use crate::sim::broken::{Broken, BrokenStorage};
use crate::sim::oracle::{Kind, Tag};
use crate::sim::{Fault, Rng, SimStorage};
use actix_wal::{LogOptions, RecoveryPolicy, SharedStorage, WalError};

pub(crate) const DIR: &str = "/wal";
pub(crate) const MAX_RECORD_BYTES: u64 = 512;
/// Crash points per CI run, across both engines.
pub(crate) const DEFAULT_CRASH_POINTS: u64 = 5_000;

/// What drives the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// The actor pipeline: `Wal::open`, concurrent clients, group commit.
    Actors,
    /// The synchronous `LogWriter`: deterministic, so a seed replays exactly.
    Writer,
}

impl Engine {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Actors => "actors",
            Engine::Writer => "writer",
        }
    }
}

/// A torture run's shape, and the broken variant (if any) it runs with.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) engine: Engine,
    /// Storage the log runs (and recovers) on, broken as this says.
    pub(crate) broken: Option<Broken>,
    /// The policy recovery runs with in the checks.
    pub(crate) policy: RecoveryPolicy,
    /// The storage the offline reader (`LogReader` before recovery, for the
    /// `reader-disagrees` check) reads through, broken as this says.
    pub(crate) reader_broken: Option<Broken>,
    /// Broken client: a transaction's entries appended (and synced) one by one.
    pub(crate) split_txn: bool,
    /// Always inject faults (else: one generation in three).
    pub(crate) always_faults: bool,
    /// Inject only this fault (else: any).
    pub(crate) fault: Option<Fault>,
    pub(crate) gens: u32,
    pub(crate) points_per_gen: usize,
    pub(crate) seeds_per_point: u64,
}

impl Setup {
    pub(crate) fn new(engine: Engine) -> Setup {
        Setup {
            engine,
            broken: None,
            reader_broken: None,
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

    pub(crate) fn storage(&self, sim: &SimStorage) -> SharedStorage {
        match self.broken {
            Some(b) => BrokenStorage::wrap(sim.shared(), b),
            None => sim.shared(),
        }
    }

    pub(crate) fn log_options(&self, p: &Params, storage: SharedStorage) -> LogOptions {
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
pub(crate) struct Params {
    pub(crate) segment_size_bytes: u64,
    pub(crate) preallocate: bool,
    pub(crate) clients: u16,
    pub(crate) ops_per_client: u32,
    pub(crate) max_body: u64,
    pub(crate) truncate: bool,
}

impl Params {
    pub(crate) fn new(rng: &mut Rng, engine: Engine) -> Params {
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
pub(crate) struct Found {
    pub(crate) crash_points: u64,
    pub(crate) recovery_crashes: u64,
    pub(crate) flips: u64,
    /// Crash images whose recovery cut a torn tail.
    pub(crate) torn_tails: u64,
    pub(crate) violations: Vec<String>,
    pub(crate) kinds: Vec<&'static str>,
}

pub(crate) fn definite(e: &WalError) -> bool {
    matches!(
        e,
        WalError::Io { .. } | WalError::DiskFull { .. } | WalError::PermissionDenied { .. }
    )
}

/// A unit of client work: tags and payloads of one append or one transaction.
pub(crate) fn make_entries(
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
pub(crate) fn arm_faults(
    sim: &SimStorage,
    only: Option<Fault>,
    rng: &mut Rng,
    from: u64,
    span: u64,
) {
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
