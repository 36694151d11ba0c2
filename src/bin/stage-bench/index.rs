//! `index` — the leaderboard service against Redis sorted sets, in one run:
//!
//! * `set`: score updates (`rank:set?bench=ack` with `{ [member] = { i = score } }`, one
//!   update per message) vs `ZADD bench score member`;
//! * `rank`: rank queries (`rank:get?bench=ack` with the member) vs `ZREVRANK bench member`.
//!
//! Each is measured with a Lua driver stage on another node, through the router
//! (`stage_router`), with the driver on the index's own node (`stage_local`, no router),
//! calling the index store in this process (`store`: the data structure and its log, no
//! messages), and against Redis with the same pipelining (`--window` requests in flight, then
//! their answers). Every answer is checked; a wrong or missing one fails the workload.
//!
//! Durability differs: the index writes every update to its log (to the OS) before answering,
//! and syncs the file every second; Redis with its default settings keeps only periodic RDB
//! snapshots (no append-only file).

use std::time::{Duration, Instant};

use crate::procs::{self, median, wait_line, Scratch};
use crate::redis;
use crate::Args;

/// The score of update `i`: spread over a large range, reproducible in Lua and in Rust.
fn score(i: usize) -> i64 {
    (i as i64 * 2_654_435_761) % 1_000_000_007
}

/// The driver stage: `N` updates then `N` rank queries over `M` members, `W` at a time.
fn driver(n: usize, m: usize, w: usize) -> String {
    format!(
        r#"
local N, M, W = {n}, {m}, {w}
local phase, sent, got, bad, t0 = "set", 0, 0, 0, 0
local function member(i) return "u" .. (i % M) end
local function send(i)
  if phase == "set" then
    stage.signal("rank:set?bench=ack", {{ [member(i)] = {{ i = (i * 2654435761) % 1000000007 }} }})
  else
    stage.signal("rank:get?bench=ack", member(i))
  end
end
local function window()
  local last = math.min(sent + W, N)
  while sent < last do sent = sent + 1; send(sent) end
end
local function ok(r)
  if type(r) ~= "table" then return false end
  local _, v = next(r)
  if phase == "set" then return math.type(v) == "integer" end
  return type(v) == "table" and type(v.I) == "table" and type(v.I[1]) == "table"
    and math.type(v.I[1].d) == "integer" and v.I[1].d >= 1
end
stage.waitfor("ack", function(r, err)
  got = got + 1
  if not ok(r) then
    bad = bad + 1
    if bad <= 3 then print("BAD", phase, tostring(r), tostring(err)) end
  end
  if got == N then
    print("PHASE", phase, N / math.max(thread.tick - t0, 0.001), bad)
    if phase == "set" then
      phase, sent, got, bad, t0 = "rank", 0, 0, 0, thread.tick
      window()
    else
      print("DONE")
    end
  elseif got == sent then
    window()
  end
end)
stage.addtask(300, function() t0 = thread.tick; window(); return -1 end)
"#
    )
}

/// Ops/s of the `set` and `rank` phases of one stage run; `router` puts the driver on another
/// node.
fn stage_once(args: &Args, dir: &Scratch, router: bool) -> Result<(f64, f64), String> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let index_dir = dir.0.join(if router { "idx-router" } else { "idx-local" });
    let _ = std::fs::remove_dir_all(&index_dir);
    let index_dir = index_dir.display().to_string();
    let mut keep = Vec::new();
    let driver = if router {
        let (r, addr) = procs::router(&[], &dir.0, deadline)?;
        let rank = procs::stage(
            "stage-node",
            &[
                "--router",
                &addr,
                "--stage",
                "rank=index",
                "--index-dir",
                &index_dir,
                "--id",
                "2",
            ],
            &dir.0,
            false,
        )?;
        wait_line(&r, deadline, |l| l.contains("registered rank:"))?;
        keep.push(r);
        keep.push(rank);
        procs::stage(
            "stage-node",
            &["--router", &addr, "--stage", "d=driver.lua", "--id", "1"],
            &dir.0,
            false,
        )?
    } else {
        procs::stage(
            "stage-node",
            &[
                "--stage",
                "rank=index",
                "--index-dir",
                &index_dir,
                "--stage",
                "d=driver.lua",
            ],
            &dir.0,
            false,
        )?
    };
    let mut rates = [0.0; 2];
    for (i, phase) in ["set", "rank"].iter().enumerate() {
        let line = wait_line(&driver, deadline, |l| {
            l.starts_with("PHASE\t") || l.starts_with("BAD")
        })?;
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["PHASE", p, rate, "0"] if p == phase => {
                rates[i] = rate.parse().map_err(|_| format!("bad line {line}"))?
            }
            _ => return Err(format!("{phase}: wrong answers: {line}")),
        }
    }
    Ok((rates[0], rates[1]))
}

