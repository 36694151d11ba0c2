//! The broker (stage-spec §10; seed 002's input control): Lua listeners and connections on
//! real sockets, driven by real clients on 127.0.0.1.

mod common;
use common::{Proc, Scratch, WAIT};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

/// A standalone node running `main.lua` (the script) with `{PORT}` replaced by a free port.
fn node(dir: &Scratch, script: &str) -> (Proc, u16) {
    let port = common::free_port();
    dir.write("main.lua", &script.replace("{PORT}", &port.to_string()));
    let p = Proc::node("node", &["--stage", "main=main.lua"], &dir.dir);
    p.wait_out("READY", WAIT);
    (p, port)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// §10.2 text framing: each receive is one line with its `\n`; what the handler returns goes
/// back; the accept callback sees the peer address (`broker.ntoa`).
#[test]
fn text_echo_with_accept_and_close_callbacks() {
    let dir = Scratch::new("broker-text");
    let (p, port) = node(
        &dir,
        r#"
local l = broker.ready("tcp://127.0.0.1:{PORT}?text", function (socket, addr)
    print("ACCEPT", broker.ntoa(addr) == broker.ntoa(socket[1]), socket.id == socket[0])
    socket.close = function (s, errno) print("CLOSE", s.id, errno) end
    return function (s, line)
        print("RECEIVE", line)
        return "HELLO " .. line
    end
end)
print("READY", type(l), tostring(l):match("^broker: %d+%-127%.0%.0%.1:%d+$") ~= nil)
"#,
    );
    assert!(p.wait_out("READY", WAIT).contains("userdata\ttrue"));
    let mut c = connect(port);
    c.write_all(b"hi\nthere\n").unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "HELLO hi\n");
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "HELLO there\n");
    assert!(p.wait_out("ACCEPT", WAIT).contains("true\ttrue"));
    drop(r);
    drop(c);
    let close = p.wait_out("CLOSE", WAIT);
    assert!(close.ends_with("\t0"), "{close}");
}
