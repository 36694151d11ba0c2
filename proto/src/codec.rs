//! tokio-util codec for frames.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::FrameError;
use crate::frame::Frame;
use crate::header::{Header, HEADER_LEN};

/// Room the next read gets at least: the stream is read in large slices, so a burst of small
/// frames costs one `read` per this many bytes, not one per leftover fragment of the buffer.
pub const READ_ROOM: usize = 64 * 1024;

/// The room the next read should have after the unparsed bytes `buffered`: the rest of the
/// frame they begin (reserved once, not grown read by read), and at least [`READ_ROOM`].
pub fn read_room(buffered: &[u8]) -> usize {
    let frame_len = buffered.get(..4).map_or(0, |p| {
        4 + u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize
    });
    frame_len.saturating_sub(buffered.len()).max(READ_ROOM)
}

fn make_read_room(src: &mut BytesMut) {
    let want = read_room(src);
    if src.capacity() - src.len() < want {
        src.reserve(want);
    }
}

/// The length (prefix excluded) of the frame starting `buf`, checked against `max_frame` and
/// the header's size; `None` while the prefix is incomplete.
pub fn frame_len(buf: &[u8], max_frame: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > max_frame {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if len < HEADER_LEN {
        return Err(FrameError::TooShort { len });
    }
    Ok(Some(len))
}

/// Default maximum frame size (length prefix excluded): 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Splits a byte stream into [`Frame`]s and writes frames back out unchanged.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max_frame` bytes (length prefix excluded).
    pub fn new(max_frame: usize) -> FrameCodec {
        FrameCodec { max_frame }
    }
}

impl FrameCodec {
    /// Changes the limit, e.g. from a small pre-handshake cap to the configured maximum.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        let Some(len) = frame_len(src, self.max_frame)? else {
            make_read_room(src);
            return Ok(None);
        };
        if src.len() < 4 + len {
            make_read_room(src);
            return Ok(None);
        }
        // Check the header before taking the bytes, so an error leaves nothing half-consumed.
        let header = Header::read(&src[4..4 + HEADER_LEN])?;
        let raw = src.split_to(4 + len).freeze();
        Ok(Some(Frame { header, raw }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        dst.extend_from_slice(&frame.raw);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Kind;
    use crate::service::ServiceId;
    use rand::{Rng, SeedableRng};

    fn message(body: &[u8]) -> Frame {
        let mut h = Header::new(Kind::Message);
        h.target = ServiceId(0x0100_0001);
        Frame::new(h, body)
    }

    #[test]
    fn decodes_frames_split_at_every_byte() {
        let a = message(b"hello");
        let b = message(b"");
        let mut stream = a.raw.to_vec();
        stream.extend_from_slice(&b.raw);
        for cut in 0..stream.len() {
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::from(&stream[..cut]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&stream[cut..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].body(), b"hello");
            assert_eq!(got[0].raw, a.raw);
            assert_eq!(got[1].body(), b"");
        }
    }

    #[test]
    fn oversized_and_undersized_lengths_are_errors() {
        let mut codec = FrameCodec::new(100);
        let mut buf = BytesMut::from(&101u32.to_le_bytes()[..]);
        assert!(codec.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&3u32.to_le_bytes()[..]);
        assert!(codec.decode(&mut buf).is_err());
    }

    /// Property: random and truncated bytes never panic the decoder; every outcome is a frame,
    /// "need more bytes", or an error value.
    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5747_4745);
        let valid = message(b"payload bytes").raw.to_vec();
        for round in 0..20_000 {
            let mut bytes: Vec<u8> = if round % 2 == 0 {
                let n = rng.gen_range(0..64);
                (0..n).map(|_| rng.gen()).collect()
            } else {
                let mut v = valid.clone();
                let flips = rng.gen_range(1..4);
                for _ in 0..flips {
                    let i = rng.gen_range(0..v.len());
                    v[i] ^= 1 << rng.gen_range(0..8);
                }
                v.truncate(rng.gen_range(0..=v.len()));
                v
            };
            if round % 7 == 0 {
                // Small lengths that pass the size check but lie about the content.
                let len = rng.gen_range(0..40u32).to_le_bytes();
                bytes.splice(0..bytes.len().min(4), len);
            }
            let mut codec = FrameCodec::new(1024);
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..8 {
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => {
                        let _ = crate::envelope::Envelope::parse(f.body());
                        let _ = crate::handshake::Hello::from_frame(&f);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
