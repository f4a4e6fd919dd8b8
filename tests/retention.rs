//! Retention (issue 22, item 3): segments go once they are below the checkpoint, below
//! every cursor, and outside the retention policy (`retention_bytes`, `retention_secs`);
//! never before. Without cursors or a policy a checkpoint does exactly what it did before
//! they existed. A cursor over `max_cursor_lag_bytes` is invalidated with an alert
//! instead of filling the disk. Replay starts at the checkpoint; subscribers end behind
//! only when the removal point passes them. `Health` shows it all.

mod common;

use actix::prelude::*;
use actix_wal::files::read_meta;
use actix_wal::*;
use common::alerts::AlertLog;
use common::segment_lsns;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const SEGMENT: u64 = 4096;

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(SEGMENT)
        .max_record_bytes(256)
        .preallocate(false)
}

/// Appends `n` records of 100 bytes (about 40 per segment).
async fn append_n(wal: &Wal, n: u64) -> Lsn {
    let mut last = Lsn(0);
    for i in 0..n {
        let mut p = format!("record {i} ").into_bytes();
        p.resize(100, b'.');
        last = wal.append(p).await.unwrap();
    }
    last
}

/// Bytes of the segment files wholly below `lsn` (the next one starts at or below it).
fn bytes_below(dir: &Path, lsn: u64) -> u64 {
    let segs = segment_lsns(dir);
    segs.windows(2)
        .take_while(|w| w[1] <= lsn)
        .map(|w| {
            std::fs::metadata(dir.join(segment_name(w[0])))
                .unwrap()
                .len()
        })
        .sum()
}

fn segment_name(first_lsn: u64) -> String {
    actix_wal::files::segment_name(first_lsn)
}

#[actix::test]
async fn without_cursors_or_retention_a_checkpoint_removes_what_lies_below_it_as_before() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    append_n(&wal, 400).await;
    let before = segment_lsns(d.path());
    assert!(before.len() > 5, "{before:?}");
    let removed = wal.truncate_before(Lsn(250)).await.unwrap();
    let after = segment_lsns(d.path());
    assert_eq!(after.len(), before.len() - removed);
    // Exactly the segments wholly below 250 went; 250 is the first LSN, not a segment's.
    assert!(
        after[0] <= 250 && after.get(1).is_none_or(|&s| s > 250),
        "{after:?}"
    );
    let s = wal.stats().await.unwrap();
    assert_eq!((s.first_lsn, s.checkpoint_lsn), (Lsn(250), Lsn(250)));
    assert!(matches!(
        wal.read(Lsn(249)).await,
        Err(WalError::NotFound { .. })
    ));
    wal.shutdown().await.unwrap();
    // META is still version 1: an older build opens this log.
    let b = std::fs::read(d.path().join("META")).unwrap();
    assert_eq!(b[8], 1);
    let m = read_meta(&FsStorage, d.path()).unwrap().unwrap();
    assert_eq!((m.first_lsn, m.checkpoint()), (250, 250));
}

