//! Overload (stage-spec §1.8, issue "Cluster under failure"): a stage whose backlog keeps
//! growing for the overload window is reported to the router, round-robin passes it over until
//! it drains, and then it is back.

mod common;
use common::{Proc, Scratch, WAIT};
use std::time::Duration;

fn svc(cost_ms: u32) -> String {
    format!(
        r#"
local n = 0
stage.waitfor("m", function()
  local t = os.clock() + {cost_ms} / 1000
  while os.clock() < t do end
  n = n + 1
end)
stage.waitfor("report", function() print("COUNT", stage.id(), n) end)
"#
    )
}

const PRODUCER: &str = r#"
local sent = 0
stage.addtask(10, function()
  for _ = 1, 40 do sent = sent + 1; stage.signal("svc:m", sent) end
  if sent >= 3000 then
    stage.addtask(3000, function() stage.signal("*svc:report"); return -1 end)
    return -1
  end
end)
"#;

#[test]
fn a_stage_that_falls_behind_leaves_round_robin_until_it_drains() {
    let dir = Scratch::new("overload");
    dir.write("slow.lua", &svc(5));
    dir.write("fast.lua", &svc(0));
    dir.write("producer.lua", PRODUCER);
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let slow = Proc::node(
        "slow",
        &["--router", &addr, "--stage", "svc=slow.lua", "--id", "1"],
        &dir.dir,
    );
    let fast = Proc::node(
        "fast",
        &["--router", &addr, "--stage", "svc=fast.lua", "--id", "2"],
        &dir.dir,
    );
    router.wait_err("registered svc:1", WAIT);
    router.wait_err("registered svc:2", WAIT);
    let _producer = Proc::node(
        "producer",
        &[
            "--router",
            &addr,
            "--stage",
            "producer=producer.lua",
            "--id",
            "9",
        ],
        &dir.dir,
    );
    slow.wait_err("overloaded, leaving round-robin", WAIT);
    router.wait_err("overloaded: round-robin passes it over", WAIT);
    slow.wait_err("drained; back in round-robin", Duration::from_secs(30));
    router.wait_err("drained", WAIT);
    let count = |p: &Proc| -> u64 {
        p.wait_out("COUNT", Duration::from_secs(30))
            .split('\t')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    let (s, f) = (count(&slow), count(&fast));
    eprintln!("slow member handled {s}, fast member {f} of 3000");
    assert_eq!(s + f, 3000, "nothing is lost, only steered");
    assert!(
        f > 2 * s,
        "round-robin kept feeding the overloaded member: slow {s}, fast {f}"
    );
}

/// A router that stops reading a producer because its consumer is full (back-pressure) does
/// not take the producer's quiet meanwhile for silence: it keeps the producer in service, and
/// the producer's other messages (here its answers to a pinger) keep flowing.
#[test]
fn a_producer_slowed_by_back_pressure_is_not_taken_for_silent() {
    let dir = Scratch::new("slowed-producer");
    dir.write("svc.lua", &svc(20));
    // 1 KiB messages, 100 every 10 ms, to a stage that handles 50 a second.
    dir.write(
        "flood.lua",
        r#"local pad = string.rep("x", 1000)
local ticks = 0
stage.addtask(10, function()
  for _ = 1, 100 do stage.signal("svc:m", pad) end
  ticks = ticks + 1
  if ticks == 200 then print("FLOODED") end
end)"#,
    );
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    // A small inbox cap: the node soon stops reading, and the router's queue to it fills.
    let consumer = Proc::node(
        "svc",
        &[
            "--router",
            &addr,
            "--stage",
            "svc=svc.lua",
            "--link-buffer",
            "4096",
        ],
        &dir.dir,
    );
    router.wait_err("registered svc:", WAIT);
    let flood = Proc::node(
        "flood",
        &[
            "--router",
            &addr,
            "--stage",
            "flood=flood.lua",
            "--name",
            "flood",
        ],
        &dir.dir,
    );
    // The router holds the producer back...
    router.wait_err("registered flood:", WAIT);
    flood.wait_out("FLOODED", WAIT);
    // The consumer's node paused its own reading: the router is not silent to it either.
    assert!(
        !consumer.stderr().iter().any(|l| l.contains("silent")),
        "{}",
        consumer.dump()
    );
    // ...without calling it silent (it did within 1.5 s before).
    assert!(
        !router
            .stderr()
            .iter()
            .any(|l| l.contains("node 'flood'") && l.contains("silent")),
        "{}",
        router.dump()
    );
}
