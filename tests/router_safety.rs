//! The router is a safe forwarder (issue acceptance):
//! - "The router never decodes the payload: a frame whose BSON payload is deliberately invalid
//!   arrives at the target byte-identical."
//! - "A node with the wrong secret is refused and the refusal is logged on both sides."
//! - "a malformed frame closes only that link and the router keeps serving the others."
//!
//! A small blocking protocol client ([`Raw`]) speaks the wire format directly, so the tests can
//! send bytes no real node would produce and compare what arrives byte for byte.

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Proc, Scratch, WAIT};
use stage_proto::handshake::{self, Challenge, ClassMap, Hello, Refuse, Welcome};
use stage_proto::{Envelope, Flags, Frame, Header, Kind, NackReason, ServiceId};

/// Bound on every blocking read of the raw client.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Not valid BSON in any reading: a length that disagrees with the bytes, then noise.
const GARBAGE: &[u8] = b"\xff\xff\xff\x7f\x02not-bson\x00\x13\x37\xde\xad\xbe\xef";

/// Router flags for tests with raw clients: they do not answer heartbeats, so the window is
/// long enough never to declare them silent.
const RAW_ROUTER: &[&str] = &["--heartbeat-window", "600000"];

/// A raw protocol client: one blocking TCP connection to a router.
#[derive(Debug)]
struct Raw {
    s: TcpStream,
    /// Instance number the router gave this link.
    instance: u32,
    /// Own stage name → service id.
    ids: HashMap<String, u32>,
    /// Stage name → class number on this router (from the welcome and later class maps).
    classes: HashMap<String, u32>,
}

/// Reads one whole frame (length prefix included) as raw bytes.
fn read_raw(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = u32::from_le_bytes(len) as usize;
    assert!(n <= 1 << 20, "router sent a frame of {n} bytes");
    let mut buf = vec![0u8; 4 + n];
    buf[..4].copy_from_slice(&len);
    s.read_exact(&mut buf[4..])?;
    Ok(buf)
}

fn parse(raw: Vec<u8>) -> Frame {
    let header = Header::read(&raw[4..]).expect("router sent a frame with a bad header");
    Frame {
        header,
        raw: Bytes::from(raw),
    }
}

/// Connects and reads the challenge.
fn open(addr: &str) -> (TcpStream, Challenge) {
    let mut s = TcpStream::connect(addr).expect("connect to the router");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    let challenge = Challenge::from_frame(&parse(read_raw(&mut s).expect("read the challenge")))
        .expect("a challenge first");
    (s, challenge)
}

impl Raw {
    /// Handshakes as node `node` hosting `stages`; `Err(reason)` when refused.
    fn connect(
        addr: &str,
        node: &str,
        stages: &[&str],
        instance: u32,
        secret: Option<&[u8]>,
    ) -> Result<Raw, String> {
        let (mut s, challenge) = open(addr);
        let stages = stages.iter().map(|s| s.to_string()).collect();
        let hello = Hello::answer(&challenge, node, stages, instance, secret);
        s.write_all(&hello.to_frame().raw).expect("send hello");
        let answer = parse(read_raw(&mut s).expect("read the answer to hello"));
        if answer.header.kind == Kind::Refuse {
            return Err(Refuse::from_frame(&answer).expect("refuse body").reason);
        }
        let w = Welcome::from_frame(&answer).expect("a welcome");
        if let Some(secret) = secret {
            assert!(
                handshake::verify_welcome(secret, &hello.nonce, &challenge.nonce, &w),
                "the router's welcome does not prove the secret"
            );
        }
        Ok(Raw {
            s,
            instance: w.instance,
            ids: w.stages.into_iter().collect(),
            classes: w.classes.into_iter().collect(),
        })
    }

    /// Service id of `stage`, `instance` 0 for the whole class, using this router's class number.
    fn target(&self, stage: &str, instance: u32) -> ServiceId {
        let class = self.classes[stage];
        ServiceId::new(u8::try_from(class).unwrap(), instance).unwrap()
    }

    /// Own service id of `stage`.
    fn id(&self, stage: &str) -> ServiceId {
        ServiceId(self.ids[stage])
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send to the router");
    }

    /// The next frame other than a class map (class maps are learnt), as raw bytes.
    fn recv_raw(&mut self) -> Vec<u8> {
        loop {
            let raw = read_raw(&mut self.s).expect("read a frame from the router");
            let f = parse(raw.clone());
            if f.header.kind == Kind::ClassMap {
                self.classes
                    .extend(ClassMap::from_frame(&f).expect("class map").classes);
                continue;
            }
            if f.header.kind == Kind::Ping {
                continue; // heartbeats (the test routers' window is long: no answer needed)
            }
            return raw;
        }
    }

