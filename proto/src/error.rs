//! Errors for malformed input. Each one says what was wrong so the log line that closes the
//! offending link is useful to whoever operates the peer.

use std::fmt;

/// A frame or handshake that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than the configured maximum.
    TooLarge { len: usize, max: usize },
    /// The length prefix announces fewer bytes than a routing header needs.
    TooShort { len: usize },
    /// The `kind` byte names no frame kind this version knows.
    UnknownKind(u8),
    /// The `mode` byte names no forwarding mode.
    UnknownMode(u8),
    /// A message envelope is cut short or inconsistent.
    BadEnvelope(&'static str),
    /// A handshake body is not what its kind requires.
    BadHandshake(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max} bytes")
            }
            FrameError::TooShort { len } => write!(
                f,
                "frame of {len} bytes is shorter than the {}-byte routing header",
                crate::HEADER_LEN
            ),
            FrameError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::UnknownMode(m) => write!(f, "unknown forwarding mode {m}"),
            FrameError::BadEnvelope(why) => write!(f, "malformed message envelope: {why}"),
            FrameError::BadHandshake(why) => write!(f, "malformed handshake: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<FrameError> for std::io::Error {
    fn from(e: FrameError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}
