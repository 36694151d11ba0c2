//! The commands of the index service (stage-spec §9.3): parsing a command key
//! `CMD(:|?)NAME[/TIER]` and running `set`, `get`, `del`, `range`, `forEach` and `total` on an
//! index with the message's values as argument. Results are BSON values as the Lua sender will
//! read them (rank-keyed tables use integer keys).

use bson::{Bson, Document};

use super::board::{encode_value, Board, TIERS};
use super::score::Score;
use super::store::Index;
use crate::service::values;

/// Most entries one `range` or `forEach` returns (a larger count is cut to this: page with
/// `forEach {start, count}`).
pub const MAX_ENTRIES: usize = 10_000;

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Set,
    Get,
    Del,
    Range,
    ForEach,
    Total,
}

/// Which tiers a command addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// One tier, 0-based (`/1` → 0).
    One(usize),
    /// Every tier (`/` or `/0`).
    All,
}

/// A parsed command key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub cmd: Cmd,
    pub name: &'a str,
    pub tier: Tier,
}

const NAMES: [(&str, Cmd); 6] = [
    ("set", Cmd::Set),
    ("get", Cmd::Get),
    ("del", Cmd::Del),
    ("range", Cmd::Range),
    ("foreach", Cmd::ForEach),
    ("total", Cmd::Total),
];

/// Parses `CMD(:|?)NAME[/TIER]`: `CMD` is a command name or its start (`s`, `set`,
/// `forEach`, any case); `TIER` is 1..4, or empty / 0 for all tiers; without `/` it is 1.
pub fn parse(spec: &str) -> Result<Command<'_>, String> {
    let (word, rest) = spec
        .split_once([':', '?'])
        .ok_or_else(|| format!("'{spec}' is not CMD:NAME[/TIER] (e.g. set:scores/2)"))?;
    let lower = word.to_ascii_lowercase();
    let cmd = NAMES
        .iter()
        .find(|(n, _)| !lower.is_empty() && n.starts_with(&lower))
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            format!("unknown command '{word}' (set, get, del, range, forEach, total)")
        })?;
    let (name, tier) = match rest.rsplit_once('/') {
        None => (rest, Tier::One(0)),
        Some((name, "" | "0")) => (name, Tier::All),
        Some((name, t)) => match t.parse::<usize>() {
            Ok(n @ 1..=TIERS) => (name, Tier::One(n - 1)),
            _ => return Err(format!("bad tier '/{t}' (1..4, or '/' for all tiers)")),
        },
    };
    if name.is_empty() {
        return Err(format!("'{spec}' names no index"));
    }
    Ok(Command { cmd, name, tier })
}

/// Runs a command that changes `index` (`set`, `del`).
pub fn write(index: &mut Index, c: &Command<'_>, args: &[Bson]) -> Result<Bson, String> {
    match c.cmd {
        Cmd::Set => set(index, c.tier, args),
        Cmd::Del => del(Some(index), c.tier, args),
        _ => read(index.board(), c, args),
    }
}

/// Runs a command on an index that has no file yet (nothing to change, nothing to find).
pub fn on_missing(c: &Command<'_>, args: &[Bson]) -> Result<Bson, String> {
    match c.cmd {
        Cmd::Del => del(None, c.tier, args),
        _ => read(&Board::default(), c, args),
    }
}

/// Runs a command that only reads (`get`, `range`, `forEach`, `total`).
pub fn read(board: &Board, c: &Command<'_>, args: &[Bson]) -> Result<Bson, String> {
    match c.cmd {
        Cmd::Get => get(board, c.tier, args),
        Cmd::Range => {
            let t = one_tier(c.tier, "range")?;
            let (start, count) = range_window(board, t, &list(args)?)?;
            Ok(entries(board, t, start, count))
        }
        Cmd::ForEach => {
            let t = one_tier(c.tier, "forEach")?;
            let l = list(args)?;
            let start = match l.first() {
                None | Some(Bson::Null) => 1,
                Some(v) => int_arg(v, "forEach start rank")?.max(1),
            };
            let count = count_arg(l.get(1))?;
            Ok(entries(board, t, start as usize - 1, count))
        }
        Cmd::Total => Ok(Bson::Int64(match c.tier {
            Tier::One(t) => board.tier_len(t),
            Tier::All => board.len(),
        } as i64)),
        Cmd::Set | Cmd::Del => Err("internal: a writing command on the read path".into()),
    }
}

