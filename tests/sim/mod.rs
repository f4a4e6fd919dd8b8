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

use actix_wal::storage::DirLock;
use actix_wal::{SharedStorage, Storage, StorageFile};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The unit a crash tears a write at: each 512-byte sector of an un-synced write survives,
/// is lost, reads as zeros or as garbage, independently of the others.
pub const SECTOR_BYTES: u64 = 512;

/// SplitMix64: a small, fast, seedable generator (no dependency, same stream everywhere).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// Derives a seed from two values (seed of a workload, number of a crash point, ...).
pub fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.rotate_left(17) ^ 0xA076_1D64_78BD_642F).next_u64()
}

/// A fault injected at the first operation of a compatible kind at or after a chosen
/// operation number. Each fires once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `write_all_at` fails with EIO and writes nothing.
    WriteError,
    /// `write_all_at` writes the first half of the buffer, then fails with EIO.
    ShortWrite,
    /// `write_all_at` writes the first third of the buffer, then fails with ENOSPC.
    NoSpace,
    /// `sync_data` / `sync_all` fails with EIO, with Linux's semantics: the file's pending
    /// writes are marked clean but never reach the disk (a crash keeps each, or not, at
    /// random), and a later fsync "succeeds" without writing them.
    SyncError,
    /// `sync_dir` fails with EIO; the directory's changes stay un-synced.
    DirSyncError,
}

impl Fault {
    fn strikes(self, op: OpKind) -> bool {
        match self {
            Fault::WriteError | Fault::ShortWrite | Fault::NoSpace => op == OpKind::Write,
            Fault::SyncError => matches!(op, OpKind::SyncData | OpKind::SyncAll),
            Fault::DirSyncError => op == OpKind::SyncDir,
        }
    }
}

/// The kinds of mutating operation; each gets an operation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `create_dir_all` that created something.
    MkDir,
    /// `create` (or `lock` creating its file).
    Create,
    /// `rename`.
    Rename,
    /// `remove`.
    Remove,
    /// `sync_dir`.
    SyncDir,
    /// `write_all_at`.
    Write,
    /// `set_len`.
    SetLen,
    /// `allocate`.
    Allocate,
    /// `sync_data`.
    SyncData,
    /// `sync_all`.
    SyncAll,
}

impl OpKind {
    /// Operations on directory entries (segment creation, removal, their fsync).
    pub fn is_namespace(self) -> bool {
        matches!(
            self,
            OpKind::MkDir | OpKind::Create | OpKind::Rename | OpKind::Remove | OpKind::SyncDir
        )
    }
}

/// One mutating operation, as the recorder and the trace describe it.
#[derive(Debug, Clone)]
pub struct OpDesc {
    /// Its kind.
    pub kind: OpKind,
    /// The path (or file name) it touched.
    pub path: String,
    /// Offset or length, where it has one.
    pub arg: u64,
}

impl fmt::Display for OpDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {} {}", self.kind, self.path, self.arg)
    }
}

/// Whether a change has reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dur {
    /// Written, not synced: a crash keeps it, loses it or tears it.
    Pending,
    /// Synced: survives any crash.
    Synced,
    /// Its fsync failed (Linux marks the pages clean): never synced by a later fsync, and
    /// a crash keeps it, loses it or tears it.
    Lost,
}

#[derive(Debug, Clone)]
enum Change {
    Write {
        offset: u64,
        data: Arc<[u8]>,
    },
    SetLen(u64),
    /// `fallocate` without KEEP_SIZE: extends the size to at least this, with zeros.
    Allocate(u64),
}

#[derive(Debug, Clone)]
struct FileOp {
    /// Global order of the change, shared with directory changes (for prefix crashes).
    seq: u64,
    change: Change,
    dur: Dur,
}

/// A file: its durable base and the changes after it, in order.
#[derive(Debug, Clone, Default)]
struct Inode {
    base: Arc<Vec<u8>>,
    ops: Vec<FileOp>,
}

