//! `idle` — what an idle client costs (issue 6): a standalone node whose Lua stage echoes on a
//! `?bson` broker listener gets `--conns` TCP connections that then say nothing; the node's
//! resident memory (`VmRSS`) before and after gives the bytes per idle connection. With
//! `--redis-server`, redis-server is measured the same way in the same run (its clients idle,
//! `PING` at the end).
//!
//! Both measurements start warm: one connection makes a round trip and closes before the
//! "before" figure, so that memory every server allocates once (buffers, the handler's first
//! load) is not charged to the idle connections. "After" is taken once the server holds every
//! connection as a descriptor, a sample of them answers and the RSS has stopped moving. At the
//! end every connection must still answer, or the workload fails; the RSS once they are idle
//! again (`rss_used_kb`) shows what a connection that was busy once keeps. Kernel socket
//! buffers are not in a process's RSS, so they count for no server here. One run per server
//! (`--runs` does not apply): the figures repeat to within a few bytes per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::procs::{self, wait_line, Process, Scratch};
use crate::redis;
use crate::sys::rss_kb;
use crate::Args;

/// Descriptors the bench keeps beside its connections (stdio, pipes, the runtime).
const SPARE_FDS: u64 = 100;

/// Connections opened before waiting for the server to accept them: fewer than the listen
/// backlog (128 for stage's listeners, Rust's default), or connections wait out SYN retransmits.
const BATCH: usize = 100;

/// The RSS counts as settled once it moved by at most this much (KiB) over a number of samples:
/// [`STEADY`] (2 s), or [`RECLAIMED`] (5 s) after the connections were used: Redis keeps an
/// idle client's query buffer for a few seconds (its RSS then falls for some seconds more as
/// jemalloc returns the pages), and a shorter window mistakes that pause for the end.
const STEADY_KB: u64 = 32;
const STEADY: usize = 8;
const RECLAIMED: usize = 20;
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How long one answer may take.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The stage: every BSON frame's value comes back as `{"v": value}`.
const ECHO: &str = r#"
local l, err = broker.ready("tcp://127.0.0.1:{PORT}?bson", function (s)
  return function (s, v) return v end
end)
print("READY", l ~= nil, err)
"#;

/// The BSON document `{"x": 1}` (int32).
const FRAME: [u8; 12] = [12, 0, 0, 0, 0x10, b'x', 0, 1, 0, 0, 0, 0];

/// A server under test: its process, where it listens, and one request with its check.
struct Server {
    name: &'static str,
    process: Process,
    port: u16,
    request: &'static [u8],
    answer: fn(&mut TcpStream) -> Result<(), String>,
}

/// The echo of [`FRAME`]: the document `{"v": 1}`, the integer as int64 or int32.
fn echo_answer(c: &mut TcpStream) -> Result<(), String> {
    let mut len = [0; 4];
    c.read_exact(&mut len).map_err(|e| format!("echo: {e}"))?;
    let n = u32::from_le_bytes(len) as usize;
    if !(5..=64).contains(&n) {
        return Err(format!("echo: a document of {n} bytes"));
    }
    let mut doc = vec![0; n - 4];
    c.read_exact(&mut doc).map_err(|e| format!("echo: {e}"))?;
    let one = match doc.as_slice() {
        [0x12, b'v', 0, v @ .., 0] if v.len() == 8 => v == 1i64.to_le_bytes(),
        [0x10, b'v', 0, v @ .., 0] if v.len() == 4 => v == 1i32.to_le_bytes(),
        _ => false,
    };
    one.then_some(())
        .ok_or_else(|| format!("echo: expected {{\"v\": 1}}, got {doc:?}"))
}

fn pong_answer(c: &mut TcpStream) -> Result<(), String> {
    let mut r = [0; 7];
    c.read_exact(&mut r).map_err(|e| format!("PING: {e}"))?;
    (&r == b"+PONG\r\n")
        .then_some(())
        .ok_or_else(|| format!("PING: got {:?}", String::from_utf8_lossy(&r)))
}

