//! Remote function execution (seed 001 FAQ, issue "Cluster under failure"):
//! `stage.signal("stage:callback=result", function (v) ... end, "HELLO")` runs the function on the
//! remote stage and its results come back — but only between authenticated cluster members:
//! Lua has no bytecode verifier, so a node never loads bytecode from an unauthenticated peer.

mod common;
use common::{Proc, Scratch, WAIT};

const SVC: &str = r#"stage.waitfor("callback", function(f, v) return f(v), stage.id() end)"#;

const DRV: &str = r#"
local suffix = "!"                                   -- an upvalue travels with the function
stage.waitfor("result", function(r, who) print("RESULT", r, who) end)
stage.signal("svc:callback=result", function(v) return string.lower(v) .. suffix end, "HELLO")
"#;

/// The router, the serving node, the sending node (all stopped when dropped).
fn run(secret: Option<&str>) -> (Proc, Proc, Proc, Scratch) {
    let dir = Scratch::new("remote-fn");
    dir.write("svc.lua", SVC);
    dir.write("drv.lua", DRV);
    let mut auth: Vec<&str> = Vec::new();
    if let Some(s) = secret {
        dir.write("secret", s);
        auth = vec!["--secret-file", "secret"];
    }
    let (router, addr) = Proc::router("router", &auth, &dir.dir);
    let svc_args = [
        &["--router", &addr, "--stage", "svc=svc.lua", "--id", "2"][..],
        &auth,
    ]
    .concat();
    let svc = Proc::node("svc", &svc_args, &dir.dir);
    router.wait_err("registered svc:2", WAIT);
    let drv_args = [
        &["--router", &addr, "--stage", "drv=drv.lua", "--id", "1"][..],
        &auth,
    ]
    .concat();
    let drv = Proc::node("drv", &drv_args, &dir.dir);
    (router, svc, drv, dir)
}

#[test]
fn a_function_runs_on_the_remote_stage_in_an_authenticated_cluster() {
    let (_router, _svc, drv, _dir) = run(Some("a long random cluster secret for this test"));
    assert_eq!(drv.wait_out("RESULT", WAIT), "RESULT\thello!\t2");
}

#[test]
fn without_a_cluster_secret_function_values_from_other_nodes_are_refused() {
    let (_router, svc, drv, _dir) = run(None);
    svc.wait_err(
        "functions cross between nodes only in an authenticated cluster",
        WAIT,
    );
    // The request got no answer: its deadline passes and the sender hears of it.
    let line = drv.wait_out("RESULT", WAIT);
    assert!(
        line.starts_with("RESULT\tnil\t") && line.contains("deadline"),
        "{line}"
    );
}
