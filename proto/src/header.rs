//! The fixed routing header: the only part of a frame the router reads.

use crate::error::FrameError;
use crate::service::ServiceId;

/// Bytes of the routing header (after the 4-byte length prefix).
pub const HEADER_LEN: usize = 20;

/// What a frame is. Handshake kinds carry a BSON document; `Message` and `Nack` carry an
/// envelope and payload the router does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Router → node: protocol version and a nonce to prove the secret against.
    Challenge = 1,
    /// Node → router: identity, stage names, requested instance, proof.
    Hello = 2,
    /// Router → node: assigned service ids, class table, the router's own proof.
    Welcome = 3,
    /// Either way: the handshake was refused; the body says why. The link closes after it.
    Refuse = 4,
    /// A message for `target`, forwarded as received.
    Message = 5,
    /// Router → sender: a message that asked for an answer found no live target. `mode` holds
    /// the [`NackReason`]; the body is the original envelope and payload.
    Nack = 6,
    /// Router → node: a stage name was given a class number on this router.
    ClassMap = 7,
    /// Liveness probe; answered by `Pong` with the same key.
    Ping = 8,
    /// Answer to `Ping`.
    Pong = 9,
    /// Router → sender: `source` (a member or class) is not keeping up; messages to it are
    /// being refused. Sent at most every so often per link.
    Overload = 10,
    /// Node → router: an ordered-lock operation ([`LockOp`] in `mode`, the lock's name hashed
    /// into `key`; for an extension the milliseconds in `target`). The body of an acquire is the
    /// message the router sends back to its sender when the lock is granted.
    Lock = 11,
    /// Node → router: stage `source` is overloaded (`mode` 1: its backlog kept growing for the
    /// node's overload window) or has drained (`mode` 0). Round-robin and random skip it while
    /// it is overloaded.
    Busy = 12,
}

impl Kind {
    fn from_u8(b: u8) -> Result<Kind, FrameError> {
        Ok(match b {
            1 => Kind::Challenge,
            2 => Kind::Hello,
            3 => Kind::Welcome,
            4 => Kind::Refuse,
            5 => Kind::Message,
            6 => Kind::Nack,
            7 => Kind::ClassMap,
            8 => Kind::Ping,
            9 => Kind::Pong,
            10 => Kind::Overload,
            11 => Kind::Lock,
            12 => Kind::Busy,
            other => return Err(FrameError::UnknownKind(other)),
        })
    }
}

/// How the router picks the member(s) of a class. The sender writes `Default` unless the
/// signal target asked for something specific (`*` broadcast, `=` same host, `+` other hosts,
/// or an exact instance → `Direct`); `Default` means "the class's configured mode".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mode {
    Default = 0,
    Direct = 1,
    RoundRobin = 2,
    Master = 3,
    Hash = 4,
    Random = 5,
    Broadcast = 6,
    /// Round robin over members on the sender's host (STAGE `=` prefix).
    SameHost = 7,
    /// Round robin over members on other hosts (STAGE `+` prefix).
    OtherHost = 8,
}

impl Mode {
    fn from_u8(b: u8) -> Result<Mode, FrameError> {
        Ok(match b {
            0 => Mode::Default,
            1 => Mode::Direct,
            2 => Mode::RoundRobin,
            3 => Mode::Master,
            4 => Mode::Hash,
            5 => Mode::Random,
            6 => Mode::Broadcast,
            7 => Mode::SameHost,
            8 => Mode::OtherHost,
            other => return Err(FrameError::UnknownMode(other)),
        })
    }

    /// The name used by `router.mode()` and `--mode NAME=MODE`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::Direct => "direct",
            Mode::RoundRobin => "roundrobin",
            Mode::Master => "master",
            Mode::Hash => "hash",
            Mode::Random => "random",
            Mode::Broadcast => "broadcast",
            Mode::SameHost => "samehost",
            Mode::OtherHost => "otherhost",
        }
    }

    /// Parses a class mode name (the six a class can be set to).
    pub fn parse_class_mode(name: &str) -> Option<Mode> {
        Some(match name {
            "direct" => Mode::Direct,
            "roundrobin" => Mode::RoundRobin,
            "master" => Mode::Master,
            "hash" => Mode::Hash,
            "random" => Mode::Random,
            "broadcast" => Mode::Broadcast,
            _ => return None,
        })
    }
}

