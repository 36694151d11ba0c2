//! The `agent` (`curl`) built-in service, stage-spec §9.4 and seed 001 "curl로 메시지 전달":
//! scripts send requests with `stage.signal("agent:cb", req)` and get one answer table per
//! request, against a real HTTP(S) server on 127.0.0.1 started by the test (tests/agent/).

mod common;
#[path = "agent/server.rs"]
mod server;

use common::{Proc, Scratch, WAIT};
use server::Server;

/// Prints every answer to `got` as lines `"<tag> <field>=<value>"`, the body as `"<tag> | line"`
/// (when short), then `"<tag> END"`; the tag is `extra` (or `extra.tag`).
const DUMP: &str = r#"
local function dump(r)
  local tag = type(r.extra) == "table" and r.extra.tag or tostring(r.extra)
  local d = r.data
  local fields = { url = r.url, effective_url = r.effective_url, redirect_url = r.redirect_url,
    status = r.status, type = d.type, charset = d.charset, length = d.length, result = d.result,
    message = d.message, time = d.time, bps = d.bps, content_bytes = #d.content }
  if type(r.extra) == "table" then fields["extra.n"] = r.extra.n end
  for k, v in pairs(fields) do print(tag .. " " .. k .. "=" .. tostring(v)) end
  for _, c in ipairs(r.cookie or {}) do print(tag .. " cookie=" .. c) end
  if #d.content <= 8192 then
    for line in d.content:gmatch("[^\n]+") do print(tag .. " | " .. line) end
  end
  print(tag .. " END")
end
stage.waitfor("got", dump)
"#;

/// A standalone node hosting `drv.lua` (`URL` set to `url`, then [`DUMP`], then `script`) and
/// the agent as `agent=curl`, with `--user-agent stage-test-ua` and `extra` flags.
fn node(dir: &Scratch, url: &str, script: &str, extra: &[&str]) -> Proc {
    dir.write("drv.lua", &format!("local URL = {url:?}\n{DUMP}\n{script}"));
    let mut args = vec!["--stage", "drv=drv.lua", "--stage", "agent=curl"];
    args.extend(["--user-agent", "stage-test-ua"]);
    args.extend(extra);
    Proc::node("node", &args, &dir.dir)
}

/// A plain HTTP server and a node running `script` against it (see [`node`]).
fn start(tag: &str, script: &str, extra: &[&str]) -> (Proc, Server, Scratch) {
    let srv = Server::start(None);
    let dir = Scratch::new(tag);
    let p = node(&dir, &srv.url("http"), script, extra);
    (p, srv, dir)
}

/// Whether the answer's `message` contains `text`.
fn message_has(lines: &[String], text: &str) -> bool {
    field(lines, "message").is_some_and(|m| m.contains(text))
}

/// The answer tagged `tag`: its lines without the tag, once its `END` arrived.
fn answer(p: &Proc, tag: &str) -> Vec<String> {
    p.wait_out(&format!("{tag} END"), WAIT);
    let prefix = format!("{tag} ");
    p.stdout()
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// The value of `field` in an answer.
fn field<'a>(lines: &'a [String], field: &str) -> Option<&'a str> {
    let prefix = format!("{field}=");
    lines.iter().find_map(|l| l.strip_prefix(&prefix))
}

fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

#[test]
fn get_sends_headers_and_answers_with_the_response() {
    // Both names select the service: `curl` (see `node`) and `agent`.
    let (p, srv, _dir) = start(
        "agent-get",
        r#"
stage.signal("agent:got", { url = URL .. "/echo?q=1", header = { ["X-Token"] = "t1" },
                            extra = { tag = "get", n = 7 } })
stage.signal("web:anything=got", URL .. "/echo/plain")
"#,
        &["--stage", "web=agent"],
    );
    let url = srv.url("http");
    let a = answer(&p, "get");
    let want = [
        "status=200",
        "result=0",
        "message=No error",
        "type=text/plain",
        "charset=utf-8",
        "extra.n=7",
        "| method=GET",
        "| path=/echo?q=1",
        "| h:x-token=t1",
        "| h:user-agent=stage-test-ua",
    ];
    for w in want {
        assert!(has(&a, w), "{w:?} missing: {a:?}");
    }
    assert_eq!(field(&a, "url"), Some(format!("{url}/echo?q=1").as_str()));
    assert_eq!(field(&a, "effective_url"), field(&a, "url"));
    assert_eq!(field(&a, "redirect_url"), None, "no redirect: {a:?}");
    assert_eq!(field(&a, "length"), field(&a, "content_bytes"));
    let time: f64 = field(&a, "time").unwrap().parse().unwrap();
    assert!(time > 0.0 && time < 10.0, "{a:?}");
    // A URL string is a GET; without extra the answer has none.
    let b = answer(&p, "nil");
    assert!(
        has(&b, "status=200") && has(&b, "| path=/echo/plain"),
        "{b:?}"
    );
}

