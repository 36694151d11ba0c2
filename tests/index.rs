//! The `index` service (stage-spec §9.3; seed 001 "index로 메시지 전달"), hosted with
//! `--stage rank=index` on its own node and driven by Lua stages on another node through a
//! router: every request form and command, a long random run checked against a model, and
//! its files surviving `kill -9`.

mod common;
use common::{Proc, Scratch, WAIT};

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

/// `dump(v)`: a value as one line, table keys sorted (integers first), strings quoted.
const DUMP: &str = r#"
local function dump(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    local name = type(k) == "number" and ("[" .. k .. "]") or k
    parts[#parts + 1] = name .. "=" .. dump(v[k])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
"#;

/// A router and a node hosting `rank=index` (instance 2) in `dir`.
fn start_index(dir: &Scratch, tag: &str) -> (Proc, String, Proc) {
    let (router, addr) = Proc::router(&format!("router-{tag}"), &[], &dir.dir);
    let index = Proc::node(
        &format!("index-{tag}"),
        &["--router", &addr, "--stage", "rank=index", "--id", "2"],
        &dir.dir,
    );
    router.wait_err("registered rank:2", WAIT);
    (router, addr, index)
}

/// A node running `script` as stage `drv` (instance 1).
fn driver(dir: &Scratch, addr: &str, script: &str) -> Proc {
    Proc::node(
        &format!("driver-{script}"),
        &[
            "--router",
            addr,
            "--stage",
            &format!("drv={script}"),
            "--id",
            "1",
        ],
        &dir.dir,
    )
}

/// Every request form of stage-spec §9.3 and the seed: the batch form with `#SEQ` ordering
/// (index names with `.` need no `#SEQ`), the direct form with and without `=cb`, each
/// command, tiers `/1`..`/4` and `/`, integer and string scores, several scores per tier,
/// value replacement, `range` by score, by `{ID, delta, count}` and centred on ID, errors
/// (the service answers them and keeps serving), several values in one message, and reads of
/// an index that does not exist (which create no file).
#[test]
fn every_request_form_answers_as_specified() {
    let dir = Scratch::new("index-forms");
    dir.write(
        "forms.lua",
        &format!(
            "{DUMP}{}",
            r##"
local step = 0
local steps
local function next_step()
  step = step + 1
  if steps[step] then steps[step]() else print("DONE") end
end
-- Batch answers: one line per command key.
stage.waitfor("r", function(r)
  for k, v in pairs(r) do print("R" .. step, k, dump(v)) end
  next_step()
end)
-- Direct answers (and batches of several tables): the values as sent.
stage.waitfor("d", function(a, b)
  print("R" .. step, dump(a), dump(b))
  next_step()
end)
steps = {
  function() stage.signal("rank:r", {
    ["#1.set:t1.x"] = { K1 = { i = 10, v = "one" } },
    ["#2.set:t1.x"] = { K2 = { i = 100, v = { name = "two" } } },
    ["#3.s?t1.x"] = { K3 = { i = 50 } },
    ["#4.get:t1.x"] = { "K1", "K3", "nobody" },
    ["#5.total:t1.x"] = true,
    ["#6.total:t1.x/"] = true,
    ["#7.total:t1.x/2"] = true,
    ["set:t1.x/2"] = { K1 = { i = { 7, 3 } } },
  }) end,
  function() stage.signal("rank:get?t1.x/2=d", "K1") end,
  function() stage.signal("rank:set?t1.x", { K4 = { i = 75 } }); next_step() end,
  function() stage.signal("rank:forEach?t1.x=d", { 1, 10 }) end,
  function() stage.signal("rank:range?t1.x=d", { 75, 2 }) end,
  function() stage.signal("rank:range?t1.x=d", "K3", 1, 2) end,
  function() stage.signal("rank:range?t1.x=d", { "K3", 1 }) end,
  function() stage.signal("rank:r?t1.x/1=d", { "K2", 5, 1 }) end,
  function() stage.signal("rank:range?t1.x=d", { 60 }) end,
  function() stage.signal("rank:r", {
    ["#1.set:t1.x/3"] = { K1 = { i = "cherry" } },
    ["#2.set:t1.x/"] = { K5 = { I = { [3] = "banana", [4] = { 1, 2 } } } },
    ["#3.get:t1.x/"] = "K5",
    ["#4.forEach:t1.x/3"] = { 1, 5 },
    ["#5.set:t1.x/3"] = { K3 = { i = 5 } },
    ["#6.range:t1.x/3"] = { "c", 5 },
    ["#7.get:t1.x/4"] = { "K5" },
  }) end,
  function() stage.signal("rank:r", {
    ["#1.set:t1.x"] = { K1 = { v = { 1, 2, 3 } } },
    ["#2.set:t1.x"] = { K1 = { i = 10 } },
    ["#3.get:t1.x"] = "K1",
    ["#4.set:t1.x"] = { K3 = { i = false } },
    ["#5.total:t1.x"] = 0,
    ["#6.del:t1.x/2"] = { "K1", "K2" },
    ["#7.del:t1.x/"] = "K4",
    ["#8.get:t1.x"] = { "K4" },
    ["#9.total:t1.x/"] = 0,
    ["#10.forEach:t1.x"] = { 1, 10 },
    ["#11.del:t1.x"] = { "K2" },
    ["#12.get:t1.x"] = "K2",
  }) end,
  function() stage.signal("rank:r", {
    ["#1.bogus:t1.x"] = 1,
    ["#2.set:t1.x"] = { K9 = { i = 1, x = 1 } },
    ["#3.set:t1.x"] = { K9 = 5 },
    ["#4.range:t1.x/"] = { 1 },
    ["#5.get:t1.x/9"] = "K1",
    ["#6.set:t1.x"] = { K9 = { i = 1.5 } },
    ["#7.set:t1.x/"] = { K9 = { i = 1 } },
    ["#8.range:t1.x"] = { "K9", 1, 2 },
    ["#9.forEach:t1.x"] = { 1, -1 },
    ["#10.total:t1.x"] = 1,
  }) end,
  function() stage.signal("rank:range?t1.x=d", { "K9", 1, 2 }) end,
  function() stage.signal("rank:r", 5) end,
  function() stage.signal("rank:d", { ["get:t1.x"] = "K1" }, { ["total:t1.x/"] = 0 }) end,
  function() stage.signal("rank:get?nothing.here=d", "x") end,
  function() stage.signal("rank:total?t1.x/4=d") end,
  function() stage.signal("rank:get?t1.x/4=d", "K5", "K1") end,
}
next_step()
"##
        ),
    );
    let (_router, addr, _index) = start_index(&dir, "forms");
    let drv = driver(&dir, &addr, "forms.lua");
    drv.wait_out("DONE", WAIT);
    let got: BTreeSet<String> = drv
        .stdout()
        .into_iter()
        .filter(|l| l.starts_with('R'))
        .collect();
    let expected: BTreeSet<String> = [
        // 1: batch, #SEQ order, then the key without #SEQ (tier 2 was still empty at #7).
        "R1\t#1.set:t1.x\t{K1=1}",
        "R1\t#2.set:t1.x\t{K2=1}",
        "R1\t#3.s?t1.x\t{K3=2}",
        r#"R1	#4.get:t1.x	{K1={I={[1]={d=3,i=10}},v="one"},K3={I={[1]={d=2,i=50}}},nobody={}}"#,
        "R1\t#5.total:t1.x\t3",
        "R1\t#6.total:t1.x/\t3",
        "R1\t#7.total:t1.x/2\t0",
        "R1\tset:t1.x/2\t{K1=2}",
        // 2: direct with =cb, several scores in one tier.
        r#"R2	{K1={I={[1]={d=1,i=7},[2]={d=2,i=3}},v="one"}}	nil"#,
        // 3 sent a direct set without =cb (no answer); 4 sees it.
        r#"R4	{[1]={d=1,i=100,k="K2",v={name="two"}},[2]={d=2,i=75,k="K4"},[3]={d=3,i=50,k="K3"},[4]={d=4,i=10,k="K1",v="one"}}	nil"#,
        // range {score, count}; {ID, delta, count} (as several values); centred; clamped; count 1.
        r#"R5	{[2]={d=2,i=75,k="K4"},[3]={d=3,i=50,k="K3"}}	nil"#,
        r#"R6	{[2]={d=2,i=75,k="K4"},[3]={d=3,i=50,k="K3"}}	nil"#,
        r#"R7	{[2]={d=2,i=75,k="K4"},[3]={d=3,i=50,k="K3"},[4]={d=4,i=10,k="K1",v="one"}}	nil"#,
        r#"R8	{[1]={d=1,i=100,k="K2",v={name="two"}}}	nil"#,
        r#"R9	{[3]={d=3,i=50,k="K3"}}	nil"#,
        // 10: strings, all tiers, tier 4; integers rank before strings.
        "R10\t#1.set:t1.x/3\t{K1=1}",
        "R10\t#2.set:t1.x/\t{K5={[3]=1,[4]=1}}",
        r#"R10	#3.get:t1.x/	{K5={I={[1]={},[2]={},[3]={[1]="banana"},[4]={[1]=2,[2]=1}}}}"#,
        r#"R10	#4.forEach:t1.x/3	{[1]={d=1,i="banana",k="K5"},[2]={d=2,i="cherry",k="K1",v="one"}}"#,
        "R10\t#5.set:t1.x/3\t{K3=1}",
        r#"R10	#6.range:t1.x/3	{[3]={d=3,i="cherry",k="K1",v="one"}}"#,
        "R10\t#7.get:t1.x/4\t{K5={I={[1]={d=1,i=2},[2]={d=2,i=1}}}}",
        // 11: value replacement, unchanged score, removals, del per tier and whole.
        "R11\t#1.set:t1.x\t{K1=-1}",
        "R11\t#2.set:t1.x\t{K1=0}",
        "R11\t#3.get:t1.x\t{K1={I={[1]={d=4,i=10}},v={[1]=1,[2]=2,[3]=3}}}",
        "R11\t#4.set:t1.x\t{K3=-1}",
        "R11\t#5.total:t1.x\t3",
        "R11\t#6.del:t1.x/2\t{K1=true,K2=false}",
        "R11\t#7.del:t1.x/\t{K4=true}",
        "R11\t#8.get:t1.x\t{K4={}}",
        "R11\t#9.total:t1.x/\t4",
        r#"R11	#10.forEach:t1.x	{[1]={d=1,i=100,k="K2",v={name="two"}},[2]={d=2,i=10,k="K1",v={[1]=1,[2]=2,[3]=3}}}"#,
        "R11\t#11.del:t1.x\t{K2=true}",
        r#"R11	#12.get:t1.x	{K2={I={},v={name="two"}}}"#,
        // 12: errors, each answered under its key; the rest runs.
        r#"R12	#1.bogus:t1.x	{error="unknown command 'bogus' (set, get, del, range, forEach, total)"}"#,
        r#"R12	#2.set:t1.x	{error="set 'K9': unknown field 'x' (i, v, I)"}"#,
        r#"R12	#3.set:t1.x	{error="set 'K9': takes { i = score, v = value, I = { [tier] = score } }, not an integer"}"#,
        r#"R12	#4.range:t1.x/	{error="range needs one tier (/1../4), not all tiers"}"#,
        r#"R12	#5.get:t1.x/9	{error="bad tier '/9' (1..4, or '/' for all tiers)"}"#,
        r#"R12	#6.set:t1.x	{error="set 'K9': a score is an integer or a string, not a fractional number"}"#,
        r#"R12	#7.set:t1.x/	{error="set 'K9': i needs one tier (set:NAME/2); for all tiers use I = { [tier] = score }"}"#,
        r#"R12	#8.range:t1.x	{error="range: 'K9' has no score in tier 1"}"#,
        r#"R12	#9.forEach:t1.x	{error="count -1 is negative"}"#,
        "R12\t#10.total:t1.x\t1",
        // 13: a direct error is cb(nil, why); 14: a batch that is no table.
        r#"R13	nil	"range: 'K9' has no score in tier 1""#,
        r#"R14	error	"the batch form takes a table { [\"CMD:NAME\"] = argument }, not an integer""#,
        // 15: two tables, two answers; 16: an index that does not exist; 17: tier 4 total.
        r#"R15	{get:t1.x={K1={I={[1]={d=1,i=10}},v={[1]=1,[2]=2,[3]=3}}}}	{total:t1.x/=4}"#,
        "R16\t{x={}}\tnil",
        "R17\t2\tnil",
        // 18: several values are several IDs.
        "R18\t{K1={I={},v={[1]=1,[2]=2,[3]=3}},K5={I={[1]={d=1,i=2},[2]={d=2,i=1}}}}\tnil",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nunexpected {extra:#?}"
    );
    assert!(dir.dir.join("index/t1.x.idx").is_file());
    assert!(!dir.dir.join("index/nothing.here.idx").exists());
}

/// A score as the model ranks it (stage-spec §9.3: integers larger first, then strings in
/// byte order); ties rank by key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sc {
    I(i64),
    S(String),
}

impl Ord for Sc {
    fn cmp(&self, other: &Sc) -> Ordering {
        match (self, other) {
            (Sc::I(a), Sc::I(b)) => b.cmp(a),
            (Sc::I(_), Sc::S(_)) => Ordering::Less,
            (Sc::S(_), Sc::I(_)) => Ordering::Greater,
            (Sc::S(a), Sc::S(b)) => a.as_bytes().cmp(b.as_bytes()),
        }
    }
}

impl PartialOrd for Sc {
    fn partial_cmp(&self, other: &Sc) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Sc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sc::I(i) => write!(f, "{i}"),
            Sc::S(s) => f.write_str(s),
        }
    }
}

