//! The records of an index file (the payloads of [`super::wal`] frames): the whole state of one
//! member after a change, or its removal. Replaying them in order rebuilds the index.
//!
//! `put`: `[1][key: u32 length + bytes][value: u32 length + bytes]` then per tier
//! `[count u32]` and per score `[0][i64 LE]` or `[1][u32 length + bytes]`.
//! `del`: `[2][key: u32 length + bytes]`. Integers are little-endian.

use super::board::{Record, TIERS};
use super::score::Score;

const PUT: u8 = 1;
const DEL: u8 = 2;
const INT: u8 = 0;
const STR: u8 = 1;

/// A decoded record.
#[derive(Debug, PartialEq)]
pub enum Op {
    Put(String, Record),
    Del(String),
}

/// The record that sets member `key` to `record`.
pub fn put(key: &str, record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(put_len(key, record));
    out.push(PUT);
    bytes(&mut out, key.as_bytes());
    bytes(&mut out, record.value_bytes());
    for tier in 0..TIERS {
        let scores = record.scores(tier);
        out.extend_from_slice(&(scores.len() as u32).to_le_bytes());
        for s in scores {
            match s {
                Score::Int(i) => {
                    out.push(INT);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                Score::Str(b) => {
                    out.push(STR);
                    bytes(&mut out, b);
                }
            }
        }
    }
    out
}

/// Size of [`put`]`(key, record)` in bytes.
pub fn put_len(key: &str, record: &Record) -> usize {
    let scores: usize = (0..TIERS)
        .flat_map(|t| record.scores(t))
        .map(|s| match s {
            Score::Int(_) => 9,
            Score::Str(b) => 5 + b.len(),
        })
        .sum();
    1 + 4 + key.len() + 4 + record.value_bytes().len() + 4 * TIERS + scores
}

/// The record that removes member `key`.
pub fn del(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + key.len());
    out.push(DEL);
    bytes(&mut out, key.as_bytes());
    out
}

/// Reads a record.
pub fn decode(payload: &[u8]) -> Result<Op, String> {
    let mut r = Reader(payload);
    let op = match r.byte()? {
        PUT => {
            let key = r.key()?;
            let value = r.bytes()?.into();
            let mut scores: [Vec<Score>; TIERS] = Default::default();
            for tier in scores.iter_mut() {
                let n = r.u32()?;
                for _ in 0..n {
                    tier.push(match r.byte()? {
                        INT => Score::Int(i64::from_le_bytes(
                            r.take(8)?.try_into().unwrap_or_default(),
                        )),
                        STR => Score::Str(r.bytes()?.into()),
                        t => return Err(format!("unknown score type {t}")),
                    });
                }
            }
            Op::Put(key, Record::from_parts(value, scores))
        }
        DEL => Op::Del(r.key()?),
        t => return Err(format!("unknown record type {t}")),
    };
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the record", r.0.len()));
    }
    Ok(op)
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("record ends early".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn key(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "key is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::index::board::encode_value;

    #[test]
    fn records_decode_to_what_was_encoded() {
        let value = encode_value(&bson::Bson::String("v".into())).unwrap();
        let record = Record::from_parts(
            value,
            [
                vec![Score::Int(3), Score::Int(-1)],
                vec![],
                vec![Score::Str(b"\xff\x00x".as_slice().into())],
                vec![Score::Int(i64::MIN)],
            ],
        );
        let p = put("k€y", &record);
        assert_eq!(p.len(), put_len("k€y", &record));
        assert_eq!(decode(&p), Ok(Op::Put("k€y".into(), record)));
        assert_eq!(decode(&del("gone")), Ok(Op::Del("gone".into())));
        assert!(decode(&p[..p.len() - 1]).is_err());
        assert!(decode(&[9]).is_err());
        assert!(decode(&[&del("x")[..], &[0]].concat()).is_err());
    }
}
