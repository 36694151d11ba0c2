//! cluster-examples/login: six simultaneous logins through the ticket service with two
//! tickets — every player gets in, never more than two at once.

mod common;
use common::markdown::example;
use common::{free_port, Proc, WAIT};

#[test]
fn logins_wait_for_one_of_two_tickets() {
    let port = free_port().to_string();
    let readme = "cluster-examples/login/README.md";
    let mut stage = Proc::documented(readme, "run", &[("STAGE_LOGIN_PORT", &port)]);
    stage.wait_lines(&example(readme, "run").output_lines(), WAIT);
    let out = stage.stdout();
    for player in ["ann", "ben", "cat", "dan", "eve", "fay"] {
        assert!(
            out.iter()
                .any(|l| l == &format!("[lobby] {player}: logged in")),
            "{player} in {out:#?}"
        );
    }
    // The third player waited for a ticket: somebody was let in only after a first one left.
    let first_out = out.iter().position(|l| l.ends_with(": logged in")).unwrap();
    let third_in = out
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(": logging in"))
        .nth(2)
        .map(|(i, _)| i)
        .unwrap();
    assert!(first_out < third_in, "{out:#?}");
    stage.stop_cleanly();
}
