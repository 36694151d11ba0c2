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

/// The value of `name=` in a RESULT or RATIO line.
fn field(line: &str, name: &str) -> Option<String> {
    line.split(' ')
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

/// `stage-bench peers` runs W1–W3 of WORKLOADS.md on a stage router, nats-server and
/// redis-server it starts itself, verifying every message: each workload and system gets a
/// RESULT line with no loss and the CPU fields, and each workload a ratio line per peer, with
/// the goals judged against NATS.
#[test]
fn peer_workloads_report_every_system_and_ratio() {
    let stdout = bench(&[
        "peers",
        "--runs",
        "1",
        "--messages",
        "4000",
        "--timeout",
        "60",
    ]);
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("RESULT "))
        .collect();
    // W1, W2 at 1 in flight unpinned and pinned and at 64, W3: five variants, three systems.
    assert_eq!(results.len(), 15, "{stdout}");
    for line in &results {
        assert_eq!(field(line, "lost").as_deref(), Some("0"), "{line}");
        for f in [
            "msgs_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "server_cpu_s",
        ] {
            let v: f64 = field(line, f).and_then(|v| v.parse().ok()).unwrap_or(-1.0);
            assert!(v >= 0.0, "{f} in {line}");
        }
        if field(line, "peer").as_deref() == Some("stage") {
            assert!(field(line, "router_rss_kb").is_some(), "{line}");
        }
    }
    for workload in ["w1_fanin", "w2_reqrep", "w3_fanout"] {
        for peer in ["stage", "nats", "redis"] {
            assert!(
                results
                    .iter()
                    .any(|l| field(l, "workload").as_deref() == Some(workload)
                        && field(l, "peer").as_deref() == Some(peer)),
                "no {workload} {peer} in {stdout}"
            );
        }
    }
    let pinned = results
        .iter()
        .filter(|l| field(l, "cpus").as_deref() == Some("0"))
        .count();
    assert_eq!(pinned, 3, "{stdout}");
    let ratios: Vec<&str> = stdout.lines().filter(|l| l.starts_with("RATIO ")).collect();
    assert_eq!(ratios.len(), 10, "{stdout}");
    assert!(
        ratios.iter().all(|l| field(l, "stage_over").as_deref() != Some("nats")
            || field(l, "met").is_some()),
        "{stdout}"
    );
}

/// The RESULT line of `workload` (and `inflight=`, for L2) in a stage-bench output.
fn result_line<'a>(stdout: &'a str, workload: &str, extra: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            l.starts_with(&format!("RESULT workload={workload} peer=stage ")) && l.contains(extra)
        })
        .unwrap_or_else(|| panic!("no {workload} {extra} RESULT line in {stdout}"))
}

/// Asserts that `line` has every field in `fields` with a number, and that nothing was lost.
fn assert_fields(line: &str, fields: &[&str]) {
    for field in fields.iter().chain(&["lost", "corrupt"]) {
        let value = line
            .split(' ')
            .find_map(|f| f.strip_prefix(&format!("{field}=")))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(value.is_some(), "{field} in {line}");
    }
    assert!(
        line.contains(" lost=0 ") && line.contains(" corrupt=0 "),
        "{line}"
    );
}

/// The Lua-level workloads, small: every message checked, none lost.
#[test]
fn lua_signal_workloads_report_their_fields() {
    let small = ["--messages", "20000", "--runs", "1", "--timeout", "60"];
    let l1 = bench(&[&["l1"][..], &small].concat());
    assert_fields(
        result_line(&l1, "l1_signal", ""),
        &["msgs_per_s", "router_cpu_ns_per_msg", "router_rss_kb"],
    );
    let l3 = bench(&[&["l3"][..], &small].concat());
    assert_fields(
        result_line(&l3, "l3_local", ""),
        &["msgs_per_s", "node_cpu_ns_per_msg"],
    );
    let l4 = bench(&[&["l4"][..], &small].concat());
    assert_fields(
        result_line(&l4, "l4_submit", ""),
        &["jobs_per_s", "node_cpu_ns_per_job"],
    );
}

/// L2 sequential calls wait for wake-ups, so fewer of them keep the test short.
#[test]
fn lua_call_workload_reports_both_phases() {
    let out = bench(&["l2", "--messages", "2000", "--runs", "1", "--timeout", "60"]);
    for inflight in ["inflight=1 ", "inflight=64 "] {
        assert_fields(
            result_line(&out, "l2_call", inflight),
            &["calls_per_s", "router_cpu_ns_per_call"],
        );
    }
    assert!(result_line(&out, "l2_call", "inflight=1 ").contains("rtt_mean_us="));
}

#[test]
fn idle_node_reports_its_memory() {
    let out = bench(&["node", "--runs", "1", "--timeout", "30"]);
    let line = result_line(&out, "node_idle", "");
    assert!(line.contains("node_rss_kb="), "{line}");
    // Judged against the goal (16 MB) in a RATIO line.
    let ratio = out
        .lines()
        .find(|l| l.starts_with("RATIO workload=node_idle "))
        .unwrap_or_else(|| panic!("no node_idle RATIO line in {out}"));
    assert!(ratio.contains(" met="), "{ratio}");
}