impl Sc {
    fn lua(&self) -> String {
        match self {
            Sc::I(i) => i.to_string(),
            Sc::S(s) => format!("{s:?}"),
        }
    }
}

#[derive(Default)]
struct Member {
    value: Option<i64>,
    scores: [Vec<Sc>; 4],
}

/// The brute-force model: members, and per tier a sorted vector of `(score, key)`.
#[derive(Default)]
struct Model {
    members: HashMap<String, Member>,
    tiers: [Vec<(Sc, String)>; 4],
}

impl Model {
    fn find(&self, t: usize, s: &Sc, key: &str) -> Result<usize, usize> {
        self.tiers[t].binary_search_by(|(x, k)| x.cmp(s).then_with(|| k.as_str().cmp(key)))
    }

    /// `set` of one tier: the distance as stage-spec §9.3 defines it.
    fn set(&mut self, key: &str, t: usize, given: Vec<Sc>) -> i64 {
        let old = self.members.entry(key.into()).or_default().scores[t].clone();
        let target = given
            .iter()
            .rev()
            .find(|s| !old.contains(s))
            .or(given.last())
            .cloned();
        let mut new = given;
        new.sort();
        new.dedup();
        if old == new {
            return 0;
        }
        for s in old.iter().filter(|s| !new.contains(s)) {
            let at = self.find(t, s, key).expect("model holds the old score");
            self.tiers[t].remove(at);
        }
        for s in new.iter().filter(|s| !old.contains(s)) {
            let at = self
                .find(t, s, key)
                .expect_err("model has no such score yet");
            self.tiers[t].insert(at, (s.clone(), key.into()));
        }
        self.members.get_mut(key).unwrap().scores[t] = new;
        target.map_or(-1, |s| self.find(t, &s, key).map_or(-1, |p| p as i64 + 1))
    }

