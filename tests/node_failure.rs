//! Issue acceptance: "Killing a node removes its instances (router on_close); a signal to a name
//! with no live member runs the sender's fail path (NACK) instead of vanishing."
//!
//! Real processes only: a router, receiver nodes hosting `svc`, and a sender node `drv` whose
//! timer keeps signalling `svc` with `=ok!failed` (reply and fail callbacks), `=ret` (reply
//! callback only, which gets `(nil, error)` on failure) and a plain id (no answer path).

mod common;

use std::time::{Duration, Instant};

use common::{Proc, Scratch, WAIT};

/// Receiver: answers `work` with its own tag; `note` needs no answer.
const SVC: &str = r#"
stage.waitfor("work", function(k) return "done", k, SVC_TAG end)
stage.waitfor("note", function(k) end)
"#;

const DRV: &str = r#"
local n = 0
stage.waitfor("ok", function(what, k, who) print("OK", what, k, who) end)
stage.waitfor("failed", function(err, ...) print("FAILED", err, ...) end)
stage.waitfor("ret", function(a, b, who) print("RET", a, b, who) end)
stage.addtask(200, function()
  n = n + 1
  stage.signal("svc:work=ok!failed", n)
  stage.signal("svc:work=ret", -n)
  stage.signal("svc:note", n)
end)
"#;

const GHOST: &str = r#"
stage.waitfor("failed", function(err, ...) print("FAILED", err, ...) end)
stage.waitfor("ret", function(a, b) print("RET", a, b) end)
stage.signal("ghost:x!failed", "g1", 2)
stage.signal("ghost:x=ret", "g2")
stage.signal("ghost:x", "g3")
stage.addtask(300, function() print("ALIVE") end)
"#;

fn svc_script(tag: &str) -> String {
    format!("local SVC_TAG = {tag:?}\n{SVC}")
}

/// Waits until `p` has printed at least `n` lines for which `pred` holds; returns all of them.
fn wait_lines(p: &Proc, n: usize, timeout: Duration, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: Vec<String> = p.stdout().into_iter().filter(|l| pred(l)).collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} of {n} matching lines within {timeout:?}\n{}",
            p.name,
            got.len(),
            p.dump()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the router to close the link of node `node` and run the script's `on_close`.
