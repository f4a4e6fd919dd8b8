//! Durable named cursors (issue 22, item 3): `Wal::cursor`, `Cursor::advance`,
//! `Cursor::remove`, `Wal::cursors`. A cursor is created at the log's first LSN, survives
//! a restart where it was advanced, never moves back or past the durable end, is bounded
//! in number and name, follows a rewind and a reset, and works the same from tokio
//! (`open_standalone`). `META` holding cursors is format version 2, which an older build
//! refuses; without them it is version 1 again.

mod common;

use actix_wal::files::{read_meta, META_COPY_FILE, META_FILE};
use actix_wal::*;
use std::path::Path;

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(4096)
        .max_record_bytes(256)
        .preallocate(false)
}

async fn append_n(wal: &Wal, n: u64) -> Lsn {
    let mut last = Lsn(0);
    for i in 0..n {
        last = wal
            .append(format!("record {i}").into_bytes())
            .await
            .unwrap();
    }
    last
}

/// The version field of both copies of `META`.
fn meta_versions(dir: &Path) -> [u32; 2] {
    [META_FILE, META_COPY_FILE].map(|name| {
        let b = std::fs::read(dir.join(name)).unwrap();
        u32::from_le_bytes(b[8..12].try_into().unwrap())
    })
}

#[actix::test]
async fn a_cursor_survives_a_restart_where_it_was_advanced() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let c = wal.cursor("archiver").await.unwrap();
    assert_eq!(c.name(), "archiver");
    assert_eq!(c.lsn(), Lsn(1), "created at the log's first LSN");
    append_n(&wal, 10).await;
    c.advance(Lsn(7)).await.unwrap();
    assert_eq!(c.lsn(), Lsn(7));
    wal.shutdown().await.unwrap();

    let wal = Wal::open(d.path(), small()).await.unwrap();
    // A name as a `String`, an LSN as a `u64`: both taken.
    let c = wal.cursor(String::from("archiver")).await.unwrap();
    assert_eq!(c.lsn(), Lsn(7), "resumes where it was advanced");
    c.advance(7u64).await.unwrap();
    let all = wal.cursors().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, "archiver");
    assert_eq!(all[0].lsn, Lsn(7));
    assert_eq!(all[0].lag_records, 4, "LSNs 7 to 10");
    assert!(!all[0].invalidated);
    assert!(all[0].lag_bytes > 0);
    // The records it needs are readable from where it stands.
    assert_eq!(wal.read(c.lsn()).await.unwrap().payload, b"record 6");
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn an_advance_is_in_both_copies_of_meta_when_it_returns() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let c = wal.cursor("c").await.unwrap();
    append_n(&wal, 5).await;
    for lsn in [2, 3, 6] {
        c.advance(Lsn(lsn)).await.unwrap();
        for name in [META_FILE, META_COPY_FILE] {
            let bytes = std::fs::read(d.path().join(name)).unwrap();
            let m = actix_wal::format::meta::LogMeta::decode(&bytes, u64::MAX).unwrap();
            assert_eq!(m.cursor("c").map(|c| c.lsn), Some(lsn), "{name}");
        }
    }
    // Dropped without a shutdown: the value is on disk already.
    drop(c);
    drop(wal);
    let m = read_meta(&FsStorage, d.path()).unwrap().unwrap();
    assert_eq!(m.cursor("c").unwrap().lsn, 6);
}

