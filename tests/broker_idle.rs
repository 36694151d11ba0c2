//! Issue 6 acceptance: one node holds 10,000 concurrent idle broker connections (stage-spec
//! §10.3 `broker.ready`) and every one of them still answers afterwards. The memory they cost
//! is measured and printed by `stage-bench idle`, never asserted here.

use std::process::Command;

const CONNS: usize = 10_000;

/// Raises this test's open-file limit to the hard limit as the node does (stage-bench inherits
/// it and needs one descriptor per connection); fails clearly if even that is too low.
fn raise_fd_limit() {
    stage_node::broker::raise_fd_limit();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a local struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    assert!(
        lim.rlim_cur >= CONNS as u64 + 100,
        "{CONNS} connections need an open-file limit of {}: the hard limit is {} (`ulimit -Hn`)",
        CONNS + 100,
        lim.rlim_max
    );
}

#[test]
fn ten_thousand_idle_connections_are_held_and_all_answer() {
    raise_fd_limit();
    let conns = CONNS.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_stage-bench"))
        .args(["idle", "--conns", &conns, "--timeout", "40"])
        .output()
        .expect("run stage-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // stage-bench fails (exit 1) if the node did not accept every connection in time or if any
    // connection did not echo `{"x": 1}` as `{"v": 1}` at the end.
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT workload=idle peer=stage "))
        .unwrap_or_else(|| panic!("no RESULT line in {stdout}"));
    assert!(
        line.contains(&format!(" conns={CONNS} ")) && line.ends_with(" dropped=0"),
        "{line}"
    );
    let per_conn: f64 = line
        .split(' ')
        .find_map(|f| f.strip_prefix("per_conn_bytes="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    println!("{stderr}{line}\nRSS per idle connection: {per_conn:.0} bytes");
}
