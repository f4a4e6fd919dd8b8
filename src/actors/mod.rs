//! The actors: `Queue` (LSNs, batches, replies), `Flusher` (write + fsync on its own
//! thread), `Supervisor` (flusher deaths, degraded mode, restarts) and `Recovery` (scan and
//! replay at open). One actor per file, its messages beside it.

pub mod flusher;
pub mod queue;
pub mod reader;
pub mod recovery;
pub mod supervisor;

/// Stops an arbiter (the actors on it stop with it) and joins its thread on a blocking
/// thread, so the caller's arbiter is never blocked by the join.
pub(crate) async fn stop_and_join(arbiter: Option<actix::Arbiter>) {
    if let Some(a) = arbiter {
        a.stop();
        let _ = actix_rt::task::spawn_blocking(move || a.join()).await;
    }
}
