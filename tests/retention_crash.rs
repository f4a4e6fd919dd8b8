//! Cursors and retention under power loss, on the simulated disk ([`sim::SimStorage`]):
//! a crash before every mutating operation of a cursor advance, a cursor removal and a
//! checkpoint that a cursor and the retention policy hold back (and of the appends that
//! follow), several crash images each, recovery, then the check. Retention must never
//! remove what a cursor or the checkpoint still needs, also across a crash between the
//! `META` replace and the segment removals: every record from the recovered first LSN on
//! is there, no valid cursor lies below that first LSN, and the cursors, the checkpoint
//! and the first LSN are the values before the operation or after it (after, once it
//! answered). Teeth: the same workload on a disk whose `META` replaces never land is
//! caught.

mod sim;

use actix_wal::files::read_meta;
use actix_wal::{LogOptions, LogReader, LogWriter};
use actix_wal::{Lsn, RecoveryPolicy, SharedStorage, Storage, Wal, WalConfig};
use sim::broken::{Broken, BrokenStorage};
use sim::{mix, SimStorage, Snapshot};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const DIR: &str = "/wal";

/// Set by the teeth test that has retention remove segments before its `META` replace.
static REMOVE_FIRST: AtomicBool = AtomicBool::new(false);
/// One test at a time: the failpoint is global to the process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Turns the failpoint `retention::remove_before_meta` on or off (feature `failpoints`).
fn remove_before_meta(on: bool) {
    #[cfg(feature = "failpoints")]
    match on {
        true => fail::cfg("retention::remove_before_meta", "return").unwrap(),
        false => fail::remove("retention::remove_before_meta"),
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = on;
}
const BEFORE: u64 = 120;
const AFTER: u64 = 6;
const SEEDS_PER_POINT: u64 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// The cursor (at 30, the checkpoint at 100) advanced to 80.
    Advance,
    /// The cursor (at 30, the checkpoint at 100) removed.
    Remove,
    /// A checkpoint at 100 with the cursor at 60 and `retention_bytes` of two segments.
    HeldCheckpoint,
    /// A checkpoint at 100 with no cursor and `retention_bytes` of two segments.
    RetainedCheckpoint,
}

/// What the check compares: the first LSN, the checkpoint, the cursor's LSN (`None`: no
/// cursor).
type State = (u64, u64, Option<u64>);

fn old(i: u64) -> Vec<u8> {
    format!("old {i:04} ........................................").into_bytes()
}

fn new(i: u64) -> Vec<u8> {
    format!("new {i:04}").into_bytes()
}

fn options(storage: SharedStorage) -> LogOptions {
    LogOptions {
        segment_size_bytes: 1024,
        max_record_bytes: 256,
        preallocate: false,
        recovery_policy: RecoveryPolicy::TolerateTornTail,
        storage,
    }
}

fn config(storage: SharedStorage) -> WalConfig {
    let mut cfg = WalConfig::default()
        .segment_size_bytes(1024)
        .max_record_bytes(256)
        .preallocate(false)
        .retention_bytes(2048);
    cfg.storage = storage;
    cfg
}

async fn state(wal: &Wal) -> State {
    let s = wal.stats().await.unwrap();
    let c = wal.cursors().await.unwrap().first().map(|c| c.lsn.0);
    (s.first_lsn.0, s.checkpoint_lsn.0, c)
}

/// Runs the workload; returns the crash points (marked 0 before the operation answered,
/// `1 + k` once it had and `k` appends after it were acknowledged) and the states before
/// and after the operation.
fn run(op: Op, broken: Option<Broken>) -> (Vec<Snapshot>, State, State) {
    let remove_first = REMOVE_FIRST.load(Ordering::SeqCst);
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let storage = match broken {
        Some(b) => BrokenStorage::wrap_armed(sim.shared(), b, armed.clone()),
        None => sim.shared(),
    };
    let mark = Arc::new(AtomicU64::new(0));
    let probe = mark.clone();
    let sim2 = sim.clone();
    let states = Arc::new(Mutex::new(Vec::new()));
    let states2 = states.clone();
    actix::System::new().block_on(async move {
        let wal = Wal::open(DIR, config(storage)).await.unwrap();
        let c = match op {
            Op::RetainedCheckpoint => None,
            _ => Some(wal.cursor("c").await.unwrap()),
        };
        for i in 1..=BEFORE {
            assert_eq!(wal.append(old(i)).await.unwrap(), Lsn(i));
        }
        match (op, &c) {
            (Op::Advance | Op::Remove, Some(c)) => {
                c.advance(Lsn(30)).await.unwrap();
                wal.truncate_before(Lsn(100)).await.unwrap();
            }
            (Op::HeldCheckpoint, Some(c)) => c.advance(Lsn(60)).await.unwrap(),
            _ => {}
        }
        let before = state(&wal).await;
        states2.lock().unwrap().push(before);
        sim2.record(move || probe.load(Ordering::SeqCst));
        armed.store(true, Ordering::SeqCst);
        if remove_first {
            remove_before_meta(true);
        }
        match (op, c) {
            (Op::Advance, Some(c)) => c.advance(Lsn(80)).await.unwrap(),
            (Op::Remove, Some(c)) => c.remove().await.unwrap(),
            _ => {
                wal.truncate_before(Lsn(100)).await.unwrap();
            }
        }
        armed.store(false, Ordering::SeqCst);
        if remove_first {
            remove_before_meta(false);
        }
        mark.store(1, Ordering::SeqCst);
        let after = state(&wal).await;
        states2.lock().unwrap().push(after);
        for k in 0..AFTER {
            let lsn = BEFORE + 1 + k;
            assert_eq!(wal.append(new(lsn)).await.unwrap(), Lsn(lsn));
            mark.store(2 + k, Ordering::SeqCst);
        }
        wal.shutdown().await.unwrap();
    });
    let mut snaps = sim.take_snapshots();
    snaps.push(sim.snapshot(1 + AFTER));
    let s = states.lock().unwrap();
    (snaps, s[0], s[1])
}

