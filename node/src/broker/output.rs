//! `socket.commit(v [, addr])` (stage-spec §10.4): a Lua value as bytes on a socket.
//!
//! A string goes out as it is (a `packet` socket adds its length header); any other value is
//! sent as the BSON document `{"v": value}` (framed again on a `packet` socket); a `text`
//! socket sends strings only. The return values of a receive handler go the same way.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use mlua::Value;

use super::frame;
use super::framing::Framing;
use super::socket::{Kind, Refused, Socket};

/// The bytes `v` becomes on a socket with `framing`.
pub fn encode(framing: Framing, v: &Value) -> mlua::Result<Bytes> {
    let mut out = BytesMut::new();
    let frame = |payload: &[u8], out: &mut BytesMut| {
        frame::encode(framing, payload, out).map_err(mlua::Error::external)
    };
    match v {
        Value::String(s) => frame(&s.as_bytes(), &mut out)?,
        _ if framing == Framing::Text => {
            return Err(mlua::Error::runtime(format!(
                "a text socket sends strings, not a {}",
                v.type_name()
            )))
        }
        _ => {
            let mut doc = Vec::new();
            crate::value::encode_named(&mut doc, b"v", v)?;
            frame(&doc, &mut out)?;
        }
    }
    Ok(out.freeze())
}

/// Queues `v` on `s` (to `to` on a datagram socket); returns the bytes queued. `nil` writes
/// what is held now, whatever the `commit` interval.
pub fn commit(
    s: &Socket,
    v: &Value,
    to: Option<SocketAddr>,
) -> mlua::Result<Result<usize, Refused>> {
    if v.is_nil() {
        s.flush();
        return Ok(Ok(0));
    }
    let bytes = encode(s.framing, v)?;
    Ok(match (s.kind, to) {
        (Kind::Datagram, Some(to)) => s.send_to(bytes, to),
        (Kind::Datagram, None) => match s.addrs().1 {
            Some(peer) => s.send_to(bytes, peer),
            None => {
                return Err(mlua::Error::runtime(
                    "a UDP socket needs an address to send to: socket.commit(v, addr)",
                ))
            }
        },
        (Kind::Listener, _) => {
            return Err(mlua::Error::runtime(
                "a listener sends nothing: commit on the connections it accepts",
            ))
        }
        (Kind::Stream, _) => s.write(&bytes),
    })
}
