//! The examples of docs/node.md, run as the document shows them: the Lua files written where
//! their first line (`-- PATH`) says, then each line of the `sh` block — `stage-router` and
//! `stage-node` as the built binaries, other commands with `sh -c` — and the lines of the
//! `text output` block after it must be what the last command prints (issue 8).

mod common;
use common::docrun::{save, sh};
use common::markdown::{example, in_order};
use common::{free_port, Proc, Scratch, WAIT};

const DOC: &str = "docs/node.md";

/// The address the examples use; each run takes a free port instead.
const EXAMPLE_ADDR: &str = "127.0.0.1:7400";

/// Writes the `files` examples and runs the commands of `sh` example `name` in a scratch
/// directory. Routers and nodes keep running (a trailing `&` only says so) and are returned in
/// order; a router is waited for until it listens.
fn run(name: &str, files: &[&str]) -> (Vec<Proc>, Scratch) {
    let dir = Scratch::new(name);
    for file in files {
        save(&example(DOC, file), &dir.dir);
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let mut procs = Vec::new();
    for line in example(DOC, name)
        .code
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let line = line.replace(EXAMPLE_ADDR, &addr);
        let line = line.trim().trim_end_matches('&').trim_end();
        let words: Vec<&str> = line.split_whitespace().collect();
        let bin = match words[0] {
            "stage-router" => env!("CARGO_BIN_EXE_stage-router"),
            "stage-node" => env!("CARGO_BIN_EXE_stage-node"),
            _ => {
                sh(line, &dir.dir);
                continue;
            }
        };
        let p = Proc::spawn(words[0], bin, &words[1..], &dir.dir);
        if words[0] == "stage-router" {
            p.wait_err("listening on ", WAIT);
        }
        procs.push(p);
    }
    (procs, dir)
}

/// Runs `name` and waits for its output on the last process's stdout.
fn shows_output(name: &str, files: &[&str]) {
    let (procs, _dir) = run(name, files);
    let last = procs.last().expect("a process");
    last.wait_lines(&example(DOC, name).output_lines(), WAIT);
}

#[test]
fn standalone() {
    shows_output("standalone", &["hello"]);
}

#[test]
fn cluster_with_a_secret() {
    shows_output("cluster", &["hello"]);
}

/// The node runs the rollback copy, then the fixed one once `package/start.lua` compiles.
#[test]
fn packages_fail_over_and_back() {
    let (procs, dir) = run("packages", &["broken-start", "rollback-start"]);
    let node = &procs[0];
    node.wait_out("the rollback version", WAIT);
    let broken = example(DOC, "broken-start").code;
    let fixed = broken.replace("\"the new version\"", "\"the new version\")");
    assert_ne!(broken, fixed, "the typo the document tells to fix");
    std::fs::write(dir.dir.join("package/start.lua"), fixed).expect("fix the script");
    node.wait_lines(&example(DOC, "packages").output_lines(), WAIT);
}

#[test]
fn config_file() {
    shows_output("config", &["config-file", "hello"]);
}

#[test]
fn config_error_names_the_key() {
    let (mut procs, _dir) = run("config-error", &["config-typo"]);
    let node = &mut procs[0];
    let status = node
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("the node did not stop\n{}", node.dump()));
    assert_eq!(status.code(), Some(2), "{}", node.dump());
    node.wait_err("error:", WAIT);
    let expected = example(DOC, "config-error").output_lines();
    assert!(in_order(&node.stderr(), &expected), "{}", node.dump());
}
