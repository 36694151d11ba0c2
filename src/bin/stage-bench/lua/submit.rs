//! L4: `N` jobs `stage.submit(k, job, k, j)` over [`KEYS`] keys on the worker pool; job `j` of
//! key `k` checks in the process store that the key's last job was `j - 1` — a job that runs
//! out of order, twice or never is seen — and stores `j`. The stage keeps at most [`WINDOW`]
//! jobs queued: it polls the per-key counters every [`POLL_MS`] ms and submits more.

use crate::procs::Scratch;
use crate::Args;

use super::{messages, repeat, script, standalone, START};

const KEYS: u64 = 64;
const WINDOW: u64 = 20_000;
/// How often the stage reads the counters (64 reads from the process store, so not every ms).
const POLL_MS: u64 = 5;

fn driver(n: u64) -> String {
    script(&format!(
        r#"
local N, K, W, POLL = {n}, {KEYS}, {WINDOW}, {POLL_MS}
local sent, t0 = 0, 0
local function job(k, j)
  __("k" .. k, function(last)
    if (last or 0) + 1 ~= j then __("bad", function(b) return (b or 0) + 1 end) end
    return j
  end)
end
local function done()
  local d = 0
  for k = 1, K do d = d + (__["k" .. k] or 0) end
  return d
end
local function pump()
  local d = done()
  if d >= N then
    report("DONE", {{ got = d, bad = __.bad or 0, t0 = t0, t1 = thread.tick }})
    return -1
  end
  local last = math.min(d + W, N)
  for i = sent + 1, last do
    stage.submit((i - 1) % K + 1, job, (i - 1) % K + 1, (i - 1) // K + 1)
  end
  if last > sent then sent = last end
  return POLL
end
local function start() t0 = thread.tick; stage.addtask(pump) end
{START}
"#
    ))
}

/// L4 on a standalone node with the default worker count (one per CPU).
pub fn run(args: &Args) -> Result<(), String> {
    let n = messages(args, 1_000_000);
    let dir = Scratch::new("l4")?;
    dir.write("d.lua", &driver(n))?;
    repeat(args, || {
        Ok(vec![
            standalone(args, &dir, "l4_submit", "job", n)?.num("keys", KEYS as f64)
        ])
    })
}
