//! A tail segment the log may not write is found at open, with a typed error naming it,
//! not by the first append poisoning the log (issue 20, item 9). "Read-only" takes
//! several forms: mode bits without write permission for a non-root owner (`EACCES`), the
//! immutable or append-only attribute (`EPERM`, root included), a read-only mount
//! (`EROFS`). Each refuses an open for writing, which is what the open now does with the
//! tail. Tests run as root, where mode bits stop nothing: the storage seam stands in for
//! every form, `chattr +i` shows the real immutable attribute (skipped where `chattr`
//! cannot set it), and a child process run as `nobody` (`setpriv`) shows real mode bits
//! (skipped where it cannot be started).

mod common;

use actix_wal::files::segment_name;
use actix_wal::*;
use actix_wal::{LogOptions, LogWriter};
use common::faulty::FaultyFs;
use common::segment_lsns;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const EPERM: i32 = 1;
const EACCES: i32 = 13;
const EROFS: i32 = 30;

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(4096)
        .max_record_bytes(256)
        .preallocate(false)
}

/// A log of `n` records over several segments, closed; returns its tail segment's path.
async fn closed_log(dir: &Path, n: u64) -> PathBuf {
    let wal = Wal::open(dir, small()).await.unwrap();
    for i in 1..=n {
        wal.append(format!("record {i:05}").into_bytes())
            .await
            .unwrap();
    }
    wal.shutdown().await.unwrap();
    let tail = *segment_lsns(dir).last().unwrap();
    dir.join(segment_name(tail))
}

/// The open failed with `PermissionDenied` naming the tail segment.
fn names_the_tail(r: &Result<impl std::fmt::Debug, WalError>, tail: &Path) {
    match r {
        Err(WalError::PermissionDenied { path, .. }) if path == tail => {}
        other => panic!(
            "expected PermissionDenied on {}, got {other:?}",
            tail.display()
        ),
    }
}

#[actix::test]
async fn a_tail_segment_that_refuses_writes_fails_the_open_typed() {
    for errno in [EACCES, EPERM, EROFS] {
        let d = tempfile::tempdir().unwrap();
        let tail = closed_log(d.path(), 300).await;
        let fs = FaultyFs::new();
        fs.fail_open_for_write(&tail.file_name().unwrap().to_string_lossy(), errno);
        let cfg = WalConfig {
            storage: fs.clone(),
            ..small()
        };
        let opened = Wal::open(d.path(), cfg.clone()).await;
        if let Ok(wal) = &opened {
            // What used to happen: the open succeeded and the first append failed.
            let first = wal.append(b"first".to_vec()).await;
            let health = wal.health().await.unwrap();
            panic!("errno {errno}: the open succeeded; first append {first:?}, health {health:?}");
        }
        names_the_tail(&opened, &tail);
        let opts = LogOptions {
            segment_size_bytes: 4096,
            max_record_bytes: 256,
            preallocate: false,
            storage: fs.clone() as Arc<dyn Storage>,
            ..LogOptions::default()
        };
        names_the_tail(&LogWriter::open(d.path(), opts), &tail);
        // Writable again: the log opens and goes on where it was.
        fs.heal();
        let wal = Wal::open(d.path(), cfg).await.unwrap();
        assert_eq!(wal.append(b"next".to_vec()).await.unwrap(), Lsn(301));
        wal.shutdown().await.unwrap();
    }
}

/// `chattr` on `path`; false if it could not be set (no `chattr`, not root, a file system
/// without the attribute).
fn chattr(flag: &str, path: &Path) -> bool {
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// Clears the attribute it was made for when dropped, so the test directory can go.
struct Attr<'a>(&'a str, &'a Path);

impl Drop for Attr<'_> {
    fn drop(&mut self) {
        chattr(&self.0.replace('+', "-"), self.1);
    }
}

#[actix::test]
async fn an_immutable_or_append_only_tail_fails_the_open_typed() {
    for flag in ["+i", "+a"] {
        let d = tempfile::tempdir().unwrap();
        let tail = closed_log(d.path(), 300).await;
        if !chattr(flag, &tail) {
            eprintln!("skipped: chattr {flag} cannot be set here");
            return;
        }
        let attr = Attr(flag, &tail);
        names_the_tail(&Wal::open(d.path(), small()).await, &tail);
        names_the_tail(&LogWriter::open(d.path(), LogOptions::default()), &tail);
        drop(attr);
        let wal = Wal::open(d.path(), small()).await.unwrap();
        assert_eq!(wal.append(b"next".to_vec()).await.unwrap(), Lsn(301));
        wal.shutdown().await.unwrap();
    }
}

/// Set for the child process of [`a_tail_without_write_permission_fails_the_open_of_its_non_root_owner`]:
/// the log directory it opens.
const CHILD_DIR: &str = "READ_ONLY_TAIL_CHILD_DIR";

#[actix::test]
async fn a_tail_without_write_permission_fails_the_open_of_its_non_root_owner() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let tail = closed_log(d.path(), 300).await;
    // Everything belongs to `nobody`, and the tail is r--r--r--.
    let (uid, gid) = (65534, 65534);
    let mut paths = vec![d.path().to_path_buf()];
    paths.extend(
        std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    if let Err(e) = paths
        .iter()
        .try_for_each(|p| std::os::unix::fs::chown(p, Some(uid), Some(gid)))
    {
        eprintln!("skipped: cannot give the log to nobody ({e}; needs root)");
        return;
    }
    std::fs::set_permissions(&tail, std::fs::Permissions::from_mode(0o444)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", "child_opens_the_log_as_nobody", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, d.path())
        .output();
    let out = match out {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("running 1 test") => out,
        other => {
            eprintln!("skipped: cannot run the child as nobody ({other:?})");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child as nobody: {text}");
    assert!(text.contains("open refused as expected"), "{text}");
}

/// The child half of the test above, run as `nobody` (ignored otherwise): the open of a
/// log whose tail its owner may not write fails `PermissionDenied` naming the tail.
#[actix::test]
#[ignore = "run as nobody by a_tail_without_write_permission_fails_the_open_of_its_non_root_owner"]
async fn child_opens_the_log_as_nobody() {
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR).expect("run by the parent test"));
    let tail = dir.join(segment_name(*segment_lsns(&dir).last().unwrap()));
    let opened = Wal::open(&dir, small()).await;
    if let Ok(wal) = &opened {
        let first = wal.append(b"first".to_vec()).await;
        panic!("the open succeeded; first append {first:?}");
    }
    names_the_tail(&opened, &tail);
    println!("open refused as expected: {:?}", opened.err());
}
