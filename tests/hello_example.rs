//! The README's first command: `cargo run -- run cluster-examples/hello/topology.lua` shows the
//! hello exchange between two nodes through a router, and stops cleanly on SIGINT (issue 2).

mod common;
use common::markdown::example;
use common::{free_port, Proc, WAIT};

#[test]
fn hello_cluster_exchanges_messages_and_stops_on_sigint() {
    let port = free_port().to_string();
    let readme = "cluster-examples/hello/README.md";
    let mut stage = Proc::documented(readme, "run", &[("STAGE_HELLO_PORT", &port)]);
    // What the README shows.
    stage.wait_lines(&example(readme, "run").output_lines(), WAIT);
    // Both directions and both kinds of answer: ping → pong with a reply to `reply`, and
    // pong → ping (every third hello) with ping's return value back to pong's `ack`.
    stage.wait_out("[beta] pong: hello #1 from ping on node 1", WAIT);
    stage.wait_out(
        "[alpha] ping: pong answered hello #1: nice to meet you, I am pong on node 2",
        WAIT,
    );
    stage.wait_out("[alpha] ping: news from pong: pong has seen 3 hellos", WAIT);
    stage.wait_out("[beta] pong: ping says: thanks for the news", WAIT);
    assert!(
        !stage.stdout().iter().any(|l| l.contains("not delivered")),
        "every hello reached pong:\n{}",
        stage.dump()
    );

    stage.stop_cleanly();
    stage.wait_err("[stage] stopped", WAIT);
    // Children stopped cleanly too (exit status 0, not killed).
    for child in ["router", "alpha", "beta"] {
        stage.wait_err(&format!("[stage] {child} exited with exit status: 0"), WAIT);
    }
}