    fn recv(&mut self) -> Frame {
        parse(self.recv_raw())
    }
}

/// Waits until the router closes `s` (EOF or reset); panics if it is still open after `timeout`.
fn wait_closed(s: &mut TcpStream, timeout: Duration) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {} // frames queued before the close (class maps): skip
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    Instant::now() < deadline,
                    "the router did not close the link within {timeout:?}"
                );
            }
            Err(_) => return, // reset: closed as well
        }
    }
}

/// An envelope followed by `payload`.
fn body(msgid: &str, sender: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    Envelope {
        msgid: msgid.as_bytes(),
        sender: sender.as_bytes(),
        deadline_ms: 0,
        corr: 0,
        answer: false,
        origin: 0,
        no_reply: false,
    }
    .write(&mut b)
    .unwrap();
    b.extend_from_slice(payload);
    b
}

fn message(target: ServiceId, source: ServiceId, flags: u16, key: u64, body: &[u8]) -> Frame {
    let mut h = Header::new(Kind::Message);
    h.target = target;
    h.source = source;
    h.flags = Flags(flags);
    h.key = key;
    Frame::new(h, body)
}

/// `{"1": s}`: the payload of a one-string signal as a node encodes it.
fn bson_string(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    bson::doc! { "1": s }.to_writer(&mut out).unwrap();
    out
}

/// Sends a fresh message `src` → `sink` and checks it arrives unchanged: the links still serve.
fn assert_flows(src: &mut Raw, sink: &mut Raw, tag: &str) {
    let f = message(
        src.target("sink", 0),
        src.id("src"),
        0,
        0,
        &body(tag, "src", &bson_string(tag)),
    );
    src.send(&f.raw);
    assert_eq!(
        sink.recv_raw(),
        f.raw.to_vec(),
        "message {tag} after the bad link"
    );
}

#[test]
fn invalid_payload_is_forwarded_byte_identical() {
    let dir = Scratch::new("rawpayload");
    let (router, addr) = Proc::router("router", RAW_ROUTER, &dir.dir);
    let mut sink = Raw::connect(&addr, "rawnode", &["sink"], 0, None).expect("sink welcomed");
    router.wait_err("registered sink:", WAIT);
    let mut src = Raw::connect(&addr, "rawsrc", &["src"], 0, None).expect("src welcomed");
    assert!(
        src.classes.contains_key("sink"),
        "welcome lists the sink class: {:?}",
        src.classes
    );

    // Valid envelope, invalid BSON; odd flags and key: the whole frame must arrive as sent.
    assert!(bson::Document::from_reader(&mut &GARBAGE[..]).is_err());
    let bad = body("ping", "src", GARBAGE);
    assert_eq!(src.target("sink", sink.instance), sink.id("sink"));
    for (i, target) in [src.target("sink", 0), src.target("sink", sink.instance)]
        .into_iter()
        .enumerate()
    {
        let f = message(
            target,
            src.id("src"),
            Flags::WANT_NACK | Flags::KEYED,
            0x0123_4567_89ab_cdef + i as u64,
            &bad,
        );
        src.send(&f.raw);
        let got = sink.recv_raw();
        assert_eq!(got, f.raw.to_vec(), "frame to {target} changed on the way");
    }
    // Not even an envelope: still the router's business only to forward it.
    let f = message(src.target("sink", 0), src.id("src"), 0, 7, GARBAGE);
    src.send(&f.raw);
    assert_eq!(sink.recv_raw(), f.raw.to_vec());

    // A NACK for a class nobody knows carries the original body back unchanged.
    let unknown = ServiceId::new(250, 0).unwrap();
    let f = message(unknown, src.id("src"), Flags::WANT_NACK, 42, &bad);
    src.send(&f.raw);
    let nack = src.recv();
    assert_eq!(nack.header.kind, Kind::Nack);
    assert_eq!(nack.header.mode, NackReason::UnknownClass as u8);
    assert_eq!(
        (nack.header.target, nack.header.source),
        (src.id("src"), unknown)
    );
    assert_eq!(nack.body(), &bad[..]);
}

const LUA_SINK: &str = r#"
stage.waitfor("ping", function(s)
  print("PING", s)
  return "pong:" .. s
end)
"#;

