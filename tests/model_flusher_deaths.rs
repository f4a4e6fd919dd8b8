//! The model-based test of tests/model.rs with flusher deaths (feature `failpoints`):
//! the random sequences also include the flusher panicking in its next write
//! (`flusher::before_write`: the log goes degraded, then the flusher is restarted) and its
//! next fsync failing (`flusher::before_sync`: the batch is rewritten to a fresh segment),
//! checked against the same reference model of what must be durable. `MODEL_CASES` and
//! `MODEL_SEED` as in tests/model.rs.
#![cfg(feature = "failpoints")]

mod sim;

#[path = "common/model.rs"]
mod model;
#[path = "common/model_case.rs"]
mod model_case;

use model_case::check_model;

#[test]
fn the_log_keeps_what_the_model_says_is_durable_when_the_flusher_dies() {
    check_model(true);
}
