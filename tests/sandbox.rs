//! The sandbox of stage-spec §5: fresh private globals per callback, coroutine isolation,
//! `_SANDBOX[""]` sharing (per VM and process-wide), read-only rules, and the `__` store.

mod common;
use common::{Proc, Scratch, WAIT};

/// Runs `script` as stage `s` (standalone) and returns the node once `DONE` is printed.
fn run(tag: &str, scripts: &[(&str, &str)]) -> (Proc, Scratch) {
    let dir = Scratch::new(tag);
    let mut args = Vec::new();
    for (name, code) in scripts {
        dir.write(&format!("{name}.lua"), code);
        args.push("--stage".to_string());
        args.push(format!("{name}={name}.lua"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = Proc::node(tag, &args, &dir.dir);
    node.wait_out("DONE", WAIT);
    (node, dir)
}

#[test]
fn callbacks_start_with_fresh_globals() {
    let (node, _dir) = run(
        "fresh",
        &[(
            "s",
            r#"
MAIN_GLOBAL = "main"
_SANDBOX[""] = { "SHARED" }
SHARED = "shared"
stage.waitfor("first", function()
  print("FIRST", MAIN_GLOBAL, SHARED)
  LEAK = "from first"
end)
stage.waitfor("second", function()
  print("SECOND", LEAK, SHARED, _WAITFOR[0])
end)
stage.addtask(10, function()
  print("TIMER", MAIN_GLOBAL, LEAK, SHARED)
  stage.signal("done")
  return -1
end)
stage.waitfor("done", function() print("DONE") end)
stage.signal("first")
stage.signal("second")
"#,
        )],
    );
    let out = node.stdout();
    assert!(out.contains(&"FIRST\tnil\tshared".to_string()), "{out:?}");
    assert!(
        out.contains(&"SECOND\tnil\tshared\tsecond".to_string()),
        "{out:?}"
    );
    assert!(
        out.contains(&"TIMER\tnil\tnil\tshared".to_string()),
        "{out:?}"
    );
}

#[test]
fn coroutines_see_a_snapshot_and_keep_their_own_globals() {
    let (node, _dir) = run(
        "coroutine",
        &[(
            "s",
            r#"
_SANDBOX[""] = { "VM_WIDE" }
OUTER = "before"
local co = coroutine.create(function(a)
  print("CO1", OUTER, VM_WIDE, a)
  INNER = "inner"
  OUTER = "changed inside"
  local b = coroutine.yield(a + 1)
  print("CO2", OUTER, VM_WIDE, INNER, b)
  return "end"
end)
print("MAIN1", coroutine.resume(co, 1))
OUTER = "after"
VM_WIDE = "vm"
print("MAIN2", OUTER, INNER)
print("MAIN3", coroutine.resume(co, 7))
print("MAIN4", coroutine.resume(co))
local w = coroutine.wrap(function() print("WRAP", OUTER); return 5 end)
print("MAIN5", w())
print("DONE")
"#,
        )],
    );
    let out = node.stdout();
    let expected = [
        "CO1\tbefore\tnil\t1",
        "MAIN1\ttrue\t2",
        "MAIN2\tafter\tnil",
        "CO2\tchanged inside\tvm\tinner\t7",
        "MAIN3\ttrue\tend",
        "MAIN4\tfalse\tcannot resume dead coroutine",
        "WRAP\tafter",
        "MAIN5\t5",
    ];
    let got: Vec<&str> = out
        .iter()
        .map(String::as_str)
        .filter(|l| *l != "DONE")
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn process_wide_names_are_shared_between_stages_and_read_only_rules_hold() {
    let (node, _dir) = run(
        "process",
        &[
            (
                "a",
                r#"
_SANDBOX[""] = { "*COUNTER", ["*LIMIT"] = 10, RO = "fixed" }
COUNTER = 1
print("A", COUNTER, LIMIT, RO)
print("RO", pcall(function() RO = "x" end))
print("PRO", pcall(function() LIMIT = 11 end))
for i = 1, 100 do __("total", function(old) return (old or 0) + i end) end
__[1].x = "ns"
stage.signal("b:look")
"#,
            ),
            (
                "b",
                r#"
stage.waitfor("look", function()
  _SANDBOX[""] = { "*COUNTER", "*LIMIT" }
  print("B", COUNTER, LIMIT, RO, __.total, __[1].x, stage.v("total"))
  COUNTER = COUNTER + 1
  __[1] = nil
  print("B2", COUNTER, __[1].x)
  local names = {}
  for k in pairs(__) do names[#names + 1] = k end
  table.sort(names)
  print("NAMES", table.concat(names, ","))
  print("DONE")
end)
"#,
            ),
        ],
    );
    let out = node.stdout();
    let has = |l: &str| out.iter().any(|x| x == l);
    assert!(has("A\t1\t10\tfixed"), "{out:?}");
    assert!(
        out.iter()
            .any(|l| l.starts_with("RO\tfalse\t") && l.contains("'RO' is read only")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("PRO\tfalse\t") && l.contains("'LIMIT' is read only")),
        "{out:?}"
    );
    assert!(has("B\t1\t10\tnil\t5050\tns\t5050"), "{out:?}");
    assert!(has("B2\t2\tnil"), "{out:?}");
    assert!(has("NAMES\tCOUNTER,LIMIT,total"), "{out:?}");
}

#[test]
fn assigning_into_a_process_wide_table_writes_it_back() {
    let (node, _dir) = run(
        "writeback",
        &[
            (
                "a",
                r#"
_SANDBOX[""] = { "*CFG" }
CFG = { limits = { n = 1 }, name = "x" }
CFG.limits.n = 5
CFG.name = "y"
CFG.copy = CFG.limits -- a sub-table read through the store, assigned elsewhere
stage.signal("b:look")
"#,
            ),
            (
                "b",
                r#"
stage.waitfor("look", function()
  _SANDBOX[""] = { "*CFG" }
  print("B", CFG.limits.n, CFG.name, __.CFG.limits.n, CFG.copy.n)
  print("DONE")
end)
"#,
            ),
        ],
    );
    node.wait_out("B\t5\ty\t5\t5", WAIT);
}

#[test]
fn errors_of_built_in_functions_are_caught_as_message_strings() {
    // A script matches a caught error's text, as it would a Lua library function's.
    let (node, _dir) = run(
        "errors",
        &[(
            "s",
            r#"
local ok, err = pcall(stage.signal, 42)
print("PCALL", ok, type(err), err:match("^stage%.signal: invalid target") ~= nil)
print("XPCALL", xpcall(sleep, function(e) return type(e) .. " " .. tostring(e:find("sleep") ~= nil) end, 1))
local _, t = pcall(error, { code = 7 })
print("TABLE", type(t), t.code)
print("STRING", pcall(error, "as is", 0))
print("DONE")
"#,
        )],
    );
    for line in [
        "PCALL\tfalse\tstring\ttrue",
        "XPCALL\tfalse\tstring true",
        "TABLE\ttable\t7",
        "STRING\tfalse\tas is",
    ] {
        assert!(
            node.stdout().iter().any(|l| l == line),
            "{line:?}\n{}",
            node.dump()
        );
    }
}