/// Ops/s of the same updates and rank queries made on the index store directly, each update
/// written to the log as the service does before answering.
fn store_once(args: &Args, dir: &Scratch) -> Result<(f64, f64), String> {
    use stage_node::service::index::{Indexes, Score};
    let path = dir.0.join("idx-store");
    let _ = std::fs::remove_dir_all(&path);
    let mut all = Indexes::new(&path)?;
    let board = all.get("bench", Instant::now())?;
    let member = |i: usize| format!("u{}", i % args.members);
    let t0 = Instant::now();
    for i in 1..=args.ops {
        board.set(&member(i), 0, Score::Int(score(i)));
        board.flush().map_err(|e| format!("index log: {e}"))?;
    }
    let set = args.ops as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for i in 1..=args.ops {
        board
            .rank(&member(i), 0)
            .ok_or_else(|| format!("no rank for {}", member(i)))?;
    }
    let rank = args.ops as f64 / t0.elapsed().as_secs_f64();
    Ok((set, rank))
}

/// Ops/s of ZADD and ZREVRANK with the same members, scores and pipelining.
fn redis_once(args: &Args, redis: &redis::Redis) -> Result<(f64, f64), String> {
    let mut conn = redis::Conn::open(redis.port)?;
    let member = |i: usize| format!("u{}", i % args.members);
    conn.pipeline(
        1,
        1,
        |_, b| redis::command(b, &[b"DEL", b"bench"]),
        |_, _| Ok(()),
    )?;
    let set = conn.pipeline(
        args.ops,
        args.window,
        |i, b| {
            let (s, m) = (score(i + 1).to_string(), member(i + 1));
            redis::command(b, &[b"ZADD", b"bench", s.as_bytes(), m.as_bytes()])
        },
        |i, r| match r {
            redis::Reply::Int(0 | 1) => Ok(()),
            other => Err(format!("ZADD {i}: {other:?}")),
        },
    )?;
    let rank = conn.pipeline(
        args.ops,
        args.window,
        |i, b| redis::command(b, &[b"ZREVRANK", b"bench", member(i + 1).as_bytes()]),
        |i, r| match r {
            redis::Reply::Int(n) if n >= 0 => Ok(()),
            other => Err(format!("ZREVRANK {i}: {other:?}")),
        },
    )?;
    Ok((set, rank))
}

pub fn run(args: &Args) -> Result<(), String> {
    if args.members == 0 || args.ops < args.members || args.window == 0 {
        return Err("index: needs --members > 0, --ops >= --members, --window > 0".into());
    }
    let dir = Scratch::new("index")?;
    dir.write("driver.lua", &driver(args.ops, args.members, args.window))?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let program = args.redis_server.as_deref().unwrap_or("redis-server");
    let redis = redis::start(program, &[], &dir.0, deadline)?;
    let peers = ["stage_router", "stage_local", "store", "redis"];
    let mut set: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
    let mut rank = set.clone();
    // Interleaved runs, so that a noisy moment hits every peer alike.
    for run in 0..args.runs {
        for (p, peer) in peers.iter().enumerate() {
            let (s, r) = match *peer {
                "stage_router" => stage_once(args, &dir, true),
                "stage_local" => stage_once(args, &dir, false),
                "store" => store_once(args, &dir),
                _ => redis_once(args, &redis),
            }
            .map_err(|e| format!("{peer} run {run}: {e}"))?;
            eprintln!("{peer} run {run}: set {s:.0}/s, rank {r:.0}/s");
            set[p].push(s);
            rank[p].push(r);
        }
    }
    for (workload, samples) in [("index_set", &mut set), ("index_rank", &mut rank)] {
        let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
        for (peer, m) in peers.iter().zip(&medians) {
            println!(
                "RESULT workload={workload} peer={peer} ops_per_s={m:.0} members={} ops={} window={} runs={} lost=0",
                args.members, args.ops, args.window, args.runs
            );
        }
        println!(
            "RATIO workload={workload} stage_router/redis={:.2} stage_local/redis={:.2} store/redis={:.2}",
            medians[0] / medians[3],
            medians[1] / medians[3],
            medians[2] / medians[3]
        );
    }
    Ok(())
}
