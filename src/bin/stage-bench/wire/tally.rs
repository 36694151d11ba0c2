//! The receive side's bookkeeping (WORKLOADS.md, "Verification"): a bitmap per stream counts
//! unique deliveries, duplicates and out-of-order arrivals, and every latency sample is kept for
//! the percentiles.

use super::payload::{self, Stamp};

pub struct Tally {
    /// One bit per expected sequence number, per stream.
    seen: Vec<Vec<u64>>,
    /// The next sequence number expected from each stream (in order).
    next: Vec<u64>,
    per_stream: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Latencies (receive time − send time), ns.
    pub latencies: Vec<u64>,
    /// Receive time of the last unique delivery, ns since the epoch.
    pub last_ns: u64,
}

impl Tally {
    pub fn new(streams: u32, per_stream: u64) -> Tally {
        let words = per_stream.div_ceil(64) as usize;
        Tally {
            seen: vec![vec![0; words]; streams as usize],
            next: vec![0; streams as usize],
            per_stream,
            unique: 0,
            duplicates: 0,
            out_of_order: 0,
            latencies: Vec::with_capacity((streams as u64 * per_stream) as usize),
            last_ns: 0,
        }
    }

    /// Records one received payload; an invalid one is an error naming what is wrong.
    pub fn record(&mut self, p: &[u8], recv_ns: u64) -> Result<Stamp, String> {
        let s = payload::check(p).map_err(str::to_owned)?;
        let Some(bits) = self.seen.get_mut(s.stream as usize) else {
            return Err(format!("stream {} out of range", s.stream));
        };
        if s.seq >= self.per_stream {
            return Err(format!("seq {} of stream {} out of range", s.seq, s.stream));
        }
        let (word, bit) = ((s.seq / 64) as usize, 1u64 << (s.seq % 64));
        if bits[word] & bit != 0 {
            self.duplicates += 1;
            return Ok(s);
        }
        bits[word] |= bit;
        let next = &mut self.next[s.stream as usize];
        if s.seq != *next {
            self.out_of_order += 1;
        }
        *next = s.seq + 1;
        self.unique += 1;
        self.last_ns = recv_ns;
        self.latencies.push(recv_ns.saturating_sub(s.t_send));
        Ok(s)
    }

    /// Whether every expected message arrived.
    pub fn complete(&self) -> bool {
        self.unique == self.per_stream * self.seen.len() as u64
    }

    pub fn expected(&self) -> u64 {
        self.per_stream * self.seen.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_and_reordering() {
        let mut t = Tally::new(2, 3);
        let p = |seq, stream| {
            payload::make(Stamp {
                seq,
                stream,
                t_send: 5,
            })
        };
        t.record(&p(0, 0), 10).unwrap();
        t.record(&p(2, 0), 11).unwrap();
        t.record(&p(1, 0), 12).unwrap();
        t.record(&p(1, 0), 13).unwrap();
        assert_eq!((t.unique, t.duplicates, t.out_of_order), (3, 1, 2));
        assert!(t.record(&p(3, 0), 14).is_err());
        assert!(t.record(&p(0, 2), 14).is_err());
        assert!(!t.complete());
        for s in 0..3 {
            t.record(&p(s, 1), 20).unwrap();
        }
        assert!(t.complete());
        assert_eq!(t.latencies[0], 5);
    }
}
