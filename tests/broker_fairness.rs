//! Fairness (seed 002 "특정 연결(클라이언트)이 메시지 처리를 독점하지 못하도록"; stage-spec §10.1):
//! one client floods a node at full speed while 50 well-behaved clients each make 100
//! requests. The well-behaved clients' p99 latency must stay within 10× of the same run
//! without the flooder, and every one of them must finish.
//!
//! The node runs one worker: that is where a client that could monopolise message handling
//! would starve everyone else (with turns taken in arrival order and no quantum, the
//! well-behaved clients here time out), so it is where taking turns must hold.

mod common;
use common::{Proc, Scratch, WAIT};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 50;
const REQUESTS: usize = 100;

/// Every message costs the worker some Lua work; `ping` is answered, flood messages are not.
const SCRIPT: &str = r#"
broker.ready("tcp://127.0.0.1:{PORT}?text", function (socket)
    return function (s, line)
        local x = 0
        for i = 1, 2000 do x = x + i % 7 end
        if line:sub(1, 4) == "ping" then return line end
    end
end)
print("READY")
"#;

/// The well-behaved clients' latencies (µs), sorted; panics if any client did not finish.
fn well_behaved(port: u16) -> Vec<u64> {
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.set_read_timeout(Some(WAIT)).unwrap();
                c.set_nodelay(true).unwrap();
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut lat = Vec::with_capacity(REQUESTS);
                for n in 0..REQUESTS {
                    let ask = format!("ping {i} {n}\n");
                    let t = Instant::now();
                    (&c).write_all(ask.as_bytes()).unwrap();
                    let mut got = String::new();
                    r.read_line(&mut got)
                        .unwrap_or_else(|e| panic!("client {i} starved at {n}: {e}"));
                    assert_eq!(got, ask, "client {i}");
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a well-behaved client failed"))
        .collect();
    all.sort_unstable();
    all
}

fn p99(sorted: &[u64]) -> u64 {
    sorted[sorted.len() * 99 / 100]
}

#[test]
fn a_flooding_client_does_not_starve_the_others() {
    let dir = Scratch::new("broker-fair");
    let port = common::free_port();
    dir.write("main.lua", &SCRIPT.replace("{PORT}", &port.to_string()));
    let p = Proc::node(
        "node",
        &["--stage", "main=main.lua", "--threads", "1"],
        &dir.dir,
    );
    p.wait_out("READY", WAIT);

    let quiet = well_behaved(port);

    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, flooded) = (stop.clone(), flooded.clone());
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let burst = "flood flood flood flood flood\n".repeat(1000);
            while !stop.load(Ordering::Relaxed) {
                if c.write_all(burst.as_bytes()).is_err() {
                    break;
                }
                flooded.fetch_add(1000, Ordering::Relaxed);
            }
        })
    };
    // Let the flood build up before the others start.
    std::thread::sleep(Duration::from_millis(300));
    let noisy = well_behaved(port);
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();

    let (q, n) = (p99(&quiet), p99(&noisy));
    eprintln!(
        "p99 without the flooder {q} µs, with it {n} µs ({:.1}×); the flooder sent {} messages",
        n as f64 / q.max(1) as f64,
        flooded.load(Ordering::Relaxed)
    );
    assert!(
        flooded.load(Ordering::Relaxed) >= 10_000,
        "the flooder really flooded"
    );
    assert!(
        n <= 10 * q.max(1),
        "p99 with a flooder {n} µs is over 10× the quiet run's {q} µs"
    );
}
