//! A log is private: its files are created 0600 and its directories 0700 whatever the
//! umask (0640 and 0750 with `WalConfig::group_read`), so another local user reads no
//! record and no Raft vote. Files renamed into place (`META` from `META.tmp`, a spare
//! segment adopted) carry the mode they were created with.
//!
//! The umask is per process, so every test here sets the one it needs while holding
//! [`UMASK`]; no other test binary shares this process.

use actix_wal::*;
use futures::executor::block_on;
use rustix::fs::Mode;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// Held while a test runs under the umask it set.
static UMASK: Mutex<()> = Mutex::new(());

/// Sets the process umask to `mask` for the rest of the test (the caller holds [`UMASK`]).
fn set_umask(mask: u32) {
    rustix::process::umask(Mode::from_raw_mode(mask));
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// A log with segments, a spare, `META` (with a slot) and `LOCK` in `parent/a/log`
/// (`a` is created by the log too), shut down cleanly. `parent` is made 0755 first:
/// `tempfile` makes its directories 0700, which would hide what the log's own modes do.
fn make_log(parent: &Path, cfg: WalConfig) -> std::path::PathBuf {
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = parent.join("a").join("log");
    let wal = Wal::open_blocking(&dir, cfg.segment_size_bytes(64 * 1024)).unwrap();
    block_on(async {
        for i in 0..200u32 {
            wal.append(vec![i as u8; 1_000]).await.unwrap();
        }
        wal.set_meta(b"vote: term 7, node 2".to_vec())
            .await
            .unwrap();
        wal.shutdown().await.unwrap();
    });
    dir
}

/// Every file in `dir` has mode `file`; `dir` and its parent `a` have mode `dirs`.
fn assert_modes(dir: &Path, file: u32, dirs: u32) {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(
            mode_of(&entry.path()),
            file,
            "{name} has mode {:o}",
            mode_of(&entry.path())
        );
        names.push(name);
    }
    for n in ["META", "LOCK"] {
        assert!(names.iter().any(|x| x == n), "no {n} among {names:?}");
    }
    assert!(
        names.iter().filter(|n| n.ends_with(".wal")).count() >= 3,
        "{names:?}"
    );
    assert_eq!(mode_of(dir), dirs, "log directory mode {:o}", mode_of(dir));
    let a = dir.parent().unwrap();
    assert_eq!(mode_of(a), dirs, "created parent mode {:o}", mode_of(a));
}

#[test]
fn new_log_files_are_private_whatever_the_umask() {
    let _g = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    set_umask(0);
    let d = tempfile::tempdir().unwrap();
    let dir = make_log(d.path(), WalConfig::default());
    assert_modes(&dir, 0o600, 0o700);
    // A reopen (META replaced at recovery, the spare adopted or made again) keeps them.
    let wal = Wal::open_blocking(&dir, WalConfig::default().segment_size_bytes(64 * 1024)).unwrap();
    block_on(async {
        wal.append(b"more".to_vec()).await.unwrap();
        wal.set_meta(b"vote: term 8".to_vec()).await.unwrap();
        wal.shutdown().await.unwrap();
    });
    assert_modes(&dir, 0o600, 0o700);
}

#[test]
fn group_read_gives_0640_and_0750_whatever_the_umask() {
    let _g = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    // A umask that would take the group's bits away: the modes are set, not masked.
    set_umask(0o077);
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        group_read: true,
        ..WalConfig::default()
    };
    let dir = make_log(d.path(), cfg);
    assert_modes(&dir, 0o640, 0o750);
    set_umask(0o022);
}

/// `cat` run as `nobody` (no groups): whether it could read `path`. We run as root,
/// which ignores modes, so the read must be tried as another user.
fn nobody_can_read(path: &Path) -> bool {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat"])
        .arg(path)
        .output()
        .expect("setpriv runs")
        .status
        .success()
}

#[test]
fn nobody_cannot_read_the_log() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run a command as nobody");
        return;
    }
    let _g = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    set_umask(0o022);
    let d = tempfile::tempdir().unwrap();
    let dir = make_log(d.path(), WalConfig::default());
    // Teeth: a file the usual umask leaves readable, beside the log, is read as nobody.
    let open = d.path().join("open.txt");
    std::fs::write(&open, b"readable").unwrap();
    assert!(
        nobody_can_read(&open),
        "setpriv cannot read even an open file"
    );
    for name in ["META", "00000000000000000001.wal"] {
        assert!(!nobody_can_read(&dir.join(name)), "nobody read {name}");
    }
}
