//! Opening a log on a full disk (issue 20, item 8): recovery writes nothing when nothing
//! changed, so a log whose disk filled up opens (and reads) instead of failing with
//! `DiskFull` because recovery rewrote `META`. On the simulated disk: every write from the
//! reopen on fails with ENOSPC.

mod sim;

use actix_wal::{Lsn, Storage, Wal, WalConfig, WalError};
use sim::{Fault, SimStorage};
use std::path::Path;

const DIR: &str = "/wal";

fn config(sim: &SimStorage) -> WalConfig {
    let mut cfg = WalConfig::default()
        .segment_size_bytes(1024)
        .max_record_bytes(256)
        .preallocate(false);
    cfg.storage = sim.shared();
    cfg
}

#[test]
fn a_clean_log_opens_on_a_full_disk() {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new(DIR)).unwrap();
    actix::System::new().block_on(async {
        let wal = Wal::open(DIR, config(&sim)).await.unwrap();
        for i in 1..=40u64 {
            assert_eq!(wal.append(vec![i as u8; 40]).await.unwrap(), Lsn(i));
        }
        wal.set_meta(b"vote".to_vec()).await.unwrap();
        wal.truncate_before(Lsn(12)).await.unwrap();
        wal.shutdown().await.unwrap();
    });
    // From here the disk is full: every write fails with ENOSPC.
    let from = sim.ops();
    for k in 0..64 {
        sim.inject(from + k, Fault::NoSpace);
    }
    actix::System::new().block_on(async {
        let wal = match Wal::open(DIR, config(&sim)).await {
            Ok(wal) => wal,
            Err(e) => panic!("open on a full disk failed: {e}"),
        };
        let report = wal.recovery_report().clone();
        assert_eq!(report.first_lsn, Lsn(12), "{report:?}");
        assert_eq!(report.next_lsn, Lsn(41), "{report:?}");
        assert_eq!(wal.meta().as_deref(), Some(&b"vote"[..]));
        // The disk is still full: an append fails, typed.
        let err = wal.append(vec![0; 40]).await.unwrap_err();
        assert!(
            matches!(err, WalError::DiskFull { .. } | WalError::Poisoned { .. }),
            "{err}"
        );
        let _ = wal.shutdown().await;
    });
}

/// The same on a real file system: a 2 MiB tmpfs filled up (appends until `DiskFull`,
/// then a filler file takes every byte left). Mounting needs root, as CI runs; otherwise
/// it says it skipped.
#[test]
fn a_log_on_a_full_tmpfs_opens() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path();
    let _mounted = mount_small_tmpfs(mnt).expect("mount a tmpfs (root needed)");
    let dir = mnt.join("wal");
    let cfg = || {
        WalConfig::default()
            .segment_size_bytes(256 << 10)
            .max_record_bytes(4096)
    };
    let acked = append_until_full(&dir, cfg(), Some(b"vote"), |_| vec![7u8; 4000]);
    assert!(acked > 10, "{acked}");
    take_every_byte_left(mnt);
    actix::System::new().block_on(async {
        let wal = match Wal::open(&dir, cfg()).await {
            Ok(wal) => wal,
            Err(e) => panic!("open on a full tmpfs failed: {e}"),
        };
        let report = wal.recovery_report().clone();
        assert_eq!(report.next_lsn, Lsn(acked + 1), "{report:?}");
        assert_eq!(wal.meta().as_deref(), Some(&b"vote"[..]));
        let records: Vec<_> = actix_wal::LogReader::open(&dir)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len() as u64, acked);
        let _ = wal.shutdown().await;
    });
}

/// Opens the log in `dir`, sets the slot to `vote` if given, appends `record(lsn)` for
/// each next LSN until an append fails with `DiskFull`, and shuts the log down; the last
/// LSN acknowledged.
fn append_until_full(
    dir: &Path,
    cfg: WalConfig,
    vote: Option<&[u8]>,
    record: impl Fn(u64) -> Vec<u8>,
) -> u64 {
    actix::System::new().block_on(async {
        let wal = Wal::open(dir, cfg).await.unwrap();
        if let Some(vote) = vote {
            wal.set_meta(vote.to_vec()).await.unwrap();
        }
        let mut acked = 0u64;
        loop {
            match wal.append(record(acked + 1)).await {
                Ok(lsn) => acked = lsn.0,
                Err(WalError::DiskFull { .. }) => break,
                Err(e) => panic!("append: {e}"),
            }
            assert!(acked < 10_000, "the disk never filled");
        }
        let _ = wal.shutdown().await;
        acked
    })
}

/// A file in `mnt` that takes every byte left on its file system.
fn take_every_byte_left(mnt: &Path) {
    let mut filler = std::fs::File::create(mnt.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    let _ = std::io::Write::write_all(&mut filler, &[0]);
}

/// Whether this process runs as root (`id -u` says 0).
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Mounts a 2 MiB tmpfs on `mnt` (unmounted when the guard drops), or None when this
/// process may not mount (not root: CI runs as root).
fn mount_small_tmpfs(mnt: &Path) -> Option<impl Drop + '_> {
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(mnt)
        .status()
        .ok()?;
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    mounted.success().then_some(Unmount(mnt))
}

/// A log fills its disk, closes, and opens again: the checkpoint that the `DiskFull`
/// alert tells the operator to take must run and free space, and appends must go on.
/// (A probe on a 2 MiB tmpfs: the first replace of `META` after an open builds `META.tmp`,
/// which needs a page the disk no longer had, so `truncate_before` failed with `DiskFull`
/// after every reopen and the log could never free space itself.)
#[test]
fn a_checkpoint_frees_space_on_a_full_tmpfs_after_a_reopen() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path();
    let _mounted = mount_small_tmpfs(mnt).expect("mount a tmpfs as root");
    let dir = mnt.join("wal");
    let cfg = || {
        WalConfig::default()
            .segment_size_bytes(64 << 10)
            .max_record_bytes(4096)
    };
    let acked = append_until_full(&dir, cfg(), None, |lsn| vec![(lsn - 1) as u8; 4000]);
    assert!(acked > 100, "{acked}");
    take_every_byte_left(mnt);
    let checkpoint = acked - 10;
    actix::System::new().block_on(async {
        let wal = Wal::open(&dir, cfg()).await.unwrap();
        let removed = match wal.truncate_before(Lsn(checkpoint)).await {
            Ok(n) => n,
            Err(e) => panic!("the checkpoint on a full disk: {e}"),
        };
        assert!(removed > 0, "no segment removed");
        // The segment being written may need the room freed first: a few tries.
        let mut next = None;
        for _ in 0..50 {
            match wal.append(b"after".to_vec()).await {
                Ok(lsn) => {
                    next = Some(lsn);
                    break;
                }
                Err(WalError::DiskFull { .. }) => {
                    actix_rt::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Err(e) => panic!("append after the checkpoint: {e}"),
            }
        }
        assert_eq!(next, Some(Lsn(acked + 1)), "no append after the checkpoint");
        for lsn in checkpoint..=acked {
            let r = wal.read(Lsn(lsn)).await.unwrap();
            assert_eq!(r.payload, vec![(lsn - 1) as u8; 4000], "LSN {lsn}");
        }
        wal.shutdown().await.unwrap();
    });
}
