//! `stage-bench` runs its workloads on real processes and reports them as RESULT lines (the
//! figures themselves go to docs/performance.md, never into assertions).

use std::process::Command;

/// Runs `stage-bench args`; returns its stdout once it exited successfully.
fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_stage-bench"))
        .args(args)
        .output()
        .expect("run stage-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn failover_workload_reports_a_result_line() {
    let stdout = bench(&["failover", "--runs", "1", "--timeout", "30"]);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .expect("a RESULT line");
    for field in [
        "workload=failover_master",
        "peer=stage",
        "failover_ms=",
        "frozen_ms=",
    ] {
        assert!(line.contains(field), "{line}");
    }
    let value = |name: &str| -> f64 {
        line.split(' ')
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    assert!(value("failover_ms=") >= 0.0 && value("frozen_ms=") >= 0.0);
}

/// `stage-bench index` measures the index service through the router, in its own node and as a
/// store, beside redis-server's ZADD / ZREVRANK in the same run, checking every answer.
#[test]
fn index_workload_reports_every_peer_beside_redis() {
    let stdout = bench(&[
        "index",
        "--members",
        "500",
        "--ops",
        "2000",
        "--runs",
        "1",
        "--timeout",
        "60",
    ]);
    for workload in ["index_set", "index_rank"] {
        for peer in ["stage_router", "stage_local", "store", "redis"] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("RESULT workload={workload} peer={peer} ")))
                .unwrap_or_else(|| panic!("no {workload} {peer} line in {stdout}"));
            let rate: f64 = line
                .split(' ')
                .find_map(|f| f.strip_prefix("ops_per_s="))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{line}"));
            assert!(rate > 0.0 && line.contains("lost=0"), "{line}");
        }
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("RATIO workload={workload} stage_router/redis="))),
            "{stdout}"
        );
    }
}
