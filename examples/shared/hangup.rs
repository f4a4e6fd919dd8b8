//! SIGHUP stops an example service cleanly, as SIGINT and SIGTERM do.
//!
//! actix's server stops on SIGINT, SIGTERM and SIGQUIT, and lets SIGHUP (the terminal
//! closed, an ssh session dropped) kill the process: no log shutdown, no Raft shutdown,
//! the directory lock left for the next start to find stale. Both services call
//! [`stop_on_hangup`] once their server runs.

use actix_web::dev::ServerHandle;
use tokio::signal::unix::{signal, SignalKind};

/// From now on SIGHUP stops the server behind `handle` gracefully (requests in progress
/// finish within its shutdown timeout), saying so on stderr as `{name}: SIGHUP: ...`.
/// Call it on the server's runtime.
pub fn stop_on_hangup(handle: ServerHandle, name: &'static str) -> std::io::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        if hangup.recv().await.is_some() {
            eprintln!("{name}: SIGHUP: stopping cleanly");
            handle.stop(true).await;
        }
    });
    Ok(())
}
