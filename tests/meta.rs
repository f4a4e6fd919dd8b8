//! The metadata file (`META`, kept in two copies) under power loss, on the simulated disk
//! of tests/torture.rs ([`sim::SimStorage`]): a crash before any step of a replace leaves
//! at least one whole copy, holding the old value or the new one, never neither and never
//! a mix; once a replace has returned, both copies hold its value (so a single copy
//! damaged later still opens with it), and only its value (or a later one) survives; a
//! failed replace leaves the last acknowledged value or one of the values attempted since.
//! Broken replacers (one copy written in place, both copies written before either is
//! fsynced, retrying a failed fsync, no directory fsync for a new copy) must be caught by
//! the same checks.

mod sim;

use actix_wal::format::meta::{CursorMeta, LogMeta, MetaIntent};
use actix_wal::internals::meta::{
    read_meta, read_meta_copies, MetaStore, META_COPY_FILE, META_FILE, META_TMP_FILE,
};
use actix_wal::{SharedStorage, Storage, WalError};
use sim::broken::{Broken, BrokenStorage};
use sim::{mix, Fault, SimStorage, Snapshot};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const DIR: &str = "/log";
/// Values the workload writes, one replace each.
const VALUES: usize = 10;
/// Slot sizes of the values in turn: none, empty, and sizes around 512-byte sectors, so a
/// torn write tears inside the file.
const SLOT_BYTES: [Option<usize>; VALUES] = [
    None,
    Some(0),
    Some(100),
    Some(451),
    Some(452),
    Some(453),
    Some(1_500),
    Some(4_096),
    None,
    Some(20_000),
];

/// The `k`-th value written (`k` from 1); 0 is "no file yet". Every field differs from
/// every other value's, so a mix of two is never taken for either; each is a value a
/// writer may write (an intent agrees with the first LSN: `LogMeta::conflict`).
fn value(k: usize) -> Option<LogMeta> {
    if k == 0 {
        return None;
    }
    let k64 = k as u64;
    let (first_lsn, newest_lsn, intent) = match k % 3 {
        0 => (1_000 * k64, 1_000 * k64 + 7, MetaIntent::None),
        1 => (
            1_000 * k64,
            1_000 * k64 + 7,
            MetaIntent::TruncateAfter(1_000 * k64 + 31),
        ),
        _ => (1_000 * k64 + 37, 0, MetaIntent::Reset(1_000 * k64 + 37)),
    };
    // Every other value holds a cursor and a checkpoint above its first LSN (format
    // version 2, longer): replaces go between the two versions and lengths.
    let v2 = k.is_multiple_of(2);
    Some(LogMeta {
        seq: 0,
        first_lsn,
        newest_lsn,
        intent,
        slot: SLOT_BYTES[(k - 1) % VALUES].map(|n| (0..n).map(|i| (i * 7 + k) as u8).collect()),
        checkpoint_lsn: if v2 { first_lsn + 5 } else { first_lsn },
        cursors: match v2 {
            true => vec![CursorMeta {
                name: format!("cursor-{k}"),
                lsn: first_lsn + k64,
                invalidated: k.is_multiple_of(4),
            }],
            false => Vec::new(),
        },
        // Every third value has a slot generation (format version 3: the log may hold slot
        // frames), so replaces also go between version 3 and the others.
        slot_gen: if k.is_multiple_of(3) { k64 } else { 0 },
    })
}

/// Which of the values written `found` is (`seq` aside), if any.
fn which(found: &Option<LogMeta>) -> Option<usize> {
    let found = found.clone().map(|m| LogMeta { seq: 0, ..m });
    (0..=VALUES).find(|&k| value(k) == found)
}

/// How a replace is done: the real store, or a broken one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replacer {
    /// [`MetaStore::replace`].
    Store,
    /// Broken: only `META`, written in place (one copy).
    OneCopy,
    /// Broken: both copies written, then both fsynced (a crash may tear both).
    BothThenSync,
}

struct Writer {
    replacer: Replacer,
    storage: SharedStorage,
    store: Option<MetaStore>,
}

impl Writer {
    fn new(replacer: Replacer, storage: SharedStorage) -> Writer {
        let store = (replacer == Replacer::Store)
            .then(|| MetaStore::open_default(storage.clone(), DIR).expect("open the store"));
        Writer {
            replacer,
            storage,
            store,
        }
    }

    fn replace(&mut self, next: LogMeta, seq: u64) -> Result<(), WalError> {
        if let Some(store) = &mut self.store {
            return store.replace(next).map(|_| ());
        }
        let bytes = LogMeta { seq, ..next }
            .encode(u64::MAX)
            .expect("the values fit");
        let dir = Path::new(DIR);
        let io = |e| WalError::io("broken replace", DIR, e);
        let names: &[&str] = match self.replacer {
            Replacer::OneCopy => &[META_FILE],
            _ => &[META_COPY_FILE, META_FILE],
        };
        let mut files = Vec::new();
        for name in names {
            let f = self.storage.create(&dir.join(name)).map_err(io)?;
            f.write_all_at(&bytes, 0).map_err(io)?;
            files.push(f);
        }
        for f in files {
            f.sync_all().map_err(io)?;
        }
        self.storage.sync_dir(dir).map_err(io)
    }
}

