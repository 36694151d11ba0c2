//! NATS text protocol, as much as the workloads use: `CONNECT`, `SUB`, `PUB` with a reply
//! subject, `MSG`, `PING`/`PONG`, `-ERR`.

use std::ops::Range;

use super::{find_crlf, parse_decimal, push_decimal, Event, Role};

#[derive(Clone)]
pub struct Codec {
    /// Where `publish` sends, and the reply subject it names.
    subject: String,
    reply: Option<String>,
    /// The subscription: every MSG must carry it.
    subscribed: String,
}

/// What a connection sends after the server's INFO: its options, its subscription, and a PING
/// whose PONG confirms both.
pub fn setup(role: &Role) -> (Codec, Vec<u8>) {
    let mut out =
        br#"CONNECT {"verbose":false,"pedantic":false,"name":"peerbench","lang":"rust","protocol":1,"echo":true}"#
            .to_vec();
    out.extend_from_slice(b"\r\n");
    if let Some(s) = role.subscribe {
        out.extend_from_slice(format!("SUB {s} 1\r\n").as_bytes());
    }
    out.extend_from_slice(b"PING\r\n");
    let codec = Codec {
        subject: role.publish.unwrap_or_default().to_owned(),
        reply: role.reply.map(str::to_owned),
        subscribed: role.subscribe.unwrap_or_default().to_owned(),
    };
    (codec, out)
}

impl Codec {
    pub fn publish(&self, out: &mut Vec<u8>, payload: &[u8]) {
        put(
            out,
            self.subject.as_bytes(),
            self.reply.as_deref().map(str::as_bytes),
            payload,
        );
    }

    pub fn answer(&self, out: &mut Vec<u8>, reply: &[u8], payload: &[u8]) {
        put(out, reply, None, payload);
    }

    pub fn ping(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"PING\r\n");
    }

    pub fn pong(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"PONG\r\n");
    }

    /// The event at the start of `buf`, or `None` while it is incomplete.
    pub fn parse(&self, buf: &[u8]) -> Result<Option<(usize, Event)>, String> {
        let Some(eol) = find_crlf(buf) else {
            return Ok(None);
        };
        let line = &buf[..eol];
        let after = eol + 2;
        let event = if let Some(args) = line.strip_prefix(b"MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            let (words, n) = words::<4>(args);
            let (subject, reply, len) = match n {
                3 => (&words[0], 0..0, &words[2]),
                4 => (&words[0], words[2].clone(), &words[3]),
                _ => return Err(format!("bad MSG line {}", String::from_utf8_lossy(line))),
            };
            if args[subject.clone()] != *self.subscribed.as_bytes() {
                return Err(format!(
                    "MSG on an unexpected subject: {}",
                    String::from_utf8_lossy(line)
                ));
            }
            let len = parse_decimal(&args[len.clone()]).ok_or("bad MSG length")?;
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            let end = after + len;
            // `reply` is relative to `args`, which starts after "MSG ".
            let reply = reply.start + 4..reply.end + 4;
            return Ok(Some((
                end + 2,
                Event::Message {
                    payload: after..end,
                    reply,
                },
            )));
        } else if line == b"PING" {
            Event::Ping(0)
        } else if line == b"PONG" {
            Event::Pong
        } else if line.starts_with(b"-ERR") {
            return Err(format!("nats: {}", String::from_utf8_lossy(line)));
        } else {
            // INFO, +OK.
            Event::Other
        };
        Ok(Some((after, event)))
    }
}

fn put(out: &mut Vec<u8>, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject);
    if let Some(r) = reply {
        out.push(b' ');
        out.extend_from_slice(r);
    }
    out.push(b' ');
    push_decimal(out, payload.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// The ranges of the first `N` space-separated words of `s`, and how many words there are
/// (more than `N` counts as `N + 1`).
fn words<const N: usize>(s: &[u8]) -> ([Range<usize>; N], usize) {
    let mut out: [Range<usize>; N] = std::array::from_fn(|_| 0..0);
    let mut n = 0;
    let mut start = None;
    for (i, &b) in s.iter().chain(std::iter::once(&b' ')).enumerate() {
        match (b == b' ', start) {
            (false, None) => start = Some(i),
            (true, Some(st)) => {
                if n < N {
                    out[n] = st..i;
                }
                n = (n + 1).min(N + 1);
                start = None;
            }
            _ => {}
        }
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber() -> Codec {
        setup(&Role {
            subscribe: Some("peerbench.w2.req"),
            ..Role::default()
        })
        .0
    }

    #[test]
    fn parses_messages_with_and_without_a_reply_subject() {
        let c = subscriber();
        let with = b"MSG peerbench.w2.req 1 peerbench.w2.rep 3\r\nabc\r\n";
        for cut in 0..with.len() {
            assert!(matches!(c.parse(&with[..cut]), Ok(None)), "cut {cut}");
        }
        let Ok(Some((n, Event::Message { payload, reply }))) = c.parse(with) else {
            panic!("not a message");
        };
        assert_eq!(n, with.len());
        assert_eq!(
            (&with[payload], &with[reply]),
            (&b"abc"[..], &b"peerbench.w2.rep"[..])
        );
        let without = b"MSG peerbench.w2.req 1 2\r\nxy\r\n";
        let Ok(Some((_, Event::Message { payload, reply }))) = c.parse(without) else {
            panic!("not a message");
        };
        assert_eq!((&without[payload], reply.len()), (&b"xy"[..], 0));
        assert!(c.parse(b"MSG other 1 2\r\nxy\r\n").is_err());
        assert!(c.parse(b"-ERR 'Slow Consumer'\r\n").is_err());
        assert_eq!(c.parse(b"PING\r\n"), Ok(Some((6, Event::Ping(0)))));
    }

    #[test]
    fn writes_publishes_the_server_can_parse() {
        let c = setup(&Role {
            publish: Some("a.b"),
            reply: Some("r"),
            ..Role::default()
        })
        .0;
        let mut out = Vec::new();
        c.publish(&mut out, b"hello");
        c.answer(&mut out, b"inbox", b"x");
        assert_eq!(out, b"PUB a.b r 5\r\nhello\r\nPUB inbox 1\r\nx\r\n");
    }
}