#[test]
fn node_survives_invalid_payload_and_answers_the_next_message() {
    let dir = Scratch::new("nodepayload");
    dir.write("luasink.lua", LUA_SINK);
    let (router, addr) = Proc::router("router", RAW_ROUTER, &dir.dir);
    let node = Proc::node(
        "node",
        &[
            "--router",
            &addr,
            "--stage",
            "luasink=luasink.lua",
            "--id",
            "7",
        ],
        &dir.dir,
    );
    router.wait_err("registered luasink:7", WAIT);
    let mut src = Raw::connect(&addr, "rawsrc", &["src"], 0, None).expect("src welcomed");
    let target = src.target("luasink", 7);

    // Bad BSON after a good envelope: the node drops it with a warning.
    src.send(&message(target, src.id("src"), 0, 0, &body("ping", "src", GARBAGE)).raw);
    let warn = node.wait_err("bad payload", WAIT);
    assert!(warn.contains("WARN") && warn.contains("'ping'"), "{warn}");
    // Not even an envelope.
    src.send(&message(target, src.id("src"), 0, 0, b"\x05").raw);
    node.wait_err("malformed message envelope", WAIT);

    // A proper message is still handled, and its answer comes back through the router.
    src.send(
        &message(
            target,
            src.id("src"),
            0,
            0,
            &body("ping", "src", &bson_string("hi")),
        )
        .raw,
    );
    assert_eq!(node.wait_out("PING", WAIT), "PING\thi");
    let reply = src.recv();
    assert_eq!(reply.header.kind, Kind::Message);
    assert_eq!(reply.header.target, src.id("src"));
    let (env, payload) = Envelope::parse(reply.body()).unwrap();
    assert_eq!((env.msgid, env.sender), (&b"ping"[..], &b"luasink"[..]));
    let doc = bson::Document::from_reader(&mut &payload[..]).expect("reply payload is BSON");
    assert_eq!(
        doc.iter().next().and_then(|(_, v)| v.as_str()),
        Some("pong:hi"),
        "{doc}"
    );
    assert!(
        node.stdout()
            .iter()
            .all(|l| !l.contains("PING\t") || l == "PING\thi"),
        "{}",
        node.dump()
    );
}

const UP: &str = "print('up')\n";

#[test]
fn wrong_or_missing_secret_is_refused_and_logged_on_both_sides() {
    let dir = Scratch::new("secret");
    dir.write("up.lua", UP);
    // Surrounding whitespace is not part of the secret.
    let a = dir.write("a.secret", "alpha-cluster-secret-0123456789\n");
    let a2 = dir.write("a2.secret", "alpha-cluster-secret-0123456789");
    let b = dir.write("b.secret", "beta-cluster-secret-9876543210\n");
    let (a, a2, b) = (
        a.to_str().unwrap(),
        a2.to_str().unwrap(),
        b.to_str().unwrap(),
    );
    let (router, addr) = Proc::router("router", &["--secret-file", a], &dir.dir);

    let wrong = Proc::node(
        "wrong",
        &[
            "--router",
            &addr,
            "--stage",
            "w=up.lua",
            "--name",
            "wrongnode",
            "--secret-file",
            b,
        ],
        &dir.dir,
    );
    let line = router.wait_err("wrong cluster secret", WAIT);
    assert!(line.contains("refused node 'wrongnode'"), "{line}");
    let line = wrong.wait_err("refused", WAIT);
    assert!(line.contains("wrong cluster secret"), "{line}");

    let none = Proc::node(
        "none",
        &["--router", &addr, "--stage", "n=up.lua", "--name", "nonode"],
        &dir.dir,
    );
    let line = router.wait_err("refused node 'nonode'", WAIT);
    assert!(line.contains("no proof"), "{line}");
    let line = none.wait_err("refused", WAIT);
    assert!(line.contains("no proof"), "{line}");

    let good = Proc::node(
        "good",
        &[
            "--router",
            &addr,
            "--stage",
            "g=up.lua",
            "--name",
            "goodnode",
            "--secret-file",
            a2,
        ],
        &dir.dir,
    );
    router.wait_err("registered g:", WAIT);
    good.wait_err("linked to router", WAIT);

    // The raw client sees the same: a Refuse with the reason, or a welcome with a valid proof.
    let secret = b"alpha-cluster-secret-0123456789";
    assert_eq!(
        Raw::connect(&addr, "rawbad", &["r"], 0, Some(b"not it"))
            .err()
            .as_deref(),
        Some("wrong cluster secret")
    );
    assert!(Raw::connect(&addr, "rawnone", &["r"], 0, None)
        .unwrap_err()
        .contains("no proof"));
    Raw::connect(&addr, "rawgood", &["r"], 0, Some(secret)).expect("right secret is welcomed");

    // Nothing of the refused nodes got registered.
    let regs: Vec<String> = router
        .stderr()
        .into_iter()
        .filter(|l| l.contains("registered"))
        .collect();
    assert!(
        regs.iter()
            .all(|l| !l.contains("wrongnode") && !l.contains("nonode")),
        "{regs:?}"
    );
}