/// One workload: `VALUES` replaces in turn, optionally with `fault` armed at operation
/// `fault_at`, on storage broken as `broken` says. Returns the crash points (a snapshot
/// before every mutating operation, and one at the end), marked with the number of
/// replaces finished so far, each replace's outcome, and a snapshot right after each
/// replace that returned `Ok` (marked with its number).
fn run(
    replacer: Replacer,
    broken: Option<Broken>,
    fault: Option<(u64, Fault)>,
) -> (Vec<Snapshot>, Vec<bool>, Vec<Snapshot>) {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let storage = match broken {
        Some(b) => BrokenStorage::wrap(sim.shared(), b),
        None => sim.shared(),
    };
    let mut writer = Writer::new(replacer, storage);
    if let Some((at, f)) = fault {
        sim.inject(sim.ops() + at, f);
    }
    let finished = Arc::new(AtomicU64::new(0));
    let probe = finished.clone();
    sim.record(move || probe.load(Ordering::SeqCst));
    let mut outcomes = Vec::new();
    let mut returned = Vec::new();
    for k in 1..=VALUES {
        let ok = writer.replace(value(k).unwrap(), k as u64).is_ok();
        outcomes.push(ok);
        if ok {
            returned.push(sim.snapshot(k as u64));
        }
        finished.fetch_add(1, Ordering::SeqCst);
    }
    let mut snapshots = sim.take_snapshots();
    snapshots.push(sim.snapshot(finished.load(Ordering::SeqCst)));
    (snapshots, outcomes, returned)
}