fn wait_closed(router: &Proc, node: &str) {
    // "link N (node 'NAME' at ADDR) closed: REASON" from the session, then the script's
    // "link N closed: REASON" once on_close has dropped the link's instances.
    let line = router.wait_err(&format!("(node '{node}' at"), WAIT);
    assert!(line.contains(") closed: "), "{line}");
    let token = line
        .split("link ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("link token in the close line");
    router.wait_err(&format!("link {token} closed"), WAIT);
}

/// Splits a printed line into its tab-separated fields.
fn fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

/// The sequence number `k` of an `OK\tdone\tk\twho` line.
fn ok_k(line: &str) -> i64 {
    fields(line)[2].parse().unwrap()
}

#[test]
fn killed_node_leaves_and_its_signals_take_the_fail_path() {
    let dir = Scratch::new("nodefail");
    dir.write("svc2.lua", &svc_script("svc2"));
    dir.write("svc3.lua", &svc_script("svc3"));
    dir.write("drv.lua", DRV);
    let (router, addr) = Proc::router(
        "router",
        &["--log", "info,stage_router::session=debug"],
        &dir.dir,
    );
    let r2 = Proc::node(
        "r2",
        &[
            "--router",
            &addr,
            "--stage",
            "svc=svc2.lua",
            "--id",
            "2",
            "--name",
            "rnode2",
        ],
        &dir.dir,
    );
    router.wait_err("registered svc:2", WAIT);
    let mut r3 = Proc::node(
        "r3",
        &[
            "--router",
            &addr,
            "--stage",
            "svc=svc3.lua",
            "--id",
            "3",
            "--name",
            "rnode3",
        ],
        &dir.dir,
    );
    router.wait_err("registered svc:3", WAIT);
    let drv = Proc::node(
        "drv",
        &["--router", &addr, "--stage", "drv=drv.lua", "--id", "1"],
        &dir.dir,
    );

    // Both members answer (round robin), on the reply callback and on the `=ret` callback.
    wait_lines(&drv, 1, WAIT, |l| {
        l.starts_with("OK\tdone\t") && l.ends_with("\tsvc2")
    });
    wait_lines(&drv, 1, WAIT, |l| {
        l.starts_with("OK\tdone\t") && l.ends_with("\tsvc3")
    });
    wait_lines(&drv, 2, WAIT, |l| l.starts_with("RET\tdone\t-"));
    assert!(
        drv.stdout().iter().all(|l| !l.starts_with("FAILED")),
        "{}",
        drv.dump()
    );

    // Kill one member: the router closes its link and on_close drops its instance, so from
    // then on every message goes to the survivor and none is lost or failed.
    r3.kill9();
    wait_closed(&router, "rnode3");
    // Answers to requests sent before the close may still be on their way: skip one round.
    let before = drv
        .stdout()
        .iter()
        .filter(|l| l.starts_with("OK\tdone\t"))
        .count();
    let oks = wait_lines(&drv, before + 6, WAIT, |l| l.starts_with("OK\tdone\t"));
    let tail = &oks[oks.len() - 5..];
    assert!(
        tail.iter().all(|l| l.ends_with("\tsvc2")),
        "after the close only svc2 answers: {tail:?}"
    );
    let ks: Vec<i64> = tail.iter().map(|l| ok_k(l)).collect();
    assert!(
        ks.windows(2).all(|w| w[1] == w[0] + 1),
        "no message lost after the close: {ks:?}"
    );
    assert!(
        drv.stdout().iter().all(|l| !l.starts_with("FAILED")),
        "{}",
        drv.dump()
    );

    // Kill the last member: signals with an answer path now come back as NACKs.
    let mut r2 = r2;
    r2.kill9();
    wait_closed(&router, "rnode2");
    let failed = wait_lines(&drv, 3, WAIT, |l| l.starts_with("FAILED\t"));
    for l in &failed {
        let f = fields(l);
        assert_eq!(f.len(), 3, "FAILED err k: {l}");
        assert!(
            f[1].contains("svc") && f[1].contains("no live member"),
            "{l}"
        );
        assert!(
            f[2].parse::<i64>().is_ok(),
            "the fail callback gets the original values: {l}"
        );
    }
    let rets = wait_lines(&drv, 3, WAIT, |l| l.starts_with("RET\tnil\t"));
    for l in &rets {
        let f = fields(l);
        assert!(
            f[2].contains("svc") && f[2].contains("no live member"),
            "ret gets (nil, error): {l}"
        );
    }
    // No request was both answered and failed.
    let out = drv.stdout();
    let answered: Vec<i64> = out
        .iter()
        .filter(|l| l.starts_with("OK\tdone\t"))
        .map(|l| ok_k(l))
        .collect();
    for l in out.iter().filter(|l| l.starts_with("FAILED\t")) {
        let k: i64 = fields(l)[2].parse().unwrap();
        assert!(
            !answered.contains(&k),
            "request {k} both answered and failed\n{}",
            drv.dump()
        );
    }

    // The plain `svc:note` has no answer path: the router drops it, nothing crashes, and the
    // sender keeps running (more FAILED lines keep coming).
    let line = router.wait_err("dropped message from", WAIT);
    assert!(line.contains("no live member"), "{line}");
    let n = drv
        .stdout()
        .iter()
        .filter(|l| l.starts_with("FAILED\t"))
        .count();
    wait_lines(&drv, n + 2, WAIT, |l| l.starts_with("FAILED\t"));
    let mut drv = drv;
    let mut router = router;
    assert!(
        drv.wait_exit(Duration::ZERO).is_none(),
        "sender node exited\n{}",
        drv.dump()
    );
    assert!(
        router.wait_exit(Duration::ZERO).is_none(),
        "router exited\n{}",
        router.dump()
    );
    for p in [&drv, &router] {
        assert!(
            p.stderr().iter().all(|l| !l.contains("panicked")),
            "{}",
            p.dump()
        );
    }
}

#[test]
fn signal_to_a_never_registered_name_runs_the_fail_path() {
    let dir = Scratch::new("ghost");
    dir.write("drv.lua", GHOST);
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let drv = Proc::node(
        "drv",
        &["--router", &addr, "--stage", "drv=drv.lua", "--id", "1"],
        &dir.dir,
    );
    router.wait_err("registered drv:1", WAIT);

    let failed = drv.wait_out("FAILED", WAIT);
    let f = fields(&failed);
    assert!(f[1].contains("ghost"), "{failed}");
    assert_eq!(
        &f[2..],
        ["g1", "2"],
        "fail callback gets the original values: {failed}"
    );
    let ret = drv.wait_out("RET", WAIT);
    let f = fields(&ret);
    assert_eq!(f[1], "nil", "{ret}");
    assert!(f[2].contains("ghost"), "{ret}");
    // Without an answer path the node says it dropped the signal, and goes on.
    let line = drv.wait_err("dropped", WAIT);
    assert!(line.contains("ghost:x") && line.contains("WARN"), "{line}");
    drv.wait_count("ALIVE", 2, WAIT);
    assert_eq!(
        drv.stdout()
            .iter()
            .filter(|l| l.starts_with("FAILED"))
            .count(),
        1
    );
    assert_eq!(
        drv.stdout().iter().filter(|l| l.starts_with("RET")).count(),
        1
    );
}
