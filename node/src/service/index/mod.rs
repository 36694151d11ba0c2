//! `index`: ranked scoreboards (stage-spec §9.3), hosted with `--stage rank=index`.
//!
//! An *index* (any name) holds members: a key (ID) with a value (any Lua value) and, in each of
//! 4 *tiers*, zero or more scores. Integer scores rank larger first (rank 1 = largest); string
//! scores rank after all integers, in byte order; equal scores rank by key. A member's rank in a
//! tier is its *distance* (1-based). A member holds each score at most once per tier.
//!
//! # Messages
//!
//! *Batch*: `stage.signal("rank:cb", { ["#1.set:scores"] = arg, ["get:scores/2"] = arg, … })`.
//! Each key is `[#SEQ.]CMD(:|?)NAME[/TIER]`; commands run in `#SEQ` order, then those without
//! `#SEQ` (in table order). The answer goes to callback `cb` (or to `ret` for `"rank:cb=ret"`):
//! `cb({ [key] = result, … })`, one result table per table sent. A command that fails has
//! `{ error = "why" }` as its result; the others run.
//!
//! *Direct*: `stage.signal("rank:CMD?NAME[/TIER][=cb]", arg)`: one command; `cb(result)`, or
//! `cb(nil, "why")` when it fails; without `=cb` nothing is answered. Several values
//! (`stage.signal(t, a, b)`) are all used: IDs of `get`/`del`, tables of `set`, the list of
//! `range`/`forEach`.
//!
//! `CMD`: `set`, `get`, `del`, `range`, `forEach`, `total`, or their first letters. `TIER`: `/1`
//! to `/4` (default 1); `/` or `/0` for all tiers. `NAME` may contain `.` and `/` (the last `/`
//! starts the tier), not `=` or `!` in the direct form.
//!
//! | command | argument | result |
//! |---|---|---|
//! | set | `{ ID = { i = score \| {scores}, v = value, I = { [t] = score \| {scores} } } }` | `{ ID = distance }`: rank of the last given score that is new; 0 = scores unchanged; −1 = no score for the tier. `i` sets the addressed tier (not allowed with `/`), `I` any tiers, `v` replaces the value; `false` or `{}` as scores removes the tier's scores. With `/`: `{ ID = { [t] = distance } }` for the tiers in `I`. |
//! | get | ID or `{ID, …}` | `{ ID = { v = value, I = { {d = rank, i = score}, … } } }` (best first); with `/`: `I = { {tier-1 scores}, … {tier-4 scores} }`; unknown ID: `{}` |
//! | del | ID or `{ID, …}` | `{ ID = true \| false }` (whether something was removed): the tier's scores, or with `/` the whole member |
//! | range | `{score, count}`, `{ID, delta, count}`, `{ID, delta}` | `{ [rank] = { i = score, k = ID, v = value, d = rank } }` from the first entry ranked at or after `score`, or from ID's best rank moved up `delta` (at least rank 1); `{ID, delta}` gives the ranks within `delta` of ID. A string names a member when one has that key (else it is a string score). |
//! | forEach | `{start_rank, count}` | the same, from `start_rank` |
//! | total | anything | number of scores in the tier; with `/` the number of members |
//!
//! `count` absent or 0 means 1; at most [`commands::MAX_ENTRIES`] entries come back. IDs are
//! strings (an integer ID is its decimal text).
//!
//! # Storage
//!
//! One file per index, `--index-dir DIR/<name>.idx` (the name escaped into a safe file name,
//! [`store::file_name`]), loaded when first used and closed after 60 s unused. Changes are
//! appended to the file, which the service hands to the operating system before it answers (a
//! killed node loses no answered change) and syncs to disk every second (a power loss may lose
//! the last second); when the file is twice the size of its live records it is replaced by a
//! snapshot ([`wal`]). A torn or damaged tail is cut when the file is opened.

mod board;
mod codec;
pub mod commands;
mod score;
pub mod store;
pub mod tree;
mod wal;