fn apply(buf: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write { offset, data } => {
            let end = *offset as usize + data.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[*offset as usize..end].copy_from_slice(data);
        }
        Change::SetLen(len) => buf.resize(*len as usize, 0),
        Change::Allocate(len) => {
            if buf.len() < *len as usize {
                buf.resize(*len as usize, 0);
            }
        }
    }
}

impl Inode {
    /// What reads see: every change applied (the page cache).
    fn current(&self) -> Vec<u8> {
        let mut buf = self.base.as_ref().clone();
        for op in &self.ops {
            apply(&mut buf, &op.change);
        }
        buf
    }

    fn len(&self) -> u64 {
        let mut len = self.base.len() as u64;
        for op in &self.ops {
            len = match &op.change {
                Change::Write { offset, data } => len.max(offset + data.len() as u64),
                Change::SetLen(l) => *l,
                Change::Allocate(l) => len.max(*l),
            };
        }
        len
    }

    /// A successful fsync: pending changes become durable; the leading durable ones are
    /// folded into the base.
    fn sync(&mut self) {
        for op in &mut self.ops {
            if op.dur == Dur::Pending {
                op.dur = Dur::Synced;
            }
        }
        let done = self.ops.iter().take_while(|o| o.dur == Dur::Synced).count();
        if done > 0 {
            let base = Arc::make_mut(&mut self.base);
            for op in self.ops.drain(..done) {
                apply(base, &op.change);
            }
        }
    }

    /// A failed fsync: the pending changes are marked clean but not on disk.
    fn lose(&mut self) {
        for op in &mut self.ops {
            if op.dur == Dur::Pending {
                op.dur = Dur::Lost;
            }
        }
    }

    /// The content a power cut leaves.
    fn crash(&self, plan: &mut CrashPlan) -> Vec<u8> {
        let mut buf = self.base.as_ref().clone();
        for op in &self.ops {
            if op.dur == Dur::Synced {
                apply(&mut buf, &op.change);
                continue;
            }
            match plan.fate(op.seq) {
                Fate::Kept => apply(&mut buf, &op.change),
                Fate::Lost => {}
                Fate::Torn => plan.tear(&mut buf, &op.change),
            }
        }
        buf
    }
}

/// A directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Debug, Clone)]
enum DirChange {
    Link {
        name: String,
        entry: Entry,
    },
    Unlink {
        name: String,
    },
    Rename {
        from: String,
        to: String,
        entry: Entry,
    },
}

