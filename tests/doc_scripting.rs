//! Every example of docs/scripting.md, run as the document says: each `lua` block is written as
//! a script, run on real `stage-node` processes (and a `stage-router` for the cluster examples),
//! and the lines of the `text output` block after it must appear on the node's stdout, in
//! order (issue 8: every documented example is run by a test).

mod common;
use common::markdown::example;
use common::{Proc, Scratch, WAIT};

const DOC: &str = "docs/scripting.md";

/// One node of an example run.
#[derive(Clone, Copy)]
struct Node<'a> {
    /// `--id` (with a router); 0: none.
    id: u32,
    /// Its stages: (stage name, example) — the example is written as `NAME.lua`.
    stages: &'a [(&'a str, &'a str)],
    /// Flags besides `--router`, `--id` and `--stage`.
    args: &'a [&'a str],
    /// The examples whose output this node's stdout must show.
    shows: &'a [&'a str],
}

/// An example run: files besides the stages' scripts (example, path), the router's flags (none:
/// standalone nodes), and the nodes, started in order.
struct Run<'a> {
    files: &'a [(&'a str, &'a str)],
    router: Option<&'a [&'a str]>,
    nodes: &'a [Node<'a>],
    env: &'a [(&'a str, &'a str)],
}

/// Writes the examples, starts the processes (each node once the router registered the ones
/// before it), and waits for every node's `shows` outputs. Returns the nodes and the router.
fn run(tag: &str, r: &Run) -> (Vec<Proc>, Option<Proc>, Scratch) {
    let dir = Scratch::new(tag);
    let write = |name: &str, path: &str| {
        let file = dir.dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("create directory");
        std::fs::write(&file, example(DOC, name).code).expect("write example");
    };
    for (name, path) in r.files {
        write(name, path);
    }
    let (router, addr) = match r.router {
        Some(flags) => {
            let (p, addr) = Proc::router(&format!("{tag}-router"), flags, &dir.dir);
            (Some(p), addr)
        }
        None => (None, String::new()),
    };
    let mut nodes = Vec::new();
    for n in r.nodes {
        let mut args: Vec<String> = Vec::new();
        if router.is_some() {
            args.extend([
                "--router".into(),
                addr.clone(),
                "--id".into(),
                n.id.to_string(),
            ]);
        }
        for (stage, name) in n.stages {
            write(name, &format!("{stage}.lua"));
            args.extend(["--stage".into(), format!("{stage}={stage}.lua")]);
        }
        args.extend(n.args.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = Proc::spawn_env(
            &format!("{tag}-node{}", n.id),
            env!("CARGO_BIN_EXE_stage-node"),
            &args,
            &dir.dir,
            r.env,
        );
        if let Some(router) = &router {
            for (stage, _) in n.stages {
                router.wait_err(&format!("registered {stage}:{}", n.id), WAIT);
            }
        }
        nodes.push(p);
    }
    for (n, p) in r.nodes.iter().zip(&nodes) {
        for name in n.shows {
            p.wait_lines(&example(DOC, name).output_lines(), WAIT);
        }
    }
    (nodes, router, dir)
}

/// A node with stage `demo` running `example`, its flags, showing that example's output.
fn demo<'a>(example: &'a [(&'a str, &'a str); 1], args: &'a [&'a str]) -> Node<'a> {
    Node {
        id: 0,
        stages: example,
        args,
        shows: std::slice::from_ref(&example[0].1),
    }
}

/// One standalone node, with extra files and environment; the node and its directory.
fn alone(tag: &str, files: &[(&str, &str)], node: Node, env: &[(&str, &str)]) -> (Proc, Scratch) {
    let (mut nodes, _, dir) = run(
        tag,
        &Run {
            files,
            router: None,
            nodes: &[node],
            env,
        },
    );
    (nodes.remove(0), dir)
}

/// An example run alone as stage `demo` of a standalone node with `args`.
fn solo(name: &str, args: &[&str]) {
    alone(name, &[], demo(&[("demo", name)], args), &[]);
}

/// Example `name` started as stage `demo` of a standalone node with `env`, its output not yet
/// checked (the test acts on the node first, or checks its log).
fn quiet(name: &str, env: &[(&str, &str)]) -> (Proc, Scratch) {
    let stages = [("demo", name)];
    let node = Node {
        shows: &[],
        ..demo(&stages, &[])
    };
    alone(name, &[], node, env)
}

/// A router with `flags`; `receiver` (stage, example) on nodes 2 and 3, then `sender` (stage,
/// example) on node 1, whose output it must show.
fn cluster(flags: &[&str], receiver: (&str, &str), sender: (&str, &str)) {
    let receivers = [receiver];
    let senders = [sender];
    let node = |id, stages| Node {
        id,
        stages,
        args: &[],
        shows: &[],
    };
    let shows = [sender.1];
    run(
        sender.1,
        &Run {
            files: &[],
            router: Some(flags),
            nodes: &[
                node(2, &receivers),
                node(3, &receivers),
                Node {
                    shows: &shows,
                    ..node(1, &senders)
                },
            ],
            env: &[],
        },
    );
}

