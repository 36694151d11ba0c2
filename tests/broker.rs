//! The broker (stage-spec §10; seed 002's input control): Lua listeners and connections on
//! real sockets, driven by real clients on 127.0.0.1.

mod common;
use common::{Proc, Scratch, WAIT};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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

/// A BSON document as one frame.
fn doc(d: bson::Document) -> Vec<u8> {
    bson::to_vec(&d).unwrap()
}

/// Reads one length-prefixed frame (u32 LE length counting itself).
fn read_frame(c: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    c.read_exact(&mut len).unwrap();
    let n = u32::from_le_bytes(len) as usize;
    let mut rest = vec![0u8; n - 4];
    c.read_exact(&mut rest).unwrap();
    [len.to_vec(), rest].concat()
}

/// Reads one `?bson` frame a script committed a table with: the table (`{"v": table}`).
fn read_reply(c: &mut TcpStream) -> bson::Document {
    let frame = bson::Document::from_reader(&mut &read_frame(c)[..]).unwrap();
    frame.get_document("v").unwrap().clone()
}

/// §10.2 `?bson`: the handler gets the first element's value, user fields persist on the
/// socket (§10.4), a returned table comes back as `{"v": ...}`; a malformed document closes
/// only its own connection.
#[test]
fn bson_frames_user_values_and_a_malformed_client() {
    let dir = Scratch::new("broker-bson");
    let (p, port) = node(
        &dir,
        r#"
broker.ready("tcp://127.0.0.1:{PORT}?bson", function (socket)
    socket.name = "guest" .. socket.id
    socket.close = function (s, errno) print("CLOSE", errno) end
    return function (s, data)
        s.count = (s.count or 0) + 1
        return { echo = data.a, name = s.name, count = s.count }
    end
end)
print("READY")
"#,
    );
    let mut good = connect(port);
    let mut bad = connect(port);
    for i in 1..=2 {
        good.write_all(&doc(bson::doc! {"x": {"a": 5, "b": "q"}}))
            .unwrap();
        let v = read_reply(&mut good);
        assert_eq!(v.get_i64("echo").unwrap(), 5);
        assert_eq!(v.get_i64("count").unwrap(), i);
        assert!(v.get_str("name").unwrap().starts_with("guest"));
    }
    // A frame whose length is right but whose content is not BSON.
    bad.write_all(&[9, 0, 0, 0, 0x42, b'k', 0, 1, 0]).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        bad.read(&mut buf).unwrap_or(0),
        0,
        "the bad client is closed"
    );
    assert!(p
        .wait_out("CLOSE", WAIT)
        .ends_with(&format!("\t{}", libc::EBADMSG)));
    assert!(p.wait_err("decode failed", WAIT).contains("closing it"));
    good.write_all(&doc(bson::doc! {"x": {"a": 7}})).unwrap();
    assert_eq!(read_reply(&mut good).get_i64("echo").unwrap(), 7);
}

/// §10.2 `?packet=IN,OUT`: u32 LE length frames whose payload reaches Lua as a string; a frame
/// over `IN` closes that socket with a logged reason while the others are served.
#[test]
fn packet_frames_and_an_oversized_frame() {
    let dir = Scratch::new("broker-packet");
    let (p, port) = node(
        &dir,
        r#"
broker.ready("tcp://127.0.0.1:{PORT}?packet=1k,4k", function (socket)
    return function (s, data)
        if data == "table" then return { n = #data } end
        return "got " .. data
    end
end)
print("READY")
"#,
    );
    let packet = |p: &[u8]| [((p.len() + 4) as u32).to_le_bytes().to_vec(), p.to_vec()].concat();
    let mut a = connect(port);
    let mut big = connect(port);
    a.write_all(&packet(b"hello")).unwrap();
    assert_eq!(read_frame(&mut a), packet(b"got hello"));
    a.write_all(&packet(b"table")).unwrap();
    let reply = read_frame(&mut a);
    let d = bson::Document::from_reader(&mut &reply[4..]).unwrap();
    assert_eq!(d.get_document("v").unwrap().get_i64("n").unwrap(), 5);
    big.write_all(&2000u32.to_le_bytes()).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        big.read(&mut buf).unwrap_or(0),
        0,
        "the oversized sender is closed"
    );
    assert!(p
        .wait_err("over the input limit", WAIT)
        .contains("closing it"));
    a.write_all(&packet(b"still")).unwrap();
    assert_eq!(read_frame(&mut a), packet(b"got still"));
}

