//! `actix_wal_enqueue_wait_seconds`: one sample per `Append`, `Commit` and `AppendBatch`
//! the queue handles, measured from when the message was built (its constructor), so the
//! time a message spends waiting for the queue's thread shows up where the disk's does not.
//!
//! One test in this binary: it installs the process's global metrics recorder (a
//! Prometheus one, rendered and parsed here) before the log registers its handles.

use actix_wal::*;
use std::time::Duration;

/// The value of the series `name` (a full series name such as `x_count`) in a rendering.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok()).flatten()
    })
}

#[actix::test]
async fn enqueue_wait_counts_one_sample_per_message_from_when_it_was_built() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert!(metrics::ALL.contains(&metrics::ENQUEUE_WAIT));

    // Built, then held 50 ms before it is sent: the wait counts from the constructor.
    let early = Append::new(b"early".to_vec());
    std::thread::sleep(Duration::from_millis(50));
    wal.send(early).await.unwrap();

    let mut messages = 1u64;
    for i in 0..10u8 {
        wal.send(Append::new(vec![i])).await.unwrap();
        messages += 1;
    }
    for i in 0..5u8 {
        wal.send(Commit::new([vec![i], vec![i, i]])).await.unwrap();
        messages += 1;
    }
    for i in 0..3u8 {
        wal.send(AppendBatch::new(vec![vec![i]; 4])).await.unwrap();
        messages += 1;
    }
    // The convenience methods build the messages with their constructors.
    wal.append(b"helper".to_vec()).await.unwrap();
    messages += 1;
    // A refused message is still one the queue handled.
    assert!(wal.send(Commit::new(Vec::<Vec<u8>>::new())).await.is_err());
    messages += 1;
    // A message built field by field carries no timestamp: no sample.
    wal.send(Append {
        payload: b"unstamped".to_vec(),
        options: AppendOptions::default(),
    })
    .await
    .unwrap();
    wal.shutdown().await.unwrap();

    let text = handle.render();
    let name = metrics::ENQUEUE_WAIT;
    let count = series(&text, &format!("{name}_count"))
        .unwrap_or_else(|| panic!("{name}_count missing from:\n{text}"));
    let sum = series(&text, &format!("{name}_sum")).expect("the histogram's sum");
    assert_eq!(count, messages as f64, "one sample per stamped message");
    // At least the 50 ms the first message was held (a lower bound only: no timing).
    assert!(
        sum >= 0.05,
        "sum of waits {sum} s < the 0.05 s one message was held"
    );
}
