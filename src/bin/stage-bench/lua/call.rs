//! L2: stage A (node 1) calls `B:echo=ret` on node 2 through a router and checks each answer:
//! first strictly one call at a time ([`WARM_UP`] calls, then `N` measured), then `N` calls with
//! [`IN_FLIGHT`] outstanding. Scripts have no sub-millisecond clock, so the latency of a call is
//! the mean over the sequential phase (phase time / calls), not a percentile.

use crate::procs::Scratch;
use crate::report::Line;
use crate::sys::rss_kb;
use crate::Args;

use super::{deadline, messages, repeat, script, span, Cluster, Report};

const WARM_UP: u64 = 1_000;
const IN_FLIGHT: u64 = 64;

/// The caller. Each phase ends with a report line and a 200 ms pause, in which the bench reads
/// the CPU counters; answers must come back in order (`v` is the call's number).
fn caller(n: u64) -> String {
    script(&format!(
        r#"
local N, WARM, MANY = {n}, {WARM_UP}, {IN_FLIGHT}
local phase, total, sent, got, bad, failed, t0 = "warm", WARM, 0, 0, 0, 0, 0
local function send() sent = sent + 1; stage.signal("B:echo=ret", sent) end
local function begin(p, k)
  phase, total, sent, got, t0 = p, N, 0, 0, thread.tick
  for _ = 1, k do send() end
end
stage.waitfor("ret", function(v, err)
  got = got + 1
  if err ~= nil then failed = failed + 1 elseif v ~= got then bad = bad + 1 end
  if got == total then
    if phase == "warm" then
      report("READY", {{}})
      stage.addtask(200, function() begin("one", 1); return -1 end)
    elseif phase == "one" then
      report("ONE", {{ n = N, t0 = t0, t1 = thread.tick, bad = bad, failed = failed }})
      stage.addtask(200, function() begin("many", MANY); return -1 end)
    else
      report("MANY", {{ n = N, t0 = t0, t1 = thread.tick, bad = bad, failed = failed }})
    end
  elseif sent < total then
    send()
  end
end)
stage.addtask(300, function() send(); return -1 end)
"#
    ))
}

const ECHO: &str = r#"stage.waitfor("echo", function(v) return v end)"#;

/// L2: the sequential and the pipelined phase, one RESULT line each (`inflight=1|64`).
pub fn run(args: &Args) -> Result<(), String> {
    let n = messages(args, 50_000);
    let dir = Scratch::new("l2")?;
    dir.write("a.lua", &caller(n))?;
    dir.write("b.lua", ECHO)?;
    repeat(args, || {
        let deadline = deadline(args);
        let (c, mut meter) = Cluster::ready(&dir, deadline)?;
        let mut lines = Vec::new();
        for (phase, inflight) in [("ONE", 1), ("MANY", IN_FLIGHT)] {
            let r = Report::wait(&c.a, phase, deadline)?;
            let secs = span(r.get("t0")?, r.get("t1")?);
            let mut line = Line::result("l2_call", "stage")
                .num("inflight", inflight as f64)
                .num("calls_per_s", n as f64 / secs);
            if inflight == 1 {
                line = line.num("rtt_mean_us", secs * 1e6 / n as f64);
            }
            lines.push(
                meter
                    .lap(line, &["router", "caller", "callee"], "call", n)
                    .num("router_rss_kb", rss_kb(c.router.child.id())? as f64)
                    .num("calls", n as f64)
                    .num("lost", r.get("failed")?)
                    .num("corrupt", r.get("bad")?),
            );
        }
        Ok(lines)
    })
}
