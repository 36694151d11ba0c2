//! Messages of one read on their way to one node. Consecutive frames of a read for the same
//! link lie next to each other in the read buffer, so the batch is just their range: it is
//! queued with one copy and one lock when the target changes or the read has been handled — a
//! burst of messages to one node costs one lock, not one per message.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use stage_proto::writer::Push;

use crate::link::Link;

#[derive(Default)]
pub struct Batch {
    to: Option<Arc<Link>>,
    /// The pending frames, in the read buffer, and how many they are.
    run: Range<usize>,
    frames: u64,
}

impl Batch {
    /// Takes the frame at `frame` of `buf` for `link` while the link's queue has room for it
    /// and for what is pending; `Full` otherwise (what was pending is queued first, so order
    /// is kept).
    pub fn offer(&mut self, link: &Arc<Link>, buf: &[u8], frame: Range<usize>) -> Push {
        if !link.is_alive() {
            return Push::Closed;
        }
        let extends = self.run.end == frame.start || self.run.is_empty();
        if !extends || !self.to.as_ref().is_some_and(|t| Arc::ptr_eq(t, link)) {
            self.flush(buf);
            self.to = Some(link.clone());
        }
        let start = if self.run.is_empty() {
            frame.start
        } else {
            self.run.start
        };
        if !link.has_room(frame.end - start) {
            self.flush(buf);
            return Push::Full;
        }
        self.run = start..frame.end;
        self.frames += 1;
        Push::Queued
    }

    /// Queues what is pending; `buf` is the read buffer the offers were made from.
    pub fn flush(&mut self, buf: &[u8]) {
        if let Some(to) = self.to.take() {
            if !self.run.is_empty() && to.queue_reserved(&buf[self.run.clone()]) == Push::Queued {
                to.counters
                    .messages_out
                    .fetch_add(self.frames, Ordering::Relaxed);
            }
        }
        self.run = 0..0;
        self.frames = 0;
    }
}
