//! The example of `"docs/concepts.md"`: the files `"modes-topology"`, `"modes-worker"` and
//! `"modes-client"` saved where their first lines say, and `"modes-run"` (`cargo run -- run
//! modes/topology.lua`) run as the built `stage` binary with the router on a free port
//! (`STAGE_PORT`, which the topology reads): the client's answers in each forwarding mode, an
//! unknown stage's failure path and a deadline, as the page shows them.

mod common;
use common::docrun::{cargo_run, save};
use common::markdown::example;
use common::{free_port, Proc, Scratch, WAIT};

const PAGE: &str = "docs/concepts.md";

#[test]
fn modes_example_answers_as_the_page_shows() {
    let dir = Scratch::new("concepts");
    std::fs::create_dir(dir.dir.join("modes")).expect("mkdir modes");
    for name in ["modes-topology", "modes-worker", "modes-client"] {
        save(&example(PAGE, name), &dir.dir);
    }
    let run = example(PAGE, "modes-run");
    let port = free_port().to_string();
    let mut stage = Proc::cargo_run(&cargo_run(&run), &dir.dir, &[], &[("STAGE_PORT", &port)]);
    stage.wait_lines(&run.output_lines(), WAIT);
    stage.stop_cleanly();
}
