//! Redis pub/sub over RESP, as much as the workloads use: `HELLO 3` (so one connection can
//! subscribe and publish), `SUBSCRIBE`, `PUBLISH`, `PING`, and the message pushes, in RESP2 and
//! RESP3 forms. Parsing walks the reply in place: no allocation per message.

use std::ops::Range;

use super::{find_crlf, parse_decimal, Event, Role};
use crate::redis::{bulk, command};

#[derive(Clone)]
pub struct Codec {
    /// The `PUBLISH` command up to the payload's length: `*3 $7 PUBLISH $n <channel>`.
    publish_prefix: Vec<u8>,
    /// The same for answers, on the agreed reply channel (Redis has no reply subjects).
    answer_prefix: Vec<u8>,
    subscribed: Vec<u8>,
}

/// What a connection sends first: `HELLO 3` when it both subscribes and publishes (a RESP2
/// connection in subscribe mode cannot publish), its subscription, and a `PING` whose answer
/// confirms all of it.
pub fn setup(role: &Role) -> (Codec, Vec<u8>) {
    let mut out = Vec::new();
    if role.subscribe.is_some() && (role.publish.is_some() || role.reply.is_some()) {
        command(&mut out, &[b"HELLO", b"3"]);
    }
    if let Some(s) = role.subscribe {
        command(&mut out, &[b"SUBSCRIBE", s.as_bytes()]);
    }
    command(&mut out, &[b"PING"]);
    let prefix = |channel: Option<&str>| {
        let mut p = b"*3\r\n$7\r\nPUBLISH\r\n".to_vec();
        bulk(&mut p, channel.unwrap_or_default().as_bytes());
        p
    };
    let codec = Codec {
        publish_prefix: prefix(role.publish),
        answer_prefix: prefix(role.reply),
        subscribed: role.subscribe.unwrap_or_default().as_bytes().to_vec(),
    };
    (codec, out)
}

impl Codec {
    pub fn publish(&self, out: &mut Vec<u8>, payload: &[u8]) {
        out.extend_from_slice(&self.publish_prefix);
        bulk(out, payload);
    }

    pub fn answer(&self, out: &mut Vec<u8>, payload: &[u8]) {
        out.extend_from_slice(&self.answer_prefix);
        bulk(out, payload);
    }

    pub fn ping(&self, out: &mut Vec<u8>) {
        command(out, &[b"PING"]);
    }

    /// The event at the start of `buf`, or `None` while it is incomplete.
    pub fn parse(&self, buf: &[u8]) -> Result<Option<(usize, Event)>, String> {
        let Some(eol) = find_crlf(buf) else {
            return Ok(None);
        };
        let line = &buf[1..eol];
        let event = match buf[0] {
            b':' => {
                let n = std::str::from_utf8(line)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or("bad integer reply")?;
                Event::Published(n)
            }
            b'+' if line == b"PONG" => Event::Pong,
            b'-' => return Err(format!("redis: {}", String::from_utf8_lossy(line))),
            b'*' | b'>' => return self.push(buf),
            _ => {
                // HELLO's map and anything else: skip it whole.
                return Ok(value_end(buf, 0)?.map(|end| (end, Event::Other)));
            }
        };
        Ok(Some((eol + 2, event)))
    }

    /// An array or push: a message, a subscribe confirmation, a RESP2 subscribed `pong`.
    fn push(&self, buf: &[u8]) -> Result<Option<(usize, Event)>, String> {
        let Some(end) = value_end(buf, 0)? else {
            return Ok(None);
        };
        let mut at = find_crlf(buf).unwrap_or(0) + 2;
        let mut item = || -> Option<Range<usize>> {
            let r = bulk_at(buf, at)?;
            at = r.end + 2;
            Some(r)
        };
        let event = match item().map(|r| &buf[r]) {
            Some(b"message") => {
                let (Some(channel), Some(payload)) = (item(), item()) else {
                    return Err("malformed message push".into());
                };
                if buf[channel] != *self.subscribed {
                    return Err("message on an unexpected channel".into());
                }
                Event::Message {
                    payload,
                    reply: 0..0,
                }
            }
            Some(b"pong") => Event::Pong,
            _ => Event::Other,
        };
        Ok(Some((end, event)))
    }
}

/// The range of the bulk string starting at `at` (already known to be complete).
fn bulk_at(buf: &[u8], at: usize) -> Option<Range<usize>> {
    if buf.get(at) != Some(&b'$') {
        return None;
    }
    let eol = at + find_crlf(&buf[at..])?;
    let len = parse_decimal(&buf[at + 1..eol])?;
    let start = eol + 2;
    (buf.len() >= start + len).then_some(start..start + len)
}

/// Where the RESP value starting at `at` ends, or `None` while it is incomplete.
fn value_end(buf: &[u8], at: usize) -> Result<Option<usize>, String> {
    let Some(eol) = buf.get(at..).and_then(find_crlf).map(|e| at + e) else {
        return Ok(None);
    };
    let head = &buf[at + 1..eol];
    let count = || -> Result<Option<usize>, String> {
        if head == b"-1" {
            return Ok(None);
        }
        parse_decimal(head)
            .map(Some)
            .ok_or_else(|| format!("bad RESP length {}", String::from_utf8_lossy(head)))
    };
    let next = eol + 2;
    match buf[at] {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(next)),
        b'$' | b'=' | b'!' => Ok(match count()? {
            None => Some(next),
            Some(n) => (buf.len() >= next + n + 2).then_some(next + n + 2),
        }),
        kind @ (b'*' | b'>' | b'~' | b'%' | b'|') => {
            let per = if matches!(kind, b'%' | b'|') { 2 } else { 1 };
            let mut end = next;
            for _ in 0..count()?.unwrap_or(0) * per {
                match value_end(buf, end)? {
                    Some(e) => end = e,
                    None => return Ok(None),
                }
            }
            Ok(Some(end))
        }
        other => Err(format!("unknown RESP type byte {other:#x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber() -> Codec {
        setup(&Role {
            subscribe: Some("ch"),
            publish: None,
            reply: None,
        })
        .0
    }

    #[test]
    fn parses_messages_in_both_protocol_versions() {
        let c = subscriber();
        for head in [b'*', b'>'] {
            let mut m = vec![head];
            m.extend_from_slice(b"3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nabc\r\n");
            for cut in 0..m.len() {
                assert!(matches!(c.parse(&m[..cut]), Ok(None)), "cut {cut}");
            }
            match c.parse(&m) {
                Ok(Some((n, Event::Message { payload, .. }))) => {
                    assert_eq!(n, m.len());
                    assert_eq!(&m[payload], b"abc");
                }
                _ => panic!("not a message"),
            }
        }
        let hello = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n";
        assert!(matches!(c.parse(hello), Ok(Some((n, Event::Other))) if n == hello.len()));
        assert!(matches!(
            c.parse(b":4\r\n"),
            Ok(Some((4, Event::Published(4))))
        ));
        assert!(c.parse(b"-ERR no\r\n").is_err());
        let wrong = b"*3\r\n$7\r\nmessage\r\n$2\r\nzz\r\n$1\r\na\r\n";
        assert!(c.parse(wrong).is_err());
    }
}
