//! Alerts fire once when a threshold is crossed and clear once when it is back within,
//! never in a flood: flush latency (a flusher slowed by the `sleep` failpoint), queue
//! depth (buffered appends piled up behind a long flush interval), and flusher health (a
//! panic in the flusher, cleared by the supervisor's restart), and a full disk (writes
//! failing `ENOSPC`, cleared by the next batch written). Each alert goes to a
//! `Recipient<Alert>`, and `Health::active_alerts` agrees with what was sent.
#![cfg(feature = "failpoints")]

mod common;

use actix::prelude::*;
use actix_wal::*;
use fail::FailScenario;
use std::time::{Duration, Instant};

/// Collects every alert it is sent.
#[derive(Debug, Default)]
struct Collector {
    alerts: Vec<Alert>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Alert> for Collector {
    type Result = ();

    fn handle(&mut self, alert: Alert, _: &mut Self::Context) {
        self.alerts.push(alert);
    }
}

/// Replies with the alerts received so far. Alerts are sent (`do_send`) before the
/// durability reply that lets a test go on, so they are in the mailbox ahead of this.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Alert>")]
struct Received;

impl Handler<Received> for Collector {
    type Result = MessageResult<Received>;

    fn handle(&mut self, _: Received, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.alerts.clone())
    }
}

/// A config whose alerts go to `to`, with every threshold out of reach unless a test
/// lowers it (so only the alert under test can fire on a slow machine).
fn config(to: &Addr<Collector>) -> WalConfig {
    WalConfig {
        alert_to: Some(to.clone().recipient()),
        alert_flush_ms: 60_000,
        alert_queue_depth: 1_000_000,
        alert_wal_bytes: u64::MAX,
        ..WalConfig::default()
    }
}

async fn received(c: &Addr<Collector>) -> Vec<Alert> {
    c.send(Received).await.expect("collector runs")
}

/// (kind, state) of each alert, in order.
fn transitions(alerts: &[Alert]) -> Vec<(AlertKind, AlertState)> {
    alerts.iter().map(|a| (a.kind, a.state)).collect()
}

#[actix::test]
async fn a_slow_flusher_fires_one_latency_alert_and_one_clear_follows() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let collector = Collector::default().start();
    let wal = Wal::open(
        d.path(),
        WalConfig {
            alert_flush_ms: 50,
            // The slowed flusher is slow, not dead.
            flusher_stall_timeout_ms: 5_000,
            ..config(&collector)
        },
    )
    .await
    .unwrap();
    wal.append(b"fast".to_vec()).await.unwrap();
    assert!(received(&collector).await.is_empty());

    fail::cfg("flusher::before_write", "sleep(150)").unwrap();
    for i in 0..4 {
        wal.append(format!("slow {i}").into_bytes()).await.unwrap();
    }
    let fired = received(&collector).await;
    assert_eq!(
        transitions(&fired),
        [(AlertKind::FlushLatency, AlertState::Fired)],
        "four slow flushes, one alert"
    );
    assert!(
        fired[0].value > 50.0 && fired[0].threshold == 50.0,
        "{fired:?}"
    );
    let h = wal.health().await.unwrap();
    assert_eq!(h.active_alerts, [AlertKind::FlushLatency]);
    assert!(h.healthy, "a slow log is still healthy");

    fail::remove("flusher::before_write");
    for i in 0..4 {
        wal.append(format!("fast {i}").into_bytes()).await.unwrap();
    }
    let all = received(&collector).await;
    assert_eq!(
        transitions(&all),
        [
            (AlertKind::FlushLatency, AlertState::Fired),
            (AlertKind::FlushLatency, AlertState::Cleared),
        ],
        "four fast flushes, one clear"
    );
    assert!(all[1].value <= 50.0, "{all:?}");
    assert!(wal.health().await.unwrap().active_alerts.is_empty());
    wal.shutdown().await.unwrap();
    scenario.teardown();
}

