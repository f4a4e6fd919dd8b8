//! Failpoints (cargo feature `failpoints`, off by default), built on the `fail` crate.
//!
//! Named points: `flusher::before_write`, `flusher::before_sync`, `flusher::after_sync`,
//! `segment::before_create` (all on the flusher thread's write path, so a fault injected
//! into "the flusher" does not also strike the degraded path that stands in for it), and
//! `flusher::handle` (in the flusher's message handler, outside the region where panics
//! are caught: a panic there kills the actor, which the supervisor learns through the
//! flusher's drop guard), and `replay::read` (in the replay reader at open, before each
//! record: a panic there must fail `Wal::open`), and `spare::before_raise` (on the flusher's
//! spare helper thread, after it prepared a spare and before it raises `META`'s
//! newest-segment LSN: `sleep(N)` stalls the helper, `return` makes it skip the raise, as
//! a failed raise would), and `retention::remove_before_meta` (`return` makes a retention
//! run remove its segments before its `META` replace: the order the protocol forbids, the
//! teeth of tests/retention_crash.rs). `panic` panics at the point, `sleep(N)` stalls it, and
//! `return` makes the operation fail with an injected `io::Error`; `return(EACCES)`,
//! `return(EROFS)`, `return(ENOSPC)` or `return(EIO)` choose the error.

/// The `io::Error` a `return` action at failpoint `name` injects.
pub fn injected_error(name: &str, arg: Option<String>) -> std::io::Error {
    let code = match arg.as_deref() {
        Some("EACCES") => Some(rustix::io::Errno::ACCESS),
        Some("EROFS") => Some(rustix::io::Errno::ROFS),
        Some("ENOSPC") => Some(rustix::io::Errno::NOSPC),
        Some("EIO") => Some(rustix::io::Errno::IO),
        _ => None,
    };
    match code {
        Some(errno) => std::io::Error::from_raw_os_error(errno.raw_os_error()),
        None => std::io::Error::other(format!("injected by failpoint {name}")),
    }
}
