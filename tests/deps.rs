//! What a library user builds: `cargo tree -e normal` of the default features must not
//! hold walctl's dependencies (`clap`, `serde_json`); `--features cli` brings them.
//! Runs cargo offline on this package's lock file (about a third of a second).

use std::process::Command;

fn normal_deps(features: &[&str]) -> Vec<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-e", "normal", "--offline", "--prefix", "none"])
        .args(["--format", "{p}", "--manifest-path", manifest])
        .args(features)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn library_users_build_neither_clap_nor_serde_json() {
    let deps = normal_deps(&[]);
    assert!(
        deps.iter().any(|d| d == "actix"),
        "the tree was read: {deps:?}"
    );
    for walctl_only in ["clap", "serde_json"] {
        assert!(
            !deps.iter().any(|d| d == walctl_only),
            "{walctl_only} is a normal dependency of the library: {deps:?}"
        );
    }
    let with_cli = normal_deps(&["--features", "cli"]);
    assert!(with_cli.iter().any(|d| d == "clap"));
    assert!(with_cli.iter().any(|d| d == "serde_json"));
}
