//! The stage wire format.
//!
//! Every frame on a router link is `u32 LE length` of what follows, then a fixed 20-byte
//! little-endian [`Header`] the router reads, then bytes the router never parses: for messages an
//! [`Envelope`] (message id, sender stage, deadline) and a BSON payload.
//!
//! ```text
//! len u32 | kind u8 | mode u8 | flags u16 | target u32 | source u32 | key u64 | body ...
//! ```
//!
//! This crate has no Lua and no I/O policy: it builds and checks bytes, plus the two pieces of
//! plumbing router and node share (the link [`writer`] and the quit [`shutdown`] signal). Every
//! decoder returns an error value for malformed input and never panics, so a bad frame closes
//! only its own link.

pub mod codec;
pub mod envelope;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod header;
pub mod heartbeat;
pub mod service;
pub mod shutdown;
pub mod writer;

pub use codec::{FrameCodec, DEFAULT_MAX_FRAME};
pub use envelope::Envelope;
pub use error::FrameError;
pub use frame::Frame;
pub use header::{Flags, Header, Kind, LockOp, Mode, NackReason, HEADER_LEN};
pub use service::ServiceId;

/// Protocol version carried in the handshake; a peer with another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;
