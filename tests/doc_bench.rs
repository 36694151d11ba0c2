//! The benchmark commands of `"README.md"` and `"docs/performance.md"` (both blocks named
//! `"bench"`), each run: `scripts/install-peers.sh` is run by `.ci/run` before the tests (this
//! test checks it is there); `cargo build --release --bins` is not repeated — the debug build of
//! the same binaries stands in for it, as a release build would cost CI minutes; and every
//! `target/release/stage-bench ARGS` runs as the built `stage-bench` with ARGS at smoke sizes
//! (`--runs 1`, `--messages 2000`, `--members 500`, `--ops 1000`, `--conns 100`: the flags
//! for smoke tests, set or replaced), so each documented invocation really runs its workloads
//! against the router, nodes, nats-server and redis-server and verifies every message. The
//! figures themselves belong in docs/performance.md, never in assertions.

mod common;
use common::markdown::{example, root};
use std::process::Command;

/// Smoke sizes: each replaces the flag's value in the documented command, or is added.
const SMOKE: &[(&str, &str)] = &[
    ("--runs", "1"),
    ("--messages", "2000"),
    ("--members", "500"),
    ("--ops", "1000"),
    ("--conns", "100"),
];

/// The documented command's ARGS at smoke sizes.
fn smoke(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for (flag, value) in SMOKE {
        match out.iter().position(|a| a == flag) {
            Some(i) => out[i + 1] = value.to_string(),
            None => out.extend([flag.to_string(), value.to_string()]),
        }
    }
    out
}

/// Runs every command of the block `bench` of `doc`.
fn run_block(doc: &str) {
    let block = example(doc, "bench");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect("read .ci/run");
    let commands = block
        .code
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| l.split("&&"))
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let mut benches = 0;
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["scripts/install-peers.sh"] => assert!(
                ci.lines().any(|l| l.trim() == command),
                ".ci/run does not run {command}"
            ),
            ["cargo", "build", "--release", "--bins"] => {}
            ["target/release/stage-bench", args @ ..] => {
                let args = smoke(args);
                let out = Command::new(env!("CARGO_BIN_EXE_stage-bench"))
                    .args(&args)
                    .current_dir(root())
                    .output()
                    .expect("run stage-bench");
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && stdout.lines().any(|l| l.starts_with("RESULT ")),
                    "{doc}: stage-bench {args:?}: {}\n{stdout}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                benches += 1;
            }
            _ => panic!("{doc}: a command this test does not know how to run: {command}"),
        }
    }
    assert!(benches > 0, "{doc}: no stage-bench command");
}

#[test]
fn readme_bench_command_runs() {
    run_block("README.md");
}

#[test]
fn performance_page_commands_run() {
    run_block("docs/performance.md");
}
