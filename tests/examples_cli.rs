//! The examples' command lines: `--help` on each example that takes arguments prints its
//! usage and exits 0 at once, doing none of its work, and an argument it cannot read is
//! refused with a non-zero exit instead of being replaced by a default. The examples are
//! built (or found up to date) with `cargo build --example`, as the raft tests do.

#[path = "common/raft.rs"]
mod raft;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest an example may take to answer `--help` or refuse an argument, the start of a
/// debug binary included; a benchmark that ran instead takes far longer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

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
        if start.elapsed() > ANSWER_WITHIN {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("wait"), timed_out)
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
