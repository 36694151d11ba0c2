//! A whole frame as received or about to be sent.
//!
//! `raw` holds the complete frame, length prefix included, so a router forwards a frame by
//! handing the very same `Bytes` to the target link's writer: nothing is decoded or re-encoded,
//! and a broadcast clones only the reference count.

use bytes::Bytes;

use crate::header::{Header, HEADER_LEN};

/// Bytes before the body: the length prefix and the routing header.
pub const PREFIX_LEN: usize = 4 + HEADER_LEN;

/// A frame: its parsed header and its raw bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    pub header: Header,
    pub raw: Bytes,
}

impl Frame {
    /// Builds a frame from a header and a body.
    pub fn new(header: Header, body: &[u8]) -> Frame {
        let mut buf = begin(body.len());
        buf.extend_from_slice(body);
        finish(buf, header)
    }

    /// The bytes after the routing header (envelope and payload, or a handshake document).
    pub fn body(&self) -> &[u8] {
        &self.raw[PREFIX_LEN..]
    }

    /// The body as a shared slice of the same buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.raw.slice(PREFIX_LEN..)
    }
}

/// Starts a frame buffer: room for the prefix, then the caller appends the body. Building the
/// body in place avoids a second copy when the frame is finished.
pub fn begin(body_capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(PREFIX_LEN + body_capacity);
    buf.resize(PREFIX_LEN, 0);
    buf
}

/// Fills in the length prefix and header of a buffer started with [`begin`].
pub fn finish(mut buf: Vec<u8>, header: Header) -> Frame {
    debug_assert!(
        buf.len() >= PREFIX_LEN,
        "frame buffer not started with begin()"
    );
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    let mut h = [0u8; HEADER_LEN];
    header.write(&mut h);
    buf[4..PREFIX_LEN].copy_from_slice(&h);
    Frame {
        header,
        raw: Bytes::from(buf),
    }
}