use std::path::Path;
use std::time::{Duration, Instant};

use bson::{Bson, Document};

pub use board::{Board, Record, TIERS};
pub use score::{Entry, Score};
pub use store::{Index, Indexes};

use super::{args, Outbox, Request, Service};

/// How often logs are synced to disk and idle indexes closed.
const TICK: Duration = Duration::from_secs(1);

/// The `index` service of one stage.
pub struct IndexService {
    indexes: Indexes,
    /// When the periodic work (sync, idle close) is next due; none while no index is open.
    next_tick: Option<Instant>,
}

impl IndexService {
    /// Serves the indexes of `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<IndexService, String> {
        Ok(IndexService {
            indexes: Indexes::new(dir)?,
            next_tick: None,
        })
    }

    /// Runs the command `spec` (`CMD:NAME/TIER`) with `args`.
    fn run(&mut self, spec: &str, args: &[Bson], now: Instant) -> Ran {
        let c = match commands::parse(spec) {
            Ok(c) => c,
            Err(e) => {
                return Ran {
                    index: None,
                    result: Err(e),
                }
            }
        };
        let result = if c.cmd == commands::Cmd::Set {
            self.indexes
                .get(c.name, now)
                .and_then(|ix| commands::write(ix, &c, args))
        } else {
            match self.indexes.find(c.name, now) {
                Ok(Some(ix)) => commands::write(ix, &c, args),
                Ok(None) => commands::on_missing(&c, args),
                Err(e) => Err(e),
            }
        };
        Ran {
            index: Some(c.name.to_owned()),
            result,
        }
    }

    /// Runs the commands of one batch table in `#SEQ` order.
    fn batch(&mut self, table: &Bson, now: Instant, ran: &mut Vec<(String, Ran)>) {
        let Bson::Document(table) = table else {
            let why = format!(
                "the batch form takes a table {{ [\"CMD:NAME\"] = argument }}, not {}",
                commands::describe(table)
            );
            log::warn!("index: {why}");
            // The answer is `{ error = why }` itself: there is no command key to file it under.
            ran.push((
                "error".into(),
                Ran {
                    index: None,
                    result: Ok(why.into()),
                },
            ));
            return;
        };
        let mut order: Vec<(Option<u64>, &str, &str, &Bson)> = table
            .iter()
            .map(|(key, v)| {
                let (seq, spec) = split_seq(key);
                (seq, key.as_str(), spec, v)
            })
            .collect();
        // Stable: keys without #SEQ keep their table order, after the numbered ones.
        order.sort_by_key(|(seq, ..)| (seq.is_none(), *seq));
        for (_, key, spec, v) in order {
            let r = self.run(spec, std::slice::from_ref(v), now);
            ran.push((key.to_owned(), r));
        }
    }

    /// Hands the message's changes to the operating system; commands on an index whose log
    /// could not be written fail (their changes are not kept).
    fn save<'a>(&mut self, ran: impl IntoIterator<Item = &'a mut Ran>) {
        let failed = self.indexes.flush();
        if failed.is_empty() {
            return;
        }
        for r in ran {
            if let Some((name, why)) = failed.iter().find(|(n, _)| r.index.as_ref() == Some(n)) {
                r.result = Err(format!("index '{name}': the change was not saved: {why}"));
            }
        }
    }
}

/// What one command gave.
struct Ran {
    /// The index it addressed (`None`: the key did not parse).
    index: Option<String>,
    result: Result<Bson, String>,
}

/// `"#12.set:x"` → `(Some(12), "set:x")`; a key without a sequence number is all spec.
fn split_seq(key: &str) -> (Option<u64>, &str) {
    key.strip_prefix('#')
        .and_then(|k| k.split_once('.'))
        .and_then(|(n, spec)| Some((Some(n.parse::<u64>().ok()?), spec)))
        .unwrap_or((None, key))
}

