//! The 128-byte payload of the peer workloads (WORKLOADS.md, "Common rules"): sequence number,
//! stream, magic, send time, and a fill pattern that shows any corruption.

use std::sync::OnceLock;
use std::time::Instant;

pub const LEN: usize = 128;
const MAGIC: u32 = 0x314E_4250;
const FILL_FROM: usize = 24;

/// Nanoseconds since this process's monotonic epoch (its first call).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What a valid payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub stream: u32,
    pub t_send: u64,
}

/// The payload of `stamp`.
pub fn make(stamp: Stamp) -> [u8; LEN] {
    let mut p = [0u8; LEN];
    p[0..8].copy_from_slice(&stamp.seq.to_le_bytes());
    p[8..12].copy_from_slice(&stamp.stream.to_le_bytes());
    p[12..16].copy_from_slice(&MAGIC.to_le_bytes());
    p[16..24].copy_from_slice(&stamp.t_send.to_le_bytes());
    let base = fill_base(stamp.seq, stamp.stream);
    for (i, b) in p.iter_mut().enumerate().skip(FILL_FROM) {
        *b = base.wrapping_add(i as u8);
    }
    p
}

/// The payload of message `seq` of `stream`, stamped now.
pub fn now(seq: u64, stream: u32) -> [u8; LEN] {
    make(Stamp {
        seq,
        stream,
        t_send: now_ns(),
    })
}

/// Checks length, magic and fill; returns what the payload carries.
pub fn check(p: &[u8]) -> Result<Stamp, &'static str> {
    if p.len() != LEN {
        return Err("payload is not 128 bytes");
    }
    let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().unwrap_or_default());
    if u32_at(12) != MAGIC {
        return Err("bad magic");
    }
    let stamp = Stamp {
        seq: u64_at(0),
        stream: u32_at(8),
        t_send: u64_at(16),
    };
    let base = fill_base(stamp.seq, stamp.stream);
    if p.iter()
        .enumerate()
        .skip(FILL_FROM)
        .any(|(i, &b)| b != base.wrapping_add(i as u8))
    {
        return Err("fill pattern corrupted");
    }
    Ok(stamp)
}

fn fill_base(seq: u64, stream: u32) -> u8 {
    (seq as u8).wrapping_mul(7).wrapping_add(stream as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let s = Stamp {
            seq: 300,
            stream: 3,
            t_send: 99,
        };
        let mut p = make(s);
        assert_eq!(check(&p), Ok(s));
        assert_eq!(p[24], (300u64 as u8).wrapping_mul(7).wrapping_add(3 + 24));
        p[100] ^= 1;
        assert_eq!(check(&p), Err("fill pattern corrupted"));
        assert!(check(&p[..127]).is_err());
    }
}
