//! Back-pressure (DESIGN §8, issue "Cluster under failure"): a consumer that stops reading
//! cannot grow the router without bound. Its link queue is capped in bytes; past the cap,
//! messages to it are refused, requests take their fail path ("target overloaded"), and the
//! producer is told with an overload signal.

mod common;
use common::{Proc, Scratch, WAIT};
use stage_proto::handshake::{Challenge, Hello, Welcome};
use stage_proto::{Frame, Header, Kind, ServiceId};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Registers stage `sink` over a raw connection that then never reads again.
fn stalled_sink(addr: &str) -> TcpStream {
    raw_link(addr, "sink").0
}

/// Registers stage `name` over a raw connection; returns it and the welcome.
fn raw_link(addr: &str, name: &str) -> (TcpStream, Welcome) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let read_frame = |s: &mut TcpStream| {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut buf = len.to_vec();
        buf.resize(4 + u32::from_le_bytes(len) as usize, 0);
        s.read_exact(&mut buf[4..]).unwrap();
        Frame {
            header: Header::read(&buf[4..]).unwrap(),
            raw: buf.into(),
        }
    };
    let challenge = Challenge::from_frame(&read_frame(&mut s)).unwrap();
    let hello = Hello::answer(&challenge, "raw", vec![name.into()], 0, None);
    s.write_all(&hello.to_frame().raw).unwrap();
    let welcome = Welcome::from_frame(&read_frame(&mut s)).expect("welcomed");
    (s, welcome)
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The highest RSS of process `pid` (starting from `before`) while the producer keeps sending,
/// until it prints `SENT`.
fn peak_rss_until_sent(producer: &Proc, pid: i32, before: u64) -> u64 {
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !producer.stdout().iter().any(|l| l.starts_with("SENT")) {
        assert!(
            Instant::now() < deadline,
            "producer did not finish\n{}",
            producer.dump()
        );
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    peak.max(rss_kib(pid))
}

#[test]
fn a_consumer_that_stops_reading_does_not_grow_the_router() {
    let dir = Scratch::new("backpressure");
    dir.write(
        "producer.lua",
        r#"
local chunk = string.rep("x", 64 * 1024)
local sent = 0
stage.waitfor("on_overload", function(busy) print("OVERLOAD", busy) end)
stage.waitfor("fail", function(err) print("FAIL", err) end)
stage.addtask(10, function()
  for _ = 1, 20 do stage.signal("sink:data", chunk); sent = sent + 1 end
  stage.signal({ "sink:data!fail", 1000 }, chunk)
  if sent >= 6000 then print("SENT", sent); return -1 end
end)
"#,
    );
    // A queue cap of 4 MiB; heartbeats will not take the stalled sink out (long window).
    let (router, addr) = Proc::router(
        "router",
        &["--link-buffer", "4194304", "--heartbeat-window", "600000"],
        &dir.dir,
    );
    let _sink = stalled_sink(&addr);
    router.wait_err("registered sink:", WAIT);
    let before = rss_kib(router.pid());
    let producer = Proc::node(
        "producer",
        &["--router", &addr, "--stage", "producer=producer.lua"],
        &dir.dir,
    );
    producer.wait_out("OVERLOAD\tsink", WAIT);
    // Requests queued before the cap was reached time out (the sink never answers); those
    // refused at the cap fail at once with the reason.
    producer.wait_out("target overloaded", WAIT);
    // Keep pushing for a while (about 390 MB offered in all), watching the router's memory.
    let peak = peak_rss_until_sent(&producer, router.pid(), before);
    eprintln!("router RSS {before} KiB before, {peak} KiB peak");
    assert!(
        peak < before + 48 * 1024,
        "router grew from {before} KiB to {peak} KiB with a 4 MiB queue cap"
    );
}

/// A real stage that falls behind pushes back the same way: its node stops reading from the
/// router once the stage's inbox holds a link buffer's worth, so neither the node nor the
/// router grows, and the producer hears of it.
#[test]
fn a_slow_stage_pushes_back_through_its_node() {
    let dir = Scratch::new("slow-stage");
    dir.write(
        "sink.lua",
        r#"stage.waitfor("data", function() local t = os.clock() + 0.02; while os.clock() < t do end end)"#,
    );
    dir.write(
        "producer.lua",
        r#"
local chunk = string.rep("x", 64 * 1024)
local sent = 0
stage.waitfor("on_overload", function(busy) print("OVERLOAD", busy) end)
stage.addtask(10, function()
  for _ = 1, 20 do stage.signal("sink:data", chunk); sent = sent + 1 end
  if sent >= 4000 then print("SENT", sent); return -1 end
end)
"#,
    );
    let (router, addr) = Proc::router("router", &["--link-buffer", "4194304"], &dir.dir);
    let sink = Proc::node(
        "sink",
        &[
            "--router",
            &addr,
            "--stage",
            "sink=sink.lua",
            "--link-buffer",
            "4194304",
        ],
        &dir.dir,
    );
    router.wait_err("registered sink:", WAIT);
    let before = rss_kib(sink.pid());
    let producer = Proc::node(
        "producer",
        &["--router", &addr, "--stage", "producer=producer.lua"],
        &dir.dir,
    );
    producer.wait_out("OVERLOAD\tsink", WAIT);
    let peak = peak_rss_until_sent(&producer, sink.pid(), before);
    eprintln!("sink node RSS {before} KiB before, {peak} KiB peak");
    assert!(
        peak < before + 64 * 1024,
        "the slow stage's node grew from {before} KiB to {peak} KiB"
    );
}

/// A consumer slower than its producer but still reading gets every message: once its queue
/// holds the cap, the router stops reading the producer's link until there is room again (TCP
/// back-pressure) and tells the producer with an overload signal, instead of refusing
/// messages (DESIGN §8: refusal is for a consumer that stopped, above).
#[test]
fn a_slow_consumer_slows_its_producer_instead_of_losing_messages() {
    const MESSAGES: usize = 5000;
    let dir = Scratch::new("slow-consumer");
    let (router, addr) = Proc::router(
        "router",
        &["--link-buffer", "65536", "--heartbeat-window", "600000"],
        &dir.dir,
    );
    let (mut sink, _) = raw_link(&addr, "sink");
    router.wait_err("registered sink:", WAIT);
    let (mut source, welcome) = raw_link(&addr, "source");
    let class = welcome
        .classes
        .iter()
        .find(|(n, _)| n == "sink")
        .expect("sink's class")
        .1;
    let producer = std::thread::spawn(move || {
        let mut h = Header::new(Kind::Message);
        h.target = ServiceId(class << 24);
        h.source = ServiceId(welcome.stages[0].1);
        let mut burst = Vec::new();
        for i in 0..MESSAGES {
            let mut body = vec![0u8; 1024];
            body[..8].copy_from_slice(&(i as u64).to_le_bytes());
            burst.extend_from_slice(&Frame::new(h, &body).raw);
        }
        source.write_all(&burst).unwrap();
        source
    });
    // Read 16 KiB every 2 ms: about 8 MB/s, far slower than the producer offers 5 MB.
    let mut input = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < MESSAGES as u64 && Instant::now() < deadline {
        let n = sink
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("sink read: {e} after {next}\n{}", router.dump()));
        assert!(n > 0, "the router closed the sink");
        input.extend_from_slice(&chunk[..n]);
        while input.len() >= 4 {
            let len = u32::from_le_bytes(input[..4].try_into().unwrap()) as usize;
            if input.len() < 4 + len {
                break;
            }
            let header = Header::read(&input[4..]).unwrap();
            if header.kind == Kind::Message {
                let seq = u64::from_le_bytes(input[24..32].try_into().unwrap());
                assert_eq!(seq, next, "messages lost or reordered\n{}", router.dump());
                next += 1;
            }
            input.drain(..4 + len);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(next, MESSAGES as u64, "{}", router.dump());
    // It was slowed, not refused, and told why (DESIGN §8: the overload signal).
    let mut source = producer.join().unwrap();
    source.set_nonblocking(true).unwrap();
    let mut told = Vec::new();
    let _ = source.read_to_end(&mut told);
    let mut kinds = Vec::new();
    let mut at = 0;
    while at + 24 <= told.len() {
        let len = u32::from_le_bytes(told[at..at + 4].try_into().unwrap()) as usize;
        kinds.push(Header::read(&told[at + 4..]).unwrap().kind);
        at += 4 + len;
    }
    assert!(kinds.contains(&Kind::Overload), "{kinds:?}");
    assert!(!kinds.contains(&Kind::Nack), "{kinds:?}");
}
