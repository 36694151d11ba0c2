//! The hot path: pick the target(s) of a message and queue the very bytes that arrived.

use stage_proto::frame::{self, Frame};
use stage_proto::writer::Push;
use stage_proto::{Flags, FrameError, Header, Kind, NackReason};

use crate::link::Link;
use crate::table::{Pick, Request, Table};

/// What happened to a message, for the caller's log and counters.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Nobody took it and the sender asked for an answer: a NACK went back.
    Nacked(NackReason),
    /// Nobody took it and the sender did not ask for an answer.
    Dropped(NackReason),
}

/// Forwards `frame` (a `Message`) received on `from`; an unknown mode byte is a malformed
/// frame.
pub fn forward(table: &Table, frame: &Frame, from: &Link) -> Result<Outcome, FrameError> {
    let h = &frame.header;
    let mode = h.forward_mode()?;
    let req = Request {
        target: h.target,
        mode,
        key: h.flags.has(Flags::KEYED).then_some(h.key),
        source: h.source,
        from,
    };
    let mut delivered = 0usize;
    let mut full = false;
    let mut offer = |link: &Link| match link.forward(frame.raw.clone()) {
        Push::Queued => delivered += 1,
        Push::Full => full = true,
        Push::Closed => {}
    };
    match table.pick(&req) {
        Pick::One(link) => offer(link),
        Pick::All(links) => links.into_iter().for_each(|l| offer(l)),
        Pick::None => {}
    }
    if full && from.overload_due() {
        from.send(overload(h));
    }
    if delivered > 0 {
        return Ok(Outcome::Delivered);
    }
    let reason = if full {
        NackReason::Overloaded
    } else if table.class(h.target.class()).is_some() {
        NackReason::NoMember
    } else {
        NackReason::UnknownClass
    };
    Ok(if h.flags.has(Flags::WANT_NACK) {
        // A NACK is as large as its message: it goes through the sender's cap too, so a
        // sender that does not read cannot grow the router with NACKs.
        if from.forward(nack(h, frame.body(), reason)) == Push::Full {
            return Ok(Outcome::Dropped(reason));
        }
        Outcome::Nacked(reason)
    } else {
        Outcome::Dropped(reason)
    })
}

/// Tells a sender that `h.target` is not keeping up.
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