#[test]
fn idle_function_and_quit_hook() {
    let (node, _dir) = quiet("idle-and-quit", &[]);
    node.wait_out("idle 3", WAIT);
    node.signal(libc::SIGINT);
    node.wait_lines(&example(DOC, "idle-and-quit").output_lines(), WAIT);
}

#[test]
fn answers_between_two_stages() {
    let node = Node {
        id: 0,
        stages: &[("demo", "answers"), ("shop", "shop")],
        args: &[],
        shows: &["shop", "answers"],
    };
    alone("answers", &[], node, &[]);
}

/// `pong.lua` on nodes 2 and 3, then `ping.lua` on node 1, through a router.
#[test]
fn cluster_requests_broadcast_and_fail() {
    cluster(&[], ("pong", "cluster-pong"), ("ping", "cluster-ping"));
}

/// `rank.lua` on nodes 2 and 3 (hash mode), `board.lua` on node 1.
#[test]
fn cluster_sender_ids_and_hash_keys() {
    cluster(
        &["--mode", "rank=hash"],
        ("rank", "cluster-rank"),
        ("board", "cluster-keys"),
    );
}

/// `chat.lua` on nodes 1 and 2: both show the broadcast node 2 sends.
#[test]
fn cluster_own_stage_broadcast() {
    let chat = [("chat", "cluster-self")];
    let shows = ["cluster-self"];
    let node = |id| Node {
        id,
        stages: &chat,
        args: &[],
        shows: &shows,
    };
    run(
        "self",
        &Run {
            files: &[],
            router: Some(&[]),
            nodes: &[node(1), node(2)],
            env: &[],
        },
    );
}

/// `slow.lua` on node 2, `fast.lua` flooding it from node 1 until `on_overload` runs.
#[test]
fn cluster_overload() {
    let node = |id, stages, shows| Node {
        id,
        stages,
        args: &[],
        shows,
    };
    run(
        "overload",
        &Run {
            files: &[],
            router: Some(&[]),
            nodes: &[
                node(2, &[("slow", "overload-slow")], &[]),
                node(1, &[("fast", "overload-fast")], &["overload-fast"]),
            ],
            env: &[],
        },
    );
}

#[test]
fn cluster_lock() {
    let stages = [("demo", "cluster-lock")];
    run(
        "lock",
        &Run {
            files: &[],
            router: Some(&[]),
            nodes: &[Node {
                id: 1,
                ..demo(&stages, &[])
            }],
            env: &[],
        },
    );
}

#[test]
fn modules() {
    let files = [
        ("module-greet", "lib/greet.lua"),
        ("module-counter", "counter.lua"),
    ];
    alone("modules", &files, demo(&[("demo", "modules")], &[]), &[]);
}

#[test]
fn submit_named() {
    let files = [("jobs-module", "jobs.lua")];
    alone(
        "submit-named",
        &files,
        demo(&[("demo", "submit-named")], &[]),
        &[],
    );
}

#[test]
fn process() {
    let node = demo(&[("demo", "process")], &["--lua-config", "config.json"]);
    alone("process", &[("lua-config", "config.json")], node, &[]);
}

/// The logger example logs: its output lines end the node's stderr lines (after the time
/// stamp), in order; the debug line is filtered out.
#[test]
fn logger() {
    let (node, _dir) = quiet("logger", &[("GREETING", "hi"), ("RUST_LOG", "info")]);
    let expected = example(DOC, "logger").output_lines();
    node.wait_err(expected.last().expect("a line"), WAIT);
    let err = node.stderr();
    let mut lines = err.iter();
    for e in &expected {
        assert!(
            lines.any(|l| l.ends_with(&format!(" {e}"))),
            "no log line ending in {e:?} (in order)\n{}",
            node.dump()
        );
    }
    assert!(
        !err.iter()
            .any(|l| l.contains("hidden at the default level")),
        "{}",
        node.dump()
    );
}

/// The reload example: the test saves the version the document asks for while the node runs.
#[test]
fn reload() {
    let (node, dir) = quiet("reload", &[]);
    node.wait_out("ask answers: version 1", WAIT);
    let v2 = example(DOC, "reload")
        .code
        .replace("version 1", "version 2");
    std::fs::write(dir.dir.join("demo.lua"), v2).expect("save version 2");
    node.wait_lines(&example(DOC, "reload").output_lines(), WAIT);
}

/// Examples run alone, each as stage `demo` of a standalone node with the flags given.
macro_rules! solo_examples {
    ($($test:ident: $name:literal $($flag:literal)*;)*) => {
        $(
            #[test]
            fn $test() {
                solo($name, &[$($flag),*]);
            }
        )*
    };
}

solo_examples! {
    main_returns_table: "main-returns-table";
    globals: "globals";
    sandbox: "sandbox";
    store: "store";
    waitfor_forms: "waitfor-forms";
    waitfor_groups: "waitfor-groups";
    signal_local: "signal-local";
    signal_failures: "signal-failures";
    signal_errors: "signal-errors";
    addtask: "addtask";
    submit: "submit" "--threads" "2";
    thread: "thread";
    proxy: "proxy";
    stage_index: "stage-index";
    lua_libraries: "lua-libraries";
    actor: "actor";
    ticket_global: "ticket-global" "--stage" "ticket=ticket" "--ticket" "login=1";
    limits: "limits" "--instruction-budget" "1000000";
}
