//! Ordered locks across nodes (stage-spec §8.3, issue "Cluster under failure"): five competing
//! `>L.go` requests from three nodes run one at a time in request order; a holder that never
//! releases loses the lock 100 ms after its grant.

mod common;
use common::{Proc, Scratch, WAIT};

/// A node whose requests for lock L are sent `offsets` ms after the shared start time; each
/// holder works 30 ms then releases — except tags listed in `keep`, which never release.
fn script(start_ms: u128, offsets: &[(u32, &str)], keep: &[&str]) -> String {
    let requests: String = offsets
        .iter()
        .map(|(ms, tag)| {
            format!(
                "stage.addtask(math.max(0, {start_ms} + {ms} - math.floor(thread.tick * 1000)), function() stage.signal(\">L.go\", \"{tag}\"); return -1 end)\n"
            )
        })
        .collect();
    let keep: String = keep.iter().map(|k| format!("[\"{k}\"] = true, ")).collect();
    format!(
        r#"
local keep = {{ {keep} }}
stage.waitfor("go", function(tag)
  print("START", tag, math.floor(thread.tick * 1000))
  if keep[tag] then return end
  stage.addtask(30, function()
    print("END", tag, math.floor(thread.tick * 1000))
    stage.signal("<L.x")
    return -1
  end)
end)
{requests}"#
    )
}

#[test]
fn competing_lock_requests_run_one_at_a_time_in_order() {
    let dir = Scratch::new("locks");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let start = now + 1500;
    dir.write("a.lua", &script(start, &[(0, "a1"), (90, "a2")], &[]));
    dir.write("b.lua", &script(start, &[(30, "b1"), (120, "b2")], &[]));
    dir.write("c.lua", &script(start, &[(60, "c1")], &["c1"]));
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let nodes: Vec<Proc> = [("a", "1"), ("b", "2"), ("c", "3")]
        .iter()
        .map(|(s, id)| {
            let stage = format!("{s}={s}.lua");
            Proc::node(
                s,
                &["--router", &addr, "--stage", &stage, "--id", id],
                &dir.dir,
            )
        })
        .collect();
    for s in ["a", "b", "c"] {
        router.wait_err(&format!("registered {s}:"), WAIT);
    }
    nodes[1].wait_out("END\tb2", WAIT);
    // Merge every node's lines and order them by their wall-clock stamps.
    let mut events: Vec<(u64, String, String)> = nodes
        .iter()
        .flat_map(|n| n.stdout())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 3).then(|| (f[2].parse().unwrap(), f[0].to_string(), f[1].to_string()))
        })
        .collect();
    events.sort();
    let starts: Vec<&str> = events
        .iter()
        .filter(|e| e.1 == "START")
        .map(|e| e.2.as_str())
        .collect();
    assert_eq!(starts, ["a1", "b1", "c1", "a2", "b2"], "{events:?}");
    // One holder at a time: every grant comes after the previous holder released (c1 never
    // does: the next grant waits for its 100 ms hold to run out).
    let at = |kind: &str, tag: &str| events.iter().find(|e| e.1 == kind && e.2 == tag).unwrap().0;
    for (prev, next) in [("a1", "b1"), ("b1", "c1"), ("a2", "b2")] {
        assert!(
            at("START", next) >= at("END", prev),
            "{next} started before {prev} released: {events:?}"
        );
    }
    let held = at("START", "a2") - at("START", "c1");
    assert!(
        (90..1000).contains(&held),
        "c1's unreleased lock was held {held} ms: {events:?}"
    );
}

/// A lock request has a deadline like every request: kept from the lock by a holder that
/// extends it, it runs its fail callback instead of waiting forever.
#[test]
fn a_lock_not_granted_before_its_deadline_runs_the_fail_path() {
    let dir = Scratch::new("lock-deadline");
    dir.write(
        "hog.lua",
        r#"
stage.waitfor("mine", function()
  print("HOLDING")
  stage.addtask(50, function() stage.signal(">>L.x", 1000) end)   -- keeps extending
end)
stage.signal(">L.mine")
"#,
    );
    dir.write(
        "late.lua",
        r#"
stage.waitfor("got", function() print("GOT") end)
stage.waitfor("late", function(err) print("LATE", err) end)
stage.addtask(200, function() stage.signal({ ">L.got!late", 300 }); return -1 end)
"#,
    );
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let hog = Proc::node(
        "hog",
        &["--router", &addr, "--stage", "hog=hog.lua", "--id", "1"],
        &dir.dir,
    );
    hog.wait_out("HOLDING", WAIT);
    router.wait_err("registered hog:", WAIT);
    let late = Proc::node(
        "late",
        &["--router", &addr, "--stage", "late=late.lua", "--id", "2"],
        &dir.dir,
    );
    let line = late.wait_out("LATE", WAIT);
    assert!(line.contains("no answer before the deadline"), "{line}");
    assert!(!late.stdout().iter().any(|l| l == "GOT"), "{}", late.dump());
}

/// With several routers, every node sends a lock's operations to the same one (chosen by the
/// lock's name among the sorted router addresses), so holders stay exclusive — even when the
/// nodes list the routers in different orders and send their messages through different ones.
#[test]
fn a_lock_stays_exclusive_with_two_routers() {
    let dir = Scratch::new("locks-two-routers");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let start = now + 1500;
    dir.write("a.lua", &script(start, &[(0, "a1"), (20, "a2")], &[]));
    dir.write("b.lua", &script(start, &[(10, "b1"), (30, "b2")], &[]));
    let (r1, a1) = Proc::router("r1", &[], &dir.dir);
    let (r2, a2) = Proc::router("r2", &[], &dir.dir);
    // Node b lists the routers the other way round: it sends its messages through r2.
    let nodes: Vec<Proc> = [("a", "1", &a1, &a2), ("b", "2", &a2, &a1)]
        .iter()
        .map(|(s, id, first, second)| {
            let stage = format!("{s}={s}.lua");
            let args = [
                "--router",
                first.as_str(),
                "--router",
                second.as_str(),
                "--stage",
                &stage,
                "--id",
                id,
            ];
            Proc::node(s, &args, &dir.dir)
        })
        .collect();
    for r in [&r1, &r2] {
        r.wait_err("registered a:", WAIT);
        r.wait_err("registered b:", WAIT);
    }
    for (n, tag) in [(0, "END\ta2"), (1, "END\tb2")] {
        nodes[n].wait_out(tag, WAIT);
    }
    let mut events: Vec<(u64, String)> = nodes
        .iter()
        .flat_map(|n| n.stdout())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 3).then(|| (f[2].parse().unwrap(), f[0].to_string()))
        })
        .collect();
    events.sort();
    // Strictly alternating START/END: never two holders at once.
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        kinds,
        ["START", "END", "START", "END", "START", "END", "START", "END"],
        "{events:?}"
    );
}