/// The two forms of a message key.
#[derive(Debug, PartialEq, Eq)]
enum Form<'a> {
    /// `CMD?NAME[/TIER][=cb][!fail]`.
    Direct { spec: &'a str, cb: Option<&'a str> },
    /// `cb`, or `id=cb`: the value is a table of commands.
    Batch { cb: &'a str },
}

fn form(key: &str) -> Form<'_> {
    let head_end = key.find(['=', '!']).unwrap_or(key.len());
    let (head, tail) = key.split_at(head_end);
    // `=cb` and `!fail` parts follow the head in any order, each up to the next `=` or `!`.
    let cb = tail
        .match_indices('=')
        .map(|(i, _)| {
            let rest = &tail[i + 1..];
            &rest[..rest.find(['=', '!']).unwrap_or(rest.len())]
        })
        .next()
        .filter(|cb| !cb.is_empty());
    if head.contains('?') {
        Form::Direct { spec: head, cb }
    } else {
        Form::Batch {
            cb: cb.unwrap_or(head),
        }
    }
}

impl Service for IndexService {
    fn handle(&mut self, out: &Outbox, req: Request) {
        let now = Instant::now();
        // A message may open an index: from then on its log is synced every TICK.
        self.next_tick.get_or_insert(now + TICK);
        match form(&req.key) {
            Form::Direct { spec, cb } => {
                let mut r = self.run(spec, &req.args, now);
                self.save([&mut r]);
                if let Err(e) = &r.result {
                    log::warn!("stage {}: '{}': {e}", out.name(), req.key);
                }
                match (cb, r.result) {
                    (Some(cb), Ok(v)) => out.answer(&req, cb, &args([v])),
                    (Some(cb), Err(e)) => out.answer(&req, cb, &args([Bson::Null, e.into()])),
                    (None, _) => out.acknowledge(&req),
                }
            }
            Form::Batch { cb } => {
                let mut tables: Vec<Vec<(String, Ran)>> = Vec::with_capacity(req.args.len());
                for table in &req.args {
                    let mut ran = Vec::new();
                    self.batch(table, now, &mut ran);
                    tables.push(ran);
                }
                self.save(tables.iter_mut().flatten().map(|(_, r)| r));
                let replies = tables.into_iter().map(|ran| {
                    let mut doc = Document::new();
                    for (key, r) in ran {
                        let v = r.result.unwrap_or_else(|e| {
                            log::warn!("stage {}: '{key}': {e}", out.name());
                            let mut err = Document::new();
                            err.insert("error", e);
                            Bson::Document(err)
                        });
                        doc.insert(key, v);
                    }
                    Bson::Document(doc)
                });
                let payload = args(replies);
                if cb.is_empty() {
                    out.acknowledge(&req);
                } else {
                    out.answer(&req, cb, &payload);
                }
            }
        }
    }

    fn tick(&mut self, _out: &Outbox, now: Instant) {
        self.next_tick = self.indexes.tick(now).then_some(now + TICK);
    }

    fn next_due(&self) -> Option<Instant> {
        self.next_tick
    }

    fn stop(&mut self, _out: &Outbox) {
        self.indexes.close_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_pick_the_form() {
        assert_eq!(form("cb"), Form::Batch { cb: "cb" });
        assert_eq!(form("x=cb!fail"), Form::Batch { cb: "cb" });
        assert_eq!(
            form("get?a.b/2=cb"),
            Form::Direct {
                spec: "get?a.b/2",
                cb: Some("cb")
            }
        );
        assert_eq!(
            form("s?x!fail=ret"),
            Form::Direct {
                spec: "s?x",
                cb: Some("ret")
            }
        );
        assert_eq!(
            form("s?x"),
            Form::Direct {
                spec: "s?x",
                cb: None
            }
        );
        assert_eq!(split_seq("#12.set:a.b"), (Some(12), "set:a.b"));
        assert_eq!(split_seq("set:a.b"), (None, "set:a.b"));
        assert_eq!(split_seq("#x.set:a"), (None, "#x.set:a"));
    }
}
