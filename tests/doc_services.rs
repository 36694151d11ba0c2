//! The examples of docs/services.md, run as the document says: a router, a node hosting the
//! built-in service (instance 9) and the example as stage `game` on a node of its own
//! (instance 1); each must print its `text output` block, in order.

mod common;
#[allow(dead_code)] // the TLS half serves tests/agent.rs
#[path = "agent/server.rs"]
mod server;

use common::markdown::example;
use common::{Proc, Scratch, WAIT};

const DOC: &str = "docs/services.md";

/// Runs example `name` beside `--stage SERVICE` with `flags`; `edit` adjusts the code before
/// it is written (the agent examples' server address).
fn run(name: &str, service: &str, flags: &[&str], edit: impl Fn(&str) -> String) {
    let block = example(DOC, name);
    let dir = Scratch::new(&format!("doc-services-{name}"));
    dir.write("game.lua", &edit(&block.code));
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let mut args = vec!["--router", &addr, "--id", "9", "--stage", service];
    args.extend_from_slice(flags);
    let _service = Proc::node("service", &args, &dir.dir);
    let stage = service.split('=').next().unwrap_or_default();
    router.wait_err(&format!("registered {stage}:9"), WAIT);
    let game = Proc::node(
        "game",
        &["--router", &addr, "--id", "1", "--stage", "game=game.lua"],
        &dir.dir,
    );
    game.wait_lines(&block.output_lines(), WAIT);
}

fn route(name: &str) {
    run(name, "route=route", &[], str::to_owned);
}

fn ticket(name: &str) {
    run(
        name,
        "ticket=ticket",
        &["--ticket", "login=2"],
        str::to_owned,
    );
}

fn index(name: &str) {
    run(name, "rank=index", &[], str::to_owned);
}

/// The agent examples ask `http://127.0.0.1:8080`: the test server, on a free port.
fn agent(name: &str) {
    let srv = server::Server::start(None);
    let url = srv.url("http");
    run(name, "agent=curl", &[], |code| {
        code.replace("http://127.0.0.1:8080", &url)
    });
}

#[test]
fn route_publish() {
    route("route-publish");
}

#[test]
fn route_broadcast() {
    route("route-broadcast");
}

#[test]
fn route_offers() {
    route("route-offers");
}

#[test]
fn route_failures() {
    route("route-failures");
}

#[test]
fn route_control() {
    route("route-control");
}

#[test]
fn ticket_grant() {
    ticket("ticket-grant");
}

#[test]
fn ticket_hold() {
    ticket("ticket-hold");
}

#[test]
fn ticket_table() {
    ticket("ticket-table");
}

#[test]
fn ticket_categories() {
    ticket("ticket-categories");
}

#[test]
fn index_set_get() {
    index("index-set-get");
}

#[test]
fn index_range() {
    index("index-range");
}

#[test]
fn index_tiers_batch() {
    index("index-tiers-batch");
}

#[test]
fn agent_get() {
    agent("agent-get");
}

#[test]
fn agent_post() {
    agent("agent-post");
}

#[test]
fn agent_redirect() {
    agent("agent-redirect");
}

#[test]
fn agent_failures() {
    agent("agent-failures");
}
