//! `SimStorage`: an in-memory file system that forgets what was not fsynced, for the
//! power-loss tests (tests/torture.rs, tests/model.rs). See docs/testing.md for the fault
//! model.
//!
//! It plugs into the same seam as the real file system ([`actix_wal::Storage`]) and keeps,
//! per file, the durable content and the changes not yet synced; per directory, the durable
//! entries and the creations, renames and removals not yet synced. [`SimStorage::crash`]
//! builds the disk a power cut leaves behind; faults (write error, short write, ENOSPC,
//! fsync error with Linux's semantics) strike at a chosen operation number; and a recorder
//! keeps the state before every mutating operation, so one run yields a crash point per
//! operation.
//!
//! Shared by several test binaries through `mod sim;`; each uses part of it.
#![allow(dead_code)]

pub mod broken;
pub mod check;
pub mod oracle;
pub mod slot_check;

mod files;
mod image;
mod ops;
mod plan;
mod rng;
mod state;

// Each test binary uses part of these.
#[allow(unused_imports)]
pub use ops::{Fault, OpDesc, OpKind};
#[allow(unused_imports)]
pub use rng::{mix, Rng};

use actix_wal::SharedStorage;
use state::{errno, norm, Entry, Inode, State};
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The unit a crash tears a write at: each 512-byte sector of an un-synced write survives,
/// is lost, reads as zeros or as garbage, independently of the others.
pub const SECTOR_BYTES: u64 = 512;

/// The state before one mutating operation of a recorded run: a crash point.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The operation's number.
    pub op: u64,
    /// The operation about to run.
    pub desc: OpDesc,
    /// What the recorder's probe returned at that moment (e.g. how many acknowledgements
    /// the workload had seen).
    pub mark: u64,
    state: State,
}

impl Snapshot {
    /// The disk a power cut at this point leaves, under `seed`.
    pub fn crash(&self, seed: u64) -> SimStorage {
        SimStorage::from_state(self.state.crash(seed))
    }
}

type Probe = Arc<dyn Fn() -> u64 + Send + Sync>;

struct Recorder {
    probe: Probe,
    snapshots: Vec<Snapshot>,
}

struct Shared {
    state: State,
    locks: HashSet<PathBuf>,
    recorder: Option<Recorder>,
    /// The last operations, for failure reports.
    trace: std::collections::VecDeque<(u64, OpDesc)>,
}

const TRACE_OPS: usize = 64;

/// The simulated file system. Clones share it.
#[derive(Clone)]
pub struct SimStorage {
    shared: Arc<Mutex<Shared>>,
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimStorage")
    }
}

impl Default for SimStorage {
    fn default() -> Self {
        SimStorage::new()
    }
}

impl SimStorage {
    /// An empty file system (just `/`).
    pub fn new() -> SimStorage {
        SimStorage::from_state(State::new())
    }

    fn from_state(state: State) -> SimStorage {
        SimStorage {
            shared: Arc::new(Mutex::new(Shared {
                state,
                locks: HashSet::new(),
                recorder: None,
                trace: Default::default(),
            })),
        }
    }

    fn lock_shared(&self) -> MutexGuard<'_, Shared> {
        jitter();
        // A panic while holding the lock (in a test) leaves consistent state: every change
        // is made in one step.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This file system as the log's storage.
    pub fn shared(&self) -> SharedStorage {
        Arc::new(self.clone())
    }

    /// The disk after a power cut now, under `seed`: a new file system (no locks, no
    /// faults, no recorder) in which every change is durable.
    pub fn crash(&self, seed: u64) -> SimStorage {
        SimStorage::from_state(self.lock_shared().state.crash(seed))
    }

    /// An independent copy of this file system, un-synced changes included.
    pub fn fork(&self) -> SimStorage {
        let s = self.lock_shared();
        let mut state = s.state.clone();
        state.faults.clear();
        state.dead_from = None;
        SimStorage::from_state(state)
    }

    /// Mutating operations so far: the number the next one gets.
    pub fn ops(&self) -> u64 {
        self.lock_shared().state.ops
    }

    /// Arms `fault` at the first compatible operation numbered `op` or later.
    pub fn inject(&self, op: u64, fault: Fault) {
        self.lock_shared().state.faults.push((op, fault, None));
    }

    /// Arms `first` as [`Self::inject`] does, and `then` right after `first` fires (at the
    /// next compatible operation): e.g. an fsync error, then a failed write of the rewrite.
    pub fn inject_chain(&self, op: u64, first: Fault, then: Fault) {
        self.lock_shared()
            .state
            .faults
            .push((op, first, Some(then)));
    }

