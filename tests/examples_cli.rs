//! The examples as a user runs them: the quickstart (the README's first command) runs to
//! its end; `--help` on each example that takes arguments prints its usage and exits 0 at
//! once, doing none of its work, and an argument it cannot read is refused with a non-zero
//! exit instead of being replaced by a default. The examples are built (or found up to
//! date) with `cargo build --example`, as the raft tests do.

#[path = "common/raft.rs"]
mod raft;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest an example may take to answer `--help` or refuse an argument, the start of a
/// debug binary included; a benchmark that ran instead takes far longer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Longest the quickstart may take (7 s for a debug build on a busy 2-core machine).
const QUICKSTART_WITHIN: Duration = Duration::from_secs(90);

/// The examples that take arguments.
const EXAMPLES: [&str; 6] = [
    "readbench",
    "walbench",
    "raft_bench",
    "kv_server",
    "raft_kv",
    "raft_kv_admin",
];

/// Runs `example` with `args` in an empty directory, killed after `ANSWER_WITHIN` (the
/// output then is what it printed so far, and `timed_out` is true).
fn run(example: &str, args: &[&str]) -> (Output, bool) {
    run_within(example, args, ANSWER_WITHIN)
}

/// [`run`], killed after `limit`.
fn run_within(example: &str, args: &[&str], limit: Duration) -> (Output, bool) {
    let bin = raft::build_example(example);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let start = Instant::now();
    let mut timed_out = false;
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("wait"), timed_out)
}

#[test]
fn the_quickstart_runs_to_its_end() {
    let (out, timed_out) = run_within("quickstart", &[], QUICKSTART_WITHIN);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !timed_out,
        "quickstart still ran after {QUICKSTART_WITHIN:?}: {stdout}"
    );
    assert!(
        out.status.success(),
        "quickstart exited {:?}; stdout: {stdout}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Its last steps: the state rebuilt from the replay, and the log read back whole.
    for line in [
        "reopened: 1004 records found, 1004 replayed",
        "the application rebuilt 1004 records of state",
        "read back 1004 records; the first is \"hello\"",
    ] {
        assert!(stdout.contains(line), "no `{line}` in: {stdout}");
    }
}

#[test]
fn help_prints_usage_and_does_no_work() {
    for example in EXAMPLES {
        let (out, timed_out) = run(example, &["--help"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !timed_out,
            "{example} --help still ran after {ANSWER_WITHIN:?}; printed: {stdout}"
        );
        assert!(
            out.status.success(),
            "{example} --help exited {:?}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("Usage:"),
            "{example} --help printed no usage: {stdout}"
        );
    }
}

#[test]
fn an_argument_that_does_not_parse_is_refused() {
    let (out, timed_out) = run("readbench", &["twenty"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !timed_out,
        "readbench twenty still ran after {ANSWER_WITHIN:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(2), "readbench twenty: {stderr}");
    assert!(
        stderr.contains("twenty"),
        "the refusal names the argument: {stderr}"
    );
}

#[test]
fn admin_show_exits_non_zero_on_an_answer_other_than_200() {
    // A node that answers `GET /cluster` with a JSON 503 (as a stopped node does): `show`
    // must not print it as the cluster's view and exit 0.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().expect("accept");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
            head.push(byte[0]);
        }
        let body = br#"{"error":"stopped","leader":null}"#;
        let reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(reply.as_bytes());
        let _ = s.write_all(body);
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    raft::write_secret(&secret);
    let node = addr.to_string();
    let secret_arg = secret.to_str().expect("utf-8 path");
    let (out, timed_out) = run(
        "raft_kv_admin",
        &["--cluster-secret-file", secret_arg, "--node", &node, "show"],
    );
    server.join().expect("the server thread");
    assert!(
        !timed_out,
        "raft_kv_admin show still ran after {ANSWER_WITHIN:?}"
    );
    assert!(
        !out.status.success(),
        "show exited 0 on a 503; printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("503"),
        "the error names the status: {stderr}"
    );
}
