//! The simulated disk's state: per file its durable content and the changes not yet
//! synced, per directory its durable entries and the changes not yet synced, and the
//! operations on them.

use super::ops::Fault;
use super::plan::{CrashPlan, Fate};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Whether a change has reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dur {
    /// Written, not synced: a crash keeps it, loses it or tears it.
    Pending,
    /// Synced: survives any crash.
    Synced,
    /// Its fsync failed (Linux marks the pages clean): never synced by a later fsync, and
    /// a crash keeps it, loses it or tears it.
    Lost,
}

#[derive(Debug, Clone)]
pub(crate) enum Change {
    Write {
        offset: u64,
        data: Arc<[u8]>,
    },
    SetLen(u64),
    /// `fallocate` without KEEP_SIZE: extends the size to at least this, with zeros.
    Allocate(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct FileOp {
    /// Global order of the change, shared with directory changes (for prefix crashes).
    pub(crate) seq: u64,
    pub(crate) change: Change,
    pub(crate) dur: Dur,
}

/// A file: its durable base and the changes after it, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inode {
    pub(crate) base: Arc<Vec<u8>>,
    pub(crate) ops: Vec<FileOp>,
}

pub(crate) fn apply(buf: &mut Vec<u8>, change: &Change) {
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
    pub(crate) fn current(&self) -> Vec<u8> {
        let mut buf = self.base.as_ref().clone();
        for op in &self.ops {
            apply(&mut buf, &op.change);
        }
        buf
    }

    pub(crate) fn len(&self) -> u64 {
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
    pub(crate) fn sync(&mut self) {
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
    pub(crate) fn lose(&mut self) {
        for op in &mut self.ops {
            if op.dur == Dur::Pending {
                op.dur = Dur::Lost;
            }
        }
    }

    /// The content a power cut leaves.
    pub(crate) fn crash(&self, plan: &mut CrashPlan) -> Vec<u8> {
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
pub(crate) enum Entry {
    File(u64),
    Dir,
}

#[derive(Debug, Clone)]
pub(crate) enum DirChange {
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

pub(crate) fn apply_dir(entries: &mut BTreeMap<String, Entry>, change: &DirChange) {
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
pub(crate) struct DirNode {
    pub(crate) durable: BTreeMap<String, Entry>,
    pub(crate) current: BTreeMap<String, Entry>,
    pub(crate) pending: Vec<(u64, DirChange)>,
}

/// The whole file system at one moment. Cheap to clone: file contents are shared until
/// written (`Arc`), and changes since the last fsync are small.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) inodes: BTreeMap<u64, Inode>,
    pub(crate) dirs: BTreeMap<PathBuf, DirNode>,
    pub(crate) next_inode: u64,
    /// Mutating operations so far (the operation number of the next one).
    pub(crate) ops: u64,
    /// Global order of changes.
    pub(crate) seq: u64,
    /// Armed faults: (first operation number, fault, fault armed right after it fires).
    pub(crate) faults: Vec<(u64, Fault, Option<Fault>)>,
    /// From this operation number on, every mutating operation fails (the machine died).
    pub(crate) dead_from: Option<u64>,
}

pub(crate) fn root() -> PathBuf {
    PathBuf::from("/")
}

/// `/a/b` for `a/b`, `/a/b/`, `/a/./b`.
pub(crate) fn norm(p: &Path) -> PathBuf {
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

pub(crate) fn split(p: &Path) -> io::Result<(PathBuf, String)> {
    let p = norm(p);
    let name = p
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy()
        .into_owned();
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_else(root);
    Ok((parent, name))
}

pub(crate) fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", p.display()),
    )
}

pub(crate) fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl State {
    pub(crate) fn new() -> State {
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

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn lookup(&self, p: &Path) -> io::Result<Entry> {
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

    pub(crate) fn dir_mut(&mut self, p: &Path) -> io::Result<&mut DirNode> {
        match self.lookup(p)? {
            Entry::Dir => self.dirs.get_mut(&norm(p)).ok_or_else(|| not_found(p)),
            Entry::File(_) => Err(errno(rustix::io::Errno::NOTDIR)),
        }
    }

    pub(crate) fn file_op(&mut self, id: u64, change: Change) {
        let seq = self.next_seq();
        if let Some(inode) = self.inodes.get_mut(&id) {
            inode.ops.push(FileOp {
                seq,
                change,
                dur: Dur::Pending,
            });
        }
    }

    pub(crate) fn dir_op(&mut self, dir: &Path, change: DirChange) -> io::Result<()> {
        let seq = self.next_seq();
        let node = self.dir_mut(dir)?;
        apply_dir(&mut node.current, &change);
        node.pending.push((seq, change));
        Ok(())
    }

    /// The disk after a power cut, under `seed`.
    /// Global orders of the changes not yet synced, ascending.
    pub(crate) fn unsynced(&self) -> Vec<u64> {
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

    pub(crate) fn crash(&self, seed: u64) -> State {
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