#[actix::test]
async fn a_checkpoint_never_removes_what_a_cursor_still_needs() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let c = wal.cursor("slow").await.unwrap();
    append_n(&wal, 400).await;
    c.advance(Lsn(100)).await.unwrap();
    let segments = segment_lsns(d.path());
    // Only segments wholly below the cursor may go.
    let below_cursor = segments.windows(2).take_while(|w| w[1] <= 100).count();
    assert_eq!(wal.truncate_before(Lsn(380)).await.unwrap(), below_cursor);
    let s = wal.stats().await.unwrap();
    assert_eq!((s.first_lsn, s.checkpoint_lsn), (Lsn(100), Lsn(380)));
    for lsn in [100, 101, 250, 379, 400] {
        wal.read(Lsn(lsn)).await.unwrap();
    }
    assert!(segment_lsns(d.path())[0] <= 100);
    // The cursor moves: what it held below the checkpoint goes.
    c.advance(Lsn(300)).await.unwrap();
    let s = wal.stats().await.unwrap();
    assert_eq!(s.first_lsn, Lsn(300));
    let first = segment_lsns(d.path())[0];
    assert!(first <= 300, "{first}");
    assert!(
        segment_lsns(d.path()).get(1).is_none_or(|&s| s > 300),
        "a segment wholly below 300 is left"
    );
    // Removed: the checkpoint alone holds again.
    c.remove().await.unwrap();
    assert_eq!(wal.stats().await.unwrap().first_lsn, Lsn(380));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_cursor_keeps_its_records_across_a_restart_and_replay_starts_at_the_checkpoint() {
    #[derive(Default)]
    struct Collector(Arc<Mutex<Vec<u64>>>);
    impl Actor for Collector {
        type Context = Context<Self>;
    }
    impl Handler<Replayed> for Collector {
        type Result = ();
        fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
            let mut seen = self.0.lock().unwrap();
            seen.extend(msg.records.iter().map(|r| r.lsn.0));
        }
    }
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let c = wal.cursor("c").await.unwrap();
    append_n(&wal, 200).await;
    c.advance(Lsn(50)).await.unwrap();
    wal.truncate_before(Lsn(150)).await.unwrap();
    wal.shutdown().await.unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = small().replay_to(Collector(seen.clone()).start().recipient());
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let report = wal.recovery_report();
    assert_eq!(
        (report.first_lsn, report.checkpoint_lsn),
        (Lsn(50), Lsn(150))
    );
    assert_eq!(*seen.lock().unwrap(), (150..=200).collect::<Vec<_>>());
    use futures::StreamExt;
    let replayed: Vec<u64> = wal.replay().map(|r| r.unwrap().lsn.0).collect().await;
    assert_eq!(replayed, (150..=200).collect::<Vec<_>>());
    assert_eq!(wal.read(Lsn(50)).await.unwrap().lsn, Lsn(50));
    let reader: Vec<u64> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap().lsn.0)
        .collect();
    assert_eq!(reader, (50..=200).collect::<Vec<_>>());
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn retention_bytes_keeps_at_most_that_many_bytes_below_the_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let keep = 3 * SEGMENT + SEGMENT / 2;
    let wal = Wal::open(d.path(), small().retention_bytes(keep))
        .await
        .unwrap();
    let mut checkpoints = 0;
    for round in 1..=8u64 {
        append_n(&wal, 150).await;
        let checkpoint = round * 150 - 10;
        wal.truncate_before(Lsn(checkpoint)).await.unwrap();
        checkpoints += 1;
        let below = bytes_below(d.path(), checkpoint);
        // Within the bound, and short of it by less than one segment (granularity).
        assert!(
            below <= keep,
            "round {round}: {below} bytes below the checkpoint"
        );
        if round >= 3 {
            assert!(
                below + SEGMENT > keep,
                "round {round}: only {below} bytes kept"
            );
        }
        let s = wal.stats().await.unwrap();
        assert_eq!(s.checkpoint_lsn, Lsn(checkpoint));
        assert!(s.first_lsn < s.checkpoint_lsn || round < 2);
        // Every record from the first LSN on is readable.
        wal.read(s.first_lsn).await.unwrap();
        let h = wal.health().await.unwrap();
        assert_eq!(h.retained_bytes, below);
        assert_eq!(h.checkpoint_lsn, Lsn(checkpoint));
    }
    assert_eq!(checkpoints, 8);
    wal.shutdown().await.unwrap();
}

/// Sets the modification time of every segment wholly below `lsn` to `secs` ago: the
/// clock the test moves.
fn age_segments_below(dir: &Path, lsn: u64, secs: u64) {
    let segs = segment_lsns(dir);
    for w in segs.windows(2).take_while(|w| w[1] <= lsn) {
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(segment_name(w[0])))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }
}

