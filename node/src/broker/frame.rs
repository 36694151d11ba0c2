//! Cutting a broker socket's byte stream into messages and framing replies (stage-spec §10.2).
//!
//! This runs for every read of every client connection, so it copies each message once and
//! holds memory only for a message that has not fully arrived: an idle connection's decoder owns
//! no heap allocation at all.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::framing::Framing;

/// Size of the little-endian length field that starts `?packet` and `?bson` frames.
const HEADER: usize = 4;

/// Bit 31 of a length field marks the original's encrypted frame (stage-spec §10.5).
const ENCRYPTED: u32 = 0x8000_0000;

/// The smallest BSON document: its length field and the terminating 0.
const MIN_BSON: usize = HEADER + 1;

/// Turns the bytes read from one socket into messages of its framing (stage-spec §10.2).
///
/// After `feed` returns an error the decoder's state is unspecified: the caller closes the
/// connection and drops the decoder, never feeding it again.
pub struct Decoder {
    framing: Framing,
    /// The socket's input size (`IN`): the largest message accepted.
    cap: usize,
    /// The start of a message that has not fully arrived; empty and unallocated otherwise.
    partial: BytesMut,
}

impl Decoder {
    /// A decoder for `framing` that accepts messages of at most `cap` bytes (the socket's input
    /// size `IN`; for `?packet` the 4 header bytes count). A `cap` of 0 counts as 1 so that raw
    /// sockets still make progress.
    pub fn new(framing: Framing, cap: usize) -> Decoder {
        Decoder {
            framing,
            cap: cap.max(1),
            partial: BytesMut::new(),
        }
    }

    /// Feeds bytes just read from the socket and appends each message they complete to `out`,
    /// in order (for `?packet` the payload after the header; for `?bson` the whole document; for
    /// `?text` the line with its `\n`; raw: the bytes in pieces of at most `cap`).
    ///
    /// An `Err` means the connection must be closed; its `Display` is the reason to log.
    /// Messages appended before the error are complete and in order.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Bytes>) -> Result<(), FrameError> {
        match self.framing {
            Framing::Raw => {
                // Raw bytes are never held: each read is delivered at once.
                out.extend(data.chunks(self.cap).map(Bytes::copy_from_slice));
                Ok(())
            }
            Framing::Text => self.feed_text(data, out),
            Framing::Packet | Framing::Bson => self.feed_prefixed(data, out),
        }
    }

    /// Bytes held for a message that has not fully arrived.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    fn feed_text(&mut self, mut data: &[u8], out: &mut Vec<Bytes>) -> Result<(), FrameError> {
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = data.split_at(end + 1);
            let len = self.partial.len() + line.len();
            if len > self.cap {
                return Err(self.line_over_limit());
            }
            if self.partial.is_empty() {
                out.push(Bytes::copy_from_slice(line));
            } else {
                hold(&mut self.partial, line, len);
                out.push(std::mem::take(&mut self.partial).freeze());
            }
            data = rest;
        }
        let held = self.partial.len() + data.len();
        // A line that already fills the limit without its `\n` can no longer fit.
        if held >= self.cap {
            return Err(self.line_over_limit());
        }
        if !data.is_empty() {
            // The line's length is unknown: grow geometrically, but never past the limit.
            let capacity = (self.partial.capacity() * 2).max(held).min(self.cap);
            hold(&mut self.partial, data, capacity);
        }
        Ok(())
    }

    fn feed_prefixed(&mut self, data: &[u8], out: &mut Vec<Bytes>) -> Result<(), FrameError> {
        let mut data = if self.partial.is_empty() {
            data
        } else {
            self.continue_partial(data, out)?
        };
        while !data.is_empty() {
            let Some(header) = data.first_chunk::<HEADER>() else {
                hold(&mut self.partial, data, HEADER);
                break;
            };
            let len = self.frame_len(*header)?;
            let Some((frame, rest)) = data.split_at_checked(len) else {
                // The length is known and checked: one allocation holds the whole frame.
                hold(&mut self.partial, data, len);
                break;
            };
            let start = self.payload_start(frame)?;
            out.push(Bytes::copy_from_slice(&frame[start..]));
            data = rest;
        }
        Ok(())
    }

    /// Adds `data` to the held start of a frame; returns what follows the frame in `data`
    /// (nothing when the frame is still incomplete).
    fn continue_partial<'a>(
        &mut self,
        data: &'a [u8],
        out: &mut Vec<Bytes>,
    ) -> Result<&'a [u8], FrameError> {
        let mut data = data;
        if self.partial.len() < HEADER {
            let (head, rest) = data.split_at((HEADER - self.partial.len()).min(data.len()));
            hold(&mut self.partial, head, HEADER);
            data = rest;
        }
        let Some(header) = self.partial.first_chunk::<HEADER>() else {
            return Ok(data);
        };
        let len = self.frame_len(*header)?;
        let (body, rest) = data.split_at((len - self.partial.len()).min(data.len()));
        hold(&mut self.partial, body, len);
        if self.partial.len() == len {
            let start = self.payload_start(&self.partial)?;
            // The message takes the buffer along, leaving the decoder with no allocation.
            let mut frame = std::mem::take(&mut self.partial);
            frame.advance(start);
            out.push(frame.freeze());
        }
        Ok(rest)
    }

    /// The total frame length a header announces, checked before any of the body is held.
    fn frame_len(&self, header: [u8; HEADER]) -> Result<usize, FrameError> {
        let field = u32::from_le_bytes(header);
        if field & ENCRYPTED != 0 {
            return Err(self.error(Reason::Encrypted));
        }
        // Bit 31 is clear, so the value fits in any usize of 32 bits or more.
        let len = field as usize;
        let min = match self.framing {
            Framing::Bson => MIN_BSON,
            _ => HEADER,
        };
        if len < min {
            return Err(self.error(Reason::TooShort { len, min }));
        }
        if len > self.cap {
            return Err(self.error(Reason::OverLimit { len, cap: self.cap }));
        }
        Ok(len)
    }

    /// Where the message starts in a complete frame: after the header for `?packet`, at the
    /// document's own length for `?bson`, which only gets the framing check here (the Lua decoder
    /// validates the rest).
    fn payload_start(&self, frame: &[u8]) -> Result<usize, FrameError> {
        match self.framing {
            Framing::Bson => match frame.last() {
                Some(0) => Ok(0),
                last => Err(self.error(Reason::NotBson {
                    len: frame.len(),
                    last: last.copied().unwrap_or_default(),
                })),
            },
            _ => Ok(HEADER),
        }
    }

    fn line_over_limit(&self) -> FrameError {
        self.error(Reason::LineOverLimit { cap: self.cap })
    }

    fn error(&self, reason: Reason) -> FrameError {
        FrameError {
            framing: self.framing,
            reason,
        }
    }
}