/// Why a message was answered with a NACK (stored in the `mode` byte of a `Nack` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NackReason {
    /// The class has no live member that the mode could pick.
    NoMember = 1,
    /// The target class is not known to the router.
    UnknownClass = 2,
    /// The target link's queue is full.
    Overloaded = 3,
}

impl NackReason {
    pub fn from_u8(b: u8) -> NackReason {
        match b {
            2 => NackReason::UnknownClass,
            3 => NackReason::Overloaded,
            _ => NackReason::NoMember,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            NackReason::NoMember => "no live member",
            NackReason::UnknownClass => "unknown stage",
            NackReason::Overloaded => "target overloaded",
        }
    }
}

/// An ordered-lock operation (stage-spec §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LockOp {
    /// `>NAME.cb`: queue for the lock; the body comes back when granted.
    Acquire = 1,
    /// `>>NAME.x`: the holder keeps it `target` ms longer.
    Extend = 2,
    /// `<NAME.x`: the holder gives it up.
    Release = 3,
}

impl LockOp {
    pub fn from_u8(b: u8) -> Option<LockOp> {
        Some(match b {
            1 => LockOp::Acquire,
            2 => LockOp::Extend,
            3 => LockOp::Release,
            _ => return None,
        })
    }
}

/// Header flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// The sender waits for an answer (`=ret`, `!fail`): a missing target must be NACKed.
    pub const WANT_NACK: u16 = 1;
    /// `key` is a hash key (table target `key = K`).
    pub const KEYED: u16 = 2;
    /// The message is a reply to an earlier request.
    pub const REPLY: u16 = 4;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// The routing header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub mode: u8,
    pub flags: Flags,
    pub target: ServiceId,
    pub source: ServiceId,
    pub key: u64,
}

impl Header {
    /// A header of `kind` with everything else zero.
    pub fn new(kind: Kind) -> Header {
        Header {
            kind,
            mode: 0,
            flags: Flags(0),
            target: ServiceId(0),
            source: ServiceId(0),
            key: 0,
        }
    }

    /// The forwarding mode, checked (the raw byte is kept so `Nack` can reuse it).
    pub fn forward_mode(&self) -> Result<Mode, FrameError> {
        Mode::from_u8(self.mode)
    }

    /// Writes the 20 header bytes.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = self.kind as u8;
        out[1] = self.mode;
        out[2..4].copy_from_slice(&self.flags.0.to_le_bytes());
        out[4..8].copy_from_slice(&self.target.0.to_le_bytes());
        out[8..12].copy_from_slice(&self.source.0.to_le_bytes());
        out[12..20].copy_from_slice(&self.key.to_le_bytes());
    }

    /// Reads a header from the first 20 bytes of `b`.
    pub fn read(b: &[u8]) -> Result<Header, FrameError> {
        let b: &[u8; HEADER_LEN] = b
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(FrameError::TooShort { len: b.len() })?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut key = [0u8; 8];
        key.copy_from_slice(&b[12..20]);
        Ok(Header {
            kind: Kind::from_u8(b[0])?,
            mode: b[1],
            flags: Flags(u16::from_le_bytes([b[2], b[3]])),
            target: ServiceId(u32_at(4)),
            source: ServiceId(u32_at(8)),
            key: u64::from_le_bytes(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_is_little_endian() {
        let h = Header {
            kind: Kind::Message,
            mode: Mode::Hash as u8,
            flags: Flags(Flags::WANT_NACK | Flags::KEYED),
            target: ServiceId(0x0200_0000),
            source: ServiceId(0x0100_0003),
            key: 0x0102_0304_0506_0708,
        };
        let mut b = [0u8; HEADER_LEN];
        h.write(&mut b);
        assert_eq!(b[0], 5);
        assert_eq!(&b[4..8], &[0, 0, 0, 2]);
        assert_eq!(b[12], 0x08);
        assert_eq!(Header::read(&b).unwrap(), h);
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut b = [0u8; HEADER_LEN];
        b[0] = 200;
        assert_eq!(Header::read(&b), Err(FrameError::UnknownKind(200)));
        assert!(Header::read(&b[..3]).is_err());
    }
}
