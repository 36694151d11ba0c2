//! The Lua-level workloads (L1–L4 of `../shared/bench/WORKLOADS.md`) and the idle node's
//! memory: a Lua driver stage does the work and prints what it measured (`DONE` with its
//! fields, tab-separated), the bench adds the processes' CPU time and memory.
//!
//! Scripts have no clock finer than a millisecond (`thread.tick`), so rates are taken over
//! whole phases, and the call latency is the mean of a phase, not a percentile.

mod call;
mod idle;
mod signal;
mod submit;

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use call::run as run_l2;
pub use idle::run as run_node;
pub use signal::{run_l1, run_l3};
pub use submit::run as run_l4;

use crate::procs::{self, wait_line, Process, Scratch};
use crate::report::{self, Line};
use crate::sys::{cpu_ns, rss_kb, Machine};
use crate::Args;

/// `--messages`, or the workload's own count.
fn messages(args: &Args, default: u64) -> u64 {
    args.messages.unwrap_or(default).max(1)
}

/// The deadline of one run.
fn deadline(args: &Args) -> Instant {
    Instant::now() + Duration::from_secs(args.timeout)
}

/// Runs `once` `--runs` times, printing each run as a `RUN` line and then their median as the
/// `RESULT` line (one per phase when a run measures several: `once` returns one line each).
/// A run that lost or corrupted messages fails the workload.
fn repeat(args: &Args, once: impl Fn() -> Result<Vec<Line>, String>) -> Result<(), String> {
    let mut runs: Vec<Vec<Line>> = Vec::new();
    for _ in 0..args.runs.max(1) {
        let lines = once()?;
        for line in &lines {
            line.clone().into_kind("RUN").print();
            let lost = line.get("lost").unwrap_or(0.0) + line.get("corrupt").unwrap_or(0.0);
            if lost > 0.0 {
                let workload = line.get_text("workload").unwrap_or("?");
                println!("FAIL workload={workload} peer=stage LOST={lost}");
                return Err(format!("{workload}: {lost} messages lost or wrong"));
            }
        }
        runs.push(lines);
    }
    let phases = runs.first().map_or(0, Vec::len);
    for p in 0..phases {
        let of_phase: Vec<Line> = runs.iter().filter_map(|r| r.get(p).cloned()).collect();
        let median = report::median(&of_phase);
        median.print();
        if let Some(line) = against_goal(&median) {
            line.print();
        }
    }
    Ok(())
}

/// The issue's goals for the Lua-level workloads: (workload, field, bound, at most).
const GOALS: [(&str, &str, f64, bool); 4] = [
    ("l1_signal", "msgs_per_s", 1_000_000.0, false),
    ("l3_local", "msgs_per_s", 2_000_000.0, false),
    ("l4_submit", "jobs_per_s", 1_000_000.0, false),
    ("node_idle", "node_rss_kb", 16.0 * 1024.0, true),
];

/// A RATIO line of a median against its goal, if the workload has one.
fn against_goal(median: &Line) -> Option<Line> {
    let workload = median.get_text("workload")?;
    let &(_, field, bound, at_most) = GOALS.iter().find(|g| g.0 == workload)?;
    let measured = median.get(field)?;
    let met = if at_most {
        measured <= bound
    } else {
        measured >= bound
    };
    Some(
        Line::new("RATIO")
            .text("workload", workload)
            .text("field", field)
            .num("measured", measured)
            .text(
                "goal",
                format!("{}{bound}", if at_most { "<=" } else { ">=" }),
            )
            .text("ratio", format!("{:.2}", measured / bound))
            .text("met", if met { "yes" } else { "no" }),
    )
}

/// A driver's report: `NAME\tkey=value\t...` as printed by a Lua script.
struct Report(HashMap<String, f64>);

