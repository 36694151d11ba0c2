//! One index in memory: its records (key → value and scores per tier) and, per tier, the
//! order-statistics tree of `(score, key)` entries that gives ranks.

use std::collections::HashMap;
use std::sync::Arc;

use bson::{Bson, Document};

use super::score::{Entry, Score};
use super::tree::{Iter, OrderTree};

/// Tiers per index (stage-spec §9.3).
pub const TIERS: usize = 4;

/// A member: its value and its scores per tier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// The BSON document `{"v": value}`; empty when the member has no value. Kept encoded:
    /// it is only read to answer, and it is written to the log as it is.
    value: Box<[u8]>,
    /// Per tier, the member's scores in rank order, without repeats.
    scores: [Box<[Score]>; TIERS],
}

impl Record {
    /// A record from its parts (`value`: as [`Record::value_bytes`] gives it).
    pub fn from_parts(value: Box<[u8]>, mut scores: [Vec<Score>; TIERS]) -> Record {
        for s in scores.iter_mut() {
            s.sort();
            s.dedup();
        }
        Record {
            value,
            scores: scores.map(Vec::into_boxed_slice),
        }
    }

    /// The member's value, if it has one.
    pub fn value(&self) -> Option<Bson> {
        if self.value.is_empty() {
            return None;
        }
        let mut doc = Document::from_reader(&self.value[..]).ok()?;
        doc.remove("v")
    }

    /// The encoded value (empty, or the BSON document `{"v": value}`).
    pub fn value_bytes(&self) -> &[u8] {
        &self.value
    }

    /// The member's scores in `tier` (0-based), best first.
    pub fn scores(&self, tier: usize) -> &[Score] {
        &self.scores[tier]
    }
}

/// Encodes `value` the way a [`Record`] keeps it.
pub fn encode_value(value: &Bson) -> Result<Box<[u8]>, String> {
    let mut doc = Document::new();
    doc.insert("v", value.clone());
    let mut buf = Vec::new();
    doc.to_writer(&mut buf).map_err(|e| format!("value: {e}"))?;
    Ok(buf.into_boxed_slice())
}

/// The records and rankings of one index.
#[derive(Default)]
pub struct Board {
    records: HashMap<Arc<str>, Record>,
    tiers: [OrderTree<Entry>; TIERS],
}

impl Board {
    /// Number of members (keys).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Number of scores in `tier` (0-based).
    pub fn tier_len(&self, tier: usize) -> usize {
        self.tiers[tier].len()
    }

    /// The member `key`, if present.
    pub fn record(&self, key: &str) -> Option<&Record> {
        self.records.get(key)
    }

    /// Every member, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = (&str, &Record)> {
        self.records.iter().map(|(k, r)| (&**k, r))
    }

    /// Creates member `key` without value or scores, unless it exists.
    pub fn create(&mut self, key: &str) {
        self.ensure(key);
    }

    /// The member `key`, created without value or scores when absent; its shared key.
    fn ensure(&mut self, key: &str) -> Arc<str> {
        match self.records.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = key.into();
                self.records.insert(k.clone(), Record::default());
                k
            }
        }
    }

    /// Sets the value of `key` (encoded by [`encode_value`]), creating the member if needed.
    pub fn set_value(&mut self, key: &str, value: Box<[u8]>) {
        let k = self.ensure(key);
        if let Some(r) = self.records.get_mut(&k) {
            r.value = value;
        }
    }

    /// Replaces the scores of `key` in `tier` (0-based) with `scores`, creating the member if
    /// needed. Returns the *distance* of stage-spec §9.3: 0 when the scores did not change,
    /// −1 when the member has no score left in the tier, else the rank of the last given
    /// score that is new (of the last given score when none is new).
    pub fn set_scores(&mut self, key: &str, tier: usize, scores: Vec<Score>) -> i64 {
        let k = self.ensure(key);
        let Board { records, tiers } = self;
        let Some(record) = records.get_mut(&k) else {
            return -1;
        };
        let old = std::mem::take(&mut record.scores[tier]);
        let target = scores
            .iter()
            .rev()
            .find(|s| !old.contains(s))
            .or(scores.last())
            .cloned();
        let mut new = scores;
        new.sort();
        new.dedup();
        if *old == *new {
            record.scores[tier] = old;
            return 0;
        }
        let ranking = &mut tiers[tier];
        for s in old.iter().filter(|s| !new.contains(s)) {
            ranking.remove(&entry(s, &k));
        }
        // Inserted best first, so a later insertion never moves an earlier one's position.
        let mut target_at = None;
        for s in new.iter().filter(|s| !old.contains(s)) {
            let at = ranking.insert(entry(s, &k));
            if target.as_ref() == Some(s) {
                target_at = at;
            }
        }
        let at = target_at.or_else(|| ranking.position(&entry(target.as_ref()?, &k)));
        record.scores[tier] = new.into_boxed_slice();
        at.map_or(-1, |p| p as i64 + 1)
    }

    /// Puts `record` as the whole member `key` (replaying the log).
    pub fn put(&mut self, key: &str, record: Record) {
        self.remove(key);
        let k: Arc<str> = key.into();
        for (tier, scores) in record.scores.iter().enumerate() {
            for s in scores.iter() {
                self.tiers[tier].insert(entry(s, &k));
            }
        }
        self.records.insert(k, record);
    }

    /// Removes the member `key`; whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let Some((k, r)) = self.records.remove_entry(key) else {
            return false;
        };
        for (tier, scores) in r.scores.iter().enumerate() {
            for s in scores.iter() {
                self.tiers[tier].remove(&entry(s, &k));
            }
        }
        true
    }

    /// The 1-based rank of `key`'s score `score` in `tier`, if it holds that score.
    pub fn rank(&self, tier: usize, score: &Score, key: &str) -> Option<usize> {
        let k = self.records.get_key_value(key)?.0;
        self.tiers[tier].position(&entry(score, k)).map(|p| p + 1)
    }

    /// The 0-based position of the first entry of `tier` whose score ranks at or after
    /// `score` (a score not held by anyone: where it would rank).
    pub fn start_of(&self, tier: usize, score: &Score) -> usize {
        self.tiers[tier].count_below(|e| e.score.cmp(score))
    }

    /// The entries of `tier` from 0-based position `pos` on, best first.
    pub fn entries(&self, tier: usize, pos: usize) -> Iter<'_, Entry> {
        self.tiers[tier].iter_from(pos)
    }
}

