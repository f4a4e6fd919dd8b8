//! The hot paths' `debug` spans are there for a `tracing` subscriber that records them:
//! `flush` (each batch the flusher writes) and `drain_intake` (each run of the handle's
//! appends the queue takes), with their fields. They are made only when a subscriber wants
//! `debug` (with none, they would cost each batch a few hundred instructions through
//! tracing's `log` fallback). A test binary of its own: the subscriber is the process's.

use actix_wal::{Wal, WalConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Records the name and fields of every span made at `debug` or above.
#[derive(Default)]
struct Spans {
    seen: Mutex<Vec<(String, Vec<String>)>>,
    next_id: AtomicU64,
}

struct FieldNames(Vec<String>);

impl Visit for FieldNames {
    fn record_debug(&mut self, field: &Field, _: &dyn std::fmt::Debug) {
        self.0.push(field.name().to_string());
    }
}

impl Subscriber for ArcSpans {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::DEBUG
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = FieldNames(Vec::new());
        span.record(&mut fields);
        if let Ok(mut seen) = self.0.seen.lock() {
            seen.push((span.metadata().name().to_string(), fields.0));
        }
        Id::from_u64(self.0.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

struct ArcSpans(Arc<Spans>);

#[actix::test]
async fn the_hot_paths_debug_spans_reach_a_subscriber_that_wants_them() {
    let spans = Arc::new(Spans::default());
    tracing::subscriber::set_global_default(ArcSpans(spans.clone()))
        .expect("the only subscriber of this test binary");
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalConfig::default()).await.unwrap();
    for i in 0..5u8 {
        wal.append(vec![i; 32]).await.unwrap();
    }
    wal.shutdown().await.unwrap();
    let seen = spans.seen.lock().unwrap().clone();
    let named = |name: &str| seen.iter().filter(|(n, _)| n == name).collect::<Vec<_>>();
    let flush = named("flush");
    assert!(flush.len() >= 5, "a flush span per batch: {seen:?}");
    for field in ["first_lsn", "end_lsn", "records", "bytes", "rewrite"] {
        assert!(flush[0].1.iter().any(|f| f == field), "flush has {field}");
    }
    let drain = named("drain_intake");
    assert!(drain.len() >= 5, "a drain_intake span per run: {seen:?}");
    assert!(drain[0].1.iter().any(|f| f == "items"));
}
