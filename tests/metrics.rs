//! `stage-router --http ADDR` serves `/metrics` in the Prometheus text format (issue "For the
//! people who use it", observability): messages per link and per class, live members.

mod common;
use common::{http_get as get, Proc, Scratch, WAIT};
use std::time::{Duration, Instant};

/// The value of the sample whose name and labels start with `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn metrics_count_messages_per_link_and_class() {
    let dir = Scratch::new("metrics");
    dir.write(
        "rx.lua",
        r#"local n = 0
stage.waitfor("m", function() n = n + 1; if n == 10 then print("GOT 10") end end)"#,
    );
    dir.write(
        "tx.lua",
        r#"stage.addtask(300, function() for i = 1, 10 do stage.signal("rx:m", i) end; return -1 end)"#,
    );
    let (router, addr) = Proc::router("router", &["--http", "127.0.0.1:0"], &dir.dir);
    let http = router.http_addr();
    let rx = Proc::node("rx", &["--router", &addr, "--stage", "rx=rx.lua"], &dir.dir);
    router.wait_err("registered rx:", WAIT);
    let _tx = Proc::node("tx", &["--router", &addr, "--stage", "tx=tx.lua"], &dir.dir);
    rx.wait_out("GOT 10", WAIT);

    let class = r#"stage_router_class_messages_total{class="rx",mode="roundrobin"}"#;
    let metrics = poll(&http, class, 10.0);
    assert!(
        metrics.contains("Content-Type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, class), Some(10.0), "{metrics}");
    let by_node = |name: &str, node: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("node=\"{node}")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(
        by_node("stage_router_link_messages_received_total", "tx"),
        Some(10.0),
        "{metrics}"
    );
    assert_eq!(
        by_node("stage_router_link_messages_sent_total", "rx"),
        Some(10.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"stage_router_class_members{class="rx",mode="roundrobin"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE stage_router_link_nacks_total counter"),
        "{metrics}"
    );
    assert_eq!(get(&http, "/nope").0, "HTTP/1.1 404 Not Found");
}

/// `stage-node --http ADDR`: per stage its handled events, Lua memory, Lua errors and reloads,
/// the built-in services by kind; `/status.json` the same for the status page.
#[test]
fn node_metrics_count_errors_reloads_and_lua_memory() {
    let dir = Scratch::new("node-metrics");
    let app = dir.write(
        "app.lua",
        r#"stage.waitfor("boom", function() error("kaput") end)
stage.addtask(100, function() stage.signal("app:boom"); return -1 end)
print("V1")"#,
    );
    let node = Proc::node(
        "node",
        &[
            "--stage",
            "app=app.lua",
            "--stage",
            "rank=index",
            "--http",
            "127.0.0.1:0",
        ],
        &dir.dir,
    );
    let http = node.http_addr();
    node.wait_out("V1", WAIT);
    node.wait_err("kaput", WAIT);
    let series = |name: &str, stage: &str, kind: &str| {
        format!("{name}{{stage=\"{stage}\",kind=\"{kind}\"}}")
    };
    let errors = series("stage_node_stage_errors_total", "app", "lua");
    let metrics = poll(&http, &errors, 1.0);
    assert!(
        sample(
            &metrics,
            &series("stage_node_stage_lua_memory_bytes", "app", "lua")
        )
        .is_some_and(|b| b > 10_000.0),
        "a running VM holds memory:\n{metrics}"
    );
    assert!(
        sample(
            &metrics,
            &series("stage_node_stage_handled_total", "app", "lua")
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            &series("stage_node_stage_backlog", "rank", "index")
        ),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            &series("stage_node_stage_reloads_total", "app", "lua")
        ),
        Some(0.0),
        "{metrics}"
    );

    common::rewrite(&app, "print(\"V2\")");
    node.wait_out("V2", WAIT);
    poll(
        &http,
        &series("stage_node_stage_reloads_total", "app", "lua"),
        1.0,
    );
    let (status, json) = get(&http, "/status.json");
    assert_eq!(status, "HTTP/1.1 200 OK", "{json}");
    for needle in [
        r#""kind":"node""#,
        r#""name":"standalone""#,
        r#""name":"rank","kind":"index""#,
        r#""reloads":1"#,
        r#""errors":1"#,
    ] {
        assert!(json.contains(needle), "{needle} in {json}");
    }
}

/// Reads `/metrics` on `http` until `series` has `value`; the last reading.
fn poll(http: &str, series: &str, value: f64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(http, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        if sample(&body, series) == Some(value) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {value}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
