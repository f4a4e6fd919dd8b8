//! The cursor and retention metrics (issue 22, item 3) in a Prometheus rendering:
//! `actix_wal_cursors`, `actix_wal_cursor_max_lag_bytes`,
//! `actix_wal_cursors_invalidated_total`, `actix_wal_retained_bytes`, and each cursor's
//! `actix_wal_cursor_lag_bytes` and `actix_wal_cursor_lag_records` labelled with its name.
//!
//! One test in this binary: it installs the process's global metrics recorder before the
//! log registers its handles.

use actix_wal::*;

/// The value of the series `name` (with its labels, as rendered) in a rendering.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok()).flatten()
    })
}

#[actix::test]
async fn metrics_show_cursors_their_lag_and_the_bytes_retained() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig::default()
        .segment_size_bytes(4096)
        .max_record_bytes(256)
        .preallocate(false)
        .max_cursor_lag_bytes(6 * 4096);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let text = handle.render();
    for name in [
        metrics::CURSORS,
        metrics::CURSOR_MAX_LAG_BYTES,
        metrics::CURSORS_INVALIDATED,
        metrics::RETAINED_BYTES,
    ] {
        assert!(metrics::ALL.contains(&name));
        assert_eq!(series(&text, name), Some(0.0), "{name} in {text}");
    }
    let a = wal.cursor("archiver").await.unwrap();
    let _b = wal.cursor("replica-2").await.unwrap();
    for i in 0..200u32 {
        wal.append(vec![i as u8; 100]).await.unwrap();
    }
    a.advance(Lsn(150)).await.unwrap();
    let text = handle.render();
    assert_eq!(series(&text, metrics::CURSORS), Some(2.0));
    let infos = wal.cursors().await.unwrap();
    let lag = |name: &str| infos.iter().find(|c| c.name == name).unwrap().clone();
    assert_eq!(
        series(&text, "actix_wal_cursor_lag_records{cursor=\"archiver\"}"),
        Some(51.0)
    );
    assert_eq!(
        series(&text, "actix_wal_cursor_lag_bytes{cursor=\"archiver\"}"),
        Some(lag("archiver").lag_bytes as f64)
    );
    assert_eq!(
        series(&text, metrics::CURSOR_MAX_LAG_BYTES),
        Some(lag("replica-2").lag_bytes as f64)
    );
    // A checkpoint: "replica-2" at LSN 1 holds more than the cap and is invalidated;
    // "archiver" holds what lies below the checkpoint from its LSN.
    wal.truncate_before(Lsn(190)).await.unwrap();
    let text = handle.render();
    assert_eq!(series(&text, metrics::CURSORS_INVALIDATED), Some(1.0));
    let h = wal.health().await.unwrap();
    assert!(h.retained_bytes > 0);
    assert_eq!(
        series(&handle.render(), metrics::RETAINED_BYTES),
        Some(h.retained_bytes as f64)
    );
    wal.shutdown().await.unwrap();
}