/// Raises this process's open-file limit to its hard limit (as the node does), which must leave
/// room for `conns` connections.
fn raise_fd_limit(conns: usize) -> Result<(), String> {
    stage_node::broker::raise_fd_limit();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    let need = conns as u64 + SPARE_FDS;
    if lim.rlim_cur < need {
        return Err(format!(
            "idle: {conns} connections need {need} open files but the hard limit is {} \
             (`ulimit -Hn`); raise it or pass a smaller --conns",
            lim.rlim_max
        ));
    }
    Ok(())
}

/// Open descriptors of `pid`: an accepted connection is one.
fn fds(pid: u32) -> Result<usize, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .map_err(|e| format!("/proc/{pid}/fd: {e}"))
}

/// The RSS once it stopped moving for `window` samples (or at the deadline, with a warning).
fn settled_rss(server: &Server, window: usize, deadline: Instant) -> Result<u64, String> {
    let pid = server.process.child.id();
    let mut samples = vec![rss_kb(pid)?];
    loop {
        std::thread::sleep(SAMPLE_EVERY);
        samples.push(rss_kb(pid)?);
        let last = &samples[samples.len().saturating_sub(window)..];
        let (lo, hi) = last
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        if last.len() == window && hi - lo <= STEADY_KB {
            return Ok(hi);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "{}: RSS still moving at the deadline: {last:?} KiB",
                server.name
            );
            return Ok(samples[samples.len() - 1]);
        }
    }
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let c = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    c.set_nodelay(true).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(ANSWER_WAIT))
        .map_err(|e| e.to_string())?;
    Ok(c)
}

fn round_trip(server: &Server, c: &mut TcpStream) -> Result<(), String> {
    c.write_all(server.request)
        .map_err(|e| format!("send: {e}"))?;
    (server.answer)(c)
}

/// Opens `n` connections in batches, each batch accepted by the server (one more descriptor
/// each) before the next, so that none waits in a full accept queue.
fn open_all(server: &Server, n: usize, deadline: Instant) -> Result<Vec<TcpStream>, String> {
    let pid = server.process.child.id();
    let base = fds(pid)?;
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let batch = BATCH.min(n - conns.len());
        for _ in 0..batch {
            let c = connect(server.port).map_err(|e| format!("connection {}: {e}", conns.len()))?;
            conns.push(c);
        }
        while fds(pid)? < base + conns.len() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} accepted {} of {} connections in time",
                    server.name,
                    fds(pid)?.saturating_sub(base),
                    conns.len()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(conns)
}

/// Sends one request on every connection, then reads every answer; returns the failures
/// (after printing the first few).
fn check_all(server: &Server, conns: &mut [TcpStream]) -> usize {
    let mut failed = vec![None; conns.len()];
    for (i, c) in conns.iter_mut().enumerate() {
        if let Err(e) = c.write_all(server.request) {
            failed[i] = Some(format!("send: {e}"));
        }
    }
    for (i, c) in conns.iter_mut().enumerate() {
        if failed[i].is_none() {
            failed[i] = (server.answer)(c).err();
        }
    }
    let bad: Vec<(usize, String)> = failed
        .into_iter()
        .enumerate()
        .filter_map(|(i, f)| f.map(|f| (i, f)))
        .collect();
    for (i, e) in bad.iter().take(5) {
        eprintln!("{} connection {i}: {e}", server.name);
    }
    bad.len()
}

/// The RSS (KiB) of one server: warm, with `n` idle connections, and again once each of them
/// made a round trip.
struct Rss {
    before: u64,
    after: u64,
    used: u64,
}

