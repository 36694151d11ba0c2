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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

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

/// What both ends of a queue share.
#[derive(Debug, Default)]
struct Shared {
    /// Bytes waiting to be written.
    queued: AtomicUsize,
    /// A sender waits for room ([`QueueTx::push_waiting`]): the writer wakes it after each
    /// flush. Checked first so the writer takes no lock when nobody waits.
    waiting: AtomicBool,
    drained: Notify,
    /// The reader made no progress while a sender waited: senders are refused at once until
    /// the queue has drained to half its cap.
    stalled: AtomicBool,
}

/// The sending end of a link's queue.
#[derive(Debug, Clone)]
pub struct QueueTx {
    tx: UnboundedSender<Bytes>,
    shared: Arc<Shared>,
    cap: usize,
}

/// The receiving end, for [`write_frames`].
#[derive(Debug)]
pub struct QueueRx {
    rx: UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
}

/// A queue that refuses messages once `cap` bytes wait in it.
pub fn queue(cap: usize) -> (QueueTx, QueueRx) {
    let (tx, rx) = unbounded_channel();
    let shared = Arc::new(Shared::default());
    (
        QueueTx {
            tx,
            shared: shared.clone(),
            cap,
        },
        QueueRx { rx, shared },
    )
}

impl QueueTx {
    /// Queues a message frame unless the queue is full.
    pub fn push(&self, frame: Bytes) -> Push {
        if !self.has_room(frame.len()) {
            return Push::Full;
        }
        self.control(frame)
    }

    fn has_room(&self, len: usize) -> bool {
        let queued = self.shared.queued.load(Ordering::SeqCst);
        // An empty queue takes any frame, so a message larger than the cap (but within the
        // maximum frame) can still be sent.
        queued == 0 || queued + len <= self.cap
    }

    /// Queues a message frame, waiting for room while the reader is draining the queue: TCP
    /// back-pressure for a consumer that is slower than its producers, without loss. A queue
    /// whose reader made no progress for `patience` is stalled: it refuses this frame and,
    /// without waiting, every frame until it has drained to half its cap, so a consumer that
    /// stopped reading cannot hold its producers up.
    pub async fn push_waiting(&self, frame: Bytes, patience: Duration) -> Push {
        let s = &self.shared;
        if s.stalled.load(Ordering::Relaxed) {
            if s.queued.load(Ordering::Relaxed) > self.cap / 2 {
                return Push::Full;
            }
            s.stalled.store(false, Ordering::Relaxed);
        }
        loop {
            let drained = s.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            s.waiting.store(true, Ordering::SeqCst);
            if self.has_room(frame.len()) {
                return self.control(frame);
            }
            if self.tx.is_closed() {
                return Push::Closed;
            }
            if tokio::time::timeout(patience, drained).await.is_err() {
                s.stalled.store(true, Ordering::Relaxed);
                return Push::Full;
            }
        }
    }

    /// Queues a control frame whatever the cap.
    pub fn control(&self, frame: Bytes) -> Push {
        let len = frame.len();
        self.shared.queued.fetch_add(len, Ordering::Relaxed);
        match self.tx.send(frame) {
            Ok(()) => Push::Queued,
            Err(_) => {
                self.shared.queued.fetch_sub(len, Ordering::Relaxed);
                Push::Closed
            }
        }
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }
}

impl QueueRx {
    /// Takes `frame` off the count, and wakes senders waiting for room at once: the write that
    /// follows may wait a long time for a slow reader, while the queue has room already.
    fn took(&self, frame: &Bytes) {
        let s = &self.shared;
        // SeqCst (free on x86 for read-modify-write) orders this before the check of
        // `waiting`, so a sender that set `waiting` and then found no room is always woken.
        s.queued.fetch_sub(frame.len(), Ordering::SeqCst);
        if s.waiting.load(Ordering::SeqCst) && s.waiting.swap(false, Ordering::SeqCst) {
            s.drained.notify_waiters();
        }
    }
}

/// Writes every frame from `rx` to `w` until the queue closes or the socket fails.
pub async fn write_frames<W: AsyncWrite + Unpin>(mut rx: QueueRx, w: W) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, w);
    while let Some(frame) = rx.rx.recv().await {
        rx.took(&frame);
        w.write_all(&frame).await?;
        while let Ok(frame) = rx.rx.try_recv() {
            rx.took(&frame);
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

    #[tokio::test]
    async fn a_sender_waits_for_a_draining_reader() {
        let (tx, rx) = queue(10);
        assert_eq!(tx.push(Bytes::from_static(b"12345678")), Push::Queued);
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            write_frames(rx, tokio::io::sink()).await
        });
        let push = tx.push_waiting(Bytes::from_static(b"123"), Duration::from_secs(30));
        assert_eq!(push.await, Push::Queued);
        writer.abort();
    }

    #[tokio::test]
    async fn a_reader_that_stopped_stalls_its_queue_until_it_drained() {
        let (tx, rx) = queue(10);
        assert_eq!(tx.push(Bytes::from_static(b"12345678")), Push::Queued);
        let frame = || Bytes::from_static(b"123");
        let patience = Duration::from_millis(20);
        assert_eq!(tx.push_waiting(frame(), patience).await, Push::Full);
        // Stalled: refused without waiting out a long patience.
        let at_once = tokio::time::timeout(
            Duration::from_secs(5),
            tx.push_waiting(frame(), Duration::from_secs(600)),
        );
        assert_eq!(at_once.await, Ok(Push::Full));
        // Once the reader drained the queue, senders are served again.
        let writer = tokio::spawn(write_frames(rx, tokio::io::sink()));
        let served = tx.push_waiting(frame(), Duration::from_secs(30));
        let mut result = served.await;
        for _ in 0..1000 {
            if result != Push::Full {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            result = tx.push_waiting(frame(), Duration::from_secs(30)).await;
        }
        assert_eq!(result, Push::Queued);
        writer.abort();
    }
}