/// Raw sockets (no filter): bytes reach Lua as they arrive; IPv6 listeners and the address
/// fields `[-1]` / `[1]` (§10.4).
#[test]
fn raw_bytes_over_ipv6() {
    let dir = Scratch::new("broker-raw6");
    let (p, port) = node(
        &dir,
        r#"
broker.ready("tcp://[::1]:{PORT}", function (socket, addr)
    print("ADDRS", broker.ntoa(socket[-1]), broker.ntoa(addr))
    return function (s, data) return data:upper() end
end)
print("READY")
"#,
    );
    let mut c = TcpStream::connect(("::1", port)).expect("connect over IPv6");
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"abc\x00def").unwrap();
    let mut got = Vec::new();
    while got.len() < 7 {
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"ABC\x00DEF");
    let line = p.wait_out("ADDRS", WAIT);
    let me = c.local_addr().unwrap().port();
    assert_eq!(line, format!("ADDRS\t[::1]:{port}\t[::1]:{me}"));
}

/// `broker.ready` failures come back as an errno and a message (§10.3): a bad filter is
/// EINVAL, a port in use EADDRINUSE.
#[test]
fn ready_failures_are_errnos() {
    let dir = Scratch::new("broker-errors");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    dir.write(
        "main.lua",
        &r#"
local e, why = broker.ready("tcp://127.0.0.1:1?zip", function () end)
print("BAD", e, why)
print("INUSE", broker.ready("tcp://127.0.0.1:{PORT}", function () end))
print("JOINUDP", broker.join("udp://127.0.0.1:{PORT}", function () end))
print("READY")
"#
        .replace("{PORT}", &port.to_string()),
    );
    let p = Proc::node("node", &["--stage", "main=main.lua"], &dir.dir);
    assert!(p
        .wait_out("BAD", WAIT)
        .starts_with(&format!("BAD\t{}\tbad broker URI", libc::EINVAL)));
    assert!(p
        .wait_out("INUSE", WAIT)
        .starts_with(&format!("INUSE\t{}\t", libc::EADDRINUSE)));
    assert!(p
        .wait_out("JOINUDP", WAIT)
        .starts_with(&format!("JOINUDP\t{}\t", libc::EPROTONOSUPPORT)));
}

/// UDP (§10.3 `broker.ready("udp://...")`): the handler gets `(socket, data, addr)` and what it
/// returns goes back to the sender; `socket.commit(v, addr)` and `broker.signal(addr, v)` send
/// datagrams; a multicast group is joined (here on the loopback interface, `&iface=`).
#[test]
fn udp_unicast_multicast_and_datagrams_to_addresses() {
    use std::net::UdpSocket;
    let dir = Scratch::new("broker-udp");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let peer_port = peer.local_addr().unwrap().port();
    let group_port = common::free_port();
    let script = r#"
local to = broker.aton("udp://127.0.0.1:{PEER}")
broker.ready("udp://127.0.0.1:{PORT}?bson", function (socket, data, addr)
    print("UDP", data.k, broker.ntoa(addr) ~= nil)
    socket.commit({ again = data.k }, addr)
    return { got = data.k }
end)
broker.ready("udp://239.255.42.99:{GROUP}?text&iface=127.0.0.1", function (socket, data, addr)
    print("GROUP", data)
    broker.signal(to, "seen " .. data)
end)
print("READY")
"#
    .replace("{PEER}", &peer_port.to_string())
    .replace("{GROUP}", &group_port.to_string());
    let (p, port) = node(&dir, &script);
    // A datagram that is not BSON and one over the input size are dropped; the socket, which
    // serves every sender, stays open.
    peer.send_to(&[6, 0, 0, 0, 0x42, 1], ("127.0.0.1", port))
        .unwrap();
    peer.send_to(&[0u8; 9000], ("127.0.0.1", port)).unwrap();
    peer.send_to(&doc(bson::doc! {"x": {"k": "one"}}), ("127.0.0.1", port))
        .unwrap();
    let mut replies = Vec::new();
    for _ in 0..2 {
        let mut buf = [0u8; 256];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(from.port(), port);
        let d = bson::Document::from_reader(&mut &buf[..n]).unwrap();
        replies.push(d.get_document("v").unwrap().clone());
    }
    replies.sort_by_key(|d| d.keys().next().cloned());
    assert_eq!(replies[0].get_str("again").unwrap(), "one");
    assert_eq!(replies[1].get_str("got").unwrap(), "one");
    assert!(p.wait_out("UDP", WAIT).ends_with("one\ttrue"));
    assert!(p
        .wait_err("datagram dropped", WAIT)
        .contains("decode failed"));

    // Multicast: send to the group through the loopback interface.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    stage_node::broker::udp::set_multicast_if(&sender, std::net::Ipv4Addr::LOCALHOST);
    sender
        .send_to(b"hi group", ("239.255.42.99", group_port))
        .unwrap();
    assert_eq!(p.wait_out("GROUP", WAIT), "GROUP\thi group");
    let mut buf = [0u8; 64];
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"seen hi group");
}

