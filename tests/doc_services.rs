//! The examples of docs/services.md, run as the document says: a router, a node hosting the
//! built-in service (instance 9) and the example as stage `game` on a node of its own
//! (instance 1); each must print its `text output` block, in order.

mod common;
#[path = "agent/server.rs"]
mod server;

use common::markdown::example;
use common::{Proc, Scratch, WAIT};

const DOC: &str = "docs/services.md";

/// Runs example `name` beside `--stage SERVICE` with `flags`; `edit` adjusts the code before
/// it is written (the agent examples' server address).
fn run(name: &str, service: &str, flags: &[&str], edit: impl Fn(&str) -> String) {
    let dir = Scratch::new(&format!("doc-services-{name}"));
    run_in(&dir, name, service, flags, edit);
}

/// [`run`] in `dir`, which holds the files the flags name.
fn run_in(dir: &Scratch, name: &str, service: &str, flags: &[&str], edit: impl Fn(&str) -> String) {
    let block = example(DOC, name);
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
fn route_keepalive() {
    let flags = ["--route-keepalive", "500"];
    run("route-keepalive", "route=route", &flags, str::to_owned);
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

/// `https://127.0.0.1:8443` is the test server over TLS, its CA given with `--agent-ca`.
#[test]
fn agent_https() {
    let dir = Scratch::new("doc-services-agent-https");
    let (tls, ca) = server::tls_files(&dir.dir);
    let srv = server::Server::start(Some(tls));
    let url = srv.url("https");
    let ca = ca.to_string_lossy().into_owned();
    run_in(
        &dir,
        "agent-https",
        "agent=curl",
        &["--agent-ca", &ca],
        |code| code.replace("https://127.0.0.1:8443", &url),
    );
}

#[test]
fn agent_failures() {
    agent("agent-failures");
}
