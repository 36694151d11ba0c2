//! A socket's turn on a worker: its queued events become Lua callbacks (stage-spec §10.1),
//! in order, in the worker's VM acting for the stage that made the socket.
//!
//! A turn runs at most [`QUANTUM`] events; a socket with more goes to the back of the pool's
//! queue, so every connection with work gets the workers in turn (seed 002: no connection
//! monopolises message handling).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use mlua::{Lua, MultiValue, Value};

use super::framing::Framing;
use super::handler::Handler;
use super::output;
use super::socket::{Event, Kind, Socket};
use crate::api::broker_socket::{raw_addr, socket_value};
use crate::pool::Pool;
use crate::{api, sandbox, value};

/// Events one socket runs before the next socket's turn.
pub const QUANTUM: usize = 8;

/// Runs a turn of `socket` on this worker.
pub fn run(lua: &Lua, pool: &Pool, socket: Arc<Socket>) {
    crate::worker::act_for(lua, &socket.stage, None);
    for _ in 0..QUANTUM {
        let Some(event) = socket.pop() else {
            return;
        };
        // A bug must cost one event, not the worker.
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(lua, &socket, event)));
        if ran.is_err() {
            log::error!("broker: socket {}: a callback panicked", socket.id);
        }
    }
    if socket.yield_turn() {
        pool.schedule(socket);
    }
}

fn handle(lua: &Lua, s: &Arc<Socket>, event: Event) {
    let what = match &event {
        Event::Accepted(_) => "accept",
        Event::Connected(_) => "join",
        Event::Received(..) | Event::Signalled(..) => "receive",
        Event::Submitted(_) => "submit",
        Event::Closed(_) => "close",
    };
    let closed = matches!(event, Event::Closed(_));
    let opening = matches!(event, Event::Accepted(_) | Event::Connected(_));
    if let Err(e) = run_event(lua, s, event) {
        log::error!("stage {}: broker socket {} {what}: {e}", s.stage, s.id);
    }
    if opening {
        s.release();
    }
    if closed {
        if let Ok(c) = api::ctx(lua) {
            c.node.broker().forget(s.id);
        }
    }
}

fn run_event(lua: &Lua, s: &Arc<Socket>, event: Event) -> mlua::Result<()> {
    let me = || socket_value(lua, s.clone());
    match event {
        Event::Accepted(h) => {
            let peer = raw_addr(lua, s.addrs().1)?;
            let r = call(lua, s, &h, MultiValue::from_iter([me()?, peer]))?;
            match r.into_iter().next() {
                Some(Value::Function(f)) => {
                    let h = Handler::new(&f)?;
                    s.configure(|c| c.receive = Some(h));
                }
                Some(Value::Boolean(false)) => s.close(libc::ECONNREFUSED, false),
                _ if s.settings().receive.is_none() => {
                    s.close(libc::ECONNREFUSED, false);
                    return Err(mlua::Error::runtime(
                        "no receive handler: return one from the accept callback or set listener.receive",
                    ));
                }
                _ => {}
            }
        }
        Event::Connected(h) => {
            call(lua, s, &h, MultiValue::from_iter([me()?]))?;
        }
        Event::Received(bytes, from) => {
            let v = match message(lua, s.framing, &bytes) {
                Ok(v) => v,
                // One bad datagram must not close a socket that serves every sender.
                Err(e) if s.kind == Kind::Datagram => {
                    return Err(mlua::Error::runtime(format!(
                        "decode failed ({e}); datagram dropped"
                    )));
                }
                Err(e) => {
                    s.close(libc::EBADMSG, false);
                    return Err(mlua::Error::runtime(format!(
                        "decode failed ({e}); closing it"
                    )));
                }
            };
            receive(lua, s, v, from)?;
        }
        Event::Signalled(bytes, from) => {
            let v = value::decode_value(lua, &bytes)?;
            receive(lua, s, v, from)?;
        }
        Event::Submitted(body) => {
            let mut args = value::decode_args(lua, &body)?;
            let f = match args.pop_front() {
                Some(Value::Function(f)) => f,
                Some(Value::String(name)) => crate::worker::named(lua, &name.to_str()?)?,
                _ => return Err(mlua::Error::runtime("broker.submit without a function")),
            };
            args.push_front(me()?);
            sandbox_call(lua, s, &f, args)?;
        }
        Event::Closed(errno) => {
            if let Some(h) = s.settings().close {
                call(
                    lua,
                    s,
                    &h,
                    MultiValue::from_iter([me()?, Value::Integer(errno as i64)]),
                )?;
            }
        }
    }
    Ok(())
}

/// A message from the network as the receive handler sees it: a BSON document's first value
/// (§10.2), anything else as a string. Clients cannot send functions.
fn message(lua: &Lua, framing: Framing, bytes: &Bytes) -> Result<Value, value::ValueError> {
    if framing != Framing::Bson {
        return Ok(lua
            .create_string(bytes)
            .map(Value::String)
            .unwrap_or(Value::Nil));
    }
    let values = value::function::accepting(false, || value::decode_args(lua, bytes))?;
    Ok(values.into_iter().next().unwrap_or(Value::Nil))
}

/// Runs the receive handler with `v`; what it returns goes back to the sender.
fn receive(lua: &Lua, s: &Arc<Socket>, v: Value, from: Option<SocketAddr>) -> mlua::Result<()> {
    let Some(h) = s.settings().receive else {
        if s.kind == Kind::Stream {
            s.close(libc::ECONNREFUSED, false);
            return Err(mlua::Error::runtime(
                "no receive handler (set socket.receive or return one from the accept callback); closing it",
            ));
        }
        return Err(mlua::Error::runtime("message dropped: no receive handler"));
    };
    let mut args = MultiValue::from_iter([socket_value(lua, s.clone())?, v]);
    if from.is_some() {
        args.push_back(raw_addr(lua, from)?);
    }
    for r in call(lua, s, &h, args)? {
        if !r.is_nil() {
            // A refusal (closed, slow consumer) is the socket's business, not an error here.
            let _ = output::commit(s, &r, from)?;
        }
    }
    Ok(())
}

fn call(lua: &Lua, s: &Socket, h: &Handler, args: MultiValue) -> mlua::Result<MultiValue> {
    sandbox_call(lua, s, &h.function(lua)?, args)
}

fn sandbox_call(
    lua: &Lua,
    s: &Socket,
    f: &mlua::Function,
    args: MultiValue,
) -> mlua::Result<MultiValue> {
    let stage = Value::String(lua.create_string(&s.stage)?);
    sandbox::of(lua)?.call_multi(lua, f, &[("_STAGE", stage)], args)
}