#[test]
fn open_address_needs_a_secret_or_insecure() {
    let dir = Scratch::new("open");
    let router = env!("CARGO_BIN_EXE_stage-router");
    let mut open = Proc::spawn("open", router, &["--listen", "0.0.0.0:0"], &dir.dir);
    let status = open
        .wait_exit(WAIT)
        .expect("router without a secret on 0.0.0.0 exits");
    assert!(!status.success(), "exit status {status}");
    let line = open.wait_err("--secret-file", WAIT);
    assert!(line.contains("--insecure"), "{line}");
    assert!(
        open.stderr().iter().all(|l| !l.contains("listening on")),
        "{}",
        open.dump()
    );

    let mut insecure = Proc::spawn(
        "insecure",
        router,
        &["--listen", "0.0.0.0:0", "--insecure"],
        &dir.dir,
    );
    insecure.wait_err("listening on 0.0.0.0:", WAIT);
    insecure.wait_err("not authenticated", WAIT);
    assert!(
        insecure.wait_exit(Duration::from_millis(200)).is_none(),
        "insecure router exited"
    );
    insecure.kill9();
}

#[test]
fn malformed_frame_closes_only_its_own_link() {
    let dir = Scratch::new("malformed");
    let (router, addr) = Proc::router(
        "router",
        &["--max-frame", "4096", "--heartbeat-window", "600000"],
        &dir.dir,
    );
    let mut sink = Raw::connect(&addr, "rawsink", &["sink"], 0, None).expect("sink");
    let mut src = Raw::connect(&addr, "rawsrc", &["src"], 0, None).expect("src");
    assert_flows(&mut src, &mut sink, "before");

    // An unknown kind byte after the handshake.
    let mut bad = Raw::connect(&addr, "badkind", &[], 0, None).expect("badkind welcomed");
    let mut frame = 20u32.to_le_bytes().to_vec();
    frame.push(200);
    frame.extend_from_slice(&[0; 19]);
    bad.send(&frame);
    wait_closed(&mut bad.s, WAIT);
    let line = router.wait_err("unknown frame kind 200", WAIT);
    assert!(
        line.contains("malformed frame") && line.contains("badkind"),
        "{line}"
    );
    assert_flows(&mut src, &mut sink, "after-kind");

    // A length prefix beyond --max-frame.
    let mut big = Raw::connect(&addr, "bigframe", &[], 0, None).expect("bigframe welcomed");
    let mut frame = 1_000_000u32.to_le_bytes().to_vec();
    frame.extend_from_slice(&[5; 60]);
    big.send(&frame);
    wait_closed(&mut big.s, WAIT);
    let line = router.wait_err("exceeds the maximum of 4096 bytes", WAIT);
    assert!(
        line.contains("malformed frame") && line.contains("bigframe"),
        "{line}"
    );
    assert_flows(&mut src, &mut sink, "after-size");

    // Garbage instead of a hello: refused before any registration.
    let (mut s, _) = open(&addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let refuse = parse(read_raw(&mut s).expect("a refuse frame"));
    let reason = Refuse::from_frame(&refuse).expect("refuse").reason;
    assert!(reason.contains("malformed handshake frame"), "{reason}");
    wait_closed(&mut s, WAIT);
    router.wait_err("refused connection from", WAIT);
    assert_flows(&mut src, &mut sink, "after-http");

    // A hello frame whose document is not BSON.
    let (mut s, _) = open(&addr);
    s.write_all(&Frame::new(Header::new(Kind::Hello), GARBAGE).raw)
        .unwrap();
    let reason = Refuse::from_frame(&parse(read_raw(&mut s).expect("refuse")))
        .unwrap()
        .reason;
    assert!(reason.contains("malformed handshake"), "{reason}");
    wait_closed(&mut s, WAIT);
    assert_flows(&mut src, &mut sink, "after-badhello");

    // A message claiming another member's source: its answers and NACKs would go astray.
    let mut liar = Raw::connect(&addr, "liar", &["liar"], 0, None).expect("liar welcomed");
    let forged = message(
        liar.target("sink", 0),
        src.id("src"),
        0,
        0,
        &body("x", "liar", &bson_string("x")),
    );
    liar.send(&forged.raw);
    wait_closed(&mut liar.s, WAIT);
    let line = router.wait_err("protocol error: message from source", WAIT);
    assert!(line.contains("liar"), "{line}");
    assert_flows(&mut src, &mut sink, "after-spoof");

    // An unknown forwarding mode byte.
    let mut odd = Raw::connect(&addr, "oddmode", &["odd"], 0, None).expect("odd welcomed");
    let f = message(
        odd.target("sink", 0),
        odd.id("odd"),
        0,
        0,
        &body("x", "odd", &bson_string("x")),
    );
    let mut raw = f.raw.to_vec();
    raw[5] = 99; // the mode byte follows the length prefix and the kind
    odd.send(&raw);
    wait_closed(&mut odd.s, WAIT);
    router.wait_err("unknown forwarding mode 99", WAIT);
    assert_flows(&mut src, &mut sink, "after-mode");

    // Before the handshake a frame may not exceed 64 KiB, whatever --max-frame allows.
    let (mut s, _) = open(&addr);
    let mut frame = 70_000u32.to_le_bytes().to_vec();
    frame.extend_from_slice(&[2; 60]);
    s.write_all(&frame).unwrap();
    let reason = Refuse::from_frame(&parse(read_raw(&mut s).expect("refuse")))
        .unwrap()
        .reason;
    assert!(
        reason.contains("exceeds the maximum of 65536 bytes"),
        "{reason}"
    );
    wait_closed(&mut s, WAIT);
    assert_flows(&mut src, &mut sink, "after-prehello");

    // Neither bad link took the good ones down, and only the bad ones were closed.
    let closed: Vec<String> = router
        .stderr()
        .into_iter()
        .filter(|l| l.contains(" closed: "))
        .collect();
    assert!(
        closed
            .iter()
            .all(|l| !l.contains("rawsink") && !l.contains("rawsrc")),
        "{closed:?}"
    );
}

#[test]
fn node_with_a_secret_refuses_routers_that_cannot_prove_it() {
    let dir = Scratch::new("routerproof");
    dir.write("up.lua", UP);
    let secret = dir.write("s.secret", "gamma-cluster-secret-000111222");
    let secret = secret.to_str().unwrap();

    // A router without any secret: the node will not join, and both sides log it.
    let (open, addr) = Proc::router("open", &[], &dir.dir);
    let node = Proc::node(
        "node",
        &[
            "--router",
            &addr,
            "--stage",
            "n=up.lua",
            "--name",
            "carefulnode",
            "--secret-file",
            secret,
        ],
        &dir.dir,
    );
    let line = node.wait_err("does not check the cluster secret", WAIT);
    assert!(line.contains("ERROR"), "{line}");
    open.wait_err("refused connection from", WAIT);
    assert!(
        open.stderr().iter().all(|l| !l.contains("registered")),
        "{}",
        open.dump()
    );
    drop(node);

    // A fake router that claims to check a secret but cannot prove it in its welcome.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + WAIT;
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("no node connected to the fake router: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let challenge = Challenge {
            version: stage_proto::PROTOCOL_VERSION,
            router: "fake".into(),
            nonce: handshake::nonce().to_vec(),
            auth: true,
        };
        s.write_all(&challenge.to_frame().raw).unwrap();
        let hello = Hello::from_frame(&parse(read_raw(&mut s).unwrap())).unwrap();
        let welcome = Welcome {
            instance: 1,
            stages: vec![("n".into(), 0x0100_0001)],
            classes: vec![("n".into(), 1)],
            proof: handshake::welcome_proof(
                b"some other secret",
                &hello.nonce,
                &challenge.nonce,
                hello.instance,
            ),
        };
        s.write_all(&welcome.to_frame().raw).unwrap();
        hello
    });
    let node = Proc::node(
        "node2",
        &[
            "--router",
            &fake,
            "--stage",
            "n=up.lua",
            "--name",
            "carefulnode",
            "--secret-file",
            secret,
        ],
        &dir.dir,
    );
    let hello = server.join().unwrap();
    assert!(!hello.proof.is_empty(), "the node proves its secret");
    let line = node.wait_err("failed to prove the cluster secret", WAIT);
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        node.stderr()
            .iter()
            .all(|l| !l.contains("linked to router")),
        "{}",
        node.dump()
    );
}
