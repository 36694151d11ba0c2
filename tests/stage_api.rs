//! The `stage.*` functions of stage-spec §6, one test each, on a standalone node: `stage.once`
//! (§6.1), `stage.load` / `stage.require` and the `--package` fail-over (§3, §6.2),
//! `stage.call` (§6.7), `stage.addtask` (§6.3), `stage.waitfor` ids and groups (§6.6),
//! synchronous `":id"` signals, `stage.proxy` edges (§6.8), `logger.*` (§6.13) and the
//! process store `__` / `stage.v` (§5.6, §6.9). Expected lines follow the reference outputs
//! recorded in stage-spec §15.

mod common;
use common::{Proc, Scratch, WAIT};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Writes `files` (paths relative to the scratch directory, subdirectories created) and starts
/// a standalone node with `args` in that directory.
fn start(tag: &str, files: &[(&str, &str)], args: &[&str]) -> (Proc, Scratch) {
    let dir = Scratch::new(tag);
    for (name, code) in files {
        let path = dir.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create script directory");
        }
        std::fs::write(&path, code).expect("write script");
    }
    let node = Proc::node(tag, args, &dir.dir);
    (node, dir)
}

/// `start` with one `--stage NAME=NAME.lua` per script name in `stages`, waiting for `DONE`.
fn run(tag: &str, files: &[(&str, &str)], stages: &[&str]) -> (Proc, Scratch) {
    let mut args = Vec::new();
    for s in stages {
        args.push("--stage".to_owned());
        args.push(format!("{s}={s}.lua"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (node, dir) = start(tag, files, &args);
    node.wait_out("DONE", WAIT);
    (node, dir)
}

/// Asserts that stdout holds exactly `line` (a whole line).
fn assert_line(node: &Proc, line: &str) {
    assert!(
        node.stdout().iter().any(|l| l == line),
        "no stdout line {line:?}\n{}",
        node.dump()
    );
}

/// The stdout lines starting with `prefix`.
fn lines_with(node: &Proc, prefix: &str) -> Vec<String> {
    node.stdout()
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

fn mtime_secs(path: &Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("mtime after the epoch")
        .as_secs()
}

#[test]
fn once_runs_a_key_once_per_process_until_forgotten() {
    // ONCE-1 / ONCE-3 of stage-spec §15; the key is shared by every stage of the process.
    let (node, _dir) = run(
        "once",
        &[
            (
                "a.lua",
                r##"
stage.once("k", function() print("ONCE-1") end)
stage.once("k", function() print("ONCE-2") end)
print("FORGET", select("#", stage.once("k", nil)))
stage.once("k", function() print("ONCE-3") end)
stage.once("k", function() print("ONCE-4") end)
-- A key that is not a string is the key "".
stage.once(42, function() print("EMPTY-1") end)
stage.once("", function() print("EMPTY-2") end)
stage.signal("b:go")
"##,
            ),
            (
                "b.lua",
                r##"
stage.waitfor("go", function()
  stage.once("k", function() print("B-ONCE") end)
  stage.once("k", nil)
  stage.once("k", function() print("B-AGAIN") end)
  print("DONE")
end)
"##,
            ),
        ],
        &["a", "b"],
    );
    assert_eq!(
        node.stdout(),
        [
            "ONCE-1",
            "FORGET\t0",
            "ONCE-3",
            "EMPTY-1",
            "B-AGAIN",
            "DONE"
        ],
        "{}",
        node.dump()
    );
}

/// The shipped layout: `--package package --package rollback` (depths 0 and 1).
const PACKAGES: [&str; 4] = ["--package", "package", "--package", "rollback"];

#[test]
fn load_runs_a_script_on_every_call_and_reports_where_it_came_from() {
    let (node, dir) = {
        let mut args = PACKAGES.to_vec();
        args.extend(["--stage", "s=s.lua"]);
        start(
            "load",
            &[
                (
                    "package/test.lua",
                    r##"return { hello = function(a, b) return "HELLO: " .. (a + b) end }"##,
                ),
                (
                    "package/counter.lua",
                    r##"return __("loads", function(n) return (n or 0) + 1 end)"##,
                ),
                ("package/sub/mod.lua", r##"return { x = "SUB" }"##),
                ("rollback/old.lua", r##"return { v = "OLD" }"##),
                (
                    "package/s.lua",
                    r##"
print("HELLO", stage.load("test+hello")(1, 2))
print("CB", stage.load("test+hello", function(f, i)
  return f(3, 4), #i, i[1], i[2], math.type(i[3]), i[3]
end))
print("WHOLE", type(stage.load("test")), type(stage.load("test").hello))
print("DOTTED", stage.load("sub.mod+x"))
print("FAILOVER", stage.load("old+v", function(v, i) return v, i[1], i[2] end))
print("MISS", stage.load("nothere+x", function(r, i) return r, #i, i[1], i[2] end))
print("MISSN", select("#", stage.load("nothere+x")), select("#", stage.load("nothere")))
print("RERUN", stage.load("counter"), stage.load("counter"))
print("DONE")
"##,
                ),
            ],
            &args,
        )
    };
    node.wait_out("DONE", WAIT);
    let mtime = mtime_secs(&dir.dir.join("package/test.lua"));
    assert_line(&node, "HELLO\tHELLO: 3");
    assert_line(
        &node,
        &format!("CB\tHELLO: 7\t3\t0\tpackage/test.lua\tinteger\t{mtime}"),
    );
    assert_line(&node, "WHOLE\ttable\tfunction");
    assert_line(&node, "DOTTED\tSUB");
    // i[1] > 0: the script came from a fail-over location.
    assert_line(&node, "FAILOVER\tOLD\t1\trollback/old.lua");
    assert_line(&node, "MISS\tnil\t2\tnothere\tx");
    assert_line(&node, "MISSN\t0\t0");
    // stage.load is not require: the chunk runs on every call.
    assert_line(&node, "RERUN\t1\t2");
}

#[test]
fn load_miss_reports_the_file_path_of_a_dotted_name() {
    // The original passes the file part with every '.' replaced by '/' (stage/lua.cpp __load).
    let (node, _dir) = run(
        "loadmiss",
        &[(
            "s.lua",
            r##"
print("MISS", stage.load("no.such+x", function(r, i) return r, i[1], i[2] end))
print("RMISS", stage.require("no.such+x", function(r, i) return r, i[1], i[2] end))
print("DONE")
"##,
        )],
        &["s"],
    );
    assert_line(&node, "MISS\tnil\tno/such\tx");
    assert_line(&node, "RMISS\tnil\tno/such\tx");
}

#[test]
fn require_runs_a_module_once_per_vm() {
    let (node, dir) = run(
        "require",
        &[
            ("mod.lua", "print(\"MOD RUN\", _STAGE)\nreturn { n = 42 }\n"),
            (
                "s.lua",
                r##"
print("R1", stage.require("mod", function(m, i) return m.n, type(i), i[1], i[2], i[3] end))
print("R2", stage.require("mod", function(m, i) return m.n, i end))
print("R3", stage.require("mod").n, stage.require("mod+n"))
print("RMISS", stage.require("nothere+x", function(r, i) return r, i[1], i[2] end))
print("RMISSN", select("#", stage.require("nothere")))
stage.signal("t:go")
"##,
            ),
            (
                "t.lua",
                r##"
stage.waitfor("go", function()
  print("T", stage.require("mod").n)
  print("DONE")
end)
"##,
            ),
        ],
        &["s", "t"],
    );
    let mtime = mtime_secs(&dir.dir.join("mod.lua"));
    assert_line(&node, &format!("R1\t42\ttable\t0\tmod.lua\t{mtime}"));
    // Cached: the callback gets no i.
    assert_line(&node, "R2\t42\tnil");
    assert_line(&node, "R3\t42\t42");
    assert_line(&node, "RMISS\tnil\tnothere\tx");
    assert_line(&node, "RMISSN\t0");
    assert_line(&node, "T\t42");
    // Once in each VM: stage s, then stage t.
    assert_eq!(
        lines_with(&node, "MOD RUN"),
        ["MOD RUN\ts", "MOD RUN\tt"],
        "{}",
        node.dump()
    );
}

#[test]
fn a_missing_main_script_fails_over_to_rollback_until_the_package_has_one() {
    let mut args = PACKAGES.to_vec();
    args.extend(["--stage", "main=start.lua"]);
    let (node, dir) = start(
        "rollback",
        &[
            ("package/other.lua", "return 1\n"),
            ("rollback/start.lua", "print(\"ROLLBACK\")\n"),
        ],
        &args,
    );
    node.wait_out("ROLLBACK", WAIT);
    node.wait_err("rollback/start.lua (depth 1)", WAIT);
    // A valid primary copy takes over once the fail-over entry is re-resolved.
    dir.write("package/start.lua", "print(\"PACKAGE\")\n");
    node.wait_out("PACKAGE", WAIT);
    node.wait_err("reloading package/start.lua", WAIT);
    assert_eq!(node.stdout(), ["ROLLBACK", "PACKAGE"], "{}", node.dump());
}

#[test]
fn a_main_script_with_a_syntax_error_fails_over_to_rollback() {
    // bin/package/test_waitfor.lua of the original does not compile (line 54); stage-spec §15
    // observed ROLLBACK and the compile error in the log.
    let mut args = PACKAGES.to_vec();
    args.extend(["--stage", "main=start.lua"]);
    let (node, _dir) = start(
        "syntax",
        &[
            (
                "package/start.lua",
                "print(\"PACKAGE\")\nactor \"request\" function (self, ...) end\n",
            ),
            ("rollback/start.lua", "print(\"ROLLBACK\")\n"),
        ],
        &args,
    );
    node.wait_out("ROLLBACK", WAIT);
    let warn = node.wait_err("<name> expected near '('", WAIT);
    assert!(
        warn.contains("WARN") && warn.contains("package/start.lua:2"),
        "{warn}"
    );
    assert!(
        !node.stdout().iter().any(|l| l == "PACKAGE"),
        "{}",
        node.dump()
    );
}

#[test]
fn call_spreads_table_arguments_and_isolates_globals() {
    let (node, _dir) = run(
        "call",
        &[
            (
                "test.lua",
                r##"return { hello = function(a, b) return "HELLO: " .. (a + b) end }"##,
            ),
            (
                "s.lua",
                r##"
local function show(...)
  local out = { select("#", ...) }
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    out[#out + 1] = type(v) == "table" and ("{" .. table.concat(v, ",") .. "}") or tostring(v)
  end
  print(table.concat(out, " "))
  return ...
end
-- The seed example: stage.call(f, {10,20,30,{"MSG"}}, "HELLO") -> f(10, 20, 30, {"MSG"}, "HELLO")
show(stage.call(show, { 10, 20, 30, { "MSG" } }, "HELLO"))
stage.call(show, { 1, 2, 3 }, "x")
print("FILE", stage.call("test+hello", 1, 2), stage.call("test+hello", { 3, 4 }))
-- A table { fn, a, b }: the first value is the function, the others come first.
stage.call({ show, "a", "b" }, { "c" }, nil, "d")
-- f runs in its own coroutine: it sees the caller's globals, its own stay its own.
X = "outer"
print("SEES", stage.call(function() local seen = X; X = "inner"; Y = "y"; return seen end))
print("AFTER", X, Y)
print("ERR", pcall(stage.call, function() error("boom", 0) end))
print("MISSING", pcall(stage.call, "nothere+x"))
print("DONE")
"##,
            ),
        ],
        &["s"],
    );
    let out = node.stdout();
    let expected = [
        "5 10 20 30 {MSG} HELLO",
        "5 10 20 30 {MSG} HELLO",
        "4 1 2 3 x",
        "FILE\tHELLO: 3\tHELLO: 7",
        "5 a b c nil d",
        "SEES\touter",
        "AFTER\touter\tnil",
        "ERR\tfalse\tboom",
    ];
    assert_eq!(&out[..expected.len()], expected, "{}", node.dump());
    assert!(
        out[expected.len()].starts_with("MISSING\tfalse\t")
            && out[expected.len()].contains("nothere+x"),
        "{}",
        node.dump()
    );
}

#[test]
fn addtask_repeats_reschedules_stops_and_cancels() {
    let started = Instant::now();
    let (node, _dir) = run(
        "addtask",
        &[(
            "s.lua",
            r##"
-- No return value: runs again with the same interval; return -1 stops it.
local reps = 0
stage.addtask(20, function(tag)
  reps = reps + 1
  print("REP", tag, reps)
  if reps == 3 then return -1 end
end, "T")
-- addtask(0, f) runs once; the arguments are passed (nil kept).
local zero = 0
stage.addtask(0, function(a, b, c, d)
  zero = zero + 1
  print("ZERO", zero, a, b, c, type(d), d[1])
end, 1, "two", nil, { 3 })
stage.addtask(function(...) print("NOMS", select("#", ...), ...) end, "x")
-- return n: runs again after n ms; return 0 stops.
local k = 0
stage.addtask(10, function()
  k = k + 1
  print("RESCHED", k)
  if k < 3 then return 100 end
  return 0
end)
-- Cancel: true when found, then false.
local h = stage.addtask(50, function() print("CANCELLED TASK RAN") end)
print("HANDLE", type(h), stage.addtask(h, nil), stage.addtask(h, nil))
-- A repeating task cancelled by another task stops for good.
local ticks = 0
local rep = stage.addtask(10, function() ticks = ticks + 1 end)
stage.addtask(150, function()
  print("STOP", stage.addtask(rep, nil), ticks > 3)
  local at = ticks
  stage.addtask(200, function()
    print("AFTER STOP", ticks - at)
    print("DONE")
    return -1
  end)
  return -1
end)
"##,
        )],
        &["s"],
    );
    node.wait_out("RESCHED\t3", WAIT);
    // 10 ms, then twice 100 ms: the third run cannot come earlier than 210 ms after start.
    assert!(started.elapsed() >= Duration::from_millis(210));
    // Time for any extra run to show up.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lines_with(&node, "REP"),
        ["REP\tT\t1", "REP\tT\t2", "REP\tT\t3"],
        "{}",
        node.dump()
    );
    assert_eq!(
        lines_with(&node, "ZERO"),
        ["ZERO\t1\t1\ttwo\tnil\ttable\t3"],
        "{}",
        node.dump()
    );
    assert_eq!(lines_with(&node, "NOMS"), ["NOMS\t1\tx"], "{}", node.dump());
    assert_eq!(
        lines_with(&node, "RESCHED"),
        ["RESCHED\t1", "RESCHED\t2", "RESCHED\t3"],
        "{}",
        node.dump()
    );
    assert_line(&node, "HANDLE\tstring\ttrue\tfalse");
    assert_line(&node, "STOP\ttrue\ttrue");
    assert_line(&node, "AFTER STOP\t0");
    assert!(lines_with(&node, "CANCELLED").is_empty(), "{}", node.dump());
}

#[test]
fn waitfor_ids_queries_bound_values_and_group_lookup() {
    let (node, _dir) = run(
        "waitfor",
        &[(
            "s.lua",
            r##"
local function cb(...) print("CB", _WAITFOR[0], _WAITFOR[-1] == _WAITFOR[0], ...) end
-- Generated ids.
local a, b = stage.waitfor(cb), stage.waitfor(cb)
local n9, n2 = stage.waitfor(9, cb), stage.waitfor(2, cb)
print("IDS", a, b, n9, n2)
-- Queries: the function and the bound values (one as is, several as a table).
local f0, b0 = stage.waitfor(a)
print("QUERY0", rawequal(f0, cb), b0)
print("REBIND", stage.waitfor(b, "B1") == b)
local f1, b1 = stage.waitfor(b)
print("QUERY1", rawequal(f1, cb), b1)
local named = stage.waitfor("named", cb, "X", "Y")
local f2, b2 = stage.waitfor("named")
print("QUERY2", named, rawequal(f2, cb), type(b2), b2[1], b2[2])
local all = stage.waitfor()
print("LIST", all[b], all.named[1], all.named[2])
print("UNREG", select("#", stage.waitfor(n2, nil)), select("#", stage.waitfor(n2)), stage.waitfor()[n2])
print("UNKNOWN", select("#", stage.waitfor("never")))
-- Bound values come before the message's values.
stage.signal("named", "M1", "M2")
stage.signal(b, "M")
stage.signal(":" .. n9)
-- Groups: the longest registered prefix ending in '.', '?' or ':' (never left of the first ':').
local function group(tag) return function(...) print(tag, _WAITFOR[0], _WAITFOR[-1], ...) end end
stage.waitfor("a:", group("G-A"))
stage.waitfor("a:b.", group("G-AB"))
stage.waitfor("a:b.c.", group("G-ABC"))
stage.waitfor("x.", group("G-X"))
stage.signal(":a:b.c.d", 1)
stage.signal(":a:b.z", 2)
stage.signal(":a:q", 3)
stage.signal(":x.y?z", 4)
stage.signal(":nomatch", 5)
-- The catch-all.
stage.waitfor("@", group("ANY"))
stage.signal(":nomatch", 6)
stage.signal("async_nomatch", 7)
stage.signal(n2, 8)
stage.waitfor("done", function() print("DONE") end)
stage.signal("done")
"##,
        )],
        &["s"],
    );
    let out = node.stdout();
    let ids: Vec<&str> = out[0]
        .strip_prefix("IDS\t")
        .expect("IDS")
        .split('\t')
        .collect();
    assert_eq!(ids.len(), 4, "{out:?}");
    for (id, len) in ids.iter().zip([16, 16, 9, 4]) {
        assert_eq!(id.len(), len, "{id}");
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }
    assert_ne!(ids[0], ids[1]);
    let (b, n9, n2) = (ids[1], ids[2], ids[3]);
    let expected = [
        "QUERY0\ttrue\tnil".to_owned(),
        "REBIND\ttrue".to_owned(),
        "QUERY1\ttrue\tB1".to_owned(),
        "QUERY2\tnamed\ttrue\ttable\tX\tY".to_owned(),
        "LIST\tB1\tX\tY".to_owned(),
        "UNREG\t0\t0\tnil".to_owned(),
        "UNKNOWN\t0".to_owned(),
        // Synchronous ones, during the main script:
        format!("CB\t{n9}\ttrue"),
        "G-ABC\ta:b.c.d\ta:b.c.\t1".to_owned(),
        "G-AB\ta:b.z\ta:b.\t2".to_owned(),
        "G-A\ta:q\ta:\t3".to_owned(),
        "G-X\tx.y?z\tx.\t4".to_owned(),
        "ANY\tnomatch\t@\t6".to_owned(),
        // Then the queued ones, in order:
        "CB\tnamed\ttrue\tX\tY\tM1\tM2".to_owned(),
        format!("CB\t{b}\ttrue\tB1\tM"),
        "ANY\tasync_nomatch\t@\t7".to_owned(),
        format!("ANY\t{n2}\t@\t8"),
        "DONE".to_owned(),
    ];
    assert_eq!(&out[1..], expected, "{}", node.dump());
    // Before "@" existed, the unmatched message was dropped with a warning.
    node.wait_err("no stage.waitfor for 'nomatch'", WAIT);
}

#[test]
fn a_synchronous_signal_runs_before_signal_returns_and_keeps_the_callers_state() {
    let (node, _dir) = run(
        "sync",
        &[(
            "s.lua",
            r##"
-- The seed example: every value arrives as its own argument.
stage.waitfor("local_callback", function(...) print("LOCAL", select("#", ...), ...) end)
stage.signal("local_callback", "HELLO", "STAGE", "PLATFORM")
stage.waitfor("inner", function(v)
  print("INNER", v, _WAITFOR[0], _WAITFOR[-1], G)
  G = "inner"
  return "answer to nobody"
end)
stage.waitfor("outer.", function(v)
  G = "outer"
  local saved = _WAITFOR
  print("BEFORE", _WAITFOR[0], _WAITFOR[-1])
  local n = select("#", stage.signal(":inner", v + 1))
  print("AFTER", n, _WAITFOR[0], _WAITFOR[-1], rawequal(saved, _WAITFOR), G)
  print("DONE")
end)
G = "main"
print("MAIN", select("#", stage.signal("outer.x", 1)))
stage.signal(":inner", 0)
print("MAIN END", G, _WAITFOR)
"##,
        )],
        &["s"],
    );
    assert_eq!(
        node.stdout(),
        [
            "MAIN\t0",
            "INNER\t0\tinner\tinner\tnil",
            "MAIN END\tmain\tnil",
            "LOCAL\t3\tHELLO\tSTAGE\tPLATFORM",
            "BEFORE\touter.x\touter.",
            "INNER\t2\tinner\tinner\tnil",
            "AFTER\t0\touter.x\touter.\ttrue\touter",
            "DONE",
        ],
        "{}",
        node.dump()
    );
}

#[test]
fn proxy_edges_fire_on_upward_crossings_and_false_vetoes() {
    let (node, _dir) = run(
        "proxy",
        &[(
            "s.lua",
            r##"
local function F1(p, c, k, n) print("F1", k, n, table.concat(c, ",")) end
local function F2(p, c, k, n) print("F2", k, n, table.concat(c, ",")) end
local edges = { 10, 20, 30, F1, 40, F2 }
local t = { A = 12 }
local p = stage.proxy(t, {
  A = edges,
  N = edges,
  B = function(p, old, k, new)
    print("B", old, k, new)
    if new == "no" then return false end
  end,
  V = { 100, function() print("VETO"); return false end },
})
p.A = 34          -- 12 -> 34: 20 and 30 crossed, 40 not: F1 only
print("A", t.A)
p.A = 50          -- 34 -> 50: F2(40)
p.A = 60          -- nothing left to cross
print("A", t.A, p.A)
p.N = 34          -- from nil: F1(10, 20, 30)
p.B = "yes"
p.B = "no"        -- vetoed by the plain handler
print("B", t.B)
p.V = 150         -- vetoed by the edge handler
print("V", t.V)
print("DONE")
"##,
        )],
        &["s"],
    );
    assert_eq!(
        node.stdout(),
        [
            "F1\tA\t34\t20,30",
            "A\t34",
            "F2\tA\t50\t40",
            "A\t60\t60",
            "F1\tN\t34\t10,20,30",
            "B\tnil\tB\tyes",
            "B\tyes\tB\tno",
            "B\tyes",
            "VETO",
            "V\tnil",
            "DONE",
        ],
        "{}",
        node.dump()
    );
}

#[test]
fn logger_lines_go_to_stderr_with_the_script_location() {
    // No leading newline: the line numbers below are the script's.
    let (node, _dir) = run(
        "logger",
        &[(
            "s.lua",
            "logger.info(\"x %l\")\n\
             logger.warn(\"w %F|%M|%L\", 12)\n\
             local function g() logger.error(\"e %M:%L\") end\n\
             g()\n\
             print(\"DONE\")\n",
        )],
        &["s"],
    );
    let info = node.wait_err("x s.lua", WAIT);
    assert!(
        info.contains("INFO") && info.ends_with("x s.lua[main:1]"),
        "{info}"
    );
    let warn = node.wait_err("w s.lua", WAIT);
    assert!(
        warn.contains("WARN") && warn.ends_with("w s.lua|main|2\t12"),
        "{warn}"
    );
    let error = node.wait_err("e Lua", WAIT);
    assert!(
        error.contains("ERROR") && error.ends_with("e Lua:3"),
        "{error}"
    );
    assert_eq!(node.stdout(), ["DONE"], "{}", node.dump());
}

#[test]
fn store_updates_are_atomic_across_stages() {
    // Both stages run their main scripts at the same time on their own threads.
    let code = r##"
for i = 1, 5000 do
  __("count", function(n) return (n or 0) + 1 end)
  stage.v("count", function(n) return (n or 0) + 1 end)
end
if __("finished", function(n) return (n or 0) + 1 end) == 2 then
  print("TOTAL", __.count, stage.v("count"))
  stage.v("tmp", 5)
  print("SET", stage.v("tmp"), __.tmp)
  stage.v("tmp", function(old) return nil end)
  print("DELETED", stage.v("tmp"), __.tmp)
  print("DONE")
end
"##;
    let (node, _dir) = run("store", &[("a.lua", code), ("b.lua", code)], &["a", "b"]);
    assert_eq!(
        node.stdout(),
        [
            "TOTAL\t20000\t20000",
            "SET\t5\t5",
            "DELETED\tnil\tnil",
            "DONE"
        ],
        "{}",
        node.dump()
    );
}

#[test]
fn addtask_handles_reschedule_and_replace() {
    let (node, _dir) = run(
        "addtask-handle",
        &[(
            "s.lua",
            r##"
local t = { n = 1 }
local h = stage.addtask(5000, function(v) print("OLD", v.n) return 1000 end, t)
t.n = 2 -- arguments were copied when the task was added
print("RESCHEDULE", stage.addtask(h, 20)) -- runs in 20 ms instead of 5 s
stage.addtask(100, function()
  print("REPLACE", stage.addtask(h, function(v) print("NEW", v.n); stage.signal("done"); return -1 end))
  print("AGAIN", stage.addtask(h, 10))
  return -1
end)
stage.waitfor("done", function()
  print("UNKNOWN", stage.addtask("task:999999", 10), stage.addtask(h, nil))
  print("DONE")
end)
"##,
        )],
        &["s"],
    );
    let lines = lines_with(&node, "");
    let expected = [
        "RESCHEDULE\ttrue",
        "OLD\t1",
        "REPLACE\ttrue",
        "AGAIN\ttrue",
        "NEW\t1",
        "UNKNOWN\tfalse\tfalse",
        "DONE",
    ];
    assert_eq!(lines, expected);
}

#[test]
fn bound_arguments_are_copied_when_bound() {
    let (node, _dir) = run(
        "bound-copy",
        &[(
            "s.lua",
            r##"
local t = { 1 }
stage.waitfor("b", function(bound, v) print("BOUND", bound[1], rawequal(bound, t), v) end, t)
t[1] = 2
stage.signal(":b", "x")
print("DONE")
"##,
        )],
        &["s"],
    );
    assert_line(&node, "BOUND\t1\tfalse\tx");
}

#[test]
fn quit_hook_runs_and_queued_messages_are_handled_before_exit() {
    let (mut node, _dir) = start(
        "quit",
        &[(
            "s.lua",
            r##"
stage.waitfor("on_quit_signal", function(sig) print("QUIT", sig); stage.signal("after", "queued by the hook") end)
stage.waitfor("after", function(v) print("AFTER", v) end)
print("DONE")
"##,
        )],
        &["--stage", "s=s.lua"],
    );
    node.wait_out("DONE", WAIT);
    node.signal(libc::SIGTERM);
    let status = node.wait_exit(WAIT).expect("node exits");
    assert!(status.success(), "{status}");
    assert_line(&node, "QUIT\tSIGTERM");
    assert_line(&node, "AFTER\tqueued by the hook");
}

#[test]
fn import_gives_a_module_its_own_environment_and_reloads_it() {
    let (node, dir) = start(
        "import",
        &[
            (
                "mod.lua",
                "count = (count or 0) + 1\nfunction version() return \"v1\", count end\n",
            ),
            (
                "s.lua",
                r##"
local m = import("mod.lua")
local v, c = m.version()
print("IMPORT", v, c, m == import("mod.lua"), count)
stage.addtask(50, function() print("TICK", import("mod.lua").version()) end)
print("DONE")
"##,
            ),
        ],
        &["--stage", "s=s.lua"],
    );
    // The module's globals stay in its table; importing again returns the same table.
    node.wait_out("IMPORT\tv1\t1\ttrue\tnil", WAIT);
    let path = dir.write(
        "mod.lua",
        "count = (count or 0) + 1\nfunction version() return \"v2\", count end\n",
    );
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    // Re-run in the same table: `count` survived.
    node.wait_out("TICK\tv2\t2", WAIT);
}

/// The original's test_actor.lua expectations (stage-spec §12): `actor:[table: 0x…]`, then
/// `CALLBACK\tHI`, then `RETURN\tnil\tHELLO`, and nothing at the 100 ms cancel.
#[test]
fn actor_routes_answers_and_cancels_on_timeout() {
    let (node, _dir) = run(
        "actor",
        &[(
            "s.lua",
            r##"
local asker = stage.actor("greet", function(r) print("RETURN", self, r or "<cancel>") end)
stage.waitfor("greet", function(r) print("CALLBACK", r); return "HELLO" end)
print(asker)
asker:greet({}, "HI")
local slow = stage.actor("silent", function(tag, ...) print("TIMEOUT", tag, select("#", ...)) end, 50)
stage.waitfor("silent", function() end)
slow:silent({ "late" }, 1)
stage.addtask(300, function() print("DONE"); return -1 end)
"##,
        )],
        &["s"],
    );
    let lines = lines_with(&node, "");
    assert!(lines[0].starts_with("actor:[table: 0x"), "{lines:?}");
    assert_eq!(
        &lines[1..],
        [
            "CALLBACK\tHI",
            "RETURN\tnil\tHELLO",
            "TIMEOUT\tlate\t0",
            "DONE"
        ]
    );
}

#[test]
fn the_main_script_may_return_an_idle_function() {
    let (node, _dir) = run(
        "idle",
        &[(
            "s.lua",
            r##"
local n = 0
return function()
  n = n + 1
  print("IDLE", n)
  if n < 3 then return 20 end
  stage.addtask(100, function() print("DONE"); return -1 end)
end
"##,
        )],
        &["s"],
    );
    // Nothing returned: the idle function stops (stage-spec §4.3, as documented).
    assert_eq!(lines_with(&node, "IDLE"), ["IDLE\t1", "IDLE\t2", "IDLE\t3"]);
}

#[test]
fn process_and_thread_objects() {
    let (node, _dir) = run(
        "process",
        &[(
            "s.lua",
            r##"
process["%STAGE_TEST_VAR"] = "set from lua"
process.title = "${program} demo"
print("PROC", type(process.id), process.id > 0, math.type(process.tick), process.args[0] ~= nil,
      process.stage, process["%STAGE_TEST_VAR"], process["%STAGE_UNSET_VAR"], process.title:match("demo$"))
print("THREAD", math.type(thread.id), thread.id > 0, math.type(thread.tick), thread.tick > 1.6e9)
print("BAD", pcall(function() process.id = 5 end))
print("OUTSIDE", pcall(thread.signal, 1))
print("DONE")
"##,
        )],
        &["s"],
    );
    assert_line(
        &node,
        "PROC\tnumber\ttrue\tfloat\ttrue\t1\tset from lua\tnil\tdemo",
    );
    assert_line(&node, "THREAD\tinteger\ttrue\tfloat\ttrue");
    assert!(node
        .stdout()
        .iter()
        .any(|l| l.starts_with("BAD\tfalse") && l.contains("cannot be assigned")));
    assert!(node
        .stdout()
        .iter()
        .any(|l| l.starts_with("OUTSIDE\tfalse") && l.contains("Thread is not in use")));
}

#[test]
fn lua_config_is_read_and_written_through_process_dollar() {
    let (node, _dir) = start(
        "lua-config",
        &[
            (
                "config.json",
                r#"{ "%cluster": "tcp://[::]:8081?bson=64k,128k", "limits": { "n": 3, "ratio": 0.5 } }"#,
            ),
            (
                "s.lua",
                r##"
print("CLUSTER", process["$%cluster"])
print("LIMITS", process["$limits"].n, math.type(process["$limits"].n), process["$limits"].ratio)
process["$extra"] = '{"list": [1, 2, 3]}'
print("EXTRA", #process["$extra"].list, process["$"].limits.n)
print("BAD", pcall(function() process["$x"] = "{not json" end))
process["$"] = '{"only": true}'
print("REPLACED", process["$only"], process["$limits"])
print("DONE")
"##,
            ),
        ],
        &["--stage", "s=s.lua", "--lua-config", "config.json"],
    );
    node.wait_out("DONE", WAIT);
    assert_line(&node, "CLUSTER\ttcp://[::]:8081?bson=64k,128k");
    assert_line(&node, "LIMITS\t3\tinteger\t0.5");
    assert_line(&node, "EXTRA\t3\t3");
    assert_line(&node, "REPLACED\ttrue\tnil");
    assert!(node
        .stdout()
        .iter()
        .any(|l| l.starts_with("BAD\tfalse") && l.contains("not JSON")));
}

#[test]
fn callbacks_keep_state_and_failures_are_reported() {
    let (node, _dir) = run(
        "state-and-failures",
        &[(
            "s.lua",
            r##"
-- An actor's callback keeps its upvalues: it updates the caller's state.
local total = 0
local a = stage.actor("q", function(tag, r) total = total + r end)
stage.waitfor("q", function(n) return n * 10 end)
a:q("tag", 1)
-- Distinct once-keys.
stage.once("k1", function() print("ONCE", 1) end)
stage.once("k2", function() print("ONCE", 2) end)
-- (id, nil, v) binds (nil, v) instead of unregistering.
stage.waitfor("b", function(...) print("B", select("#", ...), ...) end)
stage.waitfor("b", nil, "x")
stage.signal(":b", "m")
-- A proxy handler's error is logged.
local p = stage.proxy({}, { v = function() error("handler broke") end })
p.v = 1
-- A job sees its stage's name and cannot make a synchronous call.
stage.submit(function() print("JOB", stage.name, (pcall(stage.signal, ":b"))) end)
-- A failing thread.new function tells its handler.
local t = thread.new(function() error("thread broke") end)
t.waitfor(function(v, err) print("THREAD", v, err ~= nil) end)
stage.addtask(300, function() print("TOTAL", total); print("DONE"); return -1 end)
"##,
        )],
        &["s"],
    );
    assert_line(&node, "TOTAL\t10");
    assert_line(&node, "ONCE\t1");
    assert_line(&node, "ONCE\t2");
    assert_line(&node, "B\t3\tnil\tx\tm");
    assert_line(&node, "JOB\ts\tfalse");
    assert_line(&node, "THREAD\tnil\ttrue");
    node.wait_err("handler broke", WAIT);
}
