//! The hot path: pick the target(s) of a message and queue the very bytes that arrived.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use stage_proto::frame::{self, PREFIX_LEN};
use stage_proto::writer::Push;
use stage_proto::{Flags, FrameError, Header, Kind, NackReason};

use crate::batch::Batch;
use crate::link::Link;
use crate::snapshot::Snapshot;
use crate::table::{Member, Pick, Request, Table};

/// How long a sender waits for room in a full queue whose node makes no progress reading it,
/// before that queue counts as stalled and its messages are refused. Progress is seen when the
/// kernel takes more of the queue, which it does in steps of a third of the socket's send
/// buffer (several MB on a busy link): a consumer reading 1 MB/s still counts as reading.
pub const STALL_PATIENCE: Duration = Duration::from_secs(1);

/// What happened to a message, for the caller's log and counters.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Nobody took it and the sender asked for an answer: a NACK went back.
    Nacked(NackReason),
    /// Nobody took it and the sender did not ask for an answer.
    Dropped(NackReason),
}

/// The result of the first, non-blocking attempt.
pub enum Attempt {
    Done(Outcome),
    /// Targets whose queues were full: the caller waits for room with [`deliver_blocked`]
    /// (back-pressure on the sender) before the message is settled.
    Blocked {
        links: Vec<Arc<Link>>,
        delivered: usize,
    },
}

/// Forwards the message at `frame` in the read buffer `buf` (its header `h`) received on
/// `from`: a single target takes it through `batch`, a broadcast straight into each member's
/// queue. An unknown mode byte is a malformed frame.
pub fn forward(
    table: &Table,
    h: &Header,
    buf: &[u8],
    frame: Range<usize>,
    from: &Link,
    batch: &mut Batch,
) -> Result<Attempt, FrameError> {
    let raw = &buf[frame.clone()];
    let mode = h.forward_mode()?;
    let req = Request {
        target: h.target,
        mode,
        key: h.flags.has(Flags::KEYED).then_some(h.key),
        source: h.source,
        from,
    };
    let mut delivered = 0usize;
    let mut blocked = Vec::new();
    let mut count = |link: &Arc<Link>, push| match push {
        Push::Queued => delivered += 1,
        Push::Full => blocked.push(link.clone()),
        Push::Closed => {}
    };
    match table.pick(&req) {
        Pick::One(link) => count(link, batch.offer(link, buf, frame)),
        Pick::All(members) => {
            batch.flush(buf);
            for link in members.iter().filter_map(Member::live) {
                let push = link.forward(raw);
                if push == Push::Queued {
                    link.counters.messages_out.fetch_add(1, Ordering::Relaxed);
                }
                count(link, push);
            }
        }
        Pick::None => {}
    }
    if !blocked.is_empty() {
        return Ok(Attempt::Blocked {
            links: blocked,
            delivered,
        });
    }
    if delivered == 0 {
        // A NACK to a node must not overtake messages to it still in the batch.
        batch.flush(buf);
    }
    Ok(Attempt::Done(settle(table, h, raw, from, delivered, false)))
}

/// Waits for room on the targets whose queues were full — the sender's link is not read
/// meanwhile, so a producer faster than its consumer is slowed by TCP instead of losing
/// messages — and settles the message. A stalled target refuses it (see
/// [`stage_proto::writer::QueueTx::push_waiting`]). Either way the sender gets an overload
/// signal (at most one per interval). The caller has flushed its batch.
pub async fn deliver_blocked(
    table: &Snapshot<Table>,
    h: &Header,
    raw: &[u8],
    from: &Link,
    links: Vec<Arc<Link>>,
    mut delivered: usize,
) -> Outcome {
    // The sender hears that its target is not keeping up (DESIGN §8) while it is slowed down,
    // so a script can shed load before anything is refused.
    tell_overload(from, h);
    // The wait is the router's choice: the sender's quiet meanwhile is not silence.
    let pause = from.liveness.pause();
    let mut full = false;
    for link in links {
        match link.forward_waiting(raw, STALL_PATIENCE).await {
            Push::Queued => {
                link.counters.messages_out.fetch_add(1, Ordering::Relaxed);
                delivered += 1
            }
            Push::Full => full = true,
            Push::Closed => {}
        }
    }
    drop(pause);
    settle(&table.load(), h, raw, from, delivered, full)
}

/// The outcome of a message that reached `delivered` targets; `full`: some refused it.
fn settle(
    table: &Table,
    h: &Header,
    raw: &[u8],
    from: &Link,
    delivered: usize,
    full: bool,
) -> Outcome {
    if full {
        tell_overload(from, h);
    }
    if delivered > 0 {
        return Outcome::Delivered;
    }
    let reason = if full {
        NackReason::Overloaded
    } else if table.class(h.target.class()).is_some() {
        NackReason::NoMember
    } else {
        NackReason::UnknownClass
    };
    if h.flags.has(Flags::WANT_NACK) {
        // A NACK is as large as its message: it goes through the sender's cap too, so a
        // sender that does not read cannot grow the router with NACKs.
        if from.forward(&nack(h, &raw[PREFIX_LEN..], reason)) == Push::Full {
            return Outcome::Dropped(reason);
        }
        from.counters.nacks.fetch_add(1, Ordering::Relaxed);
        Outcome::Nacked(reason)
    } else {
        Outcome::Dropped(reason)
    }
}

/// Tells a sender that `h.target` is not keeping up, at most once per interval.
fn tell_overload(from: &Link, h: &Header) {
    if from.overload_due() {
        from.send(overload(h));
        from.counters.overloads.fetch_add(1, Ordering::Relaxed);
    }
}

/// The overload signal about `h.target` for its sender.
fn overload(h: &Header) -> bytes::Bytes {
    let mut o = Header::new(Kind::Overload);
    o.target = h.source;
    o.source = h.target;
    frame::finish(frame::begin(0), o).raw
}

/// A NACK for a message: addressed back to its source, carrying the original envelope and
/// payload so the sender can tell which request failed.
fn nack(h: &Header, body: &[u8], reason: NackReason) -> bytes::Bytes {
    let mut buf = frame::begin(body.len());
    buf.extend_from_slice(body);
    let header = Header {
        kind: Kind::Nack,
        mode: reason as u8,
        flags: h.flags,
        target: h.source,
        source: h.target,
        key: h.key,
    };
    frame::finish(buf, header).raw
}
