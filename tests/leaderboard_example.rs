//! cluster-examples/leaderboard: a game posts ratings to the index service and reads the top
//! three; run a second time, the board is still there (the index keeps it on disk).

mod common;
use common::markdown::{example, in_order};
use common::{free_port, Proc, Scratch, WAIT};

const README: &str = "cluster-examples/leaderboard/README.md";

/// Runs the example until the board is shown; returns the launcher's output, stopped.
fn run_once(port: &str, data: &str) -> Vec<String> {
    let mut stage = Proc::documented(
        README,
        "run",
        &[
            ("STAGE_LEADERBOARD_PORT", port),
            ("STAGE_LEADERBOARD_DATA", data),
        ],
    );
    stage.wait_out("[game] players on the board: 5", WAIT);
    stage.stop_cleanly();
    stage.stdout()
}

#[test]
fn leaderboard_ranks_players_and_keeps_the_board_on_disk() {
    let data = Scratch::new("leaderboard");
    let data = data.dir.to_str().unwrap().to_owned();
    let port = free_port().to_string();
    let first = run_once(&port, &data);
    // What the README shows, in its order.
    let shown = example(README, "run").output_lines();
    assert!(in_order(&first, &shown), "{shown:#?} in {first:#?}");
    // Every player got a rank answered.
    let ranked = first.iter().filter(|l| l.contains(" is now #")).count();
    assert_eq!(ranked, 5, "{first:#?}");
    // A second run finds the board the first one left.
    let second = run_once(&port, &data);
    assert!(
        second
            .iter()
            .any(|l| l == "[game] the board has 5 players; posting ratings"),
        "{second:#?}"
    );
}