/// Growth past which a held frame's buffer only doubles with what arrived: a header alone
/// announcing a large frame (up to `IN`) must not make the node reserve all of it.
const GROW_STEP: usize = 64 << 10;

/// Appends `bytes` to `partial`; when it must grow, it moves to an allocation of up to
/// `capacity` bytes (at least what it then holds), so the caller decides how far it may grow.
fn hold(partial: &mut BytesMut, bytes: &[u8], capacity: usize) {
    let needed = partial.len() + bytes.len();
    if needed > partial.capacity() {
        let step = needed.saturating_mul(2).max(GROW_STEP);
        let mut grown = BytesMut::with_capacity(capacity.min(step).max(needed));
        grown.extend_from_slice(partial);
        *partial = grown;
    }
    partial.extend_from_slice(bytes);
}

/// Appends `payload` to `out` as one frame of `framing` (stage-spec §10.2): for `?packet` a u32
/// little-endian length counting its own 4 bytes, then the payload; otherwise the payload as is
/// (a BSON document frames itself, a text line brings its own `\n`).
///
/// Errs only for a `?packet` payload whose frame length would not fit in 31 bits (bit 31 marks an
/// encrypted frame); `out` is then unchanged.
pub fn encode(framing: Framing, payload: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
    if framing == Framing::Packet {
        let field = packet_field(payload.len())?;
        out.reserve(HEADER + payload.len());
        out.put_u32_le(field);
    }
    out.extend_from_slice(payload);
    Ok(())
}

/// The length field of a `?packet` frame carrying `payload_len` bytes.
fn packet_field(payload_len: usize) -> Result<u32, FrameError> {
    payload_len
        .checked_add(HEADER)
        .and_then(|len| u32::try_from(len).ok())
        .filter(|field| field & ENCRYPTED == 0)
        .ok_or(FrameError {
            framing: Framing::Packet,
            reason: Reason::TooBig { payload_len },
        })
}

/// Why a stream cannot be framed; the connection it came from must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    framing: Framing,
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    OverLimit { len: usize, cap: usize },
    LineOverLimit { cap: usize },
    TooShort { len: usize, min: usize },
    Encrypted,
    NotBson { len: usize, last: u8 },
    TooBig { payload_len: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let filter = match self.framing {
            Framing::Raw => "",
            Framing::Text => "?text",
            Framing::Packet => "?packet",
            Framing::Bson => "?bson",
        };
        match self.reason {
            Reason::OverLimit { len, cap } => write!(
                f,
                "frame of {len} bytes is over the input limit of {cap} ({filter}=IN,OUT)"
            ),
            Reason::LineOverLimit { cap } => write!(
                f,
                "line longer than the input limit of {cap} bytes ({filter}=IN,OUT)"
            ),
            Reason::TooShort { len, min } => write!(
                f,
                "frame length field {len} is below the minimum of {min} ({filter})"
            ),
            Reason::Encrypted => write!(
                f,
                "encrypted frame (bit 31 of the length set) is not supported ({filter})"
            ),
            Reason::NotBson { len, last } => write!(
                f,
                "frame of {len} bytes is not a BSON document: it ends with {last:#04x}, not 0 \
                 ({filter})"
            ),
            Reason::TooBig { payload_len } => write!(
                f,
                "payload of {payload_len} bytes does not fit a frame of at most {} bytes \
                 ({filter})",
                ENCRYPTED - 1
            ),
        }
    }
}

impl std::error::Error for FrameError {}

#[cfg(test)]
mod tests;