    fn del_tier(&mut self, key: &str, t: usize) -> bool {
        let held = self
            .members
            .get(key)
            .is_some_and(|m| !m.scores[t].is_empty());
        if held {
            self.set(key, t, Vec::new());
        }
        held
    }

    fn del(&mut self, key: &str) -> bool {
        let Some(m) = self.members.get(key) else {
            return false;
        };
        for t in 0..4 {
            for s in m.scores[t].clone() {
                let at = self.find(t, &s, key).unwrap();
                self.tiers[t].remove(at);
            }
        }
        self.members.remove(key);
        true
    }
}

/// A deterministic generator (PCG-style LCG), so every run sends the same operations.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const KEYS: u64 = 1_500;
const OPS: usize = 100_000;
const BATCH: usize = 250;

/// One random operation: its batch entry (Lua source) and the result the model expects, as
/// the driver prints it.
fn random_op(rng: &mut Rng, model: &mut Model, seq: usize) -> (String, String) {
    let key = format!("k{}", rng.below(KEYS));
    let int = |rng: &mut Rng| Sc::I(rng.below(1_000) as i64 - 100);
    let roll = rng.below(100);
    let (cmd, arg, expect) = match roll {
        0..45 => {
            let s = int(rng);
            let arg = format!("{{{key}={{i={}}}}}", s.lua());
            ("s:big", arg, model.set(&key, 0, vec![s]).to_string())
        }
        45..55 => {
            let (a, b) = (int(rng), int(rng));
            let arg = format!("{{{key}={{i={{{},{}}}}}}}", a.lua(), b.lua());
            ("s:big/2", arg, model.set(&key, 1, vec![a, b]).to_string())
        }
        55..65 => {
            let s = Sc::S(format!("s{:03}", rng.below(300)));
            let arg = format!("{{{key}={{i={}}}}}", s.lua());
            ("s:big/3", arg, model.set(&key, 2, vec![s]).to_string())
        }
        65..70 => {
            let (a, b) = (int(rng), int(rng));
            let arg = format!("{{{key}={{I={{[1]={},[4]={}}}}}}}", a.lua(), b.lua());
            let d1 = model.set(&key, 0, vec![a]);
            let d4 = model.set(&key, 3, vec![b]);
            ("s:big/", arg, format!("1:{d1},4:{d4}"))
        }
        70..75 => {
            let v = rng.below(1_000_000) as i64;
            model.members.entry(key.clone()).or_default().value = Some(v);
            ("s:big", format!("{{{key}={{v={v}}}}}"), "-1".into())
        }
        75..87 => (
            "d:big",
            format!("{{\"{key}\"}}"),
            model.del_tier(&key, 0).to_string(),
        ),
        87..95 => ("d:big/", format!("\"{key}\""), model.del(&key).to_string()),
        _ => {
            let arg = format!("{{{key}={{i=false}}}}");
            ("s:big", arg, model.set(&key, 0, Vec::new()).to_string())
        }
    };
    (format!("[\"#{seq}.{cmd}\"]={arg}"), expect)
}

