//! The `route` service (stage-spec §9.1, seed 001 "route로 메시지 전달") on real processes:
//! a router, a node hosting `--stage route=route`, subscriber nodes and a publisher node.

mod common;
use common::{Proc, Scratch, WAIT};
use std::time::Duration;

/// Subscriber script: subscribes `subs` (a Lua table constructor), answers offers after
/// `accept_ms` (never when negative), prints what its callbacks receive as `TAG\t...`, and
/// returns `"<tag> got <value>"` from `on_chat` (an answer when the publisher named `=ret`).
fn subscriber(tag: &str, subs: &str, accept_ms: i64) -> String {
    format!(
        r#"
local tag = "{tag}"
stage.waitfor("route:@", function(id, k)
  print(tag, "OFFER", id)
  if {accept_ms} == 0 then stage.signal(nil, k)
  elseif {accept_ms} > 0 then
    local w = _WAITFOR
    stage.addtask({accept_ms}, function() stage.signal(w, k); return -1 end)
  end
end)
stage.waitfor("on_chat", function(key, ...)
  print(tag, "CHAT", key, ...)
  return tag .. " got " .. tostring((...))
end)
stage.waitfor("on_notice", function(key, v) print(tag, "NOTICE", key, v) end)
stage.waitfor("on_zone", function(key, v) print(tag, "ZONE", key, v) end)
stage.waitfor("sub", function(t) stage.signal("route:@", t) end)
stage.waitfor("subscribed", function(ok) print(tag, "SUBSCRIBED", ok) end)
stage.signal("route:@=subscribed", {subs})
"#
    )
}

struct Cluster {
    dir: Scratch,
    addr: String,
    _router: Proc,
    route: Proc,
    subs: Vec<Proc>,
}

/// A router, the route service on node 9 and one node per `(stage, script)` (ids 2, 3, ...).
fn cluster(tag: &str, subs: &[(&str, String)], extra: &[&str]) -> Cluster {
    let dir = Scratch::new(tag);
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let mut args = vec!["--router", &addr, "--stage", "route=route", "--id", "9"];
    args.extend_from_slice(extra);
    let route = Proc::node("route", &args, &dir.dir);
    router.wait_err("registered route:9", WAIT);
    let mut procs = Vec::new();
    for (i, (stage, script)) in subs.iter().enumerate() {
        dir.write(&format!("{stage}.lua"), script);
        let id = (i + 2).to_string();
        let spec = format!("{stage}={stage}.lua");
        procs.push(Proc::node(
            stage,
            &["--router", &addr, "--stage", &spec, "--id", &id],
            &dir.dir,
        ));
        procs[i].wait_out("SUBSCRIBED\ttrue", WAIT);
    }
    Cluster {
        dir,
        addr,
        _router: router,
        route,
        subs: procs,
    }
}

impl Cluster {
    /// Runs publisher script `script` on node 1 until it prints DONE; returns its output.
    fn publish(&self, script: &str) -> Vec<String> {
        self.dir.write("pub.lua", script);
        let p = Proc::node(
            "pub",
            &[
                "--router",
                &self.addr,
                "--stage",
                "pub=pub.lua",
                "--id",
                "1",
                "--deadline",
                "2000",
            ],
            &self.dir.dir,
        );
        p.wait_out("DONE", WAIT);
        p.stdout()
    }
}

fn lines_with<'a>(out: &'a [String], needle: &str) -> Vec<&'a String> {
    out.iter().filter(|l| l.contains(needle)).collect()
}

