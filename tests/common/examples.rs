//! Building an example for a test that runs it as a process: `cargo build --example NAME`
//! into the target directory and profile the test was built in, with the features the
//! test was built with, so that under `cargo test --all-features` the example `cargo test`
//! already built is found fresh instead of being built again with another feature set.
//! Included with `#[path]` by `raft.rs` and `kv_server/client.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// This crate's features the test binary was built with.
fn features() -> Vec<&'static str> {
    [
        ("failpoints", cfg!(feature = "failpoints")),
        ("cli", cfg!(feature = "cli")),
        ("internals", cfg!(feature = "internals")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// Builds the example `name` (a no-op when fresh) into this test's target directory and
/// profile; its path.
pub fn build_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--example", name, "--target-dir"])
        .arg(profile_dir.parent().expect("<target>/<profile>"))
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let features = features();
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let status = cmd.status().expect("run cargo build --example");
    assert!(status.success(), "cargo build --example {name} failed");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "no example binary at {}", bin.display());
    bin
}
