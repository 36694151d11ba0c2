//! Hot reload of a stage's main script (stage-spec §3.3): the node re-checks scripts every
//! second and re-runs a changed main script between two messages, so a stream of signals goes
//! on without losing one, and a version that does not compile never replaces the running one.

mod common;
use common::{rewrite, Proc, Scratch, WAIT};
use std::time::{Duration, Instant};

/// The receiver, version `tag`. Its counters live in a per-VM shared global (`_SANDBOX[""]`),
/// so they survive the re-run of the main script; the locals of the old chunk do not.
fn receiver(tag: &str) -> String {
    r#"
_SANDBOX[""] = { "RX" }
RX = RX or { count = 0, max = 0, last = 0, dup = 0, ooo = 0, seen = {}, by = {} }
local rx, TAG = RX, "@TAG@"
stage.waitfor("m", function(seq)
  if rx.seen[seq] then rx.dup = rx.dup + 1 else rx.seen[seq] = true end
  if seq ~= rx.last + 1 then rx.ooo = rx.ooo + 1 end
  rx.last = seq
  if seq > rx.max then rx.max = seq end
  rx.count = rx.count + 1
  rx.by[TAG] = (rx.by[TAG] or 0) + 1
  if rx.count % 1000 == 0 then print("RX", TAG, rx.count) end
end)
stage.waitfor("end", function(total)
  local missing = 0
  for i = 1, total do if not rx.seen[i] then missing = missing + 1 end end
  print("TOTAL", TAG, rx.count, rx.max, missing, rx.dup, rx.ooo, rx.by.v1 or 0, rx.by.v2 or 0)
end)
print("LOADED", TAG)
"#
    .replace("@TAG@", tag)
}

/// 10,000 signals a second, paced by the wall clock (each tick sends what is due since the
/// start), until 30,000, then `end`.
const SENDER: &str = r#"
local seq, N, RATE = 0, 30000, 10000
local t0 = thread.tick
stage.addtask(5, function()
  local due = math.min(N, math.floor((thread.tick - t0) * RATE))
  while seq < due do
    seq = seq + 1
    stage.signal("rx:m", seq)
  end
  if seq >= N then
    stage.signal("rx:end", N)
    print("TX DONE", seq)
    return -1
  end
end)
"#;

#[test]
fn a_reload_under_a_10000_msg_per_s_signal_stream_loses_no_message() {
    let dir = Scratch::new("reload-stream");
    let rx = dir.write("rx.lua", &receiver("v1"));
    dir.write("tx.lua", SENDER);
    let node = Proc::node(
        "reload-stream",
        &["--stage", "rx=rx.lua", "--stage", "tx=tx.lua"],
        &dir.dir,
    );
    node.wait_out("LOADED\tv1", WAIT);
    let started = Instant::now();
    // Reload early in the stream (about 0.2 s into its 3 s).
    node.wait_count("RX\tv1", 2, WAIT);
    rewrite(&rx, &receiver("v2"));
    node.wait_err("stage rx: reloading rx.lua", WAIT);
    node.wait_out("LOADED\tv2", WAIT);
    node.wait_out("TX DONE\t30000", Duration::from_secs(20));
    let streamed = started.elapsed();
    let total = node.wait_out("TOTAL", Duration::from_secs(20));
    eprintln!("stream of 30000 signals took {streamed:?}; {total}");

    let fields: Vec<&str> = total.split('\t').collect();
    let [_, tag, count, max, missing, dup, ooo, v1, v2] = fields[..] else {
        panic!("bad TOTAL line {total:?}\n{}", node.dump());
    };
    let n = |s: &str| s.parse::<u64>().expect("a number");
    assert_eq!(tag, "v2", "{}", node.dump());
    assert_eq!(
        (n(count), n(max), n(missing), n(dup)),
        (30000, 30000, 0, 0),
        "every sequence number exactly once: {total}"
    );
    assert_eq!(n(ooo), 0, "in order: {total}");
    assert!(n(v2) > 0, "v2 handled messages after the reload: {total}");
    assert_eq!(n(v1) + n(v2), 30000, "{total}");

    // The reload happened during the stream, and once v2 ran, v1 never ran again.
    let out = node.stdout();
    let at = |line: &str| out.iter().position(|l| l.starts_with(line));
    assert!(
        at("LOADED\tv2") < at("TX DONE"),
        "reload after the stream\n{}",
        node.dump()
    );
    let first_v2 = at("RX\tv2").expect("an RX v2 line");
    assert!(
        !out[first_v2..].iter().any(|l| l.starts_with("RX\tv1")),
        "{}",
        node.dump()
    );
    assert_eq!(
        node.stderr()
            .iter()
            .filter(|l| l.contains("reloading"))
            .count(),
        1,
        "{}",
        node.dump()
    );
}

#[test]
fn a_reload_to_a_file_with_a_syntax_error_keeps_the_old_behaviour_and_logs_the_compile_error() {
    let dir = Scratch::new("reload-broken");
    let version = |tag: &str| {
        format!(
            "stage.waitfor(\"m\", function(seq) print(\"H\", \"{tag}\", seq) end)\n\
             print(\"LOADED\", \"{tag}\")\n"
        )
    };
    let rx = dir.write("rx.lua", &version("v1"));
    dir.write(
        "tx.lua",
        r#"
local seq = 0
stage.addtask(20, function() seq = seq + 1; stage.signal("rx:m", seq) end)
"#,
    );
    let node = Proc::node(
        "reload-broken",
        &["--stage", "rx=rx.lua", "--stage", "tx=tx.lua"],
        &dir.dir,
    );
    node.wait_out("LOADED\tv1", WAIT);
    node.wait_out("H\tv1\t3", WAIT);

    // Missing ')' at the end: does not compile.
    rewrite(
        &rx,
        "stage.waitfor(\"m\", function(seq) print(\"H\", \"broken\", seq) end\n\
         print(\"LOADED\", \"broken\")\n",
    );
    let warn = node.wait_err("script rx.lua:", WAIT);
    assert!(
        warn.contains("WARN") && warn.contains("rx.lua:2:") && warn.contains("')' expected"),
        "{warn}"
    );
    // The old version keeps handling the stream.
    let handled = node.wait_count("H\tv1", 1, WAIT).len();
    node.wait_count("H\tv1", handled + 5, WAIT);
    assert!(
        !node.stderr().iter().any(|l| l.contains("reloading")),
        "{}",
        node.dump()
    );

    // Fixed: the new version takes over.
    rewrite(&rx, &version("v2"));
    node.wait_err("stage rx: reloading rx.lua", WAIT);
    node.wait_out("LOADED\tv2", WAIT);
    let first = node.wait_out("H\tv2", WAIT);
    let first: u64 = first.rsplit('\t').next().unwrap().parse().unwrap();
    node.wait_out(&format!("H\tv2\t{}", first + 3), WAIT);

    let out = node.stdout();
    assert!(!out.iter().any(|l| l.contains("broken")), "{}", node.dump());
    // No message lost or handled twice across both changes, and v1 is gone once v2 ran.
    let seqs: Vec<(String, u64)> = out
        .iter()
        .filter_map(|l| {
            let mut f = l.strip_prefix("H\t")?.split('\t');
            Some((f.next()?.to_owned(), f.next()?.parse().ok()?))
        })
        .collect();
    for (i, (_, seq)) in seqs.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "{}", node.dump());
    }
    let v2_from = seqs.iter().position(|(tag, _)| tag == "v2").unwrap();
    assert!(
        seqs[v2_from..].iter().all(|(tag, _)| tag == "v2"),
        "{}",
        node.dump()
    );
}
