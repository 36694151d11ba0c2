//! Scores and the order of a tier: integers rank larger first, strings rank in byte order after
//! every integer; equal scores rank by the member's key, so every position is well defined.

use std::cmp::Ordering;
use std::sync::Arc;

use bson::Bson;

use crate::service::values;

/// One score of a member in a tier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Score {
    Int(i64),
    Str(Box<[u8]>),
}

impl Ord for Score {
    /// `Less` ranks first (nearer rank 1).
    fn cmp(&self, other: &Score) -> Ordering {
        match (self, other) {
            (Score::Int(a), Score::Int(b)) => b.cmp(a),
            (Score::Int(_), Score::Str(_)) => Ordering::Less,
            (Score::Str(_), Score::Int(_)) => Ordering::Greater,
            (Score::Str(a), Score::Str(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Score {
    /// The score a message value stands for: an integer (or a float with an integral value)
    /// or a string.
    pub fn from_bson(v: &Bson) -> Result<Score, String> {
        if let Some(i) = values::int(v) {
            return Ok(Score::Int(i));
        }
        match v {
            Bson::String(s) => Ok(Score::Str(s.as_bytes().into())),
            Bson::Binary(b) => Ok(Score::Str(b.bytes.as_slice().into())),
            other => Err(format!(
                "a score is an integer or a string, not {}",
                super::commands::describe(other)
            )),
        }
    }

    /// The score as a message value.
    pub fn to_bson(&self) -> Bson {
        match self {
            Score::Int(i) => Bson::Int64(*i),
            Score::Str(s) => values::bytes(s.to_vec()),
        }
    }
}

/// A member's place in a tier: its score, then its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub score: Score,
    pub key: Arc<str>,
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        self.score
            .cmp(&other.score)
            .then_with(|| self.key.cmp(&other.key))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_rank_larger_first_then_strings_in_byte_order() {
        let mut v = vec![
            Score::Str(b"b".as_slice().into()),
            Score::Int(-5),
            Score::Str(b"a".as_slice().into()),
            Score::Int(100),
            Score::Int(7),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                Score::Int(100),
                Score::Int(7),
                Score::Int(-5),
                Score::Str(b"a".as_slice().into()),
                Score::Str(b"b".as_slice().into()),
            ]
        );
    }

    #[test]
    fn scores_from_message_values() {
        assert_eq!(Score::from_bson(&Bson::Double(3.0)), Ok(Score::Int(3)));
        assert_eq!(Score::from_bson(&Bson::Int32(-2)), Ok(Score::Int(-2)));
        assert!(Score::from_bson(&Bson::Double(1.5)).is_err());
        assert!(Score::from_bson(&Bson::Boolean(true)).is_err());
        assert_eq!(
            Score::from_bson(&Bson::String("x".into())).map(|s| s.to_bson()),
            Ok(Bson::String("x".into()))
        );
    }
}
