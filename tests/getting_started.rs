//! "The getting-started page, followed literally on a clean checkout, ends with a running
//! cluster" (issue 8). This test takes the blocks of `"docs/getting-started.md"` in the page's
//! order and does what each says, in a fresh `git clone` of this repository:
//!
//! - `sh` blocks run line by line with `sh -c` in the current directory, and `cd DIR` changes
//!   it. One substitution: the clone's `REPOSITORY-URL` is this checkout
//!   (`CARGO_MANIFEST_DIR`), so the clone holds what is committed here.
//! - `cargo run -- ARGS` runs the already-built `stage` binary (`CARGO_BIN_EXE_stage`) with ARGS
//!   in the clone's directory: that is what cargo runs there once it has built the clone, and a
//!   second debug build of the workspace inside the test would cost CI minutes (a fresh build of
//!   the clone into a target directory of its own took about 9 minutes on two cores; sharing
//!   this checkout's target directory blocks on the lock the outer `cargo test` holds while its
//!   tests run). The routers' ports come from the environment the page names
//!   (`STAGE_HELLO_PORT`, `STAGE_PORT`), set to free ports so parallel tests do not collide.
//! - `lua` blocks are files: the first line, `-- PATH`, says where the page saves them.
//!
//! It checks the output the page shows — the demo's exchange, the first stage's answers, the
//! answer after the hot reload — and that Ctrl-C (SIGINT) stops every process with status 0.

mod common;
use common::markdown::{example, Block};
use common::{free_port, Proc, Scratch, WAIT};
use std::path::{Path, PathBuf};

const PAGE: &str = "docs/getting-started.md";

/// Runs the `sh` lines of `block` in `cwd` (a `cd` moves it); the `cargo run` lines are
/// returned, unrun, for the caller to start.
fn shell(block: &Block, cwd: &mut PathBuf) -> Vec<String> {
    assert_eq!(block.lang, "sh", "{block:?}");
    let mut cargo = Vec::new();
    for line in block.code.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(dir) = line.strip_prefix("cd ") {
            *cwd = cwd.join(dir);
            continue;
        }
        if line.starts_with("cargo run -- ") {
            cargo.push(line.to_owned());
            continue;
        }
        let line = line.replace("REPOSITORY-URL", env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .current_dir(&*cwd)
            .output()
            .unwrap_or_else(|e| panic!("sh -c {line:?}: {e}"));
        assert!(
            out.status.success(),
            "{PAGE}: `{line}` failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cargo
}

/// Starts the block's one `cargo run -- ARGS` line as the built binary with ARGS in `cwd`.
fn cargo_run(block: &Block, cwd: &mut PathBuf, env: &[(&str, &str)]) -> Proc {
    let lines = shell(block, cwd);
    let [line] = lines.as_slice() else {
        panic!(
            "{PAGE}: block {:?} should hold one `cargo run`",
            block.attr("name")
        )
    };
    let args: Vec<&str> = line["cargo run -- ".len()..].split_whitespace().collect();
    Proc::spawn_env("stage", env!("CARGO_BIN_EXE_stage"), &args, cwd, env)
}

/// Saves a `lua` block where its first line (`-- PATH`) says.
fn save(block: &Block, cwd: &Path) {
    let first = block.code.lines().next().unwrap_or_default();
    let rel = first
        .strip_prefix("-- ")
        .unwrap_or_else(|| panic!("{PAGE}: {first:?} should be `-- PATH`"));
    std::fs::write(cwd.join(rel), &block.code).expect("save the page's file");
}

/// Ctrl-C: SIGINT to the launcher; it and each of its `children` exit with status 0.
fn ctrl_c(stage: &mut Proc, children: &[&str]) {
    stage.stop_cleanly();
    stage.wait_err("[stage] stopped", WAIT);
    for child in children {
        stage.wait_err(&format!("[stage] {child} exited with exit status: 0"), WAIT);
    }
}

#[test]
fn the_page_followed_literally_ends_with_a_running_cluster() {
    let home = Scratch::new("getting-started");
    let mut cwd = home.dir.clone();

    // 1. Get the code.
    assert!(shell(&example(PAGE, "clone"), &mut cwd).is_empty());
    assert!(cwd.join("cluster-examples/hello/topology.lua").is_file());

    // 2. The demo cluster, then Ctrl-C.
    let port = free_port().to_string();
    let hello = example(PAGE, "run-hello");
    let mut stage = cargo_run(&hello, &mut cwd, &[("STAGE_HELLO_PORT", &port)]);
    stage.wait_lines(&hello.output_lines(), WAIT);
    ctrl_c(&mut stage, &["router", "alpha", "beta"]);

    // 3. The first stage: a directory and three files.
    assert!(shell(&example(PAGE, "mkdir"), &mut cwd).is_empty());
    for name in ["greeter", "visitor", "topology"] {
        save(&example(PAGE, name), &cwd);
    }

    // 4. Run it: the visitor's asks reach the greeter and the answers come back.
    let port = free_port().to_string();
    let first = example(PAGE, "run-first");
    let mut stage = cargo_run(&first, &mut cwd, &[("STAGE_PORT", &port)]);
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