#[actix::test]
async fn retention_secs_removes_segments_below_the_checkpoint_once_they_are_older() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small()
        .retention_secs(3_600)
        .retention_check_interval_ms(20);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    append_n(&wal, 400).await;
    wal.truncate_before(Lsn(390)).await.unwrap();
    let kept = segment_lsns(d.path());
    // Young: all kept below the checkpoint.
    assert_eq!(kept[0], 1);
    assert_eq!(wal.stats().await.unwrap().first_lsn, Lsn(1));
    // The oldest half ages past an hour: the timer removes it, and nothing younger.
    let half = kept[kept.len() / 2];
    age_segments_below(d.path(), half, 7_200);
    let s = common::wait_for(&wal, 10, "the aged segments to go", |s| s.first_lsn.0 > 1).await;
    assert_eq!(s.first_lsn, Lsn(half));
    assert_eq!(segment_lsns(d.path())[0], half);
    assert_eq!(s.checkpoint_lsn, Lsn(390));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_cursor_over_the_cap_is_invalidated_with_an_alert_instead_of_filling_the_disk() {
    let d = tempfile::tempdir().unwrap();
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let cap = 5 * SEGMENT;
    let cfg = small()
        .max_cursor_lag_bytes(cap)
        .alert_to(AlertLog(alerts.clone()).start().recipient());
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let lagging = wal.cursor("lagging").await.unwrap();
    let keeping_up = wal.cursor("keeping-up").await.unwrap();
    append_n(&wal, 100).await;
    keeping_up.advance(Lsn(101)).await.unwrap();
    wal.truncate_before(Lsn(100)).await.unwrap();
    // Within the cap: it holds.
    assert_eq!(wal.stats().await.unwrap().first_lsn, Lsn(1));
    assert!(alerts.lock().unwrap().is_empty());
    append_n(&wal, 300).await;
    keeping_up.advance(Lsn(401)).await.unwrap();
    wal.truncate_before(Lsn(400)).await.unwrap();
    // Over the cap: invalidated, and the checkpoint removes what it held.
    let s = wal.stats().await.unwrap();
    assert_eq!(s.first_lsn, Lsn(400));
    let on_disk: u64 = segment_lsns(d.path())
        .iter()
        .map(|&l| {
            std::fs::metadata(d.path().join(segment_name(l)))
                .unwrap()
                .len()
        })
        .sum();
    assert!(on_disk <= 2 * SEGMENT, "{on_disk} bytes left");
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    {
        let a = alerts.lock().unwrap();
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, AlertKind::CursorInvalidated);
        assert_eq!(a[0].state, AlertState::Fired);
        assert!(a[0].value > cap as f64);
        assert_eq!(a[0].threshold, cap as f64);
    }
    let h = wal.health().await.unwrap();
    assert_eq!(h.active_alerts, [AlertKind::CursorInvalidated]);
    let info = h.cursors.iter().find(|c| c.name == "lagging").unwrap();
    assert!(info.invalidated);
    assert!(
        !h.cursors
            .iter()
            .find(|c| c.name == "keeping-up")
            .unwrap()
            .invalidated
    );
    // Its next use says so, also after a restart.
    assert!(matches!(
        lagging.advance(Lsn(50)).await,
        Err(WalError::CursorInvalidated { .. })
    ));
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), small().max_cursor_lag_bytes(cap))
        .await
        .unwrap();
    match wal.cursor("lagging").await {
        Err(WalError::CursorInvalidated { name, .. }) => assert_eq!(name, "lagging"),
        other => panic!("expected CursorInvalidated, got {other:?}"),
    }
    // Removed, it can be created again, at the first LSN.
    wal.remove_cursor("lagging").await.unwrap();
    assert_eq!(wal.cursor("lagging").await.unwrap().lsn(), Lsn(400));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn the_alert_clears_once_no_invalidated_cursor_is_left() {
    let d = tempfile::tempdir().unwrap();
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let cfg = small()
        .max_cursor_lag_bytes(2 * SEGMENT)
        .alert_to(AlertLog(alerts.clone()).start().recipient());
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let a = wal.cursor("a").await.unwrap();
    let b = wal.cursor("b").await.unwrap();
    append_n(&wal, 300).await;
    wal.truncate_before(Lsn(300)).await.unwrap();
    a.remove().await.unwrap();
    assert_eq!(
        wal.health().await.unwrap().active_alerts,
        [AlertKind::CursorInvalidated]
    );
    b.remove().await.unwrap();
    assert!(wal.health().await.unwrap().active_alerts.is_empty());
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    let got: Vec<AlertState> = alerts.lock().unwrap().iter().map(|a| a.state).collect();
    assert_eq!(
        got,
        [AlertState::Fired, AlertState::Fired, AlertState::Cleared],
        "one alert per cursor invalidated, one clear"
    );
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_subscriber_ends_behind_only_once_the_removal_point_passes_it() {
    use futures::StreamExt;
    // Records of 4,000 bytes: a subscription reads 1 MiB (about 260 of them) at a time,
    // so it holds a part of the log in memory and reads the rest later.
    let cfg = WalConfig::default()
        .segment_size_bytes(64 << 10)
        .max_record_bytes(8 << 10)
        .preallocate(false);
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let c = wal.cursor("holder").await.unwrap();
    for i in 0..600u32 {
        let mut p = i.to_le_bytes().to_vec();
        p.resize(4000, 0);
        wal.append(p).await.unwrap();
    }
    let mut sub = wal.subscribe(Lsn(1));
    assert_eq!(sub.next().await.unwrap().unwrap().lsn, Lsn(1));
    // The checkpoint passes the subscriber, the cursor holds: it reads on from the files.
    wal.truncate_before(Lsn(590)).await.unwrap();
    for lsn in 2..=400 {
        assert_eq!(sub.next().await.unwrap().unwrap().lsn, Lsn(lsn));
    }
    // The cursor goes: the removal point passes the subscriber, which ends behind once
    // it has yielded what it had read.
    c.remove().await.unwrap();
    let end = loop {
        match sub.next().await {
            Some(Ok(r)) => assert!(r.lsn.0 > 400 && r.lsn.0 < 590, "{}", r.lsn),
            Some(Err(e)) => break e,
            None => panic!("ended without an error"),
        }
    };
    match end {
        WalError::SubscriberBehind { first_lsn, .. } => assert_eq!(first_lsn, Lsn(590)),
        other => panic!("expected SubscriberBehind, got {other:?}"),
    }
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn health_shows_disk_use_cursors_and_their_lag() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small().retention_bytes(2 * SEGMENT))
        .await
        .unwrap();
    let c = wal.cursor("c").await.unwrap();
    append_n(&wal, 300).await;
    c.advance(Lsn(120)).await.unwrap();
    wal.truncate_before(Lsn(280)).await.unwrap();
    let h = wal.health().await.unwrap();
    assert_eq!(h.first_lsn, Lsn(120));
    assert_eq!(h.checkpoint_lsn, Lsn(280));
    assert_eq!(h.retained_bytes, bytes_below(d.path(), 280));
    assert!(
        h.retained_bytes > 2 * SEGMENT,
        "the cursor holds more than the policy"
    );
    assert_eq!(h.cursors.len(), 1);
    let info = &h.cursors[0];
    assert_eq!((info.name.as_str(), info.lsn), ("c", Lsn(120)));
    assert_eq!(info.lag_records, 181);
    let from_cursor: u64 = {
        let segs = segment_lsns(d.path());
        let i = segs.partition_point(|&s| s <= 120) - 1;
        segs[i..]
            .iter()
            .map(|&l| {
                std::fs::metadata(d.path().join(segment_name(l)))
                    .unwrap()
                    .len()
            })
            .sum()
    };
    assert_eq!(info.lag_bytes, from_cursor);
    assert!(h.disk_bytes >= from_cursor);
    assert_eq!(wal.cursors().await.unwrap(), h.cursors);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn walctl_cursors_shows_the_cursors_and_what_retention_keeps() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let c = wal.cursor("archiver").await.unwrap();
    append_n(&wal, 300).await;
    c.advance(Lsn(120)).await.unwrap();
    wal.truncate_before(Lsn(280)).await.unwrap();
    let h = wal.health().await.unwrap();
    wal.shutdown().await.unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(["cursors", "--json"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["first_lsn"], 120);
    assert_eq!(v["checkpoint_lsn"], 280);
    assert_eq!(v["retained_bytes"], h.retained_bytes);
    assert_eq!(v["cursors"][0]["name"], "archiver");
    assert_eq!(v["cursors"][0]["lsn"], 120);
    assert_eq!(v["cursors"][0]["lag_bytes"], h.cursors[0].lag_bytes);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("cursors")
        .arg(d.path())
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("cursor archiver: lsn 120, valid, holds "),
        "{text}"
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("meta")
        .arg(d.path())
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("checkpoint: 280"), "{text}");
    assert!(text.contains("cursor archiver: lsn 120, valid"), "{text}");
}

