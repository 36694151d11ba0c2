//! The message envelope: what the receiving node needs besides the payload.
//!
//! ```text
//! msgid_len u16 | msgid | sender_len u8 | sender | deadline_ms u64 | corr u64 | flags u8
//!   | [origin u32, when flags has ORIGIN] | payload
//! ```
//! `msgid` is the key the receiver looks up (`"id"`, `"id=ret"`, `"S:id"` for `stage+id`);
//! `sender` is the sending stage's name, so a reply can be addressed by name through any router;
//! `deadline_ms` is an absolute Unix time in milliseconds after which the message is void, or 0;
//! `corr` identifies a request that expects an answer (0: none), and with `answer` = 1 the
//! message is an answer to request `corr`. `origin` is the instance answers go to when it is
//! not the node that sent the frame: a service that passes a request on (the `route` stage)
//! keeps the requester as the return address. Routers never look at any of this.

use crate::error::FrameError;

/// A parsed envelope borrowing from the frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub msgid: &'a [u8],
    pub sender: &'a [u8],
    pub deadline_ms: u64,
    /// The request this message is (or, with `answer`, answers); 0 for none.
    pub corr: u64,
    pub answer: bool,
    /// The instance of the node that answers go to, when not the frame's source; 0: the source.
    pub origin: u32,
    /// The message takes no answer (a service's reply or notice): the receiving callback's
    /// return values go nowhere, so two parties can never bounce answers forever.
    pub no_reply: bool,
}

/// Flag bits of the envelope's last byte.
const ANSWER: u8 = 1;
const ORIGIN: u8 = 2;
const NO_REPLY: u8 = 4;

impl<'a> Envelope<'a> {
    /// Appends the envelope to `buf`; the payload goes right after it.
    pub fn write(&self, buf: &mut Vec<u8>) -> Result<(), FrameError> {
        let msgid_len = u16::try_from(self.msgid.len())
            .map_err(|_| FrameError::BadEnvelope("message id longer than 65535 bytes"))?;
        let sender_len = u8::try_from(self.sender.len())
            .map_err(|_| FrameError::BadEnvelope("stage name longer than 255 bytes"))?;
        buf.extend_from_slice(&msgid_len.to_le_bytes());
        buf.extend_from_slice(self.msgid);
        buf.push(sender_len);
        buf.extend_from_slice(self.sender);
        buf.extend_from_slice(&self.deadline_ms.to_le_bytes());
        buf.extend_from_slice(&self.corr.to_le_bytes());
        let origin = if self.origin != 0 { ORIGIN } else { 0 };
        let no_reply = if self.no_reply { NO_REPLY } else { 0 };
        buf.push(u8::from(self.answer) | origin | no_reply);
        if self.origin != 0 {
            buf.extend_from_slice(&self.origin.to_le_bytes());
        }
        Ok(())
    }

    /// Splits a message body into its envelope and payload.
    pub fn parse(body: &'a [u8]) -> Result<(Envelope<'a>, &'a [u8]), FrameError> {
        let cut = FrameError::BadEnvelope("cut short");
        let (len, rest) = split(body, 2).ok_or(cut.clone())?;
        let (msgid, rest) =
            split(rest, u16::from_le_bytes([len[0], len[1]]) as usize).ok_or(cut.clone())?;
        let (len, rest) = split(rest, 1).ok_or(cut.clone())?;
        let (sender, rest) = split(rest, len[0] as usize).ok_or(cut.clone())?;
        let (deadline, rest) = split(rest, 8).ok_or(cut.clone())?;
        let (corr, rest) = split(rest, 8).ok_or(cut.clone())?;
        let (flags, rest) = split(rest, 1).ok_or(cut.clone())?;
        let flags = flags[0];
        if flags & !(ANSWER | ORIGIN | NO_REPLY) != 0 {
            return Err(FrameError::BadEnvelope("unknown envelope flags"));
        }
        let (origin, payload) = if flags & ORIGIN != 0 {
            let (o, rest) = split(rest, 4).ok_or(cut)?;
            let origin = u32::from_le_bytes([o[0], o[1], o[2], o[3]]);
            if origin == 0 {
                return Err(FrameError::BadEnvelope("origin instance 0"));
            }
            (origin, rest)
        } else {
            (0, rest)
        };
        Ok((
            Envelope {
                msgid,
                sender,
                deadline_ms: u64_le(deadline),
                corr: u64_le(corr),
                answer: flags & ANSWER != 0,
                origin,
                no_reply: flags & NO_REPLY != 0,
            },
            payload,
        ))
    }
}

fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

fn split(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        for (origin, no_reply) in [(0, false), (9, true)] {
            let e = Envelope {
                msgid: b"hello=ret",
                sender: b"alpha",
                deadline_ms: 1234,
                corr: 77,
                answer: true,
                origin,
                no_reply,
            };
            let mut buf = Vec::new();
            e.write(&mut buf).unwrap();
            buf.extend_from_slice(b"PAYLOAD");
            let (got, payload) = Envelope::parse(&buf).unwrap();
            assert_eq!(got, e);
            assert_eq!(payload, b"PAYLOAD");
            let envelope_len = buf.len() - 7;
            for cut in 0..envelope_len {
                assert!(Envelope::parse(&buf[..cut]).is_err(), "cut {cut}");
            }
        }
    }
}