#[actix::test]
async fn a_deep_queue_fires_one_depth_alert_and_clears_once_drained() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let collector = Collector::default().start();
    let wal = Wal::open(
        d.path(),
        WalConfig {
            alert_queue_depth: 10,
            // Buffered appends wait for a flush that only the test asks for.
            flush_interval_ms: 600_000,
            ..config(&collector)
        },
    )
    .await
    .unwrap();
    const PILED: usize = 50;
    for i in 0..PILED {
        let append =
            Append::new(format!("buffered {i}").into_bytes()).durability(Durability::Buffered);
        wal.send(append).await.unwrap();
    }
    assert_eq!(wal.stats().await.unwrap().queue_depth, PILED);
    wal.flush().await.unwrap();
    let alerts = received(&collector).await;
    assert_eq!(
        transitions(&alerts),
        [
            (AlertKind::QueueDepth, AlertState::Fired),
            (AlertKind::QueueDepth, AlertState::Cleared),
        ]
    );
    // It fires at the append that crosses the threshold, not later.
    assert_eq!(alerts[0].value, 11.0);
    assert_eq!(alerts[0].threshold, 10.0);
    assert_eq!(alerts[1].value, 0.0);
    assert!(wal.health().await.unwrap().active_alerts.is_empty());

    // Under the threshold: no alert.
    for i in 0..5 {
        let append = Append::new(format!("few {i}").into_bytes()).durability(Durability::Buffered);
        wal.send(append).await.unwrap();
    }
    wal.flush().await.unwrap();
    assert_eq!(received(&collector).await.len(), 2);
    wal.shutdown().await.unwrap();
    scenario.teardown();
}

#[actix::test]
async fn a_flusher_death_fires_one_unhealthy_alert_cleared_by_the_restart() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let collector = Collector::default().start();
    let wal = Wal::open(
        d.path(),
        WalConfig {
            restart_backoff_initial_ms: 50,
            ..config(&collector)
        },
    )
    .await
    .unwrap();
    fail::cfg("flusher::before_write", "1*panic(injected flusher panic)").unwrap();
    // Written by the degraded path after the flusher died with it in flight.
    let lsn = wal.append(b"survives the panic".to_vec()).await.unwrap();
    assert_eq!(lsn, Lsn(1));
    let fired = received(&collector).await;
    // The restart (50 ms backoff) may already have cleared it on a loaded machine.
    assert!(
        transitions(&fired).starts_with(&[(AlertKind::FlusherUnhealthy, AlertState::Fired)]),
        "{fired:?}"
    );

    // The supervisor restarts the flusher after its backoff.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = wal.stats().await.unwrap();
        if s.mode == WalMode::Async && s.flusher_restarts == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no restart within 10 s: {s:?}");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    wal.append(b"after the restart".to_vec()).await.unwrap();
    let all = received(&collector).await;
    assert_eq!(
        transitions(&all),
        [
            (AlertKind::FlusherUnhealthy, AlertState::Fired),
            (AlertKind::FlusherUnhealthy, AlertState::Cleared),
        ]
    );
    let h = wal.health().await.unwrap();
    assert!(h.flusher_healthy && h.active_alerts.is_empty(), "{h:?}");
    fail::remove("flusher::before_write");
    wal.shutdown().await.unwrap();
    scenario.teardown();
}

/// Issue 20, item 8: while appends failed `DiskFull`, `health()` said healthy and no alert
/// fired. A write failing for a full disk fires `DiskFull` (once) and makes the log
/// unhealthy, not poisoned; the next batch written clears both.
#[actix::test]
async fn a_full_disk_fires_one_alert_and_the_log_is_unhealthy_until_a_write_succeeds() {
    const ENOSPC: i32 = 28;
    let d = tempfile::tempdir().unwrap();
    let collector = Collector::default().start();
    let fs = common::faulty::FaultyFs::new();
    let wal = Wal::open(
        d.path(),
        WalConfig {
            storage: fs.clone(),
            ..config(&collector)
        },
    )
    .await
    .unwrap();
    wal.append(b"before".to_vec()).await.unwrap();
    assert!(wal.health().await.unwrap().healthy);
    fs.fail_write(".wal", ENOSPC);
    for i in 0..3 {
        let r = wal.append(format!("full {i}").into_bytes()).await;
        assert!(matches!(r, Err(WalError::DiskFull { .. })), "{r:?}");
    }
    let health = wal.health().await.unwrap();
    assert!(
        !health.healthy,
        "appends fail DiskFull, yet healthy: {health:?}"
    );
    assert!(!health.poisoned);
    assert_eq!(health.active_alerts, vec![AlertKind::DiskFull]);
    fs.heal();
    assert_eq!(wal.append(b"after".to_vec()).await.unwrap(), Lsn(2));
    let health = wal.health().await.unwrap();
    assert!(health.healthy, "{health:?}");
    assert!(health.active_alerts.is_empty(), "{health:?}");
    assert_eq!(
        transitions(&received(&collector).await),
        vec![
            (AlertKind::DiskFull, AlertState::Fired),
            (AlertKind::DiskFull, AlertState::Cleared)
        ]
    );
    wal.shutdown().await.unwrap();
}