#[actix::test]
async fn walctl_cursors_counts_the_disk_bytes_health_counts() {
    // Beside a live log with a spare prepared: `disk_bytes` is the segments and the
    // spare, in walctl as in `Health`.
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default().segment_size_bytes(SEGMENT))
        .await
        .unwrap();
    append_n(&wal, 300).await;
    // The spare is prepared on a thread of its own after the last rollover: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let has_spare = |p: &std::path::Path| {
        std::fs::read_dir(p).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("spare-")
        })
    };
    while !has_spare(d.path()) {
        assert!(std::time::Instant::now() < deadline, "no spare within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut h = wal.health().await.unwrap();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let again = wal.health().await.unwrap();
        if again.disk_bytes == h.disk_bytes {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "disk_bytes never settled"
        );
        h = again;
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(["cursors", "--json"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["disk_bytes"], h.disk_bytes,
        "walctl cursors --json against Health::disk_bytes"
    );
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn the_report_of_an_open_tells_what_its_first_retention_run_removed() {
    // A log whose retention policy kept segments below the checkpoint, opened again with
    // none: the open's first retention run removes them. The report must describe the
    // log the application gets, not the one before that run.
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small().retention_bytes(u64::MAX / 4))
        .await
        .unwrap();
    append_n(&wal, 300).await;
    wal.truncate_before(Lsn(150)).await.unwrap();
    assert_eq!(
        wal.stats().await.unwrap().first_lsn,
        Lsn(1),
        "kept by the policy"
    );
    wal.shutdown().await.unwrap();
    let before = segment_lsns(d.path());

    let wal = Wal::open(d.path(), small()).await.unwrap();
    let report = wal.recovery_report().clone();
    let after = segment_lsns(d.path());
    assert!(
        after.len() < before.len(),
        "segments below the checkpoint removed"
    );
    let stats = wal.stats().await.unwrap();
    assert_eq!(
        (report.first_lsn, report.segments),
        (stats.first_lsn, after.len()),
        "the report against the log as opened: {report:?}"
    );
    let gone: Vec<_> = before
        .iter()
        .filter(|l| !after.contains(l))
        .map(|&l| d.path().join(segment_name(l)))
        .collect();
    for path in &gone {
        assert!(report.removed.contains(path), "{path:?} not in {report:?}");
    }
    // What the docs show: a subscriber from the report's first LSN reads from there.
    let mut sub = wal.subscribe(report.first_lsn);
    let first = futures::StreamExt::next(&mut sub).await.unwrap().unwrap();
    assert_eq!(first.lsn, report.first_lsn);
    wal.read(report.first_lsn).await.unwrap();
    wal.shutdown().await.unwrap();
}
