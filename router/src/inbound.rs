//! The read side of a link once it is registered: large reads into one buffer, and each
//! complete frame handed out in place — forwarding a frame then costs no allocation and no
//! reference count, only the copy into its target's output buffer.

use std::ops::Range;

use stage_proto::codec::{frame_len, read_room, READ_ROOM};
use stage_proto::{FrameError, Header};
use tokio::io::{AsyncRead, AsyncReadExt};

/// A buffer larger than this is given back once it is empty (after a large frame).
const KEEP_CAPACITY: usize = 1024 * 1024;

pub struct FrameReader<R> {
    rd: R,
    buf: Vec<u8>,
    /// Where the bytes not handed out yet start.
    start: usize,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader that first hands out the frames in `leftover` (read during the handshake).
    pub fn new(rd: R, leftover: &[u8], max_frame: usize) -> FrameReader<R> {
        let mut buf = Vec::with_capacity(READ_ROOM.max(leftover.len()));
        buf.extend_from_slice(leftover);
        FrameReader {
            rd,
            buf,
            start: 0,
            max_frame,
        }
    }

    /// The next complete frame — its header and where its bytes (length prefix included) are
    /// in [`FrameReader::buffer`] — or `None` when more must be read. A malformed frame is an
    /// error: the link must close.
    pub fn next_frame(&mut self) -> Result<Option<(Header, Range<usize>)>, FrameError> {
        let rest = &self.buf[self.start..];
        let Some(len) = frame_len(rest, self.max_frame)? else {
            return Ok(None);
        };
        if rest.len() < 4 + len {
            return Ok(None);
        }
        let header = Header::read(&rest[4..])?;
        let range = self.start..self.start + 4 + len;
        self.start = range.end;
        Ok(Some((header, range)))
    }

    /// The bytes of a frame [`FrameReader::next`] handed out (valid until the next `fill`).
    pub fn get(&self, frame: Range<usize>) -> &[u8] {
        &self.buf[frame]
    }

    /// The buffer the ranges of [`FrameReader::next`] index (valid until the next `fill`).
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// Reads once, keeping the bytes not handed out yet; false at the end of the stream.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        self.buf.drain(..self.start);
        self.start = 0;
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::with_capacity(READ_ROOM);
        }
        self.buf.reserve(read_room(&self.buf));
        Ok(self.rd.read_buf(&mut self.buf).await? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage_proto::{Frame, Kind};

    fn frame(key: u64, body: &[u8]) -> Vec<u8> {
        let mut h = Header::new(Kind::Message);
        h.key = key;
        Frame::new(h, body).raw.to_vec()
    }

    #[tokio::test]
    async fn hands_out_frames_split_across_reads_in_order() {
        let mut stream = frame(1, b"a");
        stream.extend(frame(2, &vec![7u8; 100_000]));
        stream.extend(frame(3, b""));
        // The first frame arrived with the handshake; the rest comes in small pieces.
        let (client, mut server) = tokio::io::duplex(1000);
        let rest = stream[25..].to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            server.write_all(&rest).await.unwrap();
        });
        let mut r = FrameReader::new(client, &stream[..25], 1 << 20);
        let mut keys = Vec::new();
        while keys.len() < 3 {
            match r.next_frame().unwrap() {
                Some((h, range)) => {
                    assert_eq!(r.get(range).len(), 24 + [1, 100_000, 0][keys.len()]);
                    keys.push(h.key);
                }
                None => assert!(r.fill().await.unwrap(), "ended early"),
            }
        }
        assert_eq!(keys, [1, 2, 3]);
        writer.await.unwrap();
        assert!(!r.fill().await.unwrap(), "the end of the stream");
    }

    #[test]
    fn malformed_frames_are_errors() {
        let too_short = 3u32.to_le_bytes();
        let mut r = FrameReader::new(tokio::io::empty(), &too_short, 1000);
        assert!(r.next_frame().is_err());
        let too_long = 5000u32.to_le_bytes();
        let mut r = FrameReader::new(tokio::io::empty(), &too_long, 1000);
        assert!(r.next_frame().is_err());
        let mut unknown = frame(1, b"");
        unknown[4] = 200;
        let mut r = FrameReader::new(tokio::io::empty(), &unknown, 1000);
        assert!(r.next_frame().is_err());
    }
}
