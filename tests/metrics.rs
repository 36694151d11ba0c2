//! `stage-router --http ADDR` serves `/metrics` in the Prometheus text format (issue "For the
//! people who use it", observability): messages per link and per class, live members.

mod common;
use common::{Proc, Scratch, WAIT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `GET path` on `addr`: the status line and the whole response.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the http endpoint");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let status = response.lines().next().unwrap_or_default().to_owned();
    (status, response)
}

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
    let http = router
        .wait_err("http on ", WAIT)
        .rsplit("http on ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let rx = Proc::node("rx", &["--router", &addr, "--stage", "rx=rx.lua"], &dir.dir);
    router.wait_err("registered rx:", WAIT);
    let _tx = Proc::node("tx", &["--router", &addr, "--stage", "tx=tx.lua"], &dir.dir);
    rx.wait_out("GOT 10", WAIT);

    let class = r#"stage_router_class_messages_total{class="rx",mode="roundrobin"}"#;
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let (status, body) = get(&http, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        if sample(&body, class) == Some(10.0) || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
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