/// `broker.join` (§10.3): the connect callback runs once connected and may send; the socket's
/// receive handler gets the server's lines; a refused connection and a connection that times
/// out each run the close callback with their errno (also `socket.errno`, §10.4).
#[test]
fn join_connects_and_reports_failures() {
    let dir = Scratch::new("broker-join");
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = server.local_addr().unwrap().port();
    let refused_port = common::free_port();
    // A listener whose accept queue is full: further connection attempts hang.
    let (full_port, _full, _queued) = full_listener();
    let script = r#"
local s = broker.join("tcp://127.0.0.1:{SERVER}?text", function (socket)
    print("CONNECTED", broker.ntoa(socket[1]))
    socket.commit("hello\n")
end)
s.receive = function (socket, line) print("LINE", line) end
local r = broker.join("tcp://127.0.0.1:{REFUSED}", function () print("WRONG") end)
r.close = function (socket, errno) print("REFUSED", errno, socket.errno) end
local t = broker.join("tcp://127.0.0.1:{FULL}", function () print("WRONG") end, 300)
t.close = function (socket, errno) print("TIMEOUT", errno) end
print("READY")
"#
    .replace("{SERVER}", &server_port.to_string())
    .replace("{REFUSED}", &refused_port.to_string())
    .replace("{FULL}", &full_port.to_string());
    dir.write("main.lua", &script);
    let p = Proc::node("node", &["--stage", "main=main.lua"], &dir.dir);
    let (mut c, _) = server.accept().unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");
    assert_eq!(
        p.wait_out("CONNECTED", WAIT),
        format!("CONNECTED\t127.0.0.1:{server_port}")
    );
    c.write_all(b"welcome\n").unwrap();
    assert_eq!(p.wait_out("LINE", WAIT), "LINE\twelcome");
    assert_eq!(
        p.wait_out("REFUSED", WAIT),
        format!("REFUSED\t{0}\t{0}", libc::ECONNREFUSED)
    );
    assert_eq!(
        p.wait_out("TIMEOUT", WAIT),
        format!("TIMEOUT\t{}", libc::ETIMEDOUT)
    );
    assert!(!p.stdout().iter().any(|l| l == "WRONG"));
}

/// A loopback listener with a backlog of 0 and one connection already queued: the kernel
/// drops further SYNs, so a connect to it hangs until its timeout.
fn full_listener() -> (u16, std::net::TcpListener, Vec<TcpStream>) {
    use std::os::fd::AsRawFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen() on a socket we own.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let port = l.local_addr().unwrap().port();
    let mut queued = Vec::new();
    // Fill the queue (its length is backlog + 1); stop once connects start to hang.
    for _ in 0..4 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => queued.push(s),
            Err(_) => break,
        }
    }
    (port, l, queued)
}

/// Lines read from `c` until `n` arrived.
fn lines(c: &TcpStream, n: usize) -> Vec<String> {
    let mut r = BufReader::new(c.try_clone().unwrap());
    (0..n)
        .map(|_| {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            l
        })
        .collect()
}

/// `broker.f`, `broker.submit` and `broker.signal` to a socket (§10.3): a submitted function
/// runs with the socket in turn with its callbacks; a signal runs the receive handler as if
/// the value had arrived; a closed socket is gone from `broker.f`.
#[test]
fn f_submit_signal_and_close() {
    let dir = Scratch::new("broker-ops");
    let (p, port) = node(
        &dir,
        r#"
broker.ready("tcp://127.0.0.1:{PORT}?text", function (socket)
    socket.close = function (s, errno)
        print("CLOSE", s.id, errno)
        local id = s.id
        stage.addtask(50, function () print("GONE", id, broker.f(id) == nil) return -1 end)
    end
    return function (s, line)
        if line == "who\n" then
            broker.submit(s.id, function (me, a, b) me.commit("sum " .. (a + b) .. "\n") end, 1, 2)
            broker.signal(s, "simulated\n")
        else
            print("SEEN", broker.f(s.id) == s, line)
            return "echo " .. line
        end
    end
end)
print("READY")
"#,
    );
    let a = connect(port);
    (&a).write_all(b"hi\n").unwrap();
    assert_eq!(lines(&a, 1), ["echo hi\n"]);
    assert!(p.wait_out("SEEN", WAIT).starts_with("SEEN\ttrue"));
    (&a).write_all(b"who\n").unwrap();
    // The submitted job was queued before the signal, and both run in the socket's order.
    assert_eq!(lines(&a, 2), ["sum 3\n", "echo simulated\n"]);
    drop(a);
    let _ = p.wait_out("CLOSE", WAIT);
    assert!(p.wait_out("GONE", WAIT).ends_with("true"));
}