fn apply_dir(entries: &mut BTreeMap<String, Entry>, change: &DirChange) {
    match change {
        DirChange::Link { name, entry } => {
            entries.insert(name.clone(), *entry);
        }
        DirChange::Unlink { name } => {
            entries.remove(name);
        }
        DirChange::Rename { from, to, entry } => {
            if entries.get(from) == Some(entry) {
                entries.remove(from);
            }
            entries.insert(to.clone(), *entry);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct DirNode {
    durable: BTreeMap<String, Entry>,
    current: BTreeMap<String, Entry>,
    pending: Vec<(u64, DirChange)>,
}

/// The whole file system at one moment. Cheap to clone: file contents are shared until
/// written (`Arc`), and changes since the last fsync are small.
#[derive(Debug, Clone)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, DirNode>,
    next_inode: u64,
    /// Mutating operations so far (the operation number of the next one).
    ops: u64,
    /// Global order of changes.
    seq: u64,
    /// Armed faults: (first operation number, fault, fault armed right after it fires).
    faults: Vec<(u64, Fault, Option<Fault>)>,
    /// From this operation number on, every mutating operation fails (the machine died).
    dead_from: Option<u64>,
}

fn root() -> PathBuf {
    PathBuf::from("/")
}

/// `/a/b` for `a/b`, `/a/b/`, `/a/./b`.
fn norm(p: &Path) -> PathBuf {
    let mut out = root();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn split(p: &Path) -> io::Result<(PathBuf, String)> {
    let p = norm(p);
    let name = p
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy()
        .into_owned();
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_else(root);
    Ok((parent, name))
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", p.display()),
    )
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl State {
    fn new() -> State {
        let mut dirs = BTreeMap::new();
        dirs.insert(root(), DirNode::default());
        State {
            inodes: BTreeMap::new(),
            dirs,
            next_inode: 1,
            ops: 0,
            seq: 0,
            faults: Vec::new(),
            dead_from: None,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn lookup(&self, p: &Path) -> io::Result<Entry> {
        let p = norm(p);
        if p == root() {
            return Ok(Entry::Dir);
        }
        let (parent, name) = split(&p)?;
        self.dirs
            .get(&parent)
            .and_then(|d| d.current.get(&name).copied())
            .ok_or_else(|| not_found(&p))
    }

    fn dir_mut(&mut self, p: &Path) -> io::Result<&mut DirNode> {
        match self.lookup(p)? {
            Entry::Dir => self.dirs.get_mut(&norm(p)).ok_or_else(|| not_found(p)),
            Entry::File(_) => Err(errno(rustix::io::Errno::NOTDIR)),
        }
    }

    fn file_op(&mut self, id: u64, change: Change) {
        let seq = self.next_seq();
        if let Some(inode) = self.inodes.get_mut(&id) {
            inode.ops.push(FileOp {
                seq,
                change,
                dur: Dur::Pending,
            });
        }
    }

    fn dir_op(&mut self, dir: &Path, change: DirChange) -> io::Result<()> {
        let seq = self.next_seq();
        let node = self.dir_mut(dir)?;
        apply_dir(&mut node.current, &change);
        node.pending.push((seq, change));
        Ok(())
    }

    /// The disk after a power cut, under `seed`.
    /// Global orders of the changes not yet synced, ascending.
    fn unsynced(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .inodes
            .values()
            .flat_map(|i| i.ops.iter().filter(|o| o.dur != Dur::Synced).map(|o| o.seq))
            .chain(
                self.dirs
                    .values()
                    .flat_map(|d| d.pending.iter().map(|(seq, _)| *seq)),
            )
            .collect();
        seqs.sort_unstable();
        seqs
    }

    fn crash(&self, seed: u64) -> State {
        let mut plan = CrashPlan::new(seed, &self.unsynced());
        // Directory entries first (in path order, deterministic), then reachability.
        let mut entries: BTreeMap<PathBuf, BTreeMap<String, Entry>> = BTreeMap::new();
        for (path, node) in &self.dirs {
            let mut e = node.durable.clone();
            for (seq, change) in &node.pending {
                match plan.fate(*seq) {
                    Fate::Kept => apply_dir(&mut e, change),
                    Fate::Lost => {}
                    // A namespace change is atomic: torn means kept or lost.
                    Fate::Torn => {
                        if plan.rng.chance(1, 2) {
                            apply_dir(&mut e, change)
                        }
                    }
                }
            }
            entries.insert(path.clone(), e);
        }
        let mut reachable = BTreeSet::new();
        let mut stack = vec![root()];
        while let Some(d) = stack.pop() {
            if !reachable.insert(d.clone()) {
                continue;
            }
            if let Some(e) = entries.get(&d) {
                for (name, entry) in e {
                    if *entry == Entry::Dir {
                        stack.push(d.join(name));
                    }
                }
            }
        }
        let mut out = State::new();
        out.next_inode = self.next_inode;
        let mut files = BTreeSet::new();
        for d in &reachable {
            let Some(e) = entries.remove(d) else { continue };
            for entry in e.values() {
                if let Entry::File(id) = entry {
                    files.insert(*id);
                }
            }
            out.dirs.insert(
                d.clone(),
                DirNode {
                    durable: e.clone(),
                    current: e,
                    pending: Vec::new(),
                },
            );
        }
        for id in files {
            if let Some(inode) = self.inodes.get(&id) {
                out.inodes.insert(
                    id,
                    Inode {
                        base: Arc::new(inode.crash(&mut plan)),
                        ops: Vec::new(),
                    },
                );
            }
        }
        out
    }
}

/// What happens to one un-synced change in a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Lost,
    Torn,
}

/// How a crash treats un-synced changes, chosen from its seed.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Nothing un-synced survives.
    Nothing,
    /// Everything written survives (what a process crash leaves).
    Everything,
    /// Changes before `cut` (global order) survive, the one at `cut` is torn: an ordered
    /// journal and an in-order disk.
    Prefix(u64),
    /// Each change is kept, lost or torn independently: any subset, out of order.
    Random { keep_per_8: u64 },
}

struct CrashPlan {
    mode: Mode,
    rng: Rng,
}

impl CrashPlan {
    /// A plan for a crash with these changes not yet synced.
    fn new(seed: u64, unsynced: &[u64]) -> CrashPlan {
        let mut rng = Rng::new(seed);
        let mode = match rng.below(8) {
            0 => Mode::Nothing,
            1 => Mode::Everything,
            // The cut falls on one of the un-synced changes (or after them all).
            2 | 3 => match unsynced.get(rng.below(unsynced.len() as u64 + 1) as usize) {
                Some(seq) => Mode::Prefix(*seq),
                None => Mode::Everything,
            },
            _ => Mode::Random {
                keep_per_8: rng.range(1, 6),
            },
        };
        CrashPlan { mode, rng }
    }

    fn fate(&mut self, seq: u64) -> Fate {
        match self.mode {
            Mode::Nothing => Fate::Lost,
            Mode::Everything => Fate::Kept,
            Mode::Prefix(cut) if seq < cut => Fate::Kept,
            Mode::Prefix(cut) if seq == cut => Fate::Torn,
            Mode::Prefix(_) => Fate::Lost,
            Mode::Random { keep_per_8 } => {
                if self.rng.chance(keep_per_8, 8) {
                    Fate::Kept
                } else if self.rng.chance(1, 3) {
                    Fate::Lost
                } else {
                    Fate::Torn
                }
            }
        }
    }

    /// A torn change. A write keeps its size change or not, and each sector it covers is
    /// kept, lost, zeroed or garbage. Bytes outside the write are never touched (sector
    /// writes are atomic: "powersafe overwrite"). A size change is kept or lost.
    fn tear(&mut self, buf: &mut Vec<u8>, change: &Change) {
        let Change::Write { offset, data } = change else {
            if self.rng.chance(1, 2) {
                apply(buf, change);
            }
            return;
        };
        let end = offset + data.len() as u64;
        if end > buf.len() as u64 && self.rng.chance(3, 4) {
            // The size reached the disk (the content below decides the bytes).
            buf.resize(end as usize, 0);
        }
        let mut pos = *offset;
        while pos < end {
            let sector_end = ((pos / SECTOR_BYTES) + 1) * SECTOR_BYTES;
            let stop = sector_end.min(end);
            let (a, b) = (pos as usize, stop as usize);
            if b <= buf.len() {
                let src = &data[a - *offset as usize..b - *offset as usize];
                match self.rng.below(8) {
                    0..=2 => buf[a..b].copy_from_slice(src),
                    3 | 4 => {}
                    5 => buf[a..b].fill(0),
                    _ => self.rng.fill(&mut buf[a..b]),
                }
            }
            pos = stop;
        }
    }
}

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

impl SimStorage {
    /// Creates (or truncates) a file; returns its inode.
    fn create_locked(s: &mut Shared, path: &Path) -> io::Result<u64> {
        let (parent, name) = split(path)?;
        s.state.dir_mut(&parent)?;
        SimStorage::begin(s, OpKind::Create, path, 0)?;
        match s.state.lookup(path) {
            Ok(Entry::File(id)) => {
                s.state.file_op(id, Change::SetLen(0));
                Ok(id)
            }
            Ok(Entry::Dir) => Err(errno(rustix::io::Errno::ISDIR)),
            Err(_) => {
                let id = s.state.next_inode;
                s.state.next_inode += 1;
                s.state.inodes.insert(id, Inode::default());
                s.state.dir_op(
                    &parent,
                    DirChange::Link {
                        name,
                        entry: Entry::File(id),
                    },
                )?;
                Ok(id)
            }
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = norm(dir);
        let mut s = self.lock_shared();
        let mut missing = Vec::new();
        let mut p = dir.clone();
        loop {
            match s.state.lookup(&p) {
                Ok(Entry::Dir) => break,
                Ok(Entry::File(_)) => return Err(errno(rustix::io::Errno::NOTDIR)),
                Err(_) => missing.push(p.clone()),
            }
            if !p.pop() {
                break;
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        SimStorage::begin(&mut s, OpKind::MkDir, &dir, 0)?;
        for d in missing.into_iter().rev() {
            let (parent, name) = split(&d)?;
            s.state.dirs.insert(d.clone(), DirNode::default());
            s.state.dir_op(
                &parent,
                DirChange::Link {
                    name,
                    entry: Entry::Dir,
                },
            )?;
        }
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock_shared().state.lookup(path)? == Entry::Dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.lock_shared();
        Ok(s.state.dir_mut(dir)?.current.keys().cloned().collect())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let id = SimStorage::create_locked(&mut self.lock_shared(), path)?;
        Ok(Box::new(SimFile {
            sim: self.clone(),
            id,
            name: path.to_path_buf(),
            writable: true,
        }))
    }

    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let s = self.lock_shared();
        match s.state.lookup(path)? {
            Entry::File(id) => Ok(Box::new(SimFile {
                sim: self.clone(),
                id,
                name: path.to_path_buf(),
                writable,
            })),
            Entry::Dir => Err(errno(rustix::io::Errno::ISDIR)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock_shared();
        let (dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        if dir != to_dir {
            return Err(errno(rustix::io::Errno::XDEV));
        }
        let entry = s.state.lookup(from)?;
        SimStorage::begin(&mut s, OpKind::Rename, to, 0)?;
        s.state.dir_op(
            &dir,
            DirChange::Rename {
                from: from_name,
                to: to_name,
                entry,
            },
        )
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock_shared();
        let (dir, name) = split(path)?;
        match s.state.lookup(path)? {
            Entry::File(_) => {}
            Entry::Dir => return Err(errno(rustix::io::Errno::ISDIR)),
        }
        SimStorage::begin(&mut s, OpKind::Remove, path, 0)?;
        s.state.dir_op(&dir, DirChange::Unlink { name })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock_shared();
        s.state.dir_mut(dir)?;
        if let Some(f) = SimStorage::begin(&mut s, OpKind::SyncDir, dir, 0)? {
            debug_assert_eq!(f, Fault::DirSyncError);
            return Err(errno(rustix::io::Errno::IO));
        }
        let node = s.state.dir_mut(dir)?;
        node.durable = node.current.clone();
        node.pending.clear();
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
        let p = norm(path);
        let mut s = self.lock_shared();
        if s.locks.contains(&p) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        if s.state.lookup(&p).is_err() {
            SimStorage::create_locked(&mut s, &p)?;
        }
        s.locks.insert(p.clone());
        Ok(Box::new(LockGuard {
            sim: self.clone(),
            path: p,
        }))
    }

    /// The lock belongs to the directory (keyed by its path: simulated directories are
    /// never replaced), so removing the lock file does not undo it; the file is still
    /// created, as on the real file system.
    fn lock_dir(&self, dir: &Path, lock_name: &str) -> io::Result<Box<dyn DirLock>> {
        let d = norm(dir);
        let mut s = self.lock_shared();
        s.state.dir_mut(&d)?;
        if s.locks.contains(&d) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        let file = d.join(lock_name);
        if s.state.lookup(&file).is_err() {
            SimStorage::create_locked(&mut s, &file)?;
        }
        s.locks.insert(d.clone());
        Ok(Box::new(SimDirLock(LockGuard {
            sim: self.clone(),
            path: d,
        })))
    }
}

/// The lock of a simulated directory.
struct SimDirLock(LockGuard);

impl fmt::Debug for SimDirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimDirLock({})", self.0.path.display())
    }
}

impl DirLock for SimDirLock {
    /// The directory must still be there (a renamed directory is not); a removed lock
    /// file is created again.
    fn verify(&self) -> io::Result<()> {
        let mut s = self.0.sim.lock_shared();
        let dir = &self.0.path;
        match s.state.lookup(dir) {
            Ok(Entry::Dir) if s.state.dirs.contains_key(dir) => {}
            _ => return Err(not_found(dir)),
        }
        let file = dir.join(actix_wal::log::segment::LOCK_FILE);
        if s.state.lookup(&file).is_err() {
            SimStorage::create_locked(&mut s, &file)?;
        }
        Ok(())
    }
}

/// An in-memory lock, released when dropped.
struct LockGuard {
    sim: SimStorage,
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.sim.lock_shared().locks.remove(&self.path);
    }
}

/// An open file of a [`SimStorage`]: it names the file's inode, so it keeps working after
/// the file is renamed or removed, as on Unix.
struct SimFile {
    sim: SimStorage,
    id: u64,
    name: PathBuf,
    writable: bool,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimFile({})", self.name.display())
    }
}

impl SimFile {
    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(errno(rustix::io::Errno::BADF))
        }
    }

    fn sync(&self, kind: OpKind) -> io::Result<()> {
        let mut s = self.sim.lock_shared();
        let fault = SimStorage::begin(&mut s, kind, &self.name, 0)?;
        let Some(inode) = s.state.inodes.get_mut(&self.id) else {
            return Ok(());
        };
        match fault {
            Some(f) => {
                debug_assert_eq!(f, Fault::SyncError);
                inode.lose();
                Err(errno(rustix::io::Errno::IO))
            }
            None => {
                inode.sync();
                Ok(())
            }
        }
    }
}

impl StorageFile for SimFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut s = self.sim.lock_shared();
        let fault = SimStorage::begin(&mut s, OpKind::Write, &self.name, offset)?;
        let (keep, err) = match fault {
            None => (buf.len(), None),
            Some(Fault::WriteError) => (0, Some(rustix::io::Errno::IO)),
            Some(Fault::ShortWrite) => (buf.len() / 2, Some(rustix::io::Errno::IO)),
            Some(Fault::NoSpace) => (buf.len() / 3, Some(rustix::io::Errno::NOSPC)),
            Some(f) => unreachable!("{f:?} does not strike writes"),
        };
        if keep > 0 {
            s.state.file_op(
                self.id,
                Change::Write {
                    offset,
                    data: Arc::from(&buf[..keep]),
                },
            );
        }
        match err {
            Some(e) => Err(errno(e)),
            None => Ok(()),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.sim.lock_shared();
        let data = s
            .state
            .inodes
            .get(&self.id)
            .map(Inode::current)
            .unwrap_or_default();
        let end = offset as usize + buf.len();
        if end > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end",
            ));
        }
        buf.copy_from_slice(&data[offset as usize..end]);
        Ok(())
    }

    fn size_bytes(&self) -> io::Result<u64> {
        let s = self.sim.lock_shared();
        Ok(s.state.inodes.get(&self.id).map_or(0, Inode::len))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut s = self.sim.lock_shared();
        SimStorage::begin(&mut s, OpKind::SetLen, &self.name, len)?;
        s.state.file_op(self.id, Change::SetLen(len));
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut s = self.sim.lock_shared();
        SimStorage::begin(&mut s, OpKind::Allocate, &self.name, len)?;
        s.state.file_op(self.id, Change::Allocate(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(OpKind::SyncData)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(OpKind::SyncAll)
    }

    /// Whether some directory entry still names this file's inode.
    fn is_linked(&self) -> io::Result<bool> {
        let s = self.sim.lock_shared();
        let id = Entry::File(self.id);
        Ok(s.state
            .dirs
            .values()
            .any(|d| d.current.values().any(|e| *e == id)))
    }
}
