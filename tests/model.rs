//! Model-based test: random sequences of append, commit, flush, mode switch, injected disk
//! faults, flusher death (with the `failpoints` feature), power cut and reopen, run through
//! the actor pipeline (`Wal`) on the simulated disk, against a reference model of what
//! must be durable.
//!
//! The model is a list: every record the log accepted, in LSN order, and how many of them
//! (a prefix) must survive a power cut. It grows on each reply; a durable reply, a `Flush`
//! and, in `Sync` mode, any message (the previous one is written and fsynced before the
//! next is taken) extend the durable prefix. After a power cut the recovered log must be a
//! prefix of the list at least as long as the durable part, with no transaction cut; after
//! a clean shutdown, the whole list. `MODEL_CASES=N` runs N cases (default 40), from the
//! seed `MODEL_SEED` (default fixed, so a run is repeatable).

mod sim;

#[path = "common/model.rs"]
mod model;
#[path = "common/model_case.rs"]
mod model_case;

use model_case::{check_model, run_model};
use sim::broken::Broken;

#[test]
fn the_log_keeps_what_the_model_says_is_durable() {
    check_model(false);
}

/// Teeth: on a disk that acknowledges `fdatasync` without syncing, the model fails.
#[test]
fn the_model_catches_acknowledging_before_fsync() {
    let err = match run_model(false, Some(Broken::AckBeforeFsync), 200) {
        Ok(_) => panic!("the model did not notice acknowledgements before fsync"),
        Err(e) => e,
    };
    // Caught either as acknowledged records missing after a power cut, or as a state
    // recovery refuses (frames lost before later ones that survived): both are what a
    // disk that lies about fsync produces.
    assert!(
        err.contains("were durable") || err.contains("open failed: corruption"),
        "{err}"
    );
}
