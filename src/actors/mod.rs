//! The actors: `Queue` (LSNs, batches, replies), `Flusher` (write + fsync on its own
//! thread), `Supervisor` (flusher deaths, degraded mode, restarts) and `Recovery` (scan and
//! replay at open). One actor per file, its messages beside it.

pub mod flusher;
pub mod queue;
pub mod reader;
pub mod recovery;
pub mod supervisor;