/// Crashes the disk right after each replace that returned `Ok` under `seeds` seeds: both
/// copies must be whole and hold its value, so that either alone opens with it.
fn check_returned(returned: &[Snapshot], seeds: u64) -> Result<u64, String> {
    let mut checked = 0;
    for snap in returned {
        let k = snap.mark as usize;
        for s in 0..seeds {
            let disk = snap.crash(mix(snap.op, s));
            let read = read_meta_copies(&disk, Path::new(DIR))
                .map_err(|e| format!("after replace {k} returned, seed {s}: {e}"))?;
            if !read.is_whole() || which(&read.meta) != Some(k) {
                return Err(format!(
                    "after replace {k} returned, seed {s}: copies {:?} / {:?}, value {:?}",
                    read.main,
                    read.copy,
                    which(&read.meta)
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// The values a crash may leave once `finished` replaces have returned: the last that
/// succeeded, any that failed since, and the one in flight.
fn allowed(finished: usize, outcomes: &[bool]) -> Vec<usize> {
    let last_ok = (1..=finished).rev().find(|&k| outcomes[k - 1]).unwrap_or(0);
    let mut out = vec![last_ok];
    out.extend((last_ok + 1..=finished).filter(|&k| !outcomes[k - 1]));
    if finished < VALUES {
        out.push(finished + 1);
    }
    out
}

/// What a check saw.
#[derive(Debug, Default)]
struct Seen {
    /// Crash points checked.
    checked: u64,
    /// Crashes during a replace that left the value before it.
    old: u64,
    /// Crashes during a replace that left its new value.
    new: u64,
}

/// Crashes every snapshot under `seeds` seeds and checks what `META` holds. On a crashed
/// image it also replaces once more with the real store and crashes again: a leftover
/// `META.tmp` or a half-done replace must not stop the next one. Returns what it saw, or
/// the first violation.
fn check(snapshots: &[Snapshot], outcomes: &[bool], seeds: u64) -> Result<Seen, String> {
    let mut seen = Seen::default();
    for snap in snapshots {
        let ok = allowed(snap.mark as usize, outcomes);
        for s in 0..seeds {
            let seed = mix(snap.op, s);
            let disk = snap.crash(seed);
            let found = read_meta(&disk, Path::new(DIR)).map_err(|e| {
                format!(
                    "crash before op {} ({}), seed {seed}: {e}",
                    snap.op, snap.desc
                )
            })?;
            match which(&found) {
                Some(k) if ok.contains(&k) => {
                    let in_flight = (snap.mark as usize) < VALUES;
                    seen.old += u64::from(in_flight && k == snap.mark as usize);
                    seen.new += u64::from(in_flight && k == snap.mark as usize + 1);
                }
                got => {
                    return Err(format!(
                        "crash before op {} ({}), seed {seed}: found value {got:?}, allowed {ok:?}",
                        snap.op, snap.desc
                    ))
                }
            }
            seen.checked += 1;
            if s == 0 {
                let mut store = MetaStore::open_default(disk.shared(), DIR)
                    .map_err(|e| format!("reopen after op {}: {e}", snap.op))?;
                let next = value((snap.op as usize % VALUES) + 1).unwrap();
                store
                    .replace(next.clone())
                    .map_err(|e| format!("replace after op {}: {e}", snap.op))?;
                let again = read_meta(&disk.crash(seed), Path::new(DIR))
                    .map_err(|e| format!("second crash after op {}: {e}", snap.op))?;
                if again.map(|m| LogMeta { seq: 0, ..m }) != Some(next) {
                    return Err(format!(
                        "a replace on the image crashed before op {} did not survive",
                        snap.op
                    ));
                }
            }
        }
    }
    Ok(seen)
}

const FAULTS: [Fault; 5] = [
    Fault::WriteError,
    Fault::ShortWrite,
    Fault::NoSpace,
    Fault::SyncError,
    Fault::DirSyncError,
];

/// Every fault at every operation of the workload. Returns the crash points checked and
/// the replaces that failed, or the first violation.
fn check_faults(replacer: Replacer, broken: Option<Broken>) -> Result<(u64, u64), String> {
    let (clean, _, _) = run(replacer, broken, None);
    let ops = clean.len() as u64;
    let (mut checked, mut failed) = (0, 0);
    for at in 0..ops {
        for fault in FAULTS {
            let (snapshots, outcomes, returned) = run(replacer, broken, Some((at, fault)));
            failed += outcomes.iter().filter(|ok| !**ok).count() as u64;
            checked += check(&snapshots, &outcomes, 2)
                .map_err(|e| format!("{fault:?} at op {at}: {e}"))?
                .checked;
            checked +=
                check_returned(&returned, 2).map_err(|e| format!("{fault:?} at op {at}: {e}"))?;
        }
    }
    Ok((checked, failed))
}

#[test]
fn a_crash_at_every_step_of_a_replace_leaves_the_old_or_the_new_value() {
    let (snapshots, outcomes, returned) = run(Replacer::Store, None, None);
    assert!(outcomes.iter().all(|ok| *ok));
    // Each replace is at least two writes, two truncations and two fsyncs.
    assert!(
        snapshots.len() > 5 * VALUES,
        "{} crash points",
        snapshots.len()
    );
    let seen = check(&snapshots, &outcomes, 24).unwrap();
    // Not vacuous: crashes during a replace left the old value and the new one.
    assert!(seen.old > 0 && seen.new > 0, "{seen:?}");
    let after = check_returned(&returned, 24).unwrap();
    assert_eq!(after, 24 * VALUES as u64);
    println!("{seen:?}, {after} images after a replace returned");
}

#[test]
fn a_failed_replace_leaves_the_last_acknowledged_value_or_an_attempted_one() {
    let (checked, failed) = check_faults(Replacer::Store, None).unwrap();
    assert!(failed > 0, "no fault struck a replace");
    println!("{checked} crash points checked, {failed} replaces failed");
}

/// Either check catches it; which one says how.
fn caught(replacer: Replacer, broken: Option<Broken>) -> String {
    let (snapshots, outcomes, returned) = run(replacer, broken, None);
    let err = check(&snapshots, &outcomes, 24)
        .err()
        .or_else(|| check_returned(&returned, 24).err())
        .unwrap_or_else(|| panic!("{replacer:?} {broken:?} went unnoticed"));
    println!("caught: {err}");
    err
}

#[test]
fn teeth_a_single_copy_written_in_place_is_caught() {
    caught(Replacer::OneCopy, None);
}

#[test]
fn teeth_both_copies_written_before_either_is_fsynced_is_caught() {
    caught(Replacer::BothThenSync, None);
}

#[test]
fn teeth_a_replace_without_the_directory_fsync_is_caught() {
    // A new copy's name never made durable: a crash may take both names.
    let err = caught(Replacer::Store, Some(Broken::SkipDirSync));
    assert!(
        err.contains("found value") || err.contains("copies"),
        "{err}"
    );
}

#[test]
fn teeth_a_retried_fsync_is_caught() {
    let err = check_faults(Replacer::Store, Some(Broken::RetryFsync)).unwrap_err();
    println!("caught: {err}");
}

#[test]
fn a_missing_file_reads_as_none_and_a_leftover_tmp_is_ignored() {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new(DIR)).unwrap();
    let tmp = sim.create(&Path::new(DIR).join(META_TMP_FILE)).unwrap();
    tmp.write_all_at(b"half a file", 0).unwrap();
    assert_eq!(read_meta(&sim, Path::new(DIR)).unwrap(), None);
    let mut store = MetaStore::open_default(sim.shared(), DIR).unwrap();
    assert!(store.current().is_none());
    store.update(|m| m.first_lsn = 9).unwrap();
    let names = sim.names(Path::new(DIR));
    assert!(
        names.contains(&META_FILE.to_string()) && names.contains(&META_COPY_FILE.to_string()),
        "{names:?}"
    );
    assert_eq!(
        read_meta(&sim, Path::new(DIR)).unwrap().unwrap().first_lsn,
        9
    );
}
