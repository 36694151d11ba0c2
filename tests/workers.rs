//! Worker threads (DESIGN §5): `stage.submit` with per-key order, `thread.new`, functions moved
//! between VMs with their upvalues, runaway jobs interrupted while the main loop keeps serving.

mod common;
use common::{Proc, Scratch, WAIT};
use std::collections::HashMap;

/// Issue acceptance: "4 keys × 100 keyed submits: strict order within each key while different
/// keys overlap in time." Each job takes a global sequence number when it begins and another
/// when it ends (an atomic `__` update): within a key, job i must end before job i+1 begins;
/// across keys, some job must begin while another key's job is still running.
#[test]
fn keyed_submits_keep_order_per_key_and_overlap_across_keys() {
    let dir = Scratch::new("keyed");
    dir.write(
        "s.lua",
        r#"
for k = 1, 4 do
  for i = 1, 100 do
    stage.submit(k, function(k, i)
      local b = __("seq", function(n) return (n or 0) + 1 end)
      sleep(1)
      local e = __("seq", function(n) return n + 1 end)
      print("JOB", k, i, b, e)
    end, k, i)
  end
end
"#,
    );
    let node = Proc::node("keyed", &["--stage", "s=s.lua", "--threads", "4"], &dir.dir);
    let lines = node.wait_count("JOB\t", 400, std::time::Duration::from_secs(60));
    let mut per_key: HashMap<i64, Vec<(i64, i64, i64)>> = HashMap::new();
    for l in &lines {
        let f: Vec<i64> = l.split('\t').skip(1).map(|x| x.parse().unwrap()).collect();
        per_key.entry(f[0]).or_default().push((f[1], f[2], f[3]));
    }
    assert_eq!(per_key.len(), 4);
    let mut spans = Vec::new();
    for (k, jobs) in &mut per_key {
        jobs.sort_by_key(|j| j.1);
        let order: Vec<i64> = jobs.iter().map(|j| j.0).collect();
        assert_eq!(
            order,
            (1..=100).collect::<Vec<_>>(),
            "key {k} ran out of order"
        );
        for w in jobs.windows(2) {
            assert!(
                w[0].2 < w[1].1,
                "key {k}: job {} began before job {} ended",
                w[1].0,
                w[0].0
            );
        }
        spans.extend(jobs.iter().map(|j| (*k, j.1, j.2)));
    }
    let overlaps = spans
        .iter()
        .filter(|a| spans.iter().any(|b| b.0 != a.0 && b.1 > a.1 && b.1 < a.2))
        .count();
    assert!(overlaps > 0, "no two keys ever ran at the same time");
}

#[test]
fn functions_move_with_upvalues_and_threads_report_back() {
    let dir = Scratch::new("thread");
    dir.write(
        "lib.lua",
        r#"return { twice = function(x) print("NAMED", x * 2, _STAGE) end }"#,
    );
    dir.write(
        "s.lua",
        r#"
_SANDBOX[""] = { "VM_ONLY", "*PROCESS_WIDE" }
VM_ONLY, PROCESS_WIDE = "vm", "process"
local config = { factor = 3, label = "cfg" }
local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end
stage.submit(function(x)
  print("SUBMIT", x * config.factor, config.label, fact(5), VM_ONLY, PROCESS_WIDE, _STAGE)
end, 7)
stage.submit("lib+twice", 21)
local to = thread.new(function(a, b)
  thread.signal("progress", a)
  return a + b, "sum"
end, 40, 2)
to.waitfor(function(...) print("THREAD", ...) end)
stage.submit(function() print("SLEEPOK", pcall(sleep, 1)) end)
print("MAINSLEEP", (pcall(sleep, 1)))
"#,
    );
    let node = Proc::node("thread", &["--stage", "s=s.lua"], &dir.dir);
    // Upvalues (a table, a recursive local function) travel; per-VM shared names stay in
    // their VM, process-wide ones are everywhere.
    assert_eq!(
        node.wait_out("SUBMIT", WAIT),
        "SUBMIT\t21\tcfg\t120\tnil\tprocess\ts"
    );
    assert_eq!(node.wait_out("NAMED", WAIT), "NAMED\t42\ts");
    node.wait_out("THREAD\tprogress\t40", WAIT);
    node.wait_out("THREAD\t42\tsum", WAIT);
    node.wait_out("SLEEPOK\ttrue", WAIT);
    node.wait_out("MAINSLEEP\tfalse", WAIT);
}

/// Issue acceptance: "A script with `while true do end` in a submit is interrupted, and the
/// node still answers signals."
#[test]
fn a_runaway_submit_is_interrupted_and_the_node_keeps_answering() {
    let dir = Scratch::new("runaway-submit");
    dir.write(
        "s.lua",
        r#"
stage.submit(function() while true do end end)
stage.submit(function() while true do end end)
stage.waitfor("ping", function(n) print("PONG", n) end)
local n = 0
stage.addtask(100, function()
  n = n + 1
  stage.signal("ping", n)
  if n == 5 then
    stage.submit(function() print("AFTER") end)
    return -1
  end
end)
"#,
    );
    let node = Proc::node(
        "runaway",
        &[
            "--stage",
            "s=s.lua",
            "--threads",
            "2",
            "--instruction-budget",
            "50000000",
        ],
        &dir.dir,
    );
    node.wait_out("PONG\t5", WAIT);
    node.wait_err("callback interrupted", WAIT);
    // Both workers are free again: a new job runs.
    let lines = node
        .stderr()
        .iter()
        .filter(|l| l.contains("callback interrupted"))
        .count();
    assert!(lines >= 1, "{}", node.dump());
}

/// Registrations and timers belong to the stage, whichever thread makes them (stage-spec
/// §6.6): a job's `stage.waitfor` and `stage.addtask` land on the stage's main loop.
#[test]
fn a_job_registers_callbacks_and_timers_on_its_stage() {
    let dir = Scratch::new("job-register");
    dir.write(
        "s.lua",
        r#"
stage.submit(function(tag)
  local id = stage.waitfor(function(bound, v) print("CALLBACK", bound, v, _STAGE) end, tag)
  stage.addtask(10, function(x) print("TASK", x); stage.signal(id, "from the task"); return -1 end, 7)
  print("QUERY", pcall(stage.waitfor, id))
end, "bound in a job")
"#,
    );
    let node = Proc::node("job-register", &["--stage", "s=s.lua"], &dir.dir);
    node.wait_out("TASK\t7", WAIT);
    assert_eq!(
        node.wait_out("CALLBACK", WAIT),
        "CALLBACK\tbound in a job\tfrom the task\ts"
    );
    let query = node.wait_out("QUERY", WAIT);
    assert!(
        query.starts_with("QUERY\tfalse") && query.contains("main loop"),
        "{query}"
    );
}
