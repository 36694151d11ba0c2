//! The live `/status` page (issue 8, observability) in a real browser: headless Chromium
//! (Debian's `chromium`, installed by `.ci/run`) loads a router's page, which reads its own
//! `status.json` and those of a second router and three nodes (`?also=`), and draws the
//! running cluster — both routers, every node with its stages, each class's mode and members,
//! message rates, the overloaded member — refreshing it without reloading the page.

mod common;
use common::{docrun, markdown, Proc, Scratch, WAIT};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the browser may take (it usually needs a few seconds).
const BROWSER_WAIT: Duration = Duration::from_secs(90);

/// The page's DOM after its scripts ran for `virtual_ms` of (virtual) time.
fn render_in_chromium(url: &str, virtual_ms: u32, profile: &std::path::Path) -> String {
    std::fs::create_dir_all(profile).expect("create the browser profile");
    let out = profile.join("dom.html");
    let file = std::fs::File::create(&out).expect("create dom.html");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            // Root in CI containers: Chromium's sandbox needs user namespaces it may not get.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--virtual-time-budget={virtual_ms}"),
            "--dump-dom",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("run chromium (Debian package `chromium`; .ci/run installs it)");
    let deadline = Instant::now() + BROWSER_WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within {BROWSER_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&out).expect("read the dumped DOM")
}

/// The element that starts with the tag holding `attr` (e.g. `data-class="pong"`), up to its
/// closing `</tag>`.
fn element<'a>(dom: &'a str, tag: &str, attr: &str) -> &'a str {
    let at = dom
        .find(attr)
        .unwrap_or_else(|| panic!("no {attr} in the page:\n{dom}"));
    let start = dom[..at]
        .rfind(&format!("<{tag}"))
        .expect("the attribute's element");
    let end = dom[at..]
        .find(&format!("</{tag}>"))
        .map_or(dom.len(), |e| at + e);
    &dom[start..end]
}

/// The number in the `n`-th cell (from 0) of a table row.
fn cell(row: &str, n: usize) -> &str {
    let cell = row.split("<td").nth(n + 1).expect("the cell");
    let text = &cell[cell.find('>').expect("cell start") + 1..];
    &text[..text.find("</td>").unwrap_or(text.len())]
}

