//! The stage router's wire protocol from a client's side (docs/protocol.md): a link registers
//! one stage name (its "subscription": a member of that class), publishes `Message` frames to
//! the class of another name, and answers a message by sending to its source service id.

use stage_proto::frame::PREFIX_LEN;
use stage_proto::handshake::{Challenge, Hello, Welcome};
use stage_proto::{Envelope, Frame, Header, Kind, NackReason, ServiceId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Event, Role};

/// Name under which pure publishers register (they subscribe to nothing).
const PUBLISHER: &str = "peerbench.pub";

/// Largest frame a bench client accepts.
const MAX_FRAME: usize = 1 << 20;

#[derive(Clone)]
pub struct Codec {
    own: ServiceId,
    name: Vec<u8>,
    /// The class `publish` sends to, and the message id it writes (the subject).
    target: ServiceId,
    subject: Vec<u8>,
    /// Message id of answers.
    reply: Vec<u8>,
}

/// Registers on the router at `stream` as `role` asks; the handshake is read frame by frame, so
/// nothing after it is consumed.
pub async fn setup(stream: &mut TcpStream, role: &Role<'_>) -> Result<Codec, String> {
    let name = role.subscribe.unwrap_or(PUBLISHER);
    let challenge = Challenge::from_frame(&read_frame(stream).await?).map_err(|e| e.to_string())?;
    let hello = Hello::answer(&challenge, "peerbench", vec![name.to_owned()], 0, None);
    stream
        .write_all(&hello.to_frame().raw)
        .await
        .map_err(|e| format!("stage: {e}"))?;
    let welcome = loop {
        let f = read_frame(stream).await?;
        match f.header.kind {
            Kind::Welcome => break Welcome::from_frame(&f).map_err(|e| e.to_string())?,
            Kind::Refuse => return Err("stage: the router refused the link".into()),
            _ => {}
        }
    };
    let own = ServiceId(welcome.stages.first().map(|s| s.1).ok_or("no service id")?);
    let target = match role.publish {
        None => ServiceId(0),
        Some(subject) => welcome
            .classes
            .iter()
            .find(|(n, _)| n == subject)
            .map(|(_, c)| ServiceId(c << 24))
            .ok_or_else(|| format!("stage: no member registered for {subject}"))?,
    };
    Ok(Codec {
        own,
        name: name.as_bytes().to_vec(),
        target,
        subject: role.publish.unwrap_or_default().as_bytes().to_vec(),
        reply: role.reply.unwrap_or_default().as_bytes().to_vec(),
    })
}

async fn read_frame(stream: &mut TcpStream) -> Result<Frame, String> {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| format!("stage handshake: {e}"))?;
    let len = u32::from_le_bytes(len) as usize;
    if !(stage_proto::HEADER_LEN..=MAX_FRAME).contains(&len) {
        return Err(format!("stage handshake: frame of {len} bytes"));
    }
    let mut raw = vec![0u8; 4 + len];
    raw[..4].copy_from_slice(&(len as u32).to_le_bytes());
    stream
        .read_exact(&mut raw[4..])
        .await
        .map_err(|e| format!("stage handshake: {e}"))?;
    let header = Header::read(&raw[4..]).map_err(|e| e.to_string())?;
    Ok(Frame {
        header,
        raw: raw.into(),
    })
}

impl Codec {
    pub fn publish(&self, out: &mut Vec<u8>, payload: &[u8]) {
        self.message(out, self.target, &self.subject, payload);
    }

    /// Answers to the source service id of the message (`reply` holds its 4 bytes).
    pub fn answer(&self, out: &mut Vec<u8>, reply: &[u8], payload: &[u8]) {
        let to = ServiceId(u32::from_le_bytes(reply.try_into().unwrap_or_default()));
        self.message(out, to, &self.reply, payload);
    }

    fn message(&self, out: &mut Vec<u8>, target: ServiceId, msgid: &[u8], payload: &[u8]) {
        let start = out.len();
        out.resize(start + PREFIX_LEN, 0);
        let envelope = Envelope {
            msgid,
            sender: &self.name,
            deadline_ms: 0,
            corr: 0,
            answer: false,
            origin: 0,
            no_reply: true,
        };
        // Both lengths are far below the limits `write` checks.
        let _ = envelope.write(out);
        out.extend_from_slice(payload);
        let mut h = Header::new(Kind::Message);
        h.target = target;
        h.source = self.own;
        self.finish(out, start, h);
    }

