//! A signal from one node reaches a `waitfor` on another through the router, and the answer
//! comes back to the sender's `=ret` callback with every value intact (issue 2; stage-spec
//! §6.6 multi-value defect fixed, §8.1 `T:id=ret`, §8.5 replies).

mod common;
use common::{Proc, Scratch, WAIT};

const RECEIVER: &str = r#"
stage.waitfor("echo", function(s, t, f)
  print("RECV", #s, s == "a\0b", t.deep.list[3].x, f, math.type(f), _WAITFOR[2])
  return s, t, f
end)
-- An explicit answer with stage.signal(nil, ...) to a second request.
stage.waitfor("ask", function(n)
  stage.signal(nil, n * 2, "twice")
end)
"#;

const SENDER: &str = r#"
stage.waitfor("back", function(s, t, f, extra)
  print("BACK", #s, s == "a\0b", t.deep.list[3].x, #t.deep.list, f, math.type(f), extra == nil, _WAITFOR[2])
end)
stage.waitfor("doubled", function(n, word) print("DOUBLED", n, word) end)
stage.signal("b:echo=back", "a\0b", { deep = { list = { 1, 2, { x = "y" } } } }, 2.5)
stage.signal("b:ask=doubled", 21)
"#;

#[test]
fn three_values_cross_the_router_and_come_back() {
    let dir = Scratch::new("signal");
    dir.write("b.lua", RECEIVER);
    dir.write("a.lua", SENDER);
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let b = Proc::node(
        "b",
        &["--router", &addr, "--stage", "b=b.lua", "--id", "2"],
        &dir.dir,
    );
    router.wait_err("registered b:2", WAIT);
    let a = Proc::node(
        "a",
        &["--router", &addr, "--stage", "a=a.lua", "--id", "1"],
        &dir.dir,
    );

    let recv = b.wait_out("RECV", WAIT);
    assert_eq!(recv, "RECV\t3\ttrue\ty\t2.5\tfloat\ta");
    let back = a.wait_out("BACK", WAIT);
    // The string with its NUL byte, the nested table, the float as a float — and no fourth
    // value: each value arrives as its own argument.
    assert_eq!(back, "BACK\t3\ttrue\ty\t3\t2.5\tfloat\ttrue\tb");
    assert_eq!(a.wait_out("DOUBLED", WAIT), "DOUBLED\t42\ttwice");
}

#[test]
fn standalone_node_signals_its_own_stages() {
    let dir = Scratch::new("standalone");
    dir.write("b.lua", RECEIVER);
    dir.write("a.lua", SENDER);
    let a = Proc::node(
        "solo",
        &["--stage", "a=a.lua", "--stage", "b=b.lua"],
        &dir.dir,
    );
    assert_eq!(
        a.wait_out("BACK", WAIT),
        "BACK\t3\ttrue\ty\t3\t2.5\tfloat\ttrue\tb"
    );
    assert_eq!(a.wait_out("DOUBLED", WAIT), "DOUBLED\t42\ttwice");
    a.wait_err("standalone", WAIT);
}

/// A callback may answer with many values: all of them arrive (mlua before 0.12 overflowed the
/// Lua stack converting more than ~20 results and aborted the node).
#[test]
fn sixty_values_answer_intact() {
    let dir = Scratch::new("many");
    dir.write(
        "m.lua",
        r##"
stage.waitfor("many", function(n)
  local t = {}
  for i = 1, n do t[i] = "v" .. i end
  return table.unpack(t, 1, n)
end)
stage.waitfor("got", function(...)
  print("GOT", select("#", ...), (select(1, ...)), (select(60, ...)))
end)
stage.signal("m:many=got", 60)
"##,
    );
    let node = Proc::node("many", &["--stage", "m=m.lua"], &dir.dir);
    assert_eq!(node.wait_out("GOT", WAIT), "GOT\t60\tv1\tv60");
}
