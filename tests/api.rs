//! The small API: what call sites write (`Commit::new` from any byte-like entries, `Lsn`
//! arithmetic), typed refusals (`SetMode(Degraded)`), and config knobs that do what their
//! docs say (`notify_to`, shrinking `segment_size_bytes`).

use actix::prelude::*;
use actix_wal::*;
use std::sync::{Arc, Mutex};

/// `Commit::new` takes any iterator of byte-like entries, as `Append::new` takes any
/// byte-like payload; the entries land in order at `first + i`.
#[actix::test]
async fn commit_new_takes_any_byte_like_entries() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let first = wal.send(Commit::new(["debit", "credit"])).await.unwrap();
    let second = wal
        .send(Commit::new([b"x".as_slice(), b"yz".as_slice()]))
        .await
        .unwrap();
    let third = wal
        .send(Commit::new(vec![String::from("s")]))
        .await
        .unwrap();
    let fourth = wal.commit(vec![b"v".to_vec()]).await.unwrap();
    assert_eq!(
        (first, second, third, fourth),
        (Lsn(1), Lsn(3), Lsn(5), Lsn(6))
    );
    // An empty transaction is still refused, typed.
    assert!(matches!(
        wal.send(Commit::new(Vec::<Vec<u8>>::new())).await,
        Err(WalError::InvalidTransaction { .. })
    ));
    assert!(matches!(
        wal.commit(vec![]).await,
        Err(WalError::InvalidTransaction { .. })
    ));
    wal.shutdown().await.unwrap();
    let payloads: Vec<Vec<u8>> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap().payload)
        .collect();
    let want: Vec<&[u8]> = vec![b"debit", b"credit", b"x", b"yz", b"s", b"v"];
    assert_eq!(payloads, want);
}

#[test]
fn lsn_arithmetic() {
    let first = Lsn(41);
    assert_eq!(first + 2, Lsn(43));
    let mut l = first;
    l += 3;
    assert_eq!(l, Lsn(44));
    assert_eq!(first.checked_sub(41), Some(Lsn(0)));
    assert_eq!(first.checked_sub(42), None);
    assert_eq!(first.saturating_sub(100), Lsn(0));
    assert_eq!(Lsn(1).prev(), Some(Lsn(0)));
    assert_eq!(Lsn(0).prev(), None);
    assert_eq!(Lsn(u64::MAX).checked_add(1), None);
    assert_eq!(Lsn(1).checked_add(1), Some(Lsn(2)));
}

/// Asking for degraded mode is refused with its own error, not "invalid configuration",
/// and changes nothing.
#[actix::test]
async fn set_mode_degraded_is_refused_with_its_own_error() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let e = wal.set_mode(WalMode::Degraded).await.unwrap_err();
    assert!(
        matches!(
            e,
            WalError::ModeNotSettable {
                requested: WalMode::Degraded
            }
        ),
        "{e:?}"
    );
    let stats = wal.stats().await.unwrap();
    assert_eq!(stats.mode, WalMode::Async);
    assert_eq!(wal.append(b"still fine".to_vec()).await.unwrap(), Lsn(1));
    wal.shutdown().await.unwrap();
}
