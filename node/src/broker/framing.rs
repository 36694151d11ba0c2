//! How a broker socket cuts its byte stream into messages (stage-spec §10.2), chosen by the
//! filter of its URI: `?bson`, `?packet`, `?text` or none.

/// Default input and output buffer sizes (the original's 8 KiB each for input; output gets
/// room for a burst of replies before the client counts as a slow consumer).
pub const DEFAULT_INPUT: usize = 8 << 10;
pub const DEFAULT_OUTPUT: usize = 64 << 10;

/// The framing of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Bytes as they arrive, each read one message (at most the input size).
    Raw,
    /// Lines: each message ends with `\n`, which it includes.
    Text,
    /// A u32 little-endian length that counts itself, then the payload (given to Lua as a
    /// string).
    Packet,
    /// BSON documents, whose own length field frames them (given to Lua as the value of the
    /// document's first element).
    Bson,
}
