//! The examples of `"docs/from-stage-and-luna.md"`, each saved as the file its first line names
//! and run on a standalone node the way the README runs scripts (`stage-node --stage
//! NAME=FILE`): `"values"` — STAGE's own multi-value example, which the original failed on —
//! prints every value; `"entry"` — luna's entry loop as a main script — ticks three times, stops
//! its idle function by returning nothing (a timer a second later still counts three), and runs
//! its quit hook on SIGTERM.

mod common;
use common::docrun::run_standalone;
use common::markdown::example;
use common::{Proc, Scratch, WAIT};

const PAGE: &str = "docs/from-stage-and-luna.md";

#[test]
fn every_value_of_a_message_arrives() {
    run_standalone(PAGE, "values");
}

#[test]
fn luna_entry_loop_ticks_stops_and_quits() {
    let dir = Scratch::new("originals-entry");
    let block = example(PAGE, "entry");
    let mut node = Proc::standalone(&block, &dir.dir);
    let expected = block.output_lines();
    let (ticks, quit) = expected.split_at(expected.len() - 1);
    node.wait_lines(ticks, WAIT);
    node.signal(libc::SIGTERM);
    node.wait_lines(quit, WAIT);
    let status = node.wait_exit(WAIT).expect("the node stops");
    assert!(status.success(), "{status}\n{}", node.dump());
}