impl Report {
    /// Waits for the line starting with `name` from `p`.
    fn wait(p: &Process, name: &str, deadline: Instant) -> Result<Report, String> {
        let line = wait_line(p, deadline, |l| {
            l.split('\t').next() == Some(name) || l.starts_with("BAD")
        })
        .map_err(|e| format!("{name}: {e}"))?;
        if line.starts_with("BAD") {
            return Err(format!("driver: {line}"));
        }
        let fields = line
            .split('\t')
            .skip(1)
            .filter_map(|f| f.split_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect();
        Ok(Report(fields))
    }

    fn get(&self, key: &str) -> Result<f64, String> {
        self.0
            .get(key)
            .copied()
            .ok_or_else(|| format!("driver report without {key}"))
    }
}

/// Lua prepended to every driver script: `report(name, fields)` prints the line [`Report`]
/// reads.
const REPORT_LUA: &str = r#"
local function report(name, fields)
  local out = { name }
  for k, v in pairs(fields) do out[#out + 1] = k .. "=" .. string.format("%.17g", v) end
  print(table.concat(out, "\t"))
end
"#;

/// A driver script: [`REPORT_LUA`], then `body`.
fn script(body: &str) -> String {
    format!("{REPORT_LUA}{body}")
}

/// Delays a driver's start by 300 ms (the node and its links come up), prints `READY` (the
/// bench reads its counters), and after 200 ms more calls the script's local `start()`.
const START: &str = r#"
stage.addtask(300, function()
  report("READY", {})
  stage.addtask(200, function() start(); return -1 end)
  return -1
end)
"#;

/// Runs a driver script `d.lua` (which reports `DONE` with `got`, `bad`, `t0` and `t1`) on a
/// standalone node; the RESULT line of its `n` operations `op`: `<op>s_per_s`, the node's CPU
/// per operation, its RSS, and what was lost or wrong.
fn standalone(
    args: &Args,
    dir: &Scratch,
    workload: &str,
    op: &str,
    n: u64,
) -> Result<Line, String> {
    let deadline = deadline(args);
    let node = procs::stage("stage-node", &["--stage", "d=d.lua"], &dir.0, false)?;
    let pid = node.child.id();
    Report::wait(&node, "READY", deadline)?;
    let mut meter = Meter::start(&[pid]);
    let done = Report::wait(&node, "DONE", deadline)?;
    let got = done.get("got")?;
    let line = Line::result(workload, "stage").num(
        &format!("{op}s_per_s"),
        got / span(done.get("t0")?, done.get("t1")?),
    );
    Ok(meter
        .lap(line, &["node"], op, n)
        .num("node_rss_kb", rss_kb(pid)? as f64)
        .num(&format!("{op}s"), n as f64)
        .num("lost", n as f64 - got)
        .num("corrupt", done.get("bad")?))
}

/// A router and two nodes: stage B (`b.lua`) on node 2, then stage A (`a.lua`) on node 1.
struct Cluster {
    router: Process,
    a: Process,
    b: Process,
}

impl Cluster {
    fn start(dir: &Scratch, deadline: Instant) -> Result<Cluster, String> {
        let (router, addr) = procs::router(&[], &dir.0, deadline)?;
        let node = |stage: &str, id: &str| {
            procs::stage(
                "stage-node",
                &["--router", &addr, "--stage", stage, "--id", id],
                &dir.0,
                false,
            )
        };
        let b = node("B=b.lua", "2")?;
        wait_line(&router, deadline, |l| l.contains("registered B:"))?;
        let a = node("A=a.lua", "1")?;
        Ok(Cluster { router, a, b })
    }

    /// Starts the cluster and waits for A's `READY`; the meter then runs on the router, A and
    /// B (in that order).
    fn ready(dir: &Scratch, deadline: Instant) -> Result<(Cluster, Meter), String> {
        let c = Cluster::start(dir, deadline)?;
        Report::wait(&c.a, "READY", deadline)?;
        let meter = Meter::start(&[c.router.child.id(), c.a.child.id(), c.b.child.id()]);
        Ok((c, meter))
    }
}

/// On-CPU time of the measured processes over a phase, and the machine's noise meanwhile.
struct Meter {
    pids: Vec<u32>,
    cpu: Vec<u64>,
    machine: Machine,
}

impl Meter {
    fn start(pids: &[u32]) -> Meter {
        Meter {
            pids: pids.to_vec(),
            cpu: pids.iter().map(|p| cpu_ns(*p)).collect(),
            machine: Machine::now(),
        }
    }

    /// Adds each process's CPU per `n` operations (`<name>_cpu_ns_per_<op>`) and the noise
    /// fields to `line`; the meter then starts the next phase.
    fn lap(&mut self, mut line: Line, names: &[&str], op: &str, n: u64) -> Line {
        let now = Meter::start(&self.pids);
        let spent: Vec<u64> = now
            .cpu
            .iter()
            .zip(&self.cpu)
            .map(|(b, a)| b.saturating_sub(*a))
            .collect();
        for (name, ns) in names.iter().zip(&spent) {
            line = line.num(
                &format!("{name}_cpu_ns_per_{op}"),
                *ns as f64 / n.max(1) as f64,
            );
        }
        let noise = self.machine.noise(&now.machine, spent.iter().sum());
        *self = now;
        line.num("foreign_cpu_pct", noise.foreign_pct)
            .num("kernel_other_pct", noise.kernel_other_pct)
    }
}

/// Seconds between two `thread.tick` readings, at least one tick (1 ms).
fn span(from: f64, to: f64) -> f64 {
    (to - from).max(0.001)
}
