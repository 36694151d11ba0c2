//! A stage keeps serving whatever its scripts do: errors are logged with a traceback, busy
//! timers cannot starve messages or shutdown, and a message too large for a frame takes the
//! fail path instead of costing the node its router link (DESIGN §5 Errors, §8).

mod common;
use common::{Proc, Scratch, WAIT};
use std::time::Duration;

#[test]
fn errors_are_logged_with_a_traceback_and_the_stage_keeps_serving() {
    let dir = Scratch::new("errors");
    dir.write(
        "s.lua",
        r#"
local function inner() error("boom in inner") end
stage.waitfor("bad", function() inner() end)
stage.waitfor("good", function(n) print("GOOD", n) end)
stage.addtask(10, function() local t = nil; return t.field end)
stage.signal("bad")
stage.signal("good", 1)
stage.addtask(200, function() stage.signal("bad"); stage.signal("good", 2); return -1 end)
"#,
    );
    let node = Proc::node("errors", &["--stage", "s=s.lua"], &dir.dir);
    node.wait_out("GOOD\t1", WAIT);
    node.wait_out("GOOD\t2", WAIT);
    node.wait_err("boom in inner", WAIT);
    node.wait_err("stack traceback", WAIT);
    node.wait_err("in upvalue 'inner'", WAIT);
    // A failing timer is stopped after its first error instead of flooding the log.
    std::thread::sleep(Duration::from_millis(200));
    let timer_errors = node
        .stderr()
        .iter()
        .filter(|l| l.contains("attempt to index a nil value"))
        .count();
    assert_eq!(timer_errors, 1, "{}", node.dump());
}

#[test]
fn busy_timers_do_not_starve_messages_or_shutdown() {
    let dir = Scratch::new("busy");
    // Two 1 ms timers that each burn 3 ms: always due, never idle.
    dir.write(
        "x.lua",
        r#"
local function burn() local t = os.clock() + 0.003; while os.clock() < t do end end
stage.addtask(1, burn)
stage.addtask(1, burn)
stage.waitfor("msg", function(n) print("MSG", n) end)
"#,
    );
    dir.write(
        "y.lua",
        r#"
local n = 0
stage.addtask(50, function() n = n + 1; stage.signal("x:msg", n) end)
"#,
    );
    let mut node = Proc::node(
        "busy",
        &["--stage", "x=x.lua", "--stage", "y=y.lua"],
        &dir.dir,
    );
    node.wait_out("MSG\t5", WAIT);
    node.signal(libc::SIGINT);
    let status = node
        .wait_exit(Duration::from_secs(10))
        .expect("node exits on SIGINT");
    assert!(status.success(), "{status}\n{}", node.dump());
}

#[test]
fn a_message_larger_than_a_frame_fails_without_dropping_the_link() {
    let dir = Scratch::new("oversize");
    dir.write("b.lua", r#"stage.waitfor("x", function(s) return #s end)"#);
    dir.write(
        "a.lua",
        r#"
stage.waitfor("len", function(n) print("LEN", n) end)
stage.waitfor("fail", function(err, s) print("FAIL", err, #s) end)
stage.signal("b:x=len!fail", string.rep("x", 70000))
stage.signal("b:x=len", "short")
"#,
    );
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let _b = Proc::node(
        "b",
        &["--router", &addr, "--stage", "b=b.lua", "--id", "2"],
        &dir.dir,
    );
    router.wait_err("registered b:2", WAIT);
    let a = Proc::node(
        "a",
        &[
            "--router",
            &addr,
            "--stage",
            "a=a.lua",
            "--id",
            "1",
            "--max-frame",
            "65536",
        ],
        &dir.dir,
    );
    let fail = a.wait_out("FAIL", WAIT);
    assert!(
        fail.contains("exceeds the maximum frame of 65536 bytes") && fail.ends_with("\t70000"),
        "{fail}"
    );
    assert_eq!(a.wait_out("LEN", WAIT), "LEN\t5");
    assert!(
        !router.stderr().iter().any(|l| l.contains("closing link")),
        "{}",
        router.dump()
    );
}

#[test]
fn a_runaway_callback_is_interrupted_and_memory_is_capped() {
    let dir = Scratch::new("runaway");
    dir.write(
        "s.lua",
        r#"
stage.waitfor("spin", function() while true do end end)
-- pcall does not save a runaway loop: the budget stays spent until the callback ends.
stage.waitfor("spin_pcall", function() while true do pcall(function() while true do end end) end end)
stage.waitfor("spin_coroutine", function() coroutine.wrap(function() while true do end end)() end)
-- Handlers that swallow or replace the error, nested coroutines, nested synchronous calls:
-- the budget is spent all the same.
stage.waitfor("spin_xpcall", function()
  while true do xpcall(function() while true do end end, function() return 0 end) end
end)
stage.waitfor("spin_nested", function()
  local inner = coroutine.create(function() while true do end end)
  local outer = coroutine.create(function() while true do coroutine.resume(inner) end end)
  while true do coroutine.resume(outer) end
end)
stage.waitfor("burn", function() for i = 1, 5e5 do end end)
stage.waitfor("spin_sync", function() while true do stage.signal(":burn") end end)
stage.waitfor("escape", function()
  print("ESCAPE", debug.sethook, pcall(setmetatable, {}, { __gc = function() end }))
end)
stage.waitfor("hog", function() local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1024) .. i end end)
stage.waitfor("ping", function(n) print("PONG", n) end)
stage.signal("spin")
stage.signal("ping", 1)
stage.signal("spin_pcall")
stage.signal("ping", 2)
stage.signal("spin_coroutine")
stage.signal("ping", 3)
stage.signal("spin_xpcall")
stage.signal("spin_nested")
stage.signal("spin_sync")
stage.signal("escape")
stage.signal("hog")
stage.signal("ping", 4)
"#,
    );
    let node = Proc::node(
        "runaway",
        &[
            "--stage",
            "s=s.lua",
            "--instruction-budget",
            "20000000",
            "--memory-limit",
            "64",
        ],
        &dir.dir,
    );
    for n in 1..=4 {
        node.wait_out(&format!("PONG\t{n}"), WAIT);
    }
    let interrupted = node
        .stderr()
        .iter()
        .filter(|l| l.contains("callback interrupted"))
        .count();
    // Six runaway callbacks (the synchronous one also logs its nested callback's interruption).
    assert!(interrupted >= 6, "{}", node.dump());
    let escape = node.wait_out("ESCAPE", WAIT);
    assert!(
        escape.starts_with("ESCAPE\tnil\tfalse") && escape.contains("__gc"),
        "{escape}"
    );
    node.wait_err("not enough memory", WAIT);
}
