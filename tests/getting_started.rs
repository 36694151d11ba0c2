//! "The getting-started page, followed literally on a clean checkout, ends with a running
//! cluster" (issue 8). This test takes the blocks of `"docs/getting-started.md"` in the page's
//! order and does what each says, in a fresh `git clone` of this repository:
//!
//! - `sh` blocks run line by line with `sh -c` in the current directory, and `cd DIR` changes
//!   it. One substitution: the clone's `REPOSITORY-URL` is this checkout
//!   (`CARGO_MANIFEST_DIR`), so the clone holds what is committed here — a file missing from
//!   git, or a build that needs more than the page says, fails this test.
//! - `cargo run -- ARGS` runs for real: `cargo` from `PATH` builds the clone and runs it. Its
//!   target directory is the scratch directory's own (`CARGO_TARGET_DIR`), not this checkout's:
//!   sharing it would not wait on the outer `cargo test` (cargo releases its build lock before
//!   running tests) but would rebuild and overwrite `target/debug/stage`, the binary the other
//!   tests run, with the clone's committed code. A fresh build of the clone took 1 to 2¼
//!   minutes on two busy cores, most of the test's time (CI has time for it: `.ci/run` took
//!   about 4 minutes before); the second `cargo run` finds it built. The routers' ports come
//!   from the environment variables the page names (`STAGE_HELLO_PORT`, `STAGE_PORT`), set to
//!   free ports so parallel tests do not collide.
//! - `lua` blocks are files: the first line, `-- PATH`, says where the page saves them.
//!
//! It checks the output the page shows — the demo's exchange, the first stage's answers, the
//! answer after the hot reload — and that Ctrl-C (SIGINT to the job's process group, as a
//! terminal sends it) stops every process with status 0.

mod common;
use common::docrun::{self, save, sh};
use common::markdown::{example, Block};
use common::{free_port, Proc, Scratch, WAIT};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAGE: &str = "docs/getting-started.md";

/// Runs the `sh` lines of `block` in `cwd` (a `cd` moves it).
fn shell(block: &Block, cwd: &mut PathBuf) {
    assert_eq!(block.lang, "sh", "{block:?}");
    for line in block.code.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(dir) = line.strip_prefix("cd ") {
            *cwd = cwd.join(dir);
            continue;
        }
        sh(
            &line.replace("REPOSITORY-URL", env!("CARGO_MANIFEST_DIR")),
            cwd,
        );
    }
}

/// How long the clone's first `cargo run` may take to build it.
const BUILD: Duration = Duration::from_secs(20 * 60);

/// Starts the block's `cargo run -- ARGS` in `cwd`, building into `target`; returns once cargo
/// runs the binary (cargo execs it: the process is then `stage` itself).
fn cargo_run(block: &Block, cwd: &Path, target: &Path, env: &[(&str, &str)]) -> Proc {
    let run = docrun::cargo_run(block);
    let mut args = vec!["run", "--"];
    args.extend(run.args.iter().map(String::as_str));
    let target = target.to_str().expect("a UTF-8 scratch path");
    let mut env = env.to_vec();
    env.push(("CARGO_TARGET_DIR", target));
    let stage = Proc::spawn_job("cargo", "cargo", &args, cwd, &env);
    stage.wait_err("Running `", BUILD);
    stage
}

/// Ctrl-C: SIGINT to the job's whole process group, as a terminal sends it; the launcher and
/// each of its `children` exit with status 0.
fn ctrl_c(stage: &mut Proc, children: &[&str]) {
    stage.ctrl_c();
    stage.wait_err("[stage] stopped", WAIT);
    for child in children {
        stage.wait_err(&format!("[stage] {child} exited with exit status: 0"), WAIT);
    }
}

#[test]
fn the_page_followed_literally_ends_with_a_running_cluster() {
    let home = Scratch::new("getting-started");
    let mut cwd = home.dir.clone();
    let target = home.dir.join("target");
    let started = Instant::now();

    // 1. Get the code.
    shell(&example(PAGE, "clone"), &mut cwd);
    assert!(cwd.join("cluster-examples/hello/topology.lua").is_file());

    // 2. The demo cluster, then Ctrl-C.
    let port = free_port().to_string();
    let hello = example(PAGE, "run-hello");
    let mut stage = cargo_run(&hello, &cwd, &target, &[("STAGE_HELLO_PORT", &port)]);
    eprintln!("the clone built in {:?}", started.elapsed());
    stage.wait_lines(&hello.output_lines(), WAIT);
    ctrl_c(&mut stage, &["router", "alpha", "beta"]);

    // 3. The first stage: a directory and three files.
    shell(&example(PAGE, "mkdir"), &mut cwd);
    for name in ["greeter", "visitor", "topology"] {
        save(&example(PAGE, name), &cwd);
    }

    // 4. Run it: the visitor's asks reach the greeter and the answers come back.
    let port = free_port().to_string();
    let first = example(PAGE, "run-first");
    let mut stage = cargo_run(&first, &cwd, &target, &[("STAGE_PORT", &port)]);
    stage.wait_lines(&first.output_lines(), WAIT);

    // 5. Hot reload: the new greeting arrives while the cluster keeps running.
    let v2 = example(PAGE, "greeter-v2");
    save(&v2, &cwd);
    stage.wait_lines(&v2.output_lines(), WAIT);
    assert!(
        !stage.stderr().iter().any(|l| l.contains("exited with")),
        "nothing restarted:\n{}",
        stage.dump()
    );

    // 6. Ctrl-C stops it all.
    ctrl_c(&mut stage, &["router", "greeter", "visitor"]);
}
