//! `--config FILE` (issue "For the people who use it"): router and node take their flags from a
//! Lua file whose globals are the long flags; a bad key stops them with an error naming it.

mod common;
use common::{Proc, Scratch, WAIT};
use std::process::Command;

#[test]
fn router_and_node_take_their_flags_from_a_config_file() {
    let dir = Scratch::new("config-file");
    dir.write(
        "control.lua",
        r#"
function on_register(link, id, info) router.route(id, link); router.log("CUSTOM " .. info.name .. ":" .. info.instance) end
function on_close(link, reason) end
"#,
    );
    let router_conf = dir.write(
        "router.conf.lua",
        r#"script = "control.lua"
heartbeat_window = 2000
mode = { hello = "broadcast" }
"#,
    );
    let (router, addr) = Proc::router(
        "router",
        &["--config", router_conf.to_str().unwrap()],
        &dir.dir,
    );
    dir.write("hello.lua", r#"print("HELLO FROM CONFIG")"#);
    let node_conf = dir.write(
        "node.conf.lua",
        &format!("router = {{ \"{addr}\" }}\nstage = {{ hello = \"hello.lua\" }}\nid = 7\n"),
    );
    let node = Proc::node("node", &["--config", node_conf.to_str().unwrap()], &dir.dir);
    node.wait_out("HELLO FROM CONFIG", WAIT);
    // The custom control script named in the router's file registered the node's stage, as
    // the instance its file asked for.
    router.wait_err("CUSTOM hello:7", WAIT);
}

/// Runs `program --config FILE`, which must refuse to start (exit code 2); its stderr.
fn refused(program: &str, conf: &std::path::Path) -> String {
    let out = Command::new(program)
        .args(["--config", conf.to_str().unwrap()])
        .output()
        .expect("run the program");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

#[test]
fn a_bad_key_names_itself_and_the_keys_there_are() {
    let dir = Scratch::new("config-bad");
    let conf = dir.write("router.conf.lua", "heartbeat = 5\n");
    let err = refused(env!("CARGO_BIN_EXE_stage-router"), &conf);
    assert!(
        err.contains("unknown key 'heartbeat'") && err.contains("heartbeat_window"),
        "{err}"
    );
    let conf = dir.write("node.conf.lua", "threads = 'many'\n");
    let err = refused(env!("CARGO_BIN_EXE_stage-node"), &conf);
    assert!(
        err.contains("key 'threads'") && err.contains("'many'"),
        "{err}"
    );
}
