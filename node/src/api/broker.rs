//! `broker.*` (stage-spec §10.3): sockets for game clients and outside servers.
//!
//! `broker` is a global in every VM (and `require("broker")` returns it). Sockets made in a
//! callback start serving when that callback returns, so the settings a script gives them
//! right after `broker.ready`/`broker.join` are in force for the first connection or failure.

use std::time::{Duration, Instant};

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::broker_socket::{inet, socket_of, socket_value};
use super::ctx;
use crate::broker::handler::Handler;
use crate::broker::socket::Event;
use crate::broker::{output, uri, Broker, CONNECT_TIMEOUT};
use crate::pool::Job;

/// Installs the global `broker` table.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let b = lua.create_table()?;
    b.set("ready", lua.create_function(ready)?)?;
    b.set("join", lua.create_function(join)?)?;
    b.set("close", lua.create_function(close)?)?;
    b.set("f", lua.create_function(f)?)?;
    b.set("signal", lua.create_function(signal)?)?;
    b.set("submit", lua.create_function(submit)?)?;
    super::broker_addr::install(lua, &b)?;
    let loaded: Table = lua.named_registry_value("_LOADED")?;
    loaded.set("broker", b.clone())?;
    lua.globals().set("broker", b)
}

fn broker(lua: &Lua) -> mlua::Result<std::sync::Arc<Broker>> {
    Ok(ctx(lua)?.node.broker().clone())
}

/// A socket object, or the errno and a message of why there is none.
fn opened(
    lua: &Lua,
    what: &str,
    uri: &str,
    r: Result<std::sync::Arc<crate::broker::socket::Socket>, std::io::Error>,
) -> mlua::Result<MultiValue> {
    match r {
        Ok(s) => Ok(MultiValue::from_iter([socket_value(lua, s)?])),
        Err(e) => {
            log::warn!("stage {}: {what}('{uri}'): {e}", ctx(lua)?.name);
            failed(lua, crate::broker::errno_of(&e), &e.to_string())
        }
    }
}

fn failed(lua: &Lua, errno: i32, why: &str) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Integer(errno as i64),
        Value::String(lua.create_string(why)?),
    ]))
}

fn parse(lua: &Lua, what: &str, s: &str) -> mlua::Result<Result<uri::Uri, MultiValue>> {
    match uri::parse(s) {
        Ok(u) => Ok(Ok(u)),
        Err(e) => {
            log::warn!("stage {}: {what}('{s}'): {e}", ctx(lua)?.name);
            Ok(Err(failed(lua, e.errno(), &e.to_string())?))
        }
    }
}

/// `broker.ready(uri, f)`: a listener (accept callback `f(socket, addr)`) or a UDP socket
/// (receive handler `f(socket, data, addr)`); an errno and a message on failure.
fn ready(lua: &Lua, (s, f): (String, Option<Function>)) -> mlua::Result<MultiValue> {
    let u = match parse(lua, "broker.ready", &s)? {
        Ok(u) => u,
        Err(e) => return Ok(e),
    };
    let h = f.as_ref().map(Handler::new).transpose()?;
    let stage = ctx(lua)?.name.clone();
    let r = broker(lua)?.ready(&stage, &u, h);
    opened(lua, "broker.ready", &s, r)
}

/// `broker.join(uri, f [, timeout_ms])`: connects; `f(socket)` runs once connected, the
/// socket's close callback `(socket, errno)` if it fails.
fn join(
    lua: &Lua,
    (s, f, timeout): (String, Option<Function>, Option<u64>),
) -> mlua::Result<MultiValue> {
    let u = match parse(lua, "broker.join", &s)? {
        Ok(u) => u,
        Err(e) => return Ok(e),
    };
    let h = f.as_ref().map(Handler::new).transpose()?;
    let timeout = timeout.map_or(CONNECT_TIMEOUT, Duration::from_millis);
    let stage = ctx(lua)?.name.clone();
    let r = broker(lua)?.join(&stage, &u, h, timeout);
    opened(lua, "broker.join", &s, r)
}

