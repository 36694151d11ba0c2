//! L1 (node-to-node signals through a router) and L3 (signals to the own stage): `N` messages
//! of three values `(i, 2i, "v")` to a `waitfor` handler that checks each one arrives intact and
//! in order.
//!
//! L1 paces its sender: the receiver acknowledges every [`ACK`] messages and the sender waits
//! for that before sending the next [`ACK`], because `stage.signal` to a full link
//! (`--link-buffer`, 8 MiB) does not block — it refuses the message (logged as dropped, or the
//! fail path of a request) and runs the sender's `on_overload` callback. Nor may the receiver's
//! backlog stay non-empty: a backlog that grows over five samples in a row (the
//! `--overload-window`, 300 ms) makes the node report the stage overloaded, and the router then
//! refuses messages to it. With two batches in flight the backlog never drains and a 1,000,000
//! message run lost messages that way; one batch at a time lets it drain after every batch. A
//! refused message is counted as lost at the receiver; a gap in the sequence counts once as
//! corrupt.

use crate::procs::Scratch;
use crate::report::Line;
use crate::sys::rss_kb;
use crate::Args;

use super::{deadline, messages, repeat, script, span, standalone, Cluster, Report, START};

/// L1: messages the receiver acknowledges at once, which the sender sends as one batch.
const ACK: u64 = 10_000;

/// L3: signals sent per turn of the stage's loop (the handler sends the next batch once it has
/// seen the last one, so the inbox stays small).
const BATCH: u64 = 1_000;

/// The receiving side shared by L1 and L3: `sink` checks and counts; `report_done()` prints
/// `DONE` with the count, the number of bad messages and the time of the call.
const SINK: &str = r#"
local got, bad, last = 0, 0, 0
local function report_done(extra)
  extra.got, extra.bad, extra.t1 = got, bad, thread.tick
  report("DONE", extra)
end
local on_message = function() end
stage.waitfor("sink", function(a, b, c)
  got = got + 1
  if a ~= last + 1 or b ~= a * 2 or c ~= "v" then bad = bad + 1 end
  last = a
  on_message()
end)
"#;

fn l3_driver(n: u64) -> String {
    script(&format!(
        r#"
local N, B = {n}, {BATCH}
local sent, t0 = 0, 0
{SINK}
local function batch()
  local last = math.min(sent + B, N)
  for i = sent + 1, last do stage.signal("sink", i, i * 2, "v") end
  sent = last
end
on_message = function()
  if got == N then report_done({{ t0 = t0 }}) elseif got == sent then batch() end
end
local function start() t0 = thread.tick; batch() end
{START}
"#
    ))
}

fn l1_receiver(n: u64) -> String {
    script(&format!(
        r#"
local N, ACK = {n}, {ACK}
{SINK}
on_message = function() if got % ACK == 0 then stage.signal("A:ack", got) end end
stage.waitfor("fin", function(sent, t0) report_done({{ sent = sent, t0 = t0 }}) end)
"#
    ))
}

fn l1_sender(n: u64) -> String {
    script(&format!(
        r#"
local N, W = {n}, {ACK}
local sent, acked, t0, finished, overloads = 0, 0, 0, false, 0
local function pump()
  local last = math.min(acked + W, N)
  for i = sent + 1, last do stage.signal("B:sink", i, i * 2, "v") end
  if last > sent then sent = last end
  if sent == N and not finished then
    finished = true
    stage.signal("B:fin", sent, t0)
  end
end
stage.waitfor("ack", function(n) acked = n; pump() end)
stage.waitfor("on_overload", function(busy)
  overloads = overloads + 1
  report("OVERLOAD", {{ n = overloads }})
end)
local function start() t0 = thread.tick; pump() end
{START}
"#
    ))
}

/// L3: `N` signals to the own stage's `waitfor`, on a standalone node.
pub fn run_l3(args: &Args) -> Result<(), String> {
    let n = messages(args, 1_000_000);
    let dir = Scratch::new("l3")?;
    dir.write("d.lua", &l3_driver(n))?;
    repeat(args, || {
        Ok(vec![standalone(args, &dir, "l3_local", "msg", n)?])
    })
}

/// L1: stage A on node 1 signals `N` messages to stage B on node 2 through one router.
pub fn run_l1(args: &Args) -> Result<(), String> {
    let n = messages(args, 1_000_000);
    let dir = Scratch::new("l1")?;
    dir.write("a.lua", &l1_sender(n))?;
    dir.write("b.lua", &l1_receiver(n))?;
    repeat(args, || {
        let deadline = deadline(args);
        let (c, mut meter) = Cluster::ready(&dir, deadline)?;
        let done = Report::wait(&c.b, "DONE", deadline)?;
        let got = done.get("got")?;
        let line = Line::result("l1_signal", "stage")
            .num("msgs_per_s", got / span(done.get("t0")?, done.get("t1")?));
        Ok(vec![meter
            .lap(line, &["router", "sender", "receiver"], "msg", n)
            .num("router_rss_kb", rss_kb(c.router.child.id())? as f64)
            .num("msgs", n as f64)
            .num("lost", n as f64 - got)
            .num("corrupt", done.get("bad")?)])
    })
}