#[actix::test]
async fn a_cursor_never_moves_back_nor_past_the_durable_end() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let c = wal.cursor("c").await.unwrap();
    append_n(&wal, 10).await;
    c.advance(Lsn(5)).await.unwrap();
    match c.advance(Lsn(4)).await {
        Err(WalError::CursorBackwards { name, lsn, current }) => {
            assert_eq!((name.as_str(), lsn, current), ("c", Lsn(4), Lsn(5)));
        }
        other => panic!("expected CursorBackwards, got {other:?}"),
    }
    // To the durable end: every record read. Past it: refused.
    c.advance(Lsn(11)).await.unwrap();
    match c.advance(Lsn(12)).await {
        Err(WalError::CursorPastEnd {
            lsn, durable_end, ..
        }) => {
            assert_eq!((lsn, durable_end), (Lsn(12), Lsn(11)));
        }
        other => panic!("expected CursorPastEnd, got {other:?}"),
    }
    // Where it stands: nothing changes, no error.
    c.advance(Lsn(11)).await.unwrap();
    assert_eq!(wal.cursor("c").await.unwrap().lsn(), Lsn(11));
    // A second handle that saw an older LSN is refused too.
    let stale = c.clone();
    c.advance(Lsn(11)).await.unwrap();
    append_n(&wal, 2).await;
    c.advance(Lsn(13)).await.unwrap();
    assert!(matches!(
        stale.advance(Lsn(12)).await,
        Err(WalError::CursorBackwards { .. })
    ));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn cursor_names_and_counts_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small().max_cursors(2).max_cursor_name_bytes(8);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    for bad in ["", "has space", "é", "a/b", "123456789"] {
        assert!(
            matches!(
                wal.cursor(bad).await,
                Err(WalError::InvalidCursorName { .. })
            ),
            "{bad:?}"
        );
    }
    wal.cursor("a.b_c-1").await.unwrap();
    wal.cursor("12345678").await.unwrap();
    assert!(matches!(
        wal.cursor("third").await,
        Err(WalError::TooManyCursors { max: 2 })
    ));
    // An existing one is found whatever the count.
    wal.cursor("a.b_c-1").await.unwrap();
    wal.remove_cursor("12345678").await.unwrap();
    wal.cursor("third").await.unwrap();
    wal.shutdown().await.unwrap();
    // The limit on names is for new cursors: one made under a longer limit is still found
    // (and advanced, and removed) after a restart with a shorter one.
    let wal = Wal::open(d.path(), small().max_cursor_name_bytes(4))
        .await
        .unwrap();
    let c = wal.cursor("a.b_c-1").await.unwrap();
    c.advance(c.lsn()).await.unwrap();
    assert!(matches!(
        wal.cursor("abcde").await,
        Err(WalError::InvalidCursorName { .. })
    ));
    wal.remove_cursor("a.b_c-1").await.unwrap();
    wal.shutdown().await.unwrap();
    for cfg in [
        small().max_cursors(1025),
        small().max_cursor_name_bytes(0),
        small().max_cursor_name_bytes(256),
    ] {
        assert!(matches!(cfg.validate(), Err(WalError::InvalidConfig(_))));
    }
}