    /// The crash point "now", marked `mark`.
    pub fn snapshot(&self, mark: u64) -> Snapshot {
        let s = self.lock_shared();
        Snapshot {
            op: s.state.ops,
            desc: OpDesc {
                kind: OpKind::SyncDir,
                path: "(end of run)".into(),
                arg: 0,
            },
            mark,
            state: s.state.clone(),
        }
    }

    /// Disarms every fault not yet fired, and revives a dead machine.
    pub fn disarm(&self) {
        let mut s = self.lock_shared();
        s.state.faults.clear();
        s.state.dead_from = None;
    }

    /// From operation `op` on, every mutating operation fails with EIO.
    pub fn die_at(&self, op: u64) {
        self.lock_shared().state.dead_from = Some(op);
    }

    /// Starts keeping a snapshot before every mutating operation; `probe` is called (with
    /// the file system locked) to mark each.
    pub fn record(&self, probe: impl Fn() -> u64 + Send + Sync + 'static) {
        self.lock_shared().recorder = Some(Recorder {
            probe: Arc::new(probe),
            snapshots: Vec::new(),
        });
    }

    /// Stops recording and returns the snapshots.
    pub fn take_snapshots(&self) -> Vec<Snapshot> {
        self.lock_shared()
            .recorder
            .take()
            .map(|r| r.snapshots)
            .unwrap_or_default()
    }

    /// The last mutating operations, oldest first.
    pub fn trace(&self) -> Vec<String> {
        self.lock_shared()
            .trace
            .iter()
            .map(|(n, d)| format!("#{n} {d}"))
            .collect()
    }

    /// The current content of a file, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock_shared();
        match s.state.lookup(path) {
            Ok(Entry::File(id)) => s.state.inodes.get(&id).map(Inode::current),
            _ => None,
        }
    }

    /// The names in a directory, sorted.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        let s = self.lock_shared();
        s.state
            .dirs
            .get(&norm(dir))
            .map(|d| d.current.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Flips one bit of a file, durably (damage at rest, not a write).
    pub fn flip_bit(&self, path: &Path, byte: u64, bit: u8) {
        let mut s = self.lock_shared();
        let Ok(Entry::File(id)) = s.state.lookup(path) else {
            panic!("flip_bit: no file {}", path.display())
        };
        let inode = s.state.inodes.get_mut(&id).expect("a linked inode exists");
        inode.sync();
        assert!(inode.ops.is_empty(), "flip_bit needs a fully synced file");
        Arc::make_mut(&mut inode.base)[byte as usize] ^= 1 << bit;
    }

    /// Starts a mutating operation: numbers it, records the crash point before it, and
    /// says whether it fails.
    fn begin(s: &mut Shared, kind: OpKind, path: &Path, arg: u64) -> io::Result<Option<Fault>> {
        let n = s.state.ops;
        s.state.ops += 1;
        let desc = OpDesc {
            kind,
            path: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            arg,
        };
        if let Some(rec) = &mut s.recorder {
            let mark = (rec.probe)();
            rec.snapshots.push(Snapshot {
                op: n,
                desc: desc.clone(),
                mark,
                state: s.state.clone(),
            });
        }
        if s.trace.len() == TRACE_OPS {
            s.trace.pop_front();
        }
        s.trace.push_back((n, desc));
        if s.state.dead_from.is_some_and(|d| n >= d) {
            return Err(errno(rustix::io::Errno::IO));
        }
        let hit = s
            .state
            .faults
            .iter()
            .position(|(at, f, _)| *at <= n && f.strikes(kind));
        Ok(hit.map(|i| {
            let (_, fault, then) = s.state.faults.remove(i);
            if let Some(then) = then {
                s.state.faults.push((n + 1, then, None));
            }
            fault
        }))
    }
}

/// `TORTURE_JITTER=1`: every operation on the simulated disk first sleeps now and then
/// (up to 300 us, one in eight), so that the threads of the actor pipeline (queue,
/// flusher, spare helper) interleave in orders a quiet machine rarely shows.
fn jitter() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    if !*ON.get_or_init(|| std::env::var_os("TORTURE_JITTER").is_some()) {
        return;
    }
    let x = mix(STATE.fetch_add(0x9E37_79B9, Ordering::Relaxed), 1);
    if x.is_multiple_of(8) {
        std::thread::sleep(std::time::Duration::from_micros((x >> 8) % 300));
    }
}