#[test]
fn status_page_draws_the_running_cluster_in_a_browser() {
    let dir = Scratch::new("status-page");
    // ping signals pong and twice slow every 10 ms; slow takes 20 ms a message, so its backlog
    // grows and it reports itself overloaded.
    dir.write(
        "ping.lua",
        r#"local n = 0
stage.addtask(10, function()
  n = n + 1
  stage.signal("pong:hello", n)
  stage.signal("slow:work", n)
  stage.signal("slow:work", n)
end)"#,
    );
    dir.write("pong.lua", r#"stage.waitfor("hello", function(n) end)"#);
    dir.write(
        "slow.lua",
        r#"stage.waitfor("work", function()
  local t = os.clock() + 0.02
  while os.clock() < t do end
end)"#,
    );
    let http = ["--http", "127.0.0.1:0"];
    let (r1, addr1) = Proc::router(
        "r1",
        &[&http[..], &["--mode", "pong=master"]].concat(),
        &dir.dir,
    );
    let (r2, addr2) = Proc::router("r2", &http, &dir.dir);
    let node = |name: &str, stages: &[&str], extra: &[&str]| {
        let mut args = vec!["--router", &addr1, "--router", &addr2, "--name", name];
        for s in stages {
            args.extend(["--stage", s]);
        }
        args.extend(http);
        args.extend(extra);
        Proc::node(name, &args, &dir.dir)
    };
    let beta = node("beta", &["pong=pong.lua", "rank=index"], &[]);
    let gamma = node("gamma", &["slow=slow.lua"], &["--overload-window", "100"]);
    r1.wait_err("registered rank:", WAIT);
    r1.wait_err("registered slow:", WAIT);
    let alpha = node("alpha", &["ping=ping.lua"], &[]);
    gamma.wait_err("stage slow: the backlog keeps growing", WAIT);

    let also = [
        r2.http_addr(),
        alpha.http_addr(),
        beta.http_addr(),
        gamma.http_addr(),
    ];
    let url = format!("http://{}/status?also={}", r1.http_addr(), also.join(","));
    let dom = render_in_chromium(&url, 5000, &dir.dir.join("chromium"));

    // Refreshed in place: one page load, several readings.
    let meta = element(&dom, "div", "id=\"meta\"");
    let updates: u32 = meta
        .split("data-updates=\"")
        .nth(1)
        .and_then(|s| s.split('"').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no reading count in {meta}"));
    assert!(updates >= 3, "the page refreshed itself: {meta}");
    assert!(meta.contains("2 router(s), 3 node(s)"), "{meta}");
    let sources = element(&dom, "div", "id=\"sources\"");
    assert!(
        !sources.contains("unreachable"),
        "every status.json was read: {sources}"
    );

    // The topology: both routers, the nodes and their stages.
    for router in [&addr1, &addr2] {
        element(&dom, "g", &format!("data-router=\"{router}\""));
    }
    for (name, stages) in [
        ("alpha", &["ping"][..]),
        ("beta", &["pong", "rank"]),
        ("gamma", &["slow"]),
    ] {
        let box_ = element(&dom, "g", &format!("data-node=\"{name}\""));
        for s in stages {
            assert!(
                box_.contains(&format!("data-stage=\"{s}\"")),
                "{s} in {box_}"
            );
        }
    }
    // Each class's mode and members; pong's master; slow overloaded, on the diagram too.
    let pong = element(&dom, "tr", "data-class=\"pong\"");
    assert!(pong.contains("data-mode=\"master\""), "{pong}");
    assert!(pong.contains("on beta · master"), "{pong}");
    let slow = element(&dom, "tr", "data-class=\"slow\"");
    assert!(slow.contains("data-mode=\"roundrobin\""), "{slow}");
    assert!(slow.contains("on gamma · overloaded"), "{slow}");
    let slow_box = element(&dom, "g", "data-node=\"gamma\"");
    assert!(
        slow_box.contains("slow:") && slow_box.contains("(overloaded)"),
        "{slow_box}"
    );
    let rank = element(&dom, "tr", "data-node-stage=\"beta/rank\"");
    assert_eq!(cell(rank, 2), "index", "{rank}");
    // ping sends three messages each 10 ms through the routers.
    let ping = element(&dom, "tr", "data-node-stage=\"alpha/ping\"");
    let sent: f64 = cell(ping, 4)
        .parse()
        .unwrap_or_else(|_| panic!("a rate in {ping}"));
    assert!(sent > 0.0, "ping's sent rate: {ping}");
    // Rates from two readings: pong gets about 100 messages a second.
    let rate: f64 = cell(pong, 2)
        .parse()
        .unwrap_or_else(|_| panic!("a rate in {pong}"));
    assert!(rate > 0.0, "pong's message rate: {pong}");
}

/// docs/observability.md, followed as written: its `watch.lua` (the hello cluster with every
/// process serving `--http`) run with `cargo run -- run watch.lua` (the built `stage` binary,
/// which is what cargo runs) prints the status page's address, and that page, in the
/// browser, draws the router, both nodes and their stages. The doc's fixed ports become free
/// ones — the only change.
#[test]
fn the_documented_watched_cluster_runs_and_its_page_draws_it() {
    const DOC: &str = "docs/observability.md";
    let dir = Scratch::new("watched");
    let hello = dir.dir.join("cluster-examples/hello");
    std::fs::create_dir_all(&hello).expect("create cluster-examples/hello");
    for script in ["ping.lua", "pong.lua"] {
        let from = markdown::root().join("cluster-examples/hello").join(script);
        std::fs::copy(&from, hello.join(script)).expect("copy the hello scripts");
    }
    let ports: Vec<(&str, String)> = ["7400", "9400", "9401", "9402"]
        .into_iter()
        .map(|p| (p, common::free_port().to_string()))
        .collect();
    let local = |text: &str| {
        ports
            .iter()
            .fold(text.to_owned(), |t, (doc, free)| t.replace(doc, free))
    };

    let topology = markdown::example(DOC, "watched-cluster");
    dir.write("watch.lua", &local(&topology.code));
    let run = markdown::example(DOC, "run-watched");
    let mut cluster = Proc::cargo_run(&docrun::cargo_run(&run), &dir.dir, &[], &[]);
    let printed = local(&run.output_lines().join("\n"));
    let url = cluster
        .wait_err(&printed, WAIT)
        .rsplit("status page: ")
        .next()
        .unwrap()
        .to_owned();
    // ping says hello every second: wait for the first answer, so both nodes are linked.
    cluster.wait_out("ping: pong answered hello #1", WAIT);

    let dom = render_in_chromium(&url, 3000, &dir.dir.join("chromium"));
    element(
        &dom,
        "g",
        &format!("data-router=\"127.0.0.1:{}\"", ports[0].1),
    );
    for (node, stage) in [("alpha", "ping"), ("beta", "pong")] {
        let box_ = element(&dom, "g", &format!("data-node=\"{node}\""));
        assert!(box_.contains(&format!("data-stage=\"{stage}\"")), "{box_}");
        element(&dom, "tr", &format!("data-node-stage=\"{node}/{stage}\""));
        element(&dom, "tr", &format!("data-class=\"{stage}\""));
    }
    cluster.stop_cleanly();
}