#[actix::test]
async fn a_refused_cursor_name_is_not_echoed_whole() {
    // A caller's 1 MiB name (a bug, or a name taken from a request) must not reach every
    // log line that prints the error: the error keeps the start of it and its length.
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let huge = "n".repeat(1 << 20);
    match wal.cursor(&huge).await {
        Err(e @ WalError::InvalidCursorName { .. }) => {
            let shown = e.to_string();
            assert!(shown.len() < 1024, "{} bytes shown", shown.len());
            assert!(shown.contains("1048576 bytes"), "{shown}");
        }
        other => panic!(
            "expected InvalidCursorName, got {:?}",
            other.map(|c| c.lsn())
        ),
    }
    match wal.remove_cursor(&huge).await {
        Err(e @ WalError::CursorNotFound { .. }) => {
            assert!(e.to_string().len() < 1024, "{} bytes", e.to_string().len())
        }
        other => panic!("expected CursorNotFound, got {other:?}"),
    }
    // A name cut at a character's boundary: no panic on multi-byte characters.
    let wide = "é".repeat(1 << 10);
    assert!(matches!(
        wal.cursor(&wide).await,
        Err(WalError::InvalidCursorName { .. })
    ));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_removed_cursor_is_gone_and_meta_is_version_1_again() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    append_n(&wal, 3).await;
    assert_eq!(meta_versions(d.path()), [1, 1]);
    let c = wal.cursor("c").await.unwrap();
    // An older build reads version 1 only: it refuses this log instead of dropping the
    // cursor (`UnsupportedVersion`, docs/format.md).
    assert_eq!(meta_versions(d.path()), [2, 2]);
    let again = c.clone();
    c.remove().await.unwrap();
    assert!(matches!(
        again.advance(Lsn(2)).await,
        Err(WalError::CursorNotFound { .. })
    ));
    assert!(matches!(
        wal.remove_cursor("c").await,
        Err(WalError::CursorNotFound { .. })
    ));
    assert!(wal.cursors().await.unwrap().is_empty());
    assert_eq!(meta_versions(d.path()), [1, 1]);
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    assert!(wal.cursors().await.unwrap().is_empty());
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_rewind_brings_a_cursor_past_the_cut_back_and_a_reset_moves_or_invalidates() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let ahead = wal.cursor("ahead").await.unwrap();
    let behind = wal.cursor("behind").await.unwrap();
    append_n(&wal, 20).await;
    ahead.advance(Lsn(18)).await.unwrap();
    behind.advance(Lsn(5)).await.unwrap();
    wal.truncate_after(Lsn(10)).await.unwrap();
    let lsns: Vec<(String, Lsn)> = wal
        .cursors()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.lsn))
        .collect();
    assert_eq!(
        lsns,
        [
            ("ahead".to_string(), Lsn(11)),
            ("behind".to_string(), Lsn(5))
        ]
    );
    // A reset: the cursor that had read everything goes on at the new LSN, the other
    // lost records it needed.
    let ahead = wal.cursor("ahead").await.unwrap();
    ahead.advance(Lsn(11)).await.unwrap();
    wal.reset(Lsn(100)).await.unwrap();
    assert_eq!(wal.cursor("ahead").await.unwrap().lsn(), Lsn(100));
    assert!(matches!(
        wal.cursor("behind").await,
        Err(WalError::CursorInvalidated { .. })
    ));
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    assert_eq!(wal.cursor("ahead").await.unwrap().lsn(), Lsn(100));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_rewind_below_the_checkpoint_is_refused_while_retention_keeps_records_below_it() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let _c = wal.cursor("c").await.unwrap();
    append_n(&wal, 20).await;
    wal.truncate_before(Lsn(15)).await.unwrap();
    let s = wal.stats().await.unwrap();
    assert_eq!((s.first_lsn, s.checkpoint_lsn), (Lsn(1), Lsn(15)));
    assert!(matches!(
        wal.truncate_after(Lsn(10)).await,
        Err(WalError::BelowFirstLsn {
            first_lsn: Lsn(15),
            ..
        })
    ));
    wal.truncate_after(Lsn(14)).await.unwrap();
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn cursors_work_from_tokio_with_open_standalone() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    let c = wal.cursor("tokio").await.unwrap();
    append_n(&wal, 4).await;
    c.advance(Lsn(3)).await.unwrap();
    wal.shutdown().await.unwrap();
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    assert_eq!(wal.cursor("tokio").await.unwrap().lsn(), Lsn(3));
    assert_eq!(wal.cursors().await.unwrap()[0].lag_records, 2);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_consumer_resumes_from_its_cursor_without_gap_or_duplicate() {
    use futures::StreamExt;
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let c = wal.cursor("consumer").await.unwrap();
    append_n(&wal, 200).await;
    let mut seen = Vec::new();
    let mut records = wal.subscribe(c.lsn());
    while let Some(r) = records.next().await {
        let r = r.unwrap();
        seen.push(r.lsn.0);
        c.advance(Lsn(r.lsn.0 + 1)).await.unwrap();
        // The checkpoint passes the consumer; the cursor keeps its records.
        wal.truncate_before(Lsn(190)).await.unwrap();
        if r.lsn.0 == 120 {
            break;
        }
    }
    drop(records);
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let c = wal.cursor("consumer").await.unwrap();
    let mut records = wal.subscribe(c.lsn());
    while let Some(r) = records.next().await {
        let r = r.unwrap();
        seen.push(r.lsn.0);
        if r.lsn.0 == 200 {
            break;
        }
    }
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
    wal.shutdown().await.unwrap();
}

/// A cursor asked of a directory that holds no log yet, through `LogDir` (no recovery):
/// refused as no log, rather than a `META` with a first LSN of 0 that the log's first
/// segment (LSN 1) then broke: after one append, neither recovery nor the reader opened
/// the log ("the first segment starts at LSN 1 above the log's first LSN 0").
#[test]
fn a_cursor_of_a_directory_with_no_log_is_refused_and_leaves_it_openable() {
    let d = tempfile::tempdir().unwrap();
    let dir = LogDir::open(d.path(), actix_wal::storage::default_storage()).unwrap();
    assert!(matches!(
        dir.open_cursor("c", 8, 64),
        Err(WalError::NoLog { .. })
    ));
    drop(dir);
    let (mut w, _) = LogWriter::open(d.path(), LogOptions::default()).unwrap();
    assert_eq!(w.append(b"a").unwrap(), Lsn(1));
    w.sync().unwrap();
    drop(w);
    assert_eq!(LogReader::open(d.path()).unwrap().count(), 1);
    LogWriter::open(d.path(), LogOptions::default()).unwrap();
}
