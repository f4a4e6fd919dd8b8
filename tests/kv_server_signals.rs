//! The kv_server example stops cleanly on the signals a service gets: SIGINT, SIGTERM,
//! and SIGHUP (its terminal closed, an ssh session dropped). Clean: it exits 0 after
//! shutting its log down, and a write it acknowledged is there after a restart.

#[path = "kv_server/client.rs"]
mod client;

use client::Server;
use rustix::process::{kill_process, Pid, Signal};
use std::time::{Duration, Instant};

/// Longest a clean stop may take (requests in flight finish, then the log shuts down).
const STOP_WITHIN: Duration = Duration::from_secs(20);

fn stops_cleanly_on(sig: Signal, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let put = server.request("PUT", "/kv/kept", b"value").expect("PUT");
    assert_eq!(put.status, 200, "PUT before {name}");
    let pid = Pid::from_raw(server.child.id() as i32).expect("a child's pid is positive");
    kill_process(pid, sig).expect("signal kv_server");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            start.elapsed() < STOP_WITHIN,
            "kv_server still ran {STOP_WITHIN:?} after {name}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "kv_server on {name}: {status} (a clean stop exits 0)"
    );
    drop(server);
    let again = Server::start(dir.path());
    let got = again.request("GET", "/kv/kept", b"").expect("GET");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"value"[..]));
}

#[test]
fn sigterm_stops_it_cleanly() {
    stops_cleanly_on(Signal::TERM, "SIGTERM");
}

#[test]
fn sigint_stops_it_cleanly() {
    stops_cleanly_on(Signal::INT, "SIGINT");
}

#[test]
fn sighup_stops_it_cleanly() {
    stops_cleanly_on(Signal::HUP, "SIGHUP");
}