    fn finish(&self, out: &mut [u8], start: usize, h: Header) {
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        let mut head = [0u8; stage_proto::HEADER_LEN];
        h.write(&mut head);
        out[start + 4..start + PREFIX_LEN].copy_from_slice(&head);
    }

    pub fn ping(&self, out: &mut Vec<u8>) {
        self.control(out, Kind::Ping, 1);
    }

    pub fn pong(&self, out: &mut Vec<u8>, key: u64) {
        self.control(out, Kind::Pong, key);
    }

    fn control(&self, out: &mut Vec<u8>, kind: Kind, key: u64) {
        let start = out.len();
        out.resize(start + PREFIX_LEN, 0);
        let mut h = Header::new(kind);
        h.key = key;
        self.finish(out, start, h);
    }

    /// The event at the start of `buf`, or `None` while it is incomplete.
    pub fn parse(&self, buf: &[u8]) -> Result<Option<(usize, Event)>, String> {
        let Some(len) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        if !(stage_proto::HEADER_LEN..=MAX_FRAME).contains(&len) {
            return Err(format!("stage: frame of {len} bytes"));
        }
        let Some(frame) = buf.get(..4 + len) else {
            return Ok(None);
        };
        let h = Header::read(&frame[4..]).map_err(|e| format!("stage: {e}"))?;
        let event = match h.kind {
            Kind::Message => {
                if h.target.class() != self.own.class() {
                    return Err(format!(
                        "stage: message for {} reached {}",
                        h.target, self.own
                    ));
                }
                let (env, payload) =
                    Envelope::parse(&frame[PREFIX_LEN..]).map_err(|e| format!("stage: {e}"))?;
                if env.msgid != self.name.as_slice() {
                    return Err("stage: message with an unexpected id".into());
                }
                let at = frame.len() - payload.len();
                Event::Message {
                    payload: at..frame.len(),
                    // The source service id in the header.
                    reply: 12..16,
                }
            }
            Kind::Ping => Event::Ping(h.key),
            Kind::Pong => Event::Pong,
            Kind::Nack => {
                return Err(format!(
                    "stage: message refused: {}",
                    NackReason::from_u8(h.mode).describe()
                ))
            }
            _ => Event::Other,
        };
        Ok(Some((4 + len, event)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(name: &str, class: u8) -> Codec {
        Codec {
            own: ServiceId::new(class, 7).unwrap(),
            name: name.as_bytes().to_vec(),
            target: ServiceId::new(class, 0).unwrap(),
            subject: name.as_bytes().to_vec(),
            reply: b"rep".to_vec(),
        }
    }

    #[test]
    fn a_published_frame_parses_back_with_its_reply_address() {
        let c = codec("peerbench.w1", 3);
        let mut out = Vec::new();
        c.publish(&mut out, b"payload");
        for cut in 0..out.len() {
            assert!(matches!(c.parse(&out[..cut]), Ok(None)), "cut {cut}");
        }
        let Ok(Some((n, Event::Message { payload, reply }))) = c.parse(&out) else {
            panic!("not a message");
        };
        assert_eq!((n, &out[payload]), (out.len(), &b"payload"[..]));
        assert_eq!(&out[reply], &c.own.0.to_le_bytes());
        // An answer goes to the source service id it is given.
        let mut answer = Vec::new();
        c.answer(
            &mut answer,
            &ServiceId::new(9, 1).unwrap().0.to_le_bytes(),
            b"x",
        );
        assert_eq!(
            Header::read(&answer[4..]).unwrap().target,
            ServiceId::new(9, 1).unwrap()
        );
    }

    #[test]
    fn wrong_frames_are_errors_and_overload_signals_are_not() {
        let c = codec("peerbench.w1", 3);
        let mut other = Vec::new();
        codec("peerbench.w1", 4).publish(&mut other, b"p");
        assert!(c.parse(&other).is_err(), "a message for another class");
        let mut h = Header::new(Kind::Nack);
        h.mode = NackReason::NoMember as u8;
        assert!(c.parse(&Frame::new(h, &[]).raw).is_err());
        let overload = Frame::new(Header::new(Kind::Overload), &[]).raw;
        assert_eq!(c.parse(&overload), Ok(Some((24, Event::Other))));
        assert!(c.parse(&[3, 0, 0, 0]).is_err(), "shorter than a header");
    }
}
