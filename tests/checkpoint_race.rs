//! The checkpoint never moves back while the flusher's spare helper raises `META`'s
//! newest-segment LSN at the same time (issue 20, item 4's long run: a below-checkpoint
//! violation). Both replace `META` under one lock, but each published its value after it
//! let the lock go, so a raise could publish a value older than a checkpoint's replace
//! that came after it; `truncate_before` then read that stale first LSN, took a lower
//! checkpoint for a higher one, and wrote it: records below the acknowledged checkpoint
//! came back.

mod sim;

use actix_wal::files::read_meta;
use actix_wal::LogDir;
use actix_wal::Lsn;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Rounds of "checkpoint at 2k, then ask for 2k - 1" against a thread raising N as fast
/// as it can; after every round `META` on disk, and the value `SharedMeta::current`
/// publishes, must hold at least 2k. (A race: on 2 busy cores the unfixed code failed in
/// the first few thousand rounds.)
#[test]
fn a_checkpoint_never_moves_back_while_the_newest_segment_lsn_is_raised() {
    const ROUNDS: u64 = 20_000;
    let dir = Path::new("/wal");
    let sim = sim::SimStorage::new();
    let log = Arc::new(LogDir::open(dir, sim.shared()).unwrap());
    log.meta_store().reload().unwrap();
    log.meta_store()
        .update(|m| {
            m.first_lsn = 1;
            m.newest_lsn = 0;
        })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let raiser = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) {
                log.meta_store().raise_newest(n).unwrap();
                n += 1;
            }
        })
    };
    let mut lowered = Vec::new();
    for k in 1..=ROUNDS {
        log.truncate_before(Lsn(2 * k)).unwrap();
        log.truncate_before(Lsn(2 * k - 1)).unwrap();
        let on_disk = read_meta(sim.shared().as_ref(), dir)
            .unwrap()
            .unwrap()
            .first_lsn;
        let published = log.meta_store().current().unwrap().first_lsn;
        if on_disk < 2 * k || published < 2 * k {
            lowered.push((k, on_disk, published));
            if lowered.len() > 5 {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    raiser.join().unwrap();
    assert!(
        lowered.is_empty(),
        "checkpoint at 2k, then 2k - 1 asked for: META's first LSN went back: {lowered:?} (k, on disk, published)"
    );
}