/// Recovers a crash image and checks it; `Err` says what is wrong.
fn check(snap: &Snapshot, seed: u64, before: State, after: State) -> Result<(), String> {
    let disk = snap.crash(seed);
    let storage = disk.shared();
    let (_writer, _outcome) = LogWriter::open(Path::new(DIR), options(storage.clone()))
        .map_err(|e| format!("recovery: {e}"))?;
    let m = read_meta(storage.as_ref(), Path::new(DIR))
        .map_err(|e| format!("META: {e}"))?
        .ok_or("no META")?;
    let got: Vec<(u64, Vec<u8>)> = LogReader::open_with(DIR, storage, 256)
        .map_err(|e| format!("reader: {e}"))?
        .map(|r| r.map(|r| (r.lsn.0, r.payload)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("read: {e}"))?;
    let cursor = m.cursor("c").filter(|c| !c.invalidated).map(|c| c.lsn);
    let found: State = (m.first_lsn, m.checkpoint(), cursor);
    if let Some(c) = cursor {
        if c < m.first_lsn {
            return Err(format!("cursor at {c} below the first LSN {}", m.first_lsn));
        }
    }
    // Every record from the first LSN on, then some of the appends after the operation.
    let old_part: Vec<(u64, Vec<u8>)> = (m.first_lsn..=BEFORE).map(|i| (i, old(i))).collect();
    let k = got.len().saturating_sub(old_part.len()) as u64;
    let whole = got.len() >= old_part.len()
        && got[..old_part.len()] == old_part[..]
        && got[old_part.len()..]
            .iter()
            .zip(BEFORE + 1..)
            .all(|((l, p), i)| *l == i && *p == new(i));
    if !whole {
        let lsns: Vec<u64> = got.iter().map(|r| r.0).collect();
        return Err(format!(
            "first LSN {}: the log holds LSNs {lsns:?}",
            m.first_lsn
        ));
    }
    let ok = match snap.mark {
        0 => found == before || found == after,
        mark => found == after && k + 1 >= mark,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mark {}: (first, checkpoint, cursor) {found:?}, {k} new records; before {before:?}, after {after:?}",
            snap.mark
        ))
    }
}

/// Every crash point, `SEEDS_PER_POINT` images each; returns the images and the failures.
fn failures(op: Op, broken: Option<Broken>) -> (usize, Vec<String>, State, State) {
    let (snaps, before, after) = run(op, broken);
    let mut bad = Vec::new();
    let mut images = 0;
    for (i, snap) in snaps.iter().enumerate() {
        for s in 0..SEEDS_PER_POINT {
            images += 1;
            if let Err(e) = check(snap, mix(i as u64, s), before, after) {
                bad.push(format!("crash before op #{} ({}): {e}", snap.op, snap.desc));
            }
        }
    }
    (images, bad, before, after)
}

const OPS: [Op; 4] = [
    Op::Advance,
    Op::Remove,
    Op::HeldCheckpoint,
    Op::RetainedCheckpoint,
];

#[test]
fn a_crash_anywhere_in_a_cursor_change_or_a_retention_removal_keeps_what_is_needed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for op in OPS {
        let (images, bad, before, after) = failures(op, None);
        assert_ne!(before, after, "{op:?} changed nothing");
        assert!(
            before.0 < after.0,
            "{op:?}: the first LSN did not move: no removal tested"
        );
        assert!(images > 40, "{op:?}: only {images} crash images");
        assert!(
            bad.is_empty(),
            "{op:?}: {} of {images} images wrong:\n{}",
            bad.len(),
            bad.join("\n")
        );
        eprintln!("{op:?}: {images} crash images, all before or after ({before:?} -> {after:?})");
    }
}

#[test]
fn a_meta_replace_that_never_lands_is_caught() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for op in [Op::Advance, Op::HeldCheckpoint] {
        let (images, bad, ..) = failures(op, Some(Broken::MetaNotRenamed));
        assert!(
            !bad.is_empty(),
            "{op:?} with MetaNotRenamed went unnoticed in {images} images"
        );
        eprintln!(
            "{op:?} with MetaNotRenamed: caught in {} of {images} images, e.g. {}",
            bad.len(),
            bad[0]
        );
    }
}

/// The order the protocol forbids: segments removed before the `META` replace that lets
/// them go (failpoint `retention::remove_before_meta`). A crash between leaves a `META`
/// naming records that are gone: the check must see it.
#[cfg(feature = "failpoints")]
#[test]
fn removals_before_the_meta_replace_are_caught() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    REMOVE_FIRST.store(true, Ordering::SeqCst);
    for op in [Op::Advance, Op::RetainedCheckpoint] {
        let (images, bad, ..) = failures(op, None);
        assert!(
            !bad.is_empty(),
            "{op:?} removing before META went unnoticed in {images} images"
        );
        eprintln!(
            "{op:?} removing before META: caught in {} of {images} images, e.g. {}",
            bad.len(),
            bad[0]
        );
    }
    REMOVE_FIRST.store(false, Ordering::SeqCst);
    scenario.teardown();
}