/// Offer and accept: only the accepting subscriber's callbacks run, with the full request
/// key and every value sent; the publisher's `=ret` gets the subscriber's answer directly.
#[test]
fn offer_accept_delivers_to_the_accepting_subscriber_with_every_value() {
    let c = cluster(
        "route-offer",
        &[
            ("sa", subscriber("A", r#"{chat = "on_chat"}"#, 0)),
            ("sb", subscriber("B", r#"{chat = "on_chat"}"#, -1)),
        ],
        &[],
    );
    let out = c.publish(
        r#"
stage.waitfor("ret", function(a, b) print("RET", a, b) end)
stage.signal("route:chat?user7=ret", "hello", 42)
stage.addtask(800, function() print("DONE"); return -1 end)
"#,
    );
    assert_eq!(lines_with(&out, "RET\tA got hello").len(), 1, "{out:?}");
    let a = c.subs[0].wait_out("A\tCHAT", WAIT);
    assert_eq!(a, "A\tCHAT\troute:chat?user7=ret\thello\t42");
    // Both were offered the request id (names and argument)...
    c.subs[0].wait_out("A\tOFFER\tchat?user7", WAIT);
    c.subs[1].wait_out("B\tOFFER\tchat?user7", WAIT);
    // ...but only the one that accepted got the message.
    assert!(lines_with(&c.subs[1].stdout(), "CHAT").is_empty());
}

/// The first acceptance wins: a later one is ignored, the message is delivered once.
#[test]
fn first_acceptance_wins() {
    let c = cluster(
        "route-first",
        &[
            ("sa", subscriber("A", r#"{chat = "on_chat"}"#, 150)),
            ("sb", subscriber("B", r#"{chat = "on_chat"}"#, 10)),
        ],
        &[],
    );
    let out = c.publish(
        r#"
stage.signal("route:chat", "one")
stage.addtask(800, function() print("DONE"); return -1 end)
"#,
    );
    assert!(out.iter().all(|l| !l.contains("FAIL")), "{out:?}");
    c.subs[1].wait_out("B\tCHAT\troute:chat\tone", WAIT);
    c.subs[0].wait_out("A\tOFFER", WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(lines_with(&c.subs[0].stdout(), "CHAT").is_empty());
}

/// No acceptance within 300 ms: `!fail` gets (request key, values...); a publisher with only
/// `=ret` gets (nil, why); an accepting subscriber may take only some of its callbacks.
#[test]
fn no_acceptance_fails_and_partial_acceptance_picks_callbacks() {
    let c = cluster(
        "route-fail",
        &[
            ("sa", subscriber("A", r#"{slow = "on_chat"}"#, 500)),
            (
                "sb",
                format!(
                    "{}\n{}",
                    subscriber("B", r#"{chat = "on_chat", notice = "on_notice"}"#, -1),
                    // B accepts only its notice callback.
                    r#"stage.waitfor("route:@", function(id, k) stage.signal(nil, k .. "?on_notice") end)"#
                ),
            ),
        ],
        &[],
    );
    let out = c.publish(
        r#"
stage.waitfor("oops", function(key, v, w) print("FAIL", key, v, w) end)
stage.waitfor("ret", function(a, b) print("RET", a, b) end)
stage.signal("route:slow!oops", "v1", "v2")
stage.signal("route:slow=ret", "v3")
stage.signal("route:nobody!oops", "v4")
stage.signal("route:chat,notice", "both")
stage.addtask(1000, function() print("DONE"); return -1 end)
"#,
    );
    assert!(
        out.contains(&"FAIL\troute:slow!oops\tv1\tv2".to_owned()),
        "{out:?}"
    );
    assert!(
        out.contains(&"FAIL\troute:nobody!oops\tv4\tnil".to_owned()),
        "{out:?}"
    );
    let ret = lines_with(&out, "RET\tnil\troute: 'slow'");
    assert_eq!(ret.len(), 1, "{out:?}");
    c.subs[1].wait_out("B\tNOTICE\troute:chat,notice\tboth", WAIT);
    assert!(lines_with(&c.subs[1].stdout(), "CHAT").is_empty());
    // The late acceptance of A changed nothing (its callback never ran).
    std::thread::sleep(Duration::from_millis(300));
    assert!(lines_with(&c.subs[0].stdout(), "CHAT").is_empty());
}

/// `route:*name` reaches every eligible subscription without an offer; a `!fail` publisher
/// whose message was delivered hears nothing (the request is settled, not failed).
#[test]
fn broadcast_reaches_every_subscriber() {
    let c = cluster(
        "route-bcast",
        &[
            ("sa", subscriber("A", r#"{chat = "on_chat"}"#, -1)),
            ("sb", subscriber("B", r#"{chat = "on_chat"}"#, -1)),
        ],
        &[],
    );
    let out = c.publish(
        r#"
stage.waitfor("oops", function(...) print("FAIL", ...) end)
stage.signal("route:*chat!oops", "all")
stage.addtask(2500, function() print("DONE"); return -1 end)
"#,
    );
    c.subs[0].wait_out("A\tCHAT\troute:*chat!oops\tall", WAIT);
    c.subs[1].wait_out("B\tCHAT\troute:*chat!oops\tall", WAIT);
    assert!(lines_with(&out, "FAIL").is_empty(), "{out:?}");
    assert!(lines_with(&c.subs[0].stdout(), "OFFER").is_empty());
}

/// Pause and resume a subscription (false / true / msec), pause a whole route (msec),
/// unsubscribe one name ("") and everything (nil) — and subscribe again afterwards.
#[test]
fn pause_resume_and_unsubscribe() {
    let c = cluster(
        "route-pause",
        &[(
            "sa",
            subscriber("A", r#"{chat = "on_chat", notice = "on_notice"}"#, 0),
        )],
        &[],
    );
    // The publisher drives the subscriber's control messages through its "sub" callback.
    let out = c.publish(
        r#"
stage.waitfor("oops", function(key, v) print("FAIL", key, v) end)
local steps = {
  function() stage.signal("sa:sub", {chat = false}) end,
  function() stage.signal("route:chat!oops", 1) end,              -- paused: fails
  function() stage.signal("sa:sub", {chat = true}) end,
  function() stage.signal("route:chat!oops", 2) end,              -- delivered
  function() stage.signal("sa:sub", {chat = 400}) end,
  function() stage.signal("route:chat!oops", 3) end,              -- paused for 400 ms: fails
  function() end, function() end, function() end,
  function() stage.signal("route:chat!oops", 4) end,              -- delivered
  function() stage.signal("sa:sub", {chat = ""}) end,
  function() stage.signal("route:chat!oops", 5) end,              -- unsubscribed: fails
  function() stage.signal("route:notice!oops", 6) end,            -- still subscribed
  function() stage.signal("sa:sub", nil) end,
  function() stage.signal("route:notice!oops", 7) end,            -- everything gone: fails
  function() stage.signal("sa:sub", {notice = "on_notice"}) end,
  function() stage.signal("route:notice!oops", 8) end,            -- subscribed again
  function() print("DONE") end,
}
local i = 0
stage.addtask(150, function()
  i = i + 1
  steps[i]()
  if i == #steps then return -1 end
end)
"#,
    );
    let fails: Vec<&str> = out
        .iter()
        .filter_map(|l| l.strip_prefix("FAIL\t"))
        .map(|l| l.rsplit('\t').next().unwrap())
        .collect();
    assert_eq!(fails, ["1", "3", "5", "7"], "{out:?}");
    let got: Vec<String> = c.subs[0]
        .stdout()
        .iter()
        .filter(|l| l.contains("CHAT") || l.contains("NOTICE"))
        .map(|l| l.rsplit('\t').next().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["2", "4", "6", "8"]);
}

/// A route pauses as a whole for msec; a name nobody subscribed falls back to its prefixes
/// (`zone.a.b` → `zone.a.` → `zone.`), argument and callbacks included.
#[test]
fn route_pause_and_prefix_fallback() {
    let c = cluster(
        "route-prefix",
        &[("sa", subscriber("A", r#"{["zone."] = "on_zone"}"#, 0))],
        &[],
    );
    let out = c.publish(
        r#"
stage.waitfor("oops", function(key, v) print("FAIL", key, v) end)
stage.signal("route:zone.a.b?x!oops", 1)
stage.signal("route:other.a!oops", 2)
stage.addtask(300, function() stage.signal("sa:sub", 500); return -1 end)
stage.addtask(500, function() stage.signal("route:zone.c!oops", 3); return -1 end) -- paused
stage.addtask(1100, function() stage.signal("route:zone.d!oops", 4); return -1 end)
stage.addtask(1600, function() print("DONE"); return -1 end)
"#,
    );
    let fails: Vec<&String> = lines_with(&out, "FAIL");
    assert_eq!(fails.len(), 2, "{out:?}");
    assert!(
        fails[0].ends_with("\t2") && fails[1].ends_with("\t3"),
        "{out:?}"
    );
    let got: Vec<String> = c.subs[0]
        .stdout()
        .iter()
        .filter(|l| l.contains("ZONE"))
        .cloned()
        .collect();
    assert_eq!(
        got,
        [
            "A\tZONE\troute:zone.a.b?x!oops\t1",
            "A\tZONE\troute:zone.d!oops\t4"
        ]
    );
}

/// A route that sends no `route:@` message within the keep-alive window is removed with its
/// subscriptions; one that keeps sending `true` stays (window shortened by
/// `--route-keepalive`; the default is the spec's 30 s).
#[test]
fn routes_expire_without_keep_alive() {
    let keeper = format!(
        "{}\n{}",
        subscriber("K", r#"{chat = "on_chat"}"#, 0),
        r#"stage.addtask(300, function() stage.signal("route:@", true) end)"#
    );
    let c = cluster(
        "route-expire",
        &[
            ("sa", subscriber("A", r#"{chat = "on_chat"}"#, 0)),
            ("sk", keeper),
        ],
        &["--route-keepalive", "1500"],
    );
    let out = c.publish(
        r#"
stage.signal("route:*chat", "early")
stage.addtask(3000, function() stage.signal("route:*chat", "late"); return -1 end)
stage.addtask(3500, function() print("DONE"); return -1 end)
"#,
    );
    assert!(out.iter().any(|l| l == "DONE"));
    c.subs[0].wait_out("A\tCHAT\troute:*chat\tearly", WAIT);
    c.subs[1].wait_out("K\tCHAT\troute:*chat\tlate", WAIT);
    assert!(lines_with(&c.subs[0].stdout(), "late").is_empty());
    drop(c.route);
}