/// The driver: sends the batches of `ops.lua` one after the other (each when the previous
/// one is answered), printing each answer in `#SEQ` order; then prints the totals, every
/// entry of every tier (`forEach`, pages of 1000) and `get` of every key in tier 1 and `/`.
const RANDOM_DRIVER: &str = r##"
local ops = stage.load("ops")
local batch, tier, start, from = 0, 1, 1, 0
local send, page, gets
local function enc(r)
  if r.error then return "ERR:" .. r.error end
  for _, x in pairs(r) do
    if type(x) ~= "table" then return tostring(x) end
    local t = {}
    for n = 1, 4 do if x[n] then t[#t + 1] = n .. ":" .. x[n] end end
    return table.concat(t, ",")
  end
  return "EMPTY"
end
stage.waitfor("w", function(r)
  local out = {}
  for k, v in pairs(r) do out[tonumber(k:match("^#(%d+)%."))] = enc(v) end
  print("B" .. batch, table.concat(out, " "))
  send()
end)
send = function()
  batch = batch + 1
  if ops[batch] then
    stage.signal("rank:w", ops[batch])
  else
    stage.signal("rank:t", { ["#1.t:big/1"] = 0, ["#2.t:big/2"] = 0, ["#3.t:big/3"] = 0,
                             ["#4.t:big/4"] = 0, ["#5.t:big/"] = 0 })
  end
end
stage.waitfor("t", function(r)
  print("T", r["#1.t:big/1"], r["#2.t:big/2"], r["#3.t:big/3"], r["#4.t:big/4"], r["#5.t:big/"])
  page(1, 1)
end)
page = function(t, s)
  tier, start = t, s
  stage.signal("rank:forEach?big/" .. t .. "=e", { s, 1000 })
end
stage.waitfor("e", function(p)
  local n = 0
  for r = start, start + 999 do
    local e = p[r]
    if not e then break end
    n = n + 1
    print("E", tier, e.d, e.k, e.i, tostring(e.v))
  end
  if n == 1000 then page(tier, start + 1000)
  elseif tier < 4 then page(tier + 1, 1)
  else gets(0) end
end)
gets = function(f)
  from = f
  if from >= 1500 then print("DONE") return end
  local keys = {}
  for i = from, from + 499 do keys[#keys + 1] = "k" .. i end
  stage.signal("rank:g", { ["#1.get:big"] = keys, ["#2.get:big/"] = keys })
end
stage.waitfor("g", function(r)
  for k, x in pairs(r["#1.get:big"]) do
    if x.I == nil then print("G", k, "none") else
      local parts = {}
      for _, e in ipairs(x.I) do parts[#parts + 1] = e.d .. ":" .. tostring(e.i) end
      print("G", k, table.concat(parts, ","), tostring(x.v))
    end
  end
  for k, x in pairs(r["#2.get:big/"]) do
    if x.I then
      local tiers = {}
      for t = 1, 4 do tiers[t] = table.concat(x.I[t], ",") end
      print("A", k, table.concat(tiers, "|"))
    end
  end
  gets(from + 500)
end)
send()
"##;

/// stage-spec §9.3 at scale: 100,000 random `set`s and `del`s over 1,500 keys (integer and
/// string scores, several scores per tier, all-tier sets, values, tier and member deletes),
/// sent through a real node in batches of 250 commands ordered by `#SEQ`. Every answer (each
/// distance and deletion) matches a brute-force model as it goes; then every entry of every
/// tier (`forEach`), every member's ranks (`get`) and the totals match it.
#[test]
fn random_updates_agree_with_a_brute_force_model() {
    let dir = Scratch::new("index-random");
    let mut rng = Rng(2024);
    let mut model = Model::default();
    let mut lua = String::from("return {\n");
    let mut expected_batches = Vec::new();
    for b in 0..OPS / BATCH {
        lua.push('{');
        let mut results = Vec::new();
        for j in 1..=BATCH {
            let (entry, result) = random_op(&mut rng, &mut model, j);
            lua.push_str(&entry);
            lua.push(',');
            results.push(result);
        }
        lua.push_str("},\n");
        expected_batches.push(format!("B{}\t{}", b + 1, results.join(" ")));
    }
    lua.push_str("}\n");
    dir.write("ops.lua", &lua);
    dir.write("random.lua", RANDOM_DRIVER);

    let (_router, addr, _index) = start_index(&dir, "random");
    let drv = driver(&dir, &addr, "random.lua");
    drv.wait_out("DONE", Duration::from_secs(240));
    let out = drv.stdout();
    let with =
        |p: &str| -> Vec<String> { out.iter().filter(|l| l.starts_with(p)).cloned().collect() };

    let batches = with("B");
    assert_eq!(batches.len(), expected_batches.len());
    for (got, want) in batches.iter().zip(&expected_batches) {
        assert_eq!(got, want, "answers of a batch differ from the model");
    }

    let t = &model.tiers;
    let totals = format!(
        "T\t{}\t{}\t{}\t{}\t{}",
        t[0].len(),
        t[1].len(),
        t[2].len(),
        t[3].len(),
        model.members.len()
    );
    assert_eq!(with("T\t"), vec![totals]);

    let mut entries = Vec::new();
    for (tier, list) in t.iter().enumerate() {
        for (rank, (score, key)) in list.iter().enumerate() {
            let v = model.members[key]
                .value
                .map_or("nil".into(), |v| v.to_string());
            entries.push(format!(
                "E\t{}\t{}\t{key}\t{score}\t{v}",
                tier + 1,
                rank + 1
            ));
        }
    }
    assert_eq!(with("E\t"), entries, "forEach over the whole board");

    let mut gets = BTreeSet::new();
    let mut alls = BTreeSet::new();
    for k in 0..KEYS {
        let key = format!("k{k}");
        let Some(m) = model.members.get(&key) else {
            gets.insert(format!("G\t{key}\tnone"));
            continue;
        };
        let mut ranks = String::new();
        for s in &m.scores[0] {
            let r = model.find(0, s, &key).unwrap() + 1;
            let _ = write!(ranks, "{}{r}:{s}", if ranks.is_empty() { "" } else { "," });
        }
        let v = m.value.map_or("nil".into(), |v| v.to_string());
        gets.insert(format!("G\t{key}\t{ranks}\t{v}"));
        let tiers: Vec<String> = m
            .scores
            .iter()
            .map(|l| l.iter().map(Sc::to_string).collect::<Vec<_>>().join(","))
            .collect();
        alls.insert(format!("A\t{key}\t{}", tiers.join("|")));
    }
    assert_eq!(with("G\t").into_iter().collect::<BTreeSet<_>>(), gets);
    assert_eq!(with("A\t").into_iter().collect::<BTreeSet<_>>(), alls);
}

/// Sends batches of 50 `set`s to index `dur` one after the other, each when the previous one
/// is answered, and prints `ACK n` for each answer.
const WRITER: &str = r#"
local b = 0
local function send()
  local t = {}
  for j = 0, 49 do t["b" .. b .. "_" .. j] = { i = b * 100 + j, v = "v" .. b } end
  stage.signal("rank:w", { ["set:dur"] = t })
end
stage.waitfor("w", function(r)
  print("ACK", b)
  b = b + 1
  if b < 150 then send() end
end)
send()
"#;

/// Reads all of index `dur` (tier 1 in rank order, and the member count), adds the member
/// `after`, then prints `DONE`.
const READER: &str = r##"
stage.waitfor("q", function(r)
  print("TOTAL", r["#1.total:dur/"])
  for rank, e in pairs(r["#2.forEach:dur"]) do print("E", rank, e.k, e.i, e.v) end
  print("AFTER", r["#3.set:dur"].after)
  print("DONE")
end)
stage.signal("rank:q", { ["#1.total:dur/"] = 0, ["#2.forEach:dur"] = { 1, 10000 },
                         ["#3.set:dur"] = { after = { i = -1, v = "last" } } })
"##;

/// Checks what `READER` printed: every member of an answered batch (`acked` of them) is
/// there with its score and value, no member is damaged, ranks follow the scores, and
/// `after` (when already there) ranks last. Returns the member count and what the `set` of
/// `after` answered.
fn check_read(reader: &Proc, acked: usize) -> (usize, String) {
    let out = reader.stdout();
    let total: usize = out
        .iter()
        .find_map(|l| l.strip_prefix("TOTAL\t"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total\n{}", reader.dump()));
    let mut by_rank = Vec::new();
    for l in out.iter().filter(|l| l.starts_with("E\t")) {
        let f: Vec<&str> = l.split('\t').collect();
        let rank: usize = f[1].parse().unwrap();
        let score: i64 = f[3].parse().unwrap();
        if f[2] == "after" {
            assert_eq!((score, f[4]), (-1, "last"), "{l}");
        } else {
            let (b, j) = f[2][1..].split_once('_').expect("key b<batch>_<n>");
            let (b, j): (i64, i64) = (b.parse().unwrap(), j.parse().unwrap());
            assert_eq!(score, b * 100 + j, "{l}");
            assert_eq!(f[4], format!("v{b}"), "{l}");
        }
        by_rank.push((rank, score));
    }
    by_rank.sort();
    assert_eq!(by_rank.len(), total, "every member is listed once");
    for (i, w) in by_rank.windows(2).enumerate() {
        assert_eq!(w[0].0, i + 1);
        assert!(w[0].1 > w[1].1, "ranks follow scores: {w:?}");
    }
    let answered = by_rank
        .iter()
        .filter(|(_, s)| (0..acked as i64 * 100).contains(s))
        .count();
    assert_eq!(answered, acked * 50, "every answered set is there");
    let after = out
        .iter()
        .find_map(|l| l.strip_prefix("AFTER\t"))
        .unwrap_or_else(|| panic!("no AFTER\n{}", reader.dump()));
    (total, after.to_owned())
}

/// stage-spec §9.3 persistence: the node hosting the index is killed with SIGKILL while a
/// writer keeps sending; the file then also gets a torn frame at its end (a write cut short).
/// A new node on the same `--index-dir` cuts the torn tail, and has every answered change,
/// undamaged; what it then writes survives a clean stop and another start.
#[test]
fn answered_changes_survive_kill_9_and_a_torn_tail() {
    let dir = Scratch::new("index-kill");
    dir.write("writer.lua", WRITER);
    dir.write("reader.lua", READER);

    let (_router, addr, mut index) = start_index(&dir, "first");
    let writer = driver(&dir, &addr, "writer.lua");
    writer.wait_out("ACK\t20", WAIT);
    index.kill9();
    let acked = writer
        .stdout()
        .iter()
        .filter(|l| l.starts_with("ACK\t"))
        .count();
    drop(writer);
    drop(_router);

    let file = dir.dir.join("index/dur.idx");
    let mut bytes = std::fs::read(&file).expect("the index file");
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, b'x']);
    std::fs::write(&file, &bytes).unwrap();

    let (_router, addr, mut index) = start_index(&dir, "second");
    let reader = driver(&dir, &addr, "reader.lua");
    reader.wait_out("DONE", WAIT);
    let (total, after) = check_read(&reader, acked);
    assert!(
        total >= acked * 50,
        "{total} members, {acked} batches answered"
    );
    assert_eq!(after, (total + 1).to_string(), "`after` ranks last");
    index.wait_err("torn or damaged tail", WAIT);
    index.signal(libc::SIGTERM);
    assert!(index.wait_exit(WAIT).is_some_and(|s| s.success()));
    drop(reader);
    drop(_router);

    let (_router, addr, _index) = start_index(&dir, "third");
    let reader = driver(&dir, &addr, "reader.lua");
    reader.wait_out("DONE", WAIT);
    // `after` was kept: one member more, and setting it again changes nothing.
    assert_eq!(check_read(&reader, acked), (total + 1, "0".into()));
}