fn entry(score: &Score, key: &Arc<str>) -> Entry {
    Entry {
        score: score.clone(),
        key: key.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> Vec<Score> {
        v.iter().map(|i| Score::Int(*i)).collect()
    }

    fn board_keys(b: &Board, tier: usize) -> Vec<(String, Score)> {
        b.entries(tier, 0)
            .map(|e| (e.key.to_string(), e.score.clone()))
            .collect()
    }

    #[test]
    fn distances_follow_the_specification() {
        let mut b = Board::default();
        assert_eq!(b.set_scores("K1", 0, ints(&[10])), 1);
        assert_eq!(b.set_scores("K2", 0, ints(&[100])), 1);
        assert_eq!(b.set_scores("K3", 0, ints(&[50])), 2);
        assert_eq!(b.set_scores("K3", 0, ints(&[50])), 0, "unchanged");
        assert_eq!(b.set_scores("K1", 0, ints(&[10, 200])), 1, "new score 200");
        assert_eq!(
            b.set_scores("K1", 0, ints(&[10])),
            3,
            "only removal: last given"
        );
        assert_eq!(b.set_scores("K1", 0, vec![]), -1, "no score left");
        assert_eq!(b.tier_len(0), 2);
        assert_eq!(b.len(), 3);
        // Ties rank by key.
        b.set_scores("A", 0, ints(&[50]));
        assert_eq!(
            board_keys(&b, 0),
            vec![
                ("K2".into(), Score::Int(100)),
                ("A".into(), Score::Int(50)),
                ("K3".into(), Score::Int(50))
            ]
        );
        assert_eq!(b.start_of(0, &Score::Int(50)), 1);
        assert_eq!(b.start_of(0, &Score::Int(49)), 3);
    }

    #[test]
    fn removing_a_member_removes_its_scores_from_every_tier() {
        let mut b = Board::default();
        b.set_scores("x", 0, ints(&[1, 2]));
        b.set_scores("x", 3, vec![Score::Str(b"s".as_slice().into())]);
        b.set_value("x", encode_value(&Bson::String("v".into())).unwrap());
        assert_eq!(
            b.record("x").and_then(Record::value),
            Some(Bson::String("v".into()))
        );
        let copy = b.record("x").cloned().unwrap();
        assert!(b.remove("x"));
        assert!(!b.remove("x"));
        assert_eq!((b.tier_len(0), b.tier_len(3), b.len()), (0, 0, 0));
        b.put("x", copy.clone());
        assert_eq!(b.record("x"), Some(&copy));
        assert_eq!(b.rank(0, &Score::Int(2), "x"), Some(1));
        assert_eq!(b.rank(0, &Score::Int(1), "x"), Some(2));
    }
}
