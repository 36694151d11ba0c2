//! The examples of docs/router.md: the command lines, run as the built `stage-router` on a free
//! port, and the control scripts, each run by a router (`--script`) that nodes register with;
//! each must print its `text output` block, in order.

mod common;
use common::markdown::example;
use common::{Proc, Scratch, WAIT};

const DOC: &str = "docs/router.md";

/// Runs the `stage-router ...` command of example `name` in `dir` with its port 7400
/// replaced by a free one; waits for its output (the router's stderr) line by line.
fn command(name: &str, dir: &Scratch) -> Proc {
    let block = example(DOC, name);
    let port = common::free_port().to_string();
    let line = block.code.trim().replace("7400", &port);
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("stage-router"), "{line}");
    let args: Vec<&str> = words.collect();
    let router = Proc::spawn(
        "router",
        env!("CARGO_BIN_EXE_stage-router"),
        &args,
        &dir.dir,
    );
    for expected in block.output_lines() {
        router.wait_err(&expected.replace("7400", &port), WAIT);
    }
    router
}

#[test]
fn start() {
    command("router-start", &Scratch::new("doc-router-start"));
}

#[test]
fn secret() {
    let dir = Scratch::new("doc-router-secret");
    dir.write("secret", "a cluster secret of 32 bytes ..\n");
    command("router-secret", &dir);
}

/// A router running example `name` as its control script, with `flags`; a stage script
/// `NAME.lua` is written for each stage the nodes host.
struct Cluster {
    dir: Scratch,
    router: Proc,
    addr: String,
    output: Vec<String>,
}

impl Cluster {
    fn start(name: &str, flags: &[&str]) -> Cluster {
        let block = example(DOC, name);
        let dir = Scratch::new(&format!("doc-router-{name}"));
        dir.write("policy.lua", &block.code);
        let mut args = vec!["--script", "policy.lua"];
        args.extend_from_slice(flags);
        let (router, addr) = Proc::router("router", &args, &dir.dir);
        Cluster {
            dir,
            router,
            addr,
            output: block.output_lines(),
        }
    }

    /// A node `--id id --name name` hosting `stage`; returns once the script printed `seen`.
    fn node(&self, id: &str, name: &str, stage: &str, seen: &str) -> Proc {
        self.dir.write(&format!("{stage}.lua"), "");
        let spec = format!("{stage}={stage}.lua");
        let args = ["--router", &self.addr, "--id", id, "--name", name];
        let node = Proc::node(
            name,
            &[&args[..], &["--stage", &spec]].concat(),
            &self.dir.dir,
        );
        self.router.wait_out(seen, WAIT);
        node
    }

    /// Stops `node` as an operator would (SIGTERM).
    fn stop(&self, mut node: Proc) {
        node.signal(libc::SIGTERM);
        assert!(node.wait_exit(WAIT).is_some(), "{}", node.dump());
    }

    fn printed(&self) {
        self.router.wait_lines(&self.output, WAIT);
    }
}

#[test]
fn events() {
    let c = Cluster::start("router-events", &["--mode", "chat=broadcast"]);
    let alpha = c.node("1", "alpha", "chat", "register chat:1");
    let _beta = c.node("2", "beta", "chat", "register chat:2");
    c.stop(alpha);
    c.printed();
}

#[test]
fn policy() {
    let c = Cluster::start("router-policy", &["--mode", "rank=hash"]);
    let first = c.node("1", "one", "rank", "rank members 1:1");
    let _second = c.node("2", "two", "rank", "rank members 1:1, 2:2");
    c.stop(first);
    c.printed();
    c.router
        .wait_err("router.lua] kept a hole for\trank\t1", WAIT);
}

#[test]
fn silent() {
    let c = Cluster::start("router-silent", &[]);
    let node = c.node("1", "one", "rank", "registered rank:1");
    node.signal(libc::SIGSTOP);
    c.router.wait_out("link 1 is silent", WAIT);
    node.signal(libc::SIGCONT);
    c.printed();
    c.router
        .wait_err("router.lua] link\t1\tsilent: its members are skipped", WAIT);
}