/// RSS before and after `n` idle connections, and after each of them answered once.
fn measure(server: &Server, n: usize, timeout: Duration) -> Result<Rss, String> {
    let deadline = Instant::now() + timeout;
    let mut warm = connect(server.port)?;
    round_trip(server, &mut warm).map_err(|e| format!("warm-up: {e}"))?;
    drop(warm);
    let before = settled_rss(server, STEADY, deadline)?;
    let t0 = Instant::now();
    let mut conns = open_all(server, n, deadline)?;
    // Every connection is a descriptor of the server now; a sample answering shows that the
    // server took them on (for stage: the accept callback ran).
    for c in conns.iter_mut().step_by((n / 100).max(1)) {
        round_trip(server, c).map_err(|e| format!("sample: {e}"))?;
    }
    eprintln!(
        "{}: {n} connections open and answering in {:.1} s",
        server.name,
        t0.elapsed().as_secs_f64()
    );
    let after = settled_rss(server, STEADY, deadline)?;
    let t0 = Instant::now();
    let failed = check_all(server, &mut conns);
    eprintln!(
        "{}: one round trip on each connection in {:.1} s",
        server.name,
        t0.elapsed().as_secs_f64()
    );
    if failed > 0 {
        return Err(format!(
            "{}: {failed} of {n} idle connections did not answer at the end",
            server.name
        ));
    }
    // Idle again after one message each: what an idle connection that was once busy keeps.
    let used = settled_rss(server, RECLAIMED, deadline)?;
    Ok(Rss {
        before,
        after,
        used,
    })
}

fn stage_server(dir: &Scratch, deadline: Instant) -> Result<Server, String> {
    let port = procs::free_port()?;
    dir.write("main.lua", &ECHO.replace("{PORT}", &port.to_string()))?;
    let process = procs::stage("stage-node", &["--stage", "main=main.lua"], &dir.0, false)?;
    let ready = wait_line(&process, deadline, |l| l.starts_with("READY"))?;
    if !ready.starts_with("READY\ttrue") {
        return Err(format!("stage-node could not listen: {ready}"));
    }
    Ok(Server {
        name: "stage",
        process,
        port,
        request: &FRAME,
        answer: echo_answer,
    })
}

fn redis_server(
    program: &str,
    n: usize,
    dir: &Scratch,
    deadline: Instant,
) -> Result<Server, String> {
    // Redis refuses clients past `maxclients` (10,000 by default).
    let max = (n as u64 + SPARE_FDS).to_string();
    let r = redis::start(program, &["--maxclients", &max], &dir.0, deadline)?;
    Ok(Server {
        name: "redis",
        port: r.port,
        process: r.process,
        request: b"PING\r\n",
        answer: pong_answer,
    })
}

/// Measures `server` and prints its RESULT line; returns the bytes per connection, fresh and
/// once used.
fn report(server: Server, n: usize, timeout: Duration) -> Result<(f64, f64), String> {
    let Rss {
        before,
        after,
        used,
    } = measure(&server, n, timeout)?;
    let per_conn = |kb: u64| kb.saturating_sub(before) as f64 * 1024.0 / n as f64;
    let (fresh, once_used) = (per_conn(after), per_conn(used));
    println!(
        "RESULT workload=idle peer={} conns={n} rss_before_kb={before} rss_after_kb={after} per_conn_bytes={fresh:.0} rss_used_kb={used} per_used_conn_bytes={once_used:.0} dropped=0",
        server.name
    );
    Ok((fresh, once_used))
}

pub fn run(args: &Args) -> Result<(), String> {
    let n = args.conns;
    if n == 0 {
        return Err("idle: needs --conns > 0".into());
    }
    raise_fd_limit(n)?;
    let dir = Scratch::new("idle")?;
    let timeout = Duration::from_secs(args.timeout);
    // One server at a time: each is stopped (and its connections closed) before the next.
    let stage = report(stage_server(&dir, Instant::now() + timeout)?, n, timeout)?;
    if let Some(program) = &args.redis_server {
        let redis = report(
            redis_server(program, n, &dir, Instant::now() + timeout)?,
            n,
            timeout,
        )?;
        println!(
            "RATIO workload=idle stage/redis={:.2} used_stage/redis={:.2}",
            stage.0 / redis.0,
            stage.1 / redis.1
        );
    }
    Ok(())
}