/// What one member of a `set` asks for.
struct SetMember {
    key: String,
    value: Option<Box<[u8]>>,
    /// Per tier, the new scores (`None`: tier untouched).
    scores: [Option<Vec<Score>>; TIERS],
}

fn set(index: &mut Index, tier: Tier, args: &[Bson]) -> Result<Bson, String> {
    // Everything is checked before anything changes: a bad argument changes nothing.
    let mut members = Vec::new();
    for arg in args {
        for (key, spec) in members_of(arg)? {
            members.push(set_member(key, spec, tier)?);
        }
    }
    let mut out = Document::new();
    for m in members {
        let key = m.key.clone();
        let result = index.change(&key, |b| {
            // A member set with neither scores nor value exists all the same.
            b.create(&key);
            if let Some(v) = m.value {
                b.set_value(&key, v);
            }
            let mut distances = Document::new();
            let mut chosen = -1;
            for (t, scores) in m.scores.into_iter().enumerate() {
                let Some(scores) = scores else { continue };
                let d = b.set_scores(&key, t, scores);
                distances.insert(values::int_key(t as i64 + 1), d);
                if tier == Tier::One(t) {
                    chosen = d;
                }
            }
            match tier {
                Tier::One(_) => Bson::Int64(chosen),
                Tier::All => Bson::Document(distances),
            }
        });
        out.insert(key, result);
    }
    Ok(Bson::Document(out))
}

/// The `(ID, spec)` pairs of a `set` argument: a table keyed by ID (a sequence has IDs 1..n).
fn members_of(arg: &Bson) -> Result<Vec<(String, &Bson)>, String> {
    match arg {
        Bson::Document(d) => Ok(d.iter().map(|(k, v)| (id_of_key(k), v)).collect()),
        Bson::Array(a) => Ok(a
            .iter()
            .enumerate()
            .map(|(i, v)| ((i + 1).to_string(), v))
            .collect()),
        other => Err(format!(
            "set takes {{ ID = {{ i = score, v = value, I = {{ [tier] = score }} }} }}, not {}",
            describe(other)
        )),
    }
}

fn set_member(key: String, spec: &Bson, tier: Tier) -> Result<SetMember, String> {
    let Bson::Document(spec) = spec else {
        return Err(format!(
            "set '{key}': takes {{ i = score, v = value, I = {{ [tier] = score }} }}, not {}",
            describe(spec)
        ));
    };
    let mut m = SetMember {
        key,
        value: None,
        scores: Default::default(),
    };
    let at = |e: String| format!("set '{}': {e}", m.key);
    if let Some(per_tier) = spec.get("I") {
        let slots: Vec<(String, &Bson)> = match per_tier {
            Bson::Document(d) => d.iter().map(|(k, v)| (id_of_key(k), v)).collect(),
            Bson::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1).to_string(), v))
                .collect(),
            other => {
                return Err(at(format!(
                    "I is {{ [tier] = score }}, not {}",
                    describe(other)
                )))
            }
        };
        for (t, v) in slots {
            let t = match t.parse::<usize>() {
                Ok(n @ 1..=TIERS) => n - 1,
                _ => return Err(at(format!("I has tier '{t}' (tiers are 1..4)"))),
            };
            m.scores[t] = Some(scores_of(v).map_err(at)?);
        }
    }
    if let Some(v) = spec.get("i") {
        match tier {
            Tier::One(t) => m.scores[t] = Some(scores_of(v).map_err(at)?),
            Tier::All => {
                return Err(at(
                    "i needs one tier (set:NAME/2); for all tiers use I = { [tier] = score }"
                        .into(),
                ))
            }
        }
    }
    if let Some(v) = spec.get("v") {
        m.value = Some(encode_value(v).map_err(at)?);
    }
    if let Some(k) = spec.keys().find(|k| !matches!(k.as_str(), "i" | "v" | "I")) {
        return Err(at(format!("unknown field '{k}' (i, v, I)")));
    }
    Ok(m)
}