/// `broker.close(socket | id | {socket | id, ...})`: closes after writing what is queued; the
/// close callback runs with errno 0.
fn close(lua: &Lua, target: Value) -> mlua::Result<()> {
    let targets = match target {
        Value::Table(t) => t
            .sequence_values::<Value>()
            .collect::<mlua::Result<Vec<_>>>()?,
        v => vec![v],
    };
    for t in targets {
        if let Some(s) = socket_of(lua, &t)? {
            s.close(0, true);
        }
    }
    Ok(())
}

/// `broker.f(id)`: the socket object of an open socket, or nil.
fn f(lua: &Lua, id: i64) -> mlua::Result<Value> {
    match broker(lua)?.get(id as u64) {
        Some(s) => socket_value(lua, s),
        None => Ok(Value::Nil),
    }
}

/// `broker.signal(target, v [, addr])`:
/// * a socket or id: its receive handler runs with `v` as if it had arrived (in turn with the
///   socket's other callbacks; `addr` is passed on as the sender);
/// * a raw address string: `v` goes there as one UDP datagram (as `socket.commit` would
///   encode it);
/// * a table of sockets, ids and addresses: `v` is committed to each, then a function in the
///   table runs as `f(elapsed_seconds, v)` on a worker.
///
/// Returns how many targets took `v`.
fn signal(
    lua: &Lua,
    (target, v, from): (Value, Value, Option<mlua::LuaString>),
) -> mlua::Result<i64> {
    match target {
        Value::Table(t) => group(lua, &t, v),
        Value::String(a) => Ok(datagram(lua, &a.as_bytes(), &v)? as i64),
        other => {
            let Some(s) = socket_of(lua, &other)? else {
                return Ok(0);
            };
            let mut buf = Vec::new();
            crate::value::encode_value(&mut buf, &v)?;
            let from = match from {
                Some(a) => Some(inet(&a.as_bytes(), "broker.signal")?),
                None => None,
            };
            broker(lua)?.deliver(&s, Event::Signalled(buf.into(), from));
            Ok(1)
        }
    }
}

fn datagram(lua: &Lua, raw: &[u8], v: &Value) -> mlua::Result<bool> {
    let to = inet(raw, "broker.signal")?;
    let bytes = output::encode(crate::broker::framing::Framing::Raw, v)?;
    match broker(lua)?.send_datagram(to, &bytes) {
        Ok(_) => Ok(true),
        Err(e) => {
            log::warn!("broker.signal to {to}: {e}");
            Ok(false)
        }
    }
}

fn group(lua: &Lua, t: &Table, v: Value) -> mlua::Result<i64> {
    let started = Instant::now();
    let mut took = 0;
    let mut done = None;
    for item in t.sequence_values::<Value>() {
        match item? {
            Value::Function(f) => done = Some(f),
            Value::String(a) => took += datagram(lua, &a.as_bytes(), &v)? as i64,
            other => {
                if let Some(s) = socket_of(lua, &other)? {
                    // A member that cannot take `v` (a listener, a text socket and a table)
                    // does not stop the others.
                    match output::commit(&s, &v, None) {
                        Ok(r) => took += r.is_ok() as i64,
                        Err(e) => log::warn!("broker.signal group: socket {}: {e}", s.id),
                    }
                }
            }
        }
    }
    if let Some(f) = done {
        let elapsed = Value::Number(started.elapsed().as_secs_f64());
        let body = super::submit::job_body(&[Value::Function(f), elapsed, v])?;
        let c = ctx(lua)?;
        c.node.pool().submit(Job {
            key: 0,
            stage: c.name.clone(),
            body,
            thread: None,
        });
    }
    Ok(took)
}

/// `broker.submit(socket | id, f, args...)`: `f(socket, args...)` on a worker, in turn with the
/// socket's callbacks. False if the socket is gone.
fn submit(lua: &Lua, args: MultiValue) -> mlua::Result<bool> {
    let mut args: Vec<Value> = args.into_iter().collect();
    if args.is_empty() {
        return Err(mlua::Error::runtime("broker.submit(socket, f, ...)"));
    }
    let target = args.remove(0);
    super::submit::check_callable(args.first(), "broker.submit")?;
    let Some(s) = socket_of(lua, &target)? else {
        return Ok(false);
    };
    let body = super::submit::job_body(&args)?;
    broker(lua)?.deliver(&s, Event::Submitted(body));
    Ok(true)
}
