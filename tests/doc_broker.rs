//! The examples of docs/broker.md: each is a stage script that serves and is its own client,
//! run as the document says (`stage-node --stage game=game.lua`, no router) with its loopback
//! ports 7001–7003 replaced by free ones; each must print its `text output` block, in order.

mod common;
use common::markdown::example;
use common::{Proc, Scratch, WAIT};

const DOC: &str = "docs/broker.md";

/// A loopback port free for both TCP and UDP a moment ago.
fn free_port() -> u16 {
    loop {
        let port = common::free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts example `name` in `dir`; returns the node and the output it must print, both with
/// the example's ports replaced.
fn start(name: &str, dir: &Scratch) -> (Proc, Vec<String>) {
    let block = example(DOC, name);
    let mut code = block.code.clone();
    let mut output = block.output_lines();
    for port in ["7001", "7002", "7003"] {
        let (from, to) = (format!(":{port}"), format!(":{}", free_port()));
        code = code.replace(&from, &to);
        output = output.iter().map(|l| l.replace(&from, &to)).collect();
    }
    dir.write("game.lua", &code);
    let node = Proc::node("game", &["--stage", "game=game.lua"], &dir.dir);
    (node, output)
}

fn run(name: &str) {
    let dir = Scratch::new(&format!("doc-broker-{name}"));
    let (node, output) = start(name, &dir);
    node.wait_lines(&output, WAIT);
}

#[test]
fn echo() {
    run("broker-echo");
}

#[test]
fn text() {
    run("broker-text");
}

#[test]
fn bson() {
    run("broker-bson");
}

#[test]
fn packet() {
    run("broker-packet");
}

#[test]
fn slow_consumer() {
    run("broker-slow-consumer");
}

#[test]
fn udp() {
    run("broker-udp");
}

#[test]
fn signal_submit() {
    run("broker-signal-submit");
}

#[test]
fn errors() {
    run("broker-errors");
}

#[test]
fn addresses() {
    run("broker-addresses");
}

#[test]
fn settings() {
    run("broker-settings");
}

#[test]
fn limit() {
    run("broker-limit");
}

/// The reload example's second line comes from the script's second run: the file is changed
/// once the first run has printed.
#[test]
fn reload() {
    let dir = Scratch::new("doc-broker-reload");
    let (node, output) = start("broker-reload", &dir);
    node.wait_lines(&output[..1], WAIT);
    let path = dir.dir.join("game.lua");
    let code = std::fs::read_to_string(&path).expect("read game.lua");
    dir.write("game.lua", &format!("{code}-- changed\n"));
    node.wait_lines(&output, WAIT);
}