/// The scores a value gives a tier: one score, a list, or `false`/null/`{}` for none.
fn scores_of(v: &Bson) -> Result<Vec<Score>, String> {
    match v {
        Bson::Null | Bson::Boolean(false) => Ok(Vec::new()),
        Bson::Document(d) if d.is_empty() => Ok(Vec::new()),
        Bson::Array(a) => a.iter().map(Score::from_bson).collect(),
        one => Ok(vec![Score::from_bson(one)?]),
    }
}

fn get(board: &Board, tier: Tier, args: &[Bson]) -> Result<Bson, String> {
    let mut out = Document::new();
    for key in ids(args)? {
        let Some(r) = board.record(&key) else {
            out.insert(key, Document::new());
            continue;
        };
        let mut d = Document::new();
        if let Some(v) = r.value() {
            d.insert("v", v);
        }
        let scores: Vec<Bson> = match tier {
            Tier::One(t) => r
                .scores(t)
                .iter()
                .map(|s| {
                    let mut e = Document::new();
                    e.insert("d", rank(board, t, s, &key));
                    e.insert("i", s.to_bson());
                    Bson::Document(e)
                })
                .collect(),
            Tier::All => (0..TIERS)
                .map(|t| Bson::Array(r.scores(t).iter().map(Score::to_bson).collect()))
                .collect(),
        };
        d.insert("I", scores);
        out.insert(key, d);
    }
    Ok(Bson::Document(out))
}

fn rank(board: &Board, tier: usize, score: &Score, key: &str) -> i64 {
    board.rank(tier, score, key).map_or(0, |r| r as i64)
}

/// `del`; `index` is `None` for an index without a file (nothing to delete).
fn del(mut index: Option<&mut Index>, tier: Tier, args: &[Bson]) -> Result<Bson, String> {
    let mut out = Document::new();
    for key in ids(args)? {
        let done = match index.as_deref_mut() {
            None => false,
            Some(ix) => ix.change(&key, |b| match tier {
                Tier::All => b.remove(&key),
                Tier::One(t) => {
                    let held = b.record(&key).is_some_and(|r| !r.scores(t).is_empty());
                    if held {
                        b.set_scores(&key, t, Vec::new());
                    }
                    held
                }
            }),
        };
        out.insert(key, done);
    }
    Ok(Bson::Document(out))
}

/// The 0-based start position and the count of a `range` (`{score, count}`,
/// `{ID, delta, count}`, or `{ID, delta}` for the window centred on ID).
fn range_window(board: &Board, t: usize, l: &[Bson]) -> Result<(usize, usize), String> {
    let first = l
        .first()
        .ok_or("range takes {score, count} or {ID, delta, count}")?;
    let member = values::text(first).and_then(|k| {
        let best = board.record(&k)?.scores(t).first()?;
        board.rank(t, best, &k)
    });
    match member {
        Some(r) => {
            let delta = match l.get(1) {
                None | Some(Bson::Null) => 0,
                Some(v) => int_arg(v, "range delta")?,
            };
            let start = (r as i64).saturating_sub(delta).max(1);
            let count = match l.get(2) {
                None | Some(Bson::Null) => {
                    // No count: the window centred on ID, delta ranks on each side.
                    let end = (r as i64).saturating_add(delta.max(0));
                    (end - start + 1).clamp(1, MAX_ENTRIES as i64) as usize
                }
                c => count_arg(c)?,
            };
            Ok((start as usize - 1, count))
        }
        None if l.len() >= 3 => Err(format!(
            "range: {} has no score in tier {}",
            show(first),
            t + 1
        )),
        None => {
            let score = Score::from_bson(first).map_err(|e| format!("range: {e}"))?;
            Ok((board.start_of(t, &score), count_arg(l.get(1))?))
        }
    }
}

/// `count` of `range` / `forEach`: absent or 0 → 1, at most [`MAX_ENTRIES`].
fn count_arg(v: Option<&Bson>) -> Result<usize, String> {
    let n = match v {
        None | Some(Bson::Null) => 0,
        Some(v) => int_arg(v, "count")?,
    };
    if n < 0 {
        return Err(format!("count {n} is negative"));
    }
    Ok((n as usize).clamp(1, MAX_ENTRIES))
}

