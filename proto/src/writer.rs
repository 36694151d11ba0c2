//! The write side of a link: an output buffer capped in bytes, and one task per connection
//! writing it into the socket.
//!
//! The cap is what keeps a peer that stops reading from growing its sender's memory without
//! bound: once that many bytes wait, new messages are refused ([`Push::Full`]) or their sender
//! waits for room ([`QueueTx::push_waiting`]), and the sender is told (NACK, overload signal)
//! (DESIGN §8). Control frames (heartbeats, handshake, class maps) are small and always queued.
//!
//! A frame is copied into the buffer under a short lock — its only copy on the way through a
//! router — with no allocation, channel node or reference count per frame. The writer task
//! swaps the whole buffer out and writes it with one `write` call, so a burst of frames costs
//! one syscall however many frames it holds, while a lone frame still goes out at once. The
//! writer is woken only when the buffer goes from empty to not empty.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// A writer's spare buffer larger than this after a burst is given back.
const KEEP_CAPACITY: usize = 256 * 1024;

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
    /// Frames waiting to be written, back to back.
    out: Mutex<Vec<u8>>,
    /// `out`'s length, readable without the lock.
    queued: AtomicUsize,
    /// Wakes the writer task when `out` stops being empty.
    ready: Notify,
    /// The writer is gone: pushes fail.
    closed: AtomicBool,
    /// Live [`QueueTx`] handles: the writer ends when the last one is gone and all is written.
    senders: AtomicUsize,
    /// A sender waits for room ([`QueueTx::push_waiting`]): the writer wakes it when it takes
    /// the buffer. Checked first so the writer takes no lock when nobody waits.
    waiting: AtomicBool,
    drained: Notify,
    /// The reader made no progress while a sender waited: senders are refused at once until
    /// the queue has drained to half its cap.
    stalled: AtomicBool,
}

/// The sending end of a link's queue.
#[derive(Debug)]
pub struct QueueTx {
    shared: Arc<Shared>,
    cap: usize,
}

impl Clone for QueueTx {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        QueueTx {
            shared: self.shared.clone(),
            cap: self.cap,
        }
    }
}

impl Drop for QueueTx {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.notify_one();
        }
    }
}

/// The writing end, for [`write_frames`]; dropping it closes the queue.
#[derive(Debug)]
pub struct QueueRx {
    shared: Arc<Shared>,
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Senders waiting for room learn that none will come.
        self.shared.drained.notify_waiters();
    }
}

/// A queue that refuses messages once `cap` bytes wait in it.
pub fn queue(cap: usize) -> (QueueTx, QueueRx) {
    let shared = Arc::new(Shared {
        senders: AtomicUsize::new(1),
        ..Shared::default()
    });
    (
        QueueTx {
            shared: shared.clone(),
            cap,
        },
        QueueRx { shared },
    )
}

impl QueueTx {
    /// Queues a message frame unless the queue is full.
    pub fn push(&self, frame: &[u8]) -> Push {
        if !self.has_room(frame.len()) {
            return Push::Full;
        }
        self.control(frame)
    }

    /// Whether `len` more bytes fit under the cap now.
    pub fn has_room(&self, len: usize) -> bool {
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
    pub async fn push_waiting(&self, frame: &[u8], patience: Duration) -> Push {
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
            if self.has_room(frame.len()) || s.closed.load(Ordering::SeqCst) {
                return self.control(frame);
            }
            if tokio::time::timeout(patience, drained).await.is_err() {
                s.stalled.store(true, Ordering::Relaxed);
                return Push::Full;
            }
        }
    }

    /// Queues a control frame whatever the cap.
    pub fn control(&self, frame: &[u8]) -> Push {
        let s = &self.shared;
        if s.closed.load(Ordering::Relaxed) {
            return Push::Closed;
        }
        let was_empty = {
            let mut out = s.out.lock().expect("queue lock");
            let was_empty = out.is_empty();
            out.extend_from_slice(frame);
            s.queued.store(out.len(), Ordering::SeqCst);
            was_empty
        };
        if was_empty {
            s.ready.notify_one();
        }
        Push::Queued
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }
}

impl QueueRx {
    /// Swaps the waiting frames into `batch` (empty), waiting until there are some; false
    /// once every sender is gone and everything was taken.
    async fn take(&self, batch: &mut Vec<u8>) -> bool {
        let s = &self.shared;
        loop {
            {
                let mut out = s.out.lock().expect("queue lock");
                if out.is_empty() && s.senders.load(Ordering::Acquire) == 0 {
                    return false;
                }
                if !out.is_empty() {
                    std::mem::swap(&mut *out, batch);
                    // SeqCst (free on x86 for a store followed by the check below) orders this
                    // before the check of `waiting`, so a sender that set `waiting` and then
                    // found no room is always woken.
                    s.queued.store(0, Ordering::SeqCst);
                    break;
                }
            }
            // A push between the check and this wait leaves a permit: nothing is missed.
            s.ready.notified().await;
        }
        if s.waiting.load(Ordering::SeqCst) && s.waiting.swap(false, Ordering::SeqCst) {
            s.drained.notify_waiters();
        }
        true
    }
}

/// Writes everything queued on `rx` to `w` until every sender is gone and all is written, or
/// the socket fails.
pub async fn write_frames<W: AsyncWrite + Unpin>(rx: QueueRx, mut w: W) -> std::io::Result<()> {
    let mut batch = Vec::new();
    while rx.take(&mut batch).await {
        w.write_all(&batch).await?;
        w.flush().await?;
        batch.clear();
        if batch.capacity() > KEEP_CAPACITY {
            batch = Vec::new();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_refuses_messages_but_not_control_frames() {
        let (tx, _rx) = queue(10);
        assert_eq!(tx.push(b"12345678"), Push::Queued);
        assert_eq!(tx.push(b"123"), Push::Full);
        assert_eq!(tx.control(b"123"), Push::Queued);
        assert_eq!(tx.queued(), 11);
    }

    #[tokio::test]
    async fn a_sender_waits_for_a_draining_reader() {
        let (tx, rx) = queue(10);
        assert_eq!(tx.push(b"12345678"), Push::Queued);
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            write_frames(rx, tokio::io::sink()).await
        });
        let push = tx.push_waiting(b"123", Duration::from_secs(30));
        assert_eq!(push.await, Push::Queued);
        writer.abort();
    }

    #[tokio::test]
    async fn a_reader_that_stopped_stalls_its_queue_until_it_drained() {
        let (tx, rx) = queue(10);
        assert_eq!(tx.push(b"12345678"), Push::Queued);
        let frame = || &b"123"[..];
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
