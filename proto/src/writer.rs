//! The write side of a link: a queue capped in bytes, and one task per connection draining it
//! into the socket.
//!
//! The cap is what keeps a peer that stops reading from growing its sender's memory without
//! bound: once that many bytes wait, new messages are refused ([`Push::Full`]) and the sender
//! is told (NACK, overload signal) instead (DESIGN §8). Control frames (heartbeats, handshake,
//! class maps) are small and always queued.
//!
//! Frames are copied into a buffered writer back to back and flushed only when the queue runs
//! dry, so a burst of small frames costs one `write` syscall instead of one per frame, while a
//! lone frame still goes out at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Bytes buffered before a write is forced even if more frames are queued.
const WRITE_BUFFER: usize = 64 * 1024;

/// Default cap of a link's queue.
pub const DEFAULT_LINK_BUFFER: usize = 8 * 1024 * 1024;

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue holds its cap already: the peer is not keeping up.
    Full,
    /// The link is gone.
    Closed,
}

/// The sending end of a link's queue.
#[derive(Debug, Clone)]
pub struct QueueTx {
    tx: UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    cap: usize,
}

/// The receiving end, for [`write_frames`].
#[derive(Debug)]
pub struct QueueRx {
    rx: UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A queue that refuses messages once `cap` bytes wait in it.
pub fn queue(cap: usize) -> (QueueTx, QueueRx) {
    let (tx, rx) = unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        QueueTx {
            tx,
            queued: queued.clone(),
            cap,
        },
        QueueRx { rx, queued },
    )
}

impl QueueTx {
    /// Queues a message frame unless the queue is full.
    pub fn push(&self, frame: Bytes) -> Push {
        let len = frame.len();
        let queued = self.queued.load(Ordering::Relaxed);
        // An empty queue takes any frame, so a message larger than the cap (but within the
        // maximum frame) can still be sent.
        if queued > 0 && queued + len > self.cap {
            return Push::Full;
        }
        self.control(frame)
    }

    /// Queues a control frame whatever the cap.
    pub fn control(&self, frame: Bytes) -> Push {
        let len = frame.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        match self.tx.send(frame) {
            Ok(()) => Push::Queued,
            Err(_) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                Push::Closed
            }
        }
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Writes every frame from `rx` to `w` until the queue closes or the socket fails.
pub async fn write_frames<W: AsyncWrite + Unpin>(mut rx: QueueRx, w: W) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, w);
    while let Some(frame) = rx.rx.recv().await {
        rx.queued.fetch_sub(frame.len(), Ordering::Relaxed);
        w.write_all(&frame).await?;
        while let Ok(frame) = rx.rx.try_recv() {
            rx.queued.fetch_sub(frame.len(), Ordering::Relaxed);
            w.write_all(&frame).await?;
        }
        w.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_refuses_messages_but_not_control_frames() {
        let (tx, _rx) = queue(10);
        assert_eq!(tx.push(Bytes::from_static(b"12345678")), Push::Queued);
        assert_eq!(tx.push(Bytes::from_static(b"123")), Push::Full);
        assert_eq!(tx.control(Bytes::from_static(b"123")), Push::Queued);
        assert_eq!(tx.queued(), 11);
    }
}