/// `{ [rank] = { i = score, k = ID, v = value, d = rank } }` for `count` entries of tier `t`
/// from 0-based position `start`.
fn entries(board: &Board, t: usize, start: usize, count: usize) -> Bson {
    let mut out = Document::new();
    for (i, e) in board.entries(t, start).take(count).enumerate() {
        let r = (start + i + 1) as i64;
        let mut d = Document::new();
        d.insert("i", e.score.to_bson());
        d.insert("k", &*e.key);
        if let Some(v) = board.record(&e.key).and_then(|r| r.value()) {
            d.insert("v", v);
        }
        d.insert("d", r);
        out.insert(values::int_key(r), d);
    }
    Bson::Document(out)
}

fn one_tier(tier: Tier, what: &str) -> Result<usize, String> {
    match tier {
        Tier::One(t) => Ok(t),
        Tier::All => Err(format!("{what} needs one tier (/1../4), not all tiers")),
    }
}

/// The values of a list argument: one table `{a, b}` sent alone, or the values themselves
/// (`stage.signal(target, a, b)`).
fn list(args: &[Bson]) -> Result<Vec<Bson>, String> {
    match args {
        [Bson::Array(a)] => Ok(a.clone()),
        [Bson::Document(d)] if d.is_empty() => Ok(Vec::new()),
        [Bson::Document(_)] => Err("takes a list {a, b, ...}, not a keyed table".into()),
        _ => Ok(args.to_vec()),
    }
}

/// The member IDs of a `get` / `del` argument: an ID, a list of IDs, or several of either.
fn ids(args: &[Bson]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in args {
        match a {
            Bson::Array(list) => {
                for v in list {
                    out.push(id_of_value(v)?);
                }
            }
            v => out.push(id_of_value(v)?),
        }
    }
    Ok(out)
}

/// The ID a table key stands for (an integer key `"#5"` is the ID `"5"`).
fn id_of_key(k: &str) -> String {
    values::key_int(k).map_or_else(|| k.to_owned(), |n| n.to_string())
}

/// The ID a value names: a string (UTF-8, no NUL byte) or an integer.
fn id_of_value(v: &Bson) -> Result<String, String> {
    if let Some(n) = values::int(v) {
        return Ok(n.to_string());
    }
    let id = match v {
        Bson::String(s) => s.clone(),
        Bson::Binary(b) => String::from_utf8(b.bytes.clone())
            .map_err(|_| "an ID must be UTF-8 text".to_string())?,
        other => {
            return Err(format!(
                "an ID is a string or an integer, not {}",
                describe(other)
            ))
        }
    };
    if id.contains('\0') {
        return Err("an ID cannot hold a NUL byte".into());
    }
    Ok(id)
}

fn int_arg(v: &Bson, what: &str) -> Result<i64, String> {
    values::int(v).ok_or_else(|| format!("{what} must be an integer, not {}", describe(v)))
}

/// A value for an error message.
fn show(v: &Bson) -> String {
    match values::text(v) {
        Some(t) => format!("'{t}'"),
        None => describe(v).to_owned(),
    }
}

/// The kind of a value, in Lua terms.
pub fn describe(v: &Bson) -> &'static str {
    match v {
        Bson::Null => "nil",
        Bson::Boolean(_) => "a boolean",
        Bson::Double(_) => "a fractional number",
        Bson::Int32(_) | Bson::Int64(_) => "an integer",
        Bson::String(_) | Bson::Binary(_) | Bson::Symbol(_) => "a string",
        Bson::Array(_) | Bson::Document(_) => "a table",
        _ => "an unsupported value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_keys_parse() {
        let c = |s| parse(s).map(|c| (c.cmd, c.name.to_owned(), c.tier));
        assert_eq!(
            c("set:scores"),
            Ok((Cmd::Set, "scores".into(), Tier::One(0)))
        );
        assert_eq!(c("g?a.b.c/2"), Ok((Cmd::Get, "a.b.c".into(), Tier::One(1))));
        assert_eq!(c("forEach:x/"), Ok((Cmd::ForEach, "x".into(), Tier::All)));
        assert_eq!(c("FOR:x/0"), Ok((Cmd::ForEach, "x".into(), Tier::All)));
        assert_eq!(c("t:a/b/4"), Ok((Cmd::Total, "a/b".into(), Tier::One(3))));
        assert!(c("sex:x").is_err());
        assert!(c(":x").is_err());
        assert!(c("set:x/5").is_err());
        assert!(c("set:x/b").is_err());
        assert!(c("set:").is_err());
        assert!(c("set").is_err());
    }
}
