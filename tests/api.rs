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

/// Notifications received: token and result.
type Acks = Arc<Mutex<Vec<(u64, Result<Lsn, WalError>)>>>;

struct Collector(Acks);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<DurabilityReply> for Collector {
    type Result = ();
    fn handle(&mut self, msg: DurabilityReply, _: &mut Self::Context) {
        self.0.lock().unwrap().push((msg.token, msg.result));
    }
}

/// Answered after every notification sent before it (one mailbox, in order).
#[derive(Message)]
#[rtype(result = "()")]
struct Sync;

impl Handler<Sync> for Collector {
    type Result = ();
    fn handle(&mut self, _: Sync, _: &mut Self::Context) {}
}

/// `notify_to` gets a notification for every append and commit that names no recipient of
/// its own, durable or buffered, with its LSN as the token; one that names its own goes
/// only there.
#[actix::test]
async fn notify_to_receives_notifications_for_appends_without_their_own() {
    let d = tempfile::tempdir().unwrap();
    let (default_acks, own_acks) = (Acks::default(), Acks::default());
    let default_to = Collector(default_acks.clone()).start();
    let own_to = Collector(own_acks.clone()).start();
    let cfg = WalConfig {
        notify_to: Some(default_to.clone().recipient()),
        ..WalConfig::default()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.append(b"durable".to_vec()).await.unwrap(), Lsn(1));
    let buffered = Append::new(b"buffered".to_vec()).durability(Durability::Buffered);
    assert_eq!(wal.send(buffered).await.unwrap(), Lsn(2));
    assert_eq!(
        wal.commit(vec![b"a".to_vec(), b"b".to_vec()])
            .await
            .unwrap(),
        Lsn(3)
    );
    let own = Append::new(b"own".to_vec()).notify(own_to.clone().recipient(), 777);
    assert_eq!(wal.send(own).await.unwrap(), Lsn(5));
    assert_eq!(wal.flush().await.unwrap(), Lsn(5));
    default_to.send(Sync).await.unwrap();
    own_to.send(Sync).await.unwrap();

    let mut got = default_acks.lock().unwrap().clone();
    got.sort_by_key(|(token, _)| *token);
    let got: Vec<(u64, Lsn)> = got.into_iter().map(|(t, r)| (t, r.unwrap())).collect();
    assert_eq!(got, vec![(1, Lsn(1)), (2, Lsn(2)), (3, Lsn(3))]);
    let own: Vec<(u64, Lsn)> = own_acks
        .lock()
        .unwrap()
        .iter()
        .map(|(t, r)| (*t, r.clone().unwrap()))
        .collect();
    assert_eq!(own, vec![(777, Lsn(5))]);
    wal.shutdown().await.unwrap();
}