#[test]
fn redirects_are_followed_and_the_method_and_body_kept() {
    let (p, srv, _dir) = start(
        "agent-redirect",
        r#"
stage.signal("agent:got",
  { url = URL .. "/redirect/302/echo?a=1", extra = "r302" },
  { url = URL .. "/redirect/307/echo", data = "payload", extra = "r307" },
  { url = URL .. "/redirect/302/redirect/303/echo", data = "x=1", extra = "chain" })
"#,
        &[],
    );
    let url = srv.url("http");
    let a = answer(&p, "r302");
    assert!(has(&a, "status=200") && has(&a, "| method=GET"), "{a:?}");
    assert_eq!(
        field(&a, "url"),
        Some(format!("{url}/redirect/302/echo?a=1").as_str())
    );
    let target = format!("{url}/echo?a=1");
    assert_eq!(field(&a, "effective_url"), Some(target.as_str()), "{a:?}");
    assert_eq!(field(&a, "redirect_url"), Some(target.as_str()), "{a:?}");
    // 307 keeps the POST and its body.
    let b = answer(&p, "r307");
    assert!(
        has(&b, "| method=POST") && has(&b, "| body=payload"),
        "{b:?}"
    );
    // So do 302 and 303, as in the original (curl's CURL_REDIR_POST_ALL).
    let c = answer(&p, "chain");
    assert!(has(&c, "| method=POST") && has(&c, "| body=x=1"), "{c:?}");
    assert_eq!(
        field(&c, "effective_url"),
        Some(format!("{url}/echo").as_str())
    );
}

