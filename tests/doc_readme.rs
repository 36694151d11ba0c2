//! The examples of `"README.md"`, run as the README shows them: each `cargo run -- ARGS` as the
//! built `stage` binary with ARGS (what cargo runs), each Lua block saved as the file its first
//! line names, in a scratch directory. The README's fixed ports (7400, 7001) are moved to free
//! ones; nothing else is changed. The block of `cargo test` is run by `.ci/run` (tested-by=ci).

mod common;
use common::docrun::{cargo_run, cargo_runs, run_standalone, save};
use common::markdown::{example, root};
use common::{free_port, Proc, Scratch, WAIT};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const README: &str = "README.md";

/// The demo: `cargo run -- run cluster-examples/hello/topology.lua` exchanges hellos and stops
/// cleanly on Ctrl-C, as the README says.
#[test]
fn demo_cluster_runs_and_stops_on_ctrl_c() {
    let port = free_port().to_string();
    let run = cargo_run(&example(README, "demo"));
    let args: Vec<&str> = run.args.iter().map(String::as_str).collect();
    let bin = env!("CARGO_BIN_EXE_stage");
    let env = [("STAGE_HELLO_PORT", port.as_str())];
    let mut stage = Proc::spawn_job("stage", bin, &args, &root(), &env);
    stage.wait_out("[beta] pong: hello #1 from ping on node 1", WAIT);
    stage.wait_out("[alpha] ping: pong answered hello #1", WAIT);
    // Ctrl-C reaches the whole foreground job; every process still stops cleanly.
    stage.ctrl_c();
    for child in ["router", "alpha", "beta"] {
        stage.wait_err(&format!("[stage] {child} exited with exit status: 0"), WAIT);
    }
    stage.wait_err("[stage] stopped", WAIT);
}

/// Saves the README's Lua block `lua` in a scratch directory, runs the README's command `run`
/// there and waits for the output the README shows after it.
fn save_and_run(lua: &str, run: &str) {
    let dir = Scratch::new(lua);
    save(&example(README, lua), &dir.dir);
    let run = example(README, run);
    let node = Proc::cargo_run(&cargo_run(&run), &dir.dir, &[], &[]);
    node.wait_lines(&run.output_lines(), WAIT);
}

/// Tour 1: `hello.lua` on a standalone node (`cargo run -- node --stage hello=hello.lua`).
#[test]
fn tour_hello_runs_standalone() {
    save_and_run("hello", "hello-node");
}

/// Tour 2: a router, two `rank` nodes in hash mode and a `game` node, started as the README's
/// four commands; the game prints which node keeps each user.
#[test]
fn tour_cluster_splits_users_by_hash() {
    let dir = Scratch::new("readme-cluster");
    save(&example(README, "rank"), &dir.dir);
    save(&example(README, "game"), &dir.dir);
    let addr = format!("127.0.0.1:{}", free_port());
    let block = example(README, "cluster");
    let mut procs = Vec::new();
    for run in cargo_runs(&block) {
        let p = Proc::cargo_run(&run, &dir.dir, &[("127.0.0.1:7400", &addr)], &[]);
        if run.args[0] == "router" {
            p.wait_err("listening on", WAIT);
        }
        procs.push((run.background, p));
    }
    // The one command in the foreground is the game's.
    let game = procs
        .iter()
        .find(|(background, _)| !background)
        .map(|(_, p)| p)
        .expect("a foreground command");
    game.wait_lines(&block.output_lines(), WAIT);
}

/// Tour 5: jobs with the same key run one at a time, in order, on the workers.
#[test]
fn tour_submit_keeps_a_keys_jobs_in_order() {
    run_standalone(README, "submit");
}

/// Tour 6: the lobby takes a ticket and ranks a player, with `ticket` and `rank` (index) on
/// its node, started by the README's command.
#[test]
fn tour_services_answer_the_lobby() {
    save_and_run("services", "services-node");
}

/// Tour 7: the broker listener answers a client's BSON document with `{ echo = msg }`.
#[test]
fn tour_broker_echoes_a_client() {
    let dir = Scratch::new("readme-broker");
    let port = free_port();
    let block = example(README, "broker");
    let code = block.code.replace(":7001?", &format!(":{port}?"));
    assert_ne!(code, block.code, "the README's listener is on port 7001");
    dir.write("echo.lua", &code);
    let _node = Proc::node("echo", &["--stage", "echo=echo.lua"], &dir.dir);
    let deadline = Instant::now() + WAIT;
    let mut client = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the listener never came up: {e}"),
        }
    };
    client.set_read_timeout(Some(WAIT)).unwrap();
    let hello = bson::doc! { "say": "hi" };
    client.write_all(&bson::to_vec(&hello).unwrap()).unwrap();
    let answer = bson::Document::from_reader(&mut client).expect("an answer");
    assert_eq!(answer, bson::doc! { "v": { "echo": "hi" } });
}