/// A group send (§10.3 `broker.signal({ids..., f}, v)`) writes to every socket in the table,
/// then runs its function with the elapsed seconds and the value; `broker.close` takes a table
/// of ids and closes in order (errno 0).
#[test]
fn group_send_and_close_by_ids() {
    let dir = Scratch::new("broker-group");
    let (p, port) = node(
        &dir,
        r#"
broker.ready("tcp://127.0.0.1:{PORT}?text", function (socket)
    socket.close = function (s, errno) print("CLOSE", errno) end
    return function (s, line)
        if line == "join\n" then
            __("ids", function (ids) ids = ids or {} ids[#ids + 1] = s.id return ids end)
            return "joined\n"
        elseif line == "all\n" then
            local ids = __("ids")
            local n = #ids
            ids[#ids + 1] = function (elapsed, v) print("GROUP", math.type(elapsed) or type(elapsed), v) end
            print("SENT", broker.signal(ids, "to all\n"), n)
        elseif line == "close\n" then
            broker.close(__("ids"))
        end
    end
end)
print("READY")
"#,
    );
    let conns: Vec<TcpStream> = (0..3).map(|_| connect(port)).collect();
    for c in &conns {
        let mut c = c.try_clone().unwrap();
        c.write_all(b"join\n").unwrap();
        assert_eq!(lines(&c, 1), ["joined\n"]);
    }
    (&conns[0]).write_all(b"all\n").unwrap();
    for c in &conns {
        assert_eq!(lines(c, 1), ["to all\n"]);
    }
    assert_eq!(p.wait_out("SENT", WAIT), "SENT\t3\t3");
    assert_eq!(
        p.wait_out("GROUP", WAIT),
        "GROUP\tfloat\tto all\n".trim_end()
    );
    (&conns[1]).write_all(b"close\n").unwrap();
    for mut c in &conns {
        let mut buf = [0u8; 8];
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "closed by broker.close");
    }
    assert_eq!(p.wait_count("CLOSE", 3, WAIT), vec!["CLOSE\t0"; 3]);
}

/// `expire` (§10.4; seed 002's idle and zombie sockets): a connection silent for longer is
/// closed with ETIMEDOUT; one that keeps talking stays open.
#[test]
fn expire_closes_idle_connections_only() {
    let dir = Scratch::new("broker-expire");
    let (p, port) = node(
        &dir,
        r#"
local l = broker.ready("tcp://127.0.0.1:{PORT}?text", function (socket) end)
l.expire = 400
l.receive = function (s, line) return line end
l.close = function (s, errno) print("CLOSE", s.id, errno) end
print("READY", l.expire)
"#,
    );
    let idle = connect(port);
    let busy = connect(port);
    let started = std::time::Instant::now();
    let mut r = BufReader::new(busy.try_clone().unwrap());
    for _ in 0..12 {
        (&busy).write_all(b"ping\n").unwrap();
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert_eq!(l, "ping\n", "the busy client is served past the idle limit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut buf = [0u8; 8];
    assert_eq!(
        (&idle).read(&mut buf).unwrap_or(0),
        0,
        "the idle client was closed"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    let closed = p.wait_count("CLOSE", 1, WAIT);
    assert_eq!(closed.len(), 1, "only the idle one: {closed:?}");
    assert!(closed[0].ends_with(&format!("\t{}", libc::ETIMEDOUT)));
    assert!(p.stdout().contains(&"READY\t400".to_owned()));
}

/// `commit` (§10.4; seed 002 "처리 결과를 일정한 주기로 전송"): what a socket commits within the
/// interval goes out as one batch when it ends; `socket.commit()` with no value writes at once.
#[test]
fn commit_interval_batches_output() {
    let dir = Scratch::new("broker-commit");
    let (_p, port) = node(
        &dir,
        r#"
broker.ready("tcp://127.0.0.1:{PORT}?text", function (socket)
    socket.commit = 500
    return function (s, line)
        s.commit("a\n")
        s.commit("b\n")
        if line == "now\n" then s.commit() return end
        return "c\n"
    end
end)
print("READY")
"#,
    );
    let c = connect(port);
    for (ask, expect, held) in [
        ("first\n", &b"a\nb\nc\n"[..], true),
        ("second\n", b"a\nb\nc\n", true),
        ("now\n", b"a\nb\n", false),
    ] {
        let sent = std::time::Instant::now();
        (&c).write_all(ask.as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        let n = (&c).read(&mut buf).unwrap();
        // One batch: everything committed arrives in a single read.
        assert_eq!(&buf[..n], expect, "{ask:?}");
        let waited = sent.elapsed();
        if held {
            assert!(
                waited >= Duration::from_millis(400),
                "{ask:?} came after {waited:?}"
            );
        } else {
            assert!(
                waited < Duration::from_millis(400),
                "{ask:?} came after {waited:?}"
            );
        }
    }
}

/// `limit` (seed 002 "입력 처리"): past its message rate a connection's input waits — none is
/// lost — while another connection is served at once.
#[test]
fn rate_limit_holds_input_back_without_loss() {
    let dir = Scratch::new("broker-limit");
    let (p, port) = node(
        &dir,
        r#"
broker.ready("tcp://127.0.0.1:{PORT}?text", function (socket)
    socket.limit = { messages = 10 }
    return function (s, line)
        if line == "limit?\n" then
            return s.limit.messages .. " " .. tostring(s.limit.bytes) .. "\n"
        end
        return line
    end
end)
print("READY")
"#,
    );
    let flood = connect(port);
    let other = connect(port);
    let started = std::time::Instant::now();
    let burst: String = (0..30).map(|i| format!("m{i}\n")).collect();
    (&flood).write_all(burst.as_bytes()).unwrap();
    (&other).write_all(b"limit?\n").unwrap();
    assert_eq!(lines(&other, 1), ["10 0\n"]);
    let quick = started.elapsed();
    let got = lines(&flood, 30);
    let expect: Vec<String> = (0..30).map(|i| format!("m{i}\n")).collect();
    assert_eq!(got, expect, "every message arrives, in order");
    // 10 at once, then 10 per second: the last of 30 cannot come before about 2 s.
    let all = started.elapsed();
    assert!(all >= Duration::from_millis(1500), "30 messages in {all:?}");
    assert!(quick < all, "the other client was not held up: {quick:?}");
    drop(p);
}

/// A client that does not read its replies (seed 002 "좀비 소켓"): once the output held for it
/// passes `OUT`, `commit` returns -1 and the socket closes with ENOBUFS; the node goes on
/// serving the others.
#[test]
fn slow_consumer_is_closed() {
    let dir = Scratch::new("broker-slow");
    let (p, port) = node(
        &dir,
        r#"
broker.ready("tcp://127.0.0.1:{PORT}?text=1k,64k", function (socket)
    socket.close = function (s, errno) print("CLOSE", errno) end
    return function (s, line)
        if line == "flood\n" then
            local chunk = string.rep("x", 1000) .. "\n"
            for i = 1, 100000 do
                if s.commit(chunk) < 0 then print("FULL", i > 64) return end
            end
            print("NEVER FULL")
        end
        return line
    end
end)
print("READY")
"#,
    );
    let slow = connect(port);
    (&slow).write_all(b"flood\n").unwrap();
    assert_eq!(p.wait_out("FULL", WAIT), "FULL\ttrue");
    assert_eq!(
        p.wait_out("CLOSE", WAIT),
        format!("CLOSE\t{}", libc::ENOBUFS)
    );
    assert!(p.wait_err("slow consumer", WAIT).contains("closing it"));
    let ok = connect(port);
    (&ok).write_all(b"fine\n").unwrap();
    assert_eq!(lines(&ok, 1), ["fine\n"]);
}

/// A client that half-closes after its last request still gets the replies (the connection
/// ends once what it sent has run and the output is written), then the close callback runs
/// with 0.
#[test]
fn replies_reach_a_client_that_half_closed() {
    let dir = Scratch::new("broker-halfclose");
    let (p, port) = node(
        &dir,
        r#"
broker.ready("tcp://127.0.0.1:{PORT}?text", function (socket)
    socket.limit = { messages = 20 }
    socket.close = function (s, errno) print("CLOSE", errno) end
    return function (s, line) return "re " .. line end
end)
print("READY")
"#,
    );
    let mut c = connect(port);
    let asks: String = (0..30).map(|i| format!("q{i}\n")).collect();
    c.write_all(asks.as_bytes()).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    c.read_to_string(&mut all).unwrap();
    let expect: String = (0..30).map(|i| format!("re q{i}\n")).collect();
    assert_eq!(
        all, expect,
        "every request was answered, then the stream ended"
    );
    assert_eq!(p.wait_out("CLOSE", WAIT), "CLOSE\t0");
}