#[test]
fn post_bodies_string_form_and_json_one_answer_per_value() {
    let (p, _srv, _dir) = start(
        "agent-post",
        r#"
stage.signal("agent:got",
  { url = URL .. "/echo", data = "raw text", header = { ["Content-Type"] = "text/plain" },
    extra = "str" },
  { url = URL .. "/echo", data = { name = "a b&c", n = 5 }, extra = "form" },
  { url = URL .. "/echo", data = { pos = { x = 1 } }, extra = "nested" },
  { url = URL .. "/echo", method = "PUT", data = { list = { 1, 2 }, ok = true },
    header = { ["Content-Type"] = "application/json" }, extra = "json" })
"#,
        &[],
    );
    let s = answer(&p, "str");
    assert!(
        has(&s, "| method=POST") && has(&s, "| body=raw text"),
        "{s:?}"
    );
    assert!(has(&s, "| h:content-type=text/plain"), "{s:?}");
    let f = answer(&p, "form");
    assert!(
        has(&f, "| body=name=a%20b%26c&n=5") || has(&f, "| body=n=5&name=a%20b%26c"),
        "{f:?}"
    );
    assert!(
        has(&f, "| h:content-type=application/x-www-form-urlencoded"),
        "{f:?}"
    );
    let n = answer(&p, "nested");
    assert!(has(&n, "| body=pos=x-1"), "{n:?}");
    let j = answer(&p, "json");
    assert!(has(&j, "| method=PUT"), "{j:?}");
    assert!(
        has(&j, r#"| body={"list":[1,2],"ok":true}"#)
            || has(&j, r#"| body={"ok":true,"list":[1,2]}"#),
        "{j:?}"
    );
}

#[test]
fn timeouts_and_transport_failures_are_error_answers() {
    let dead = common::free_port();
    let (p, _srv, _dir) = start(
        "agent-fail",
        &format!(
            r#"
stage.signal("agent:got",
  {{ url = URL .. "/sleep/3000", timeout = 300, extra = "slow" }},
  {{ url = URL .. "/sleep/3000", extra = "default" }},
  {{ url = "http://127.0.0.1:{dead}/", extra = "refused" }},
  {{ url = "ftp://127.0.0.1/", extra = "ftp" }},
  {{ header = {{}}, extra = "nourl" }},
  {{ url = URL .. "/big/200000", extra = "large" }})
"#
        ),
        &["--agent-max-body", "100000", "--agent-timeout", "400"],
    );
    let slow = answer(&p, "slow");
    assert!(
        has(&slow, "status=0") && has(&slow, "result=28"),
        "{slow:?}"
    );
    assert!(message_has(&slow, "timed out"), "{slow:?}");
    let time: f64 = field(&slow, "time").unwrap().parse().unwrap();
    assert!(
        (0.29..2.0).contains(&time),
        "the 300 ms timeout took {time} s"
    );
    // Without its own timeout a request has --agent-timeout.
    let default = answer(&p, "default");
    assert!(has(&default, "result=28"), "{default:?}");
    assert!(message_has(&default, "400 ms"), "{default:?}");
    let refused = answer(&p, "refused");
    assert!(
        has(&refused, "status=0") && has(&refused, "result=7"),
        "{refused:?}"
    );
    assert!(message_has(&refused, "refused"), "{refused:?}");
    assert!(has(&answer(&p, "ftp"), "result=1"));
    let nourl = answer(&p, "nourl");
    assert!(
        has(&nourl, "result=3") && has(&nourl, "message=the request has no url"),
        "{nourl:?}"
    );
    let large = answer(&p, "large");
    assert!(
        has(&large, "result=63") && has(&large, "status=200"),
        "{large:?}"
    );
    assert!(message_has(&large, "--agent-max-body"), "{large:?}");
}

#[test]
fn status_cookies_gzip_and_extra_in_the_answer() {
    let (p, srv, _dir) = start(
        "agent-fields",
        r#"
stage.signal("agent:got", { url = URL .. "/missing", extra = "missing" },
                          { url = URL .. "/cookie", extra = "cookie" })
stage.waitfor("gz", function(r)
  print("GZ", r.status, r.data.result, r.data.type, r.data.charset, r.data.length,
        r.data.content == string.rep("hello gzip world; ", 200))
end)
stage.signal("agent:gz", URL .. "/gzip")
"#,
        &[],
    );
    let url = srv.url("http");
    // An HTTP error status is an answer like any other: result 0, the body as content.
    let m = answer(&p, "missing");
    assert!(
        has(&m, "status=404") && has(&m, "result=0") && has(&m, "| no such page"),
        "{m:?}"
    );
    let c = answer(&p, "cookie");
    assert!(
        has(&c, "cookie=session=abc; Path=/") && has(&c, "cookie=theme=dark"),
        "{c:?}"
    );
    // The cookies set by the redirect go along to where it leads.
    assert!(has(&c, "| h:cookie=session=abc; theme=dark"), "{c:?}");
    assert_eq!(
        field(&c, "redirect_url"),
        Some(format!("{url}/echo").as_str())
    );
    let gz = p.wait_out("GZ\t", WAIT);
    let len = server::GZIP_TEXT.len() * 200;
    assert_eq!(
        gz,
        format!("GZ\t200\t0\ttext/plain\tiso-8859-1\t{len}\ttrue")
    );
}

#[test]
fn a_10_mb_body_arrives_intact() {
    const SIZE: usize = 10 << 20;
    let (p, _srv, _dir) = start(
        "agent-big",
        &format!(
            r#"
stage.waitfor("big", function(r)
  local c = r.data.content
  local s = 0
  for i = 1, #c, 997 do s = (s * 31 + c:byte(i)) % 1000000007 end
  print("BIG", r.status, r.data.result, r.data.type, r.data.length, #c, s)
end)
stage.signal("agent:big", URL .. "/big/{SIZE}")
"#
        ),
        &[],
    );
    let mut sum: u64 = 0;
    for i in (0..SIZE).step_by(997) {
        sum = (sum * 31 + u64::from(server::big_byte(i))) % 1_000_000_007;
    }
    let line = p.wait_out("BIG\t", WAIT);
    assert_eq!(
        line,
        format!("BIG\t200\t0\tapplication/octet-stream\t{SIZE}\t{SIZE}\t{sum}")
    );
}

#[test]
fn a_full_queue_answers_with_an_error() {
    // One thread, one waiting place: of four slow requests sent at once, some are refused.
    let (p, _srv, _dir) = start(
        "agent-queue",
        r#"
local function slow(tag) return { url = URL .. "/sleep/1000", timeout = 5000, extra = tag } end
stage.signal("agent:got", slow("q1"), slow("q2"), slow("q3"), slow("q4"))
"#,
        &["--agent-threads", "1", "--agent-queue", "1"],
    );
    let answers: Vec<Vec<String>> = ["q1", "q2", "q3", "q4"]
        .iter()
        .map(|t| answer(&p, t))
        .collect();
    let refused = answers.iter().filter(|a| has(a, "result=89")).count();
    let served = answers.iter().filter(|a| has(a, "status=200")).count();
    assert!(refused >= 1 && served >= 1, "{answers:?}");
    assert_eq!(refused + served, 4, "{answers:?}");
    let full = answers.iter().find(|a| has(a, "result=89")).unwrap();
    assert!(message_has(full, "queue is full"), "{full:?}");
    // The service thread answered the refused ones while the pool's thread waited on q1.
    let out = p.stdout();
    let at = |line: &str| out.iter().position(|l| l == line).unwrap();
    let first_refused = ["q2", "q3", "q4"]
        .iter()
        .zip(&answers[1..])
        .filter(|(_, a)| has(a, "result=89"))
        .map(|(t, _)| at(&format!("{t} END")))
        .min()
        .unwrap();
    assert!(first_refused < at("q1 END"), "{out:?}");
}

#[test]
fn https_trusts_the_agent_ca_and_names_an_untrusted_certificate() {
    let dir = Scratch::new("agent-tls");
    let (tls, ca) = server::tls_files(&dir.dir);
    let srv = Server::start(Some(tls));
    let script = r#"stage.signal("agent:got", { url = URL .. "/echo", extra = "tls" })"#;
    let ca = ca.to_str().unwrap();
    let trusted = node(&dir, &srv.url("https"), script, &["--agent-ca", ca]);
    let a = answer(&trusted, "tls");
    assert!(
        has(&a, "status=200") && has(&a, "result=0") && has(&a, "| method=GET"),
        "{a:?}"
    );
    let untrusted = node(&dir, &srv.url("https"), script, &[]);
    let b = answer(&untrusted, "tls");
    assert!(has(&b, "status=0") && has(&b, "result=60"), "{b:?}");
    assert!(message_has(&b, "certificate"), "{b:?}");
    // A CA file that is not one stops the node at start-up.
    dir.write("bad.pem", "no certificate here\n");
    let mut bad = node(&dir, &srv.url("https"), script, &["--agent-ca", "bad.pem"]);
    assert!(
        bad.wait_exit(WAIT).is_some_and(|s| !s.success()),
        "{}",
        bad.dump()
    );
    bad.wait_err("no PEM certificate", WAIT);
}

#[test]
fn answers_cross_the_cluster_and_settle_the_request() {
    let srv = Server::start(None);
    let dir = Scratch::new("agent-cluster");
    dir.write(
        "drv.lua",
        &format!(
            r#"local URL = {:?}
stage.waitfor("got", function(r) print("GOT", r.status, r.data.content:match("method=%u+")) end)
stage.waitfor("big", function(r) print("BIG", r.status, r.data.result, r.data.message) end)
stage.waitfor("fail", function(err) print("FAIL", err) end)
stage.signal("agent:x=got!fail", URL .. "/echo")
stage.signal("agent:y=big!fail", URL .. "/big/300000")
stage.addtask(1500, function() print("DONE"); return -1 end)
"#,
            srv.url("http")
        ),
    );
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    // Each node links to the router; the agent's frames are capped.
    let linked = |name: &str, flags: &str| {
        let mut args = vec!["--router", addr.as_str()];
        args.extend(flags.split_whitespace());
        Proc::node(name, &args, &dir.dir)
    };
    let _agent = linked("agent", "--stage agent=curl --id 2 --max-frame 200000");
    router.wait_err("registered agent:2", WAIT);
    let drv = linked("drv", "--stage drv=drv.lua --id 1 --deadline 1000");
    drv.wait_out("DONE", WAIT);
    let out = drv.stdout();
    assert!(
        out.contains(&"GOT\t200\tmethod=GET".to_owned()),
        "{}",
        drv.dump()
    );
    assert!(!out.iter().any(|l| l.starts_with("FAIL")), "{}", drv.dump());
    // An answer too large for --max-frame comes as an error answer without the body.
    let big = drv.wait_out("BIG\t", WAIT);
    assert!(
        big.starts_with("BIG\t200\t63\t") && big.contains("--max-frame"),
        "{big}"
    );
}

/// An answer takes no answer back: a callback that returns something (here a URL) does not
/// send it to the agent as a new request, so answers never bounce between the two.
#[test]
fn a_callback_returning_a_value_does_not_start_a_new_request() {
    let (p, _srv, _dir) = start(
        "agent-bounce",
        r#"
local n = 0
stage.waitfor("bounce", function(r)
  n = n + 1
  print("STATUS", r.status)
  return URL .. "/echo"
end)
stage.waitfor("again", function(r)
  print("REPLY", pcall(stage.signal, nil, URL .. "/echo"))
end)
stage.signal("agent:bounce", URL .. "/echo")
stage.signal("agent:again", URL .. "/echo")
stage.addtask(1500, function() print("BOUNCES", n); return -1 end)
"#,
        &[],
    );
    p.wait_out("STATUS\t200", WAIT);
    let reply = p.wait_out("REPLY\t", WAIT);
    assert!(
        reply.starts_with("REPLY\tfalse\t") && reply.contains("takes no answer"),
        "{reply}"
    );
    assert_eq!(p.wait_out("BOUNCES", WAIT), "BOUNCES\t1");
}
