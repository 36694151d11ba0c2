//! Deadlines (DESIGN §8, issue "Cluster under failure"): every message that expects an answer
//! has one; when it passes unanswered the sender's callback runs with an error — once — and an
//! answer that comes later is void.

mod common;
use common::{Proc, Scratch, WAIT};

#[test]
fn unanswered_requests_fail_at_their_deadline_and_late_answers_are_void() {
    let dir = Scratch::new("deadlines");
    dir.write(
        "svc.lua",
        r#"
stage.waitfor("silent", function() end)                -- never answers
stage.waitfor("slow", function(n)                       -- answers after 300 ms
  local w = _WAITFOR
  stage.addtask(300, function() stage.signal(w, "late", n); return -1 end)
end)
stage.waitfor("many", function(n) stage.signal(nil, "first", n); stage.signal(nil, "second", n) end)
"#,
    );
    dir.write(
        "drv.lua",
        r#"
stage.waitfor("ret", function(a, b) print("RET", a, b) end)
stage.waitfor("fail", function(err, n) print("FAIL", err, n) end)
stage.signal({ "svc:silent=ret", 100 }, 1)            -- table target: 100 ms deadline
stage.signal({ "svc:silent!fail", 100 }, 2)
stage.signal({ "svc:slow=ret!fail", 100 }, 3)          -- the answer comes after the deadline
stage.signal("svc:silent=ret", 4)                      -- the node's --deadline (400 ms)
stage.signal("svc:many=ret", 5)                        -- two answers in time: both arrive
stage.addtask(1000, function() print("DONE"); return -1 end)
"#,
    );
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let _svc = Proc::node(
        "svc",
        &["--router", &addr, "--stage", "svc=svc.lua", "--id", "2"],
        &dir.dir,
    );
    router.wait_err("registered svc:2", WAIT);
    let drv = Proc::node(
        "drv",
        &[
            "--router",
            &addr,
            "--stage",
            "drv=drv.lua",
            "--id",
            "1",
            "--deadline",
            "400",
        ],
        &dir.dir,
    );
    drv.wait_out("DONE", WAIT);
    let out = drv.stdout();
    let count = |prefix: &str| out.iter().filter(|l| l.starts_with(prefix)).count();
    let timeout = "no answer before the deadline";
    assert!(
        out.iter()
            .any(|l| l.starts_with("RET\tnil\t") && l.contains(timeout)),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("FAIL\t") && l.contains(timeout) && l.ends_with("\t2")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("FAIL\t") && l.ends_with("\t3")),
        "slow request failed: {out:?}"
    );
    assert!(
        !out.iter().any(|l| l.contains("late")),
        "a late answer was delivered: {out:?}"
    );
    // Requests 1 and 4 time out through ret(nil, err): exactly two, each once.
    assert_eq!(count("RET\tnil\t"), 2, "{out:?}");
    assert!(
        out.contains(&"RET\tfirst\t5".to_string()) && out.contains(&"RET\tsecond\t5".to_string()),
        "{out:?}"
    );
}
