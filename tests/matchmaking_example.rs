//! cluster-examples/matchmaking: joins go to the master matchmaker; killed, the other one takes
//! over at once; restarted by the launcher, the first one is the master again.

mod common;
use common::markdown::example;
use common::{free_port, Proc, WAIT};
use std::time::{Duration, Instant};

/// The pid the launcher printed for `name`'s latest start.
fn pid_of(stage: &Proc, name: &str) -> i32 {
    let line = stage.wait_err(&format!("[stage] started {name} (pid "), WAIT);
    line.rsplit("(pid ")
        .next()
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"))
}

#[test]
fn the_master_matchmaker_fails_over_and_back() {
    let port = free_port().to_string();
    let readme = "cluster-examples/matchmaking/README.md";
    let mut stage = Proc::documented(readme, "run", &[("STAGE_MATCH_PORT", &port)]);
    // The README's first pairing, by the master on node 1.
    stage.wait_lines(&example(readme, "run").output_lines(), WAIT);
    let master = pid_of(&stage, "match1");
    unsafe { libc::kill(master, libc::SIGKILL) };
    stage.wait_out("(matchmaker on node 2)", WAIT);
    // While node 1 lived, node 2 answered nothing: every join went to the master.
    let by = |node: u32| move |l: &String| l.ends_with(&format!("(matchmaker on node {node})"));
    let out = stage.stdout();
    let first_2 = out.iter().position(by(2)).expect("node 2 answered");
    assert!(out.iter().rposition(by(1)) < Some(first_2), "{out:#?}");
    // The launcher restarts match1, and it is the master again.
    let deadline = Instant::now() + WAIT;
    while !stage.stdout().iter().skip(first_2).any(by(1)) {
        assert!(
            Instant::now() < deadline,
            "node 1 never answered again\n{}",
            stage.dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stage.stop_cleanly();
}
