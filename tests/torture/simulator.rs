//! The simulated disk itself: what it keeps, loses and tears at a power cut, and faults
//! striking at the chosen operation.

use crate::setup::DIR;
use crate::sim::check::recover;
use crate::sim::{Fault, SimStorage};
use actix_wal::LogWriter;
use actix_wal::{LogOptions, WalError};
use std::path::Path;

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
