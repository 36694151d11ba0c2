//! The socket object scripts hold (stage-spec §10.4): a handle on a broker socket whose fields
//! read its addresses and state and whose writable fields are its callbacks, settings and
//! user values.
//!
//! | field | read | write |
//! |---|---|---|
//! | `[-1]`, `[1]` | local / peer address (raw sockaddr string) | — |
//! | `[0]`, `id` | socket id | — |
//! | `errno` | last socket error | — |
//! | `addrs` | `{["local"] = raw, remote = raw}` | — |
//! | `commit`, `close` | methods | output interval (ms) / close callback |
//! | `receive` | the receive handler | `function (socket, data [, addr])` |
//! | `expire` | idle timeout in ms, or nil | ms; nil or 0 = never |
//! | `limit` | `{messages = m, bytes = b}` per second, or nil | table; nil = none |
//! | anything else | user value | any value that can cross VMs; nil deletes |

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, MetaMethod, MultiValue, Table, UserData, UserDataMethods, Value};

use crate::broker::handler::Handler;
use crate::broker::limit::Limit;
use crate::broker::output;
use crate::broker::socket::Socket;
use crate::broker::{addr, socket::Refused};
use crate::value;

/// A Lua handle on a broker socket.
pub struct LuaSocket(pub Arc<Socket>);

impl UserData for LuaSocket {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_meta_method(MetaMethod::Index, |lua, this, key: Value| {
            index(lua, &this.0, key)
        });
        m.add_meta_method(MetaMethod::NewIndex, |_, this, (key, v): (Value, Value)| {
            set(&this.0, key, v)
        });
        m.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            let (local, peer) = this.0.addrs();
            let at = peer.or(local).map_or_else(String::new, |a| a.to_string());
            Ok(format!("broker: {}-{at}", this.0.id))
        });
        m.add_meta_function(
            MetaMethod::Eq,
            |_, (a, b): (mlua::AnyUserData, mlua::AnyUserData)| {
                Ok(a.borrow::<LuaSocket>()?.0.id == b.borrow::<LuaSocket>()?.0.id)
            },
        );
    }
}

/// A socket from a Lua value: a socket object or a socket id.
pub fn socket_of(lua: &Lua, v: &Value) -> mlua::Result<Option<Arc<Socket>>> {
    match v {
        Value::UserData(u) => Ok(Some(u.borrow::<LuaSocket>()?.0.clone())),
        Value::Integer(id) => Ok(super::ctx(lua)?.node.broker().get(*id as u64)),
        Value::Number(id) if id.fract() == 0.0 => {
            Ok(super::ctx(lua)?.node.broker().get(*id as u64))
        }
        other => Err(mlua::Error::runtime(format!(
            "expected a socket or a socket id, got {}",
            other.type_name()
        ))),
    }
}

/// A socket object as a Lua value.
pub fn socket_value(lua: &Lua, s: Arc<Socket>) -> mlua::Result<Value> {
    lua.create_userdata(LuaSocket(s)).map(Value::UserData)
}

/// An address as the original's raw sockaddr string (nil if unknown).
pub fn raw_addr(lua: &Lua, a: Option<std::net::SocketAddr>) -> mlua::Result<Value> {
    a.map_or(Ok(Value::Nil), |a| {
        lua.create_string(addr::to_raw(&a)).map(Value::String)
    })
}

/// The IP address in a raw sockaddr string; `what` names the caller in the error.
pub fn inet(raw: &[u8], what: &str) -> mlua::Result<std::net::SocketAddr> {
    match addr::from_raw(raw) {
        Some(addr::Raw::Inet(a)) => Ok(a),
        _ => Err(mlua::Error::runtime(format!(
            "{what}: not an IP socket address (make one with broker.aton)"
        ))),
    }
}

fn index(lua: &Lua, s: &Arc<Socket>, key: Value) -> mlua::Result<Value> {
    let (local, peer) = s.addrs();
    let name = match &key {
        Value::Integer(-1) => return raw_addr(lua, local),
        Value::Integer(0) => return Ok(Value::Integer(s.id as i64)),
        Value::Integer(1) => return raw_addr(lua, peer),
        Value::String(k) => k.to_str()?.to_owned(),
        _ => return Ok(Value::Nil),
    };
    Ok(match name.as_str() {
        "id" => Value::Integer(s.id as i64),
        "errno" => Value::Integer(s.errno() as i64),
        "crypto" => Value::Boolean(false),
        "addrs" => {
            let t = lua.create_table()?;
            t.set("local", raw_addr(lua, local)?)?;
            t.set("remote", raw_addr(lua, peer)?)?;
            Value::Table(t)
        }
        "commit" => {
            let s = s.clone();
            Value::Function(lua.create_function(move |_, args: MultiValue| commit(&s, args))?)
        }
        "close" => {
            let s = s.clone();
            Value::Function(lua.create_function(move |_, _: MultiValue| {
                s.close(0, true);
                Ok(())
            })?)
        }
        "receive" => match s.settings().receive {
            Some(h) => Value::Function(h.function(lua)?),
            None => Value::Nil,
        },
        "expire" => match s.settings().expire {
            Some(d) => Value::Integer(d.as_millis() as i64),
            None => Value::Nil,
        },
        "limit" => {
            let l = s.settings().limit;
            if l.is_unlimited() {
                Value::Nil
            } else {
                let t = lua.create_table()?;
                t.set("messages", l.messages)?;
                t.set("bytes", l.bytes)?;
                Value::Table(t)
            }
        }
        _ => match s.value(&name) {
            Some(bytes) => value::decode_value(lua, &bytes)?,
            None => Value::Nil,
        },
    })
}

/// `socket.commit(v [, addr])` (also as `socket:commit(...)`): bytes queued, or -1.
fn commit(s: &Arc<Socket>, args: MultiValue) -> mlua::Result<i64> {
    let mut args = args.into_iter().peekable();
    if let Some(Value::UserData(u)) = args.peek() {
        if u.borrow::<LuaSocket>().is_ok_and(|me| me.0.id == s.id) {
            args.next();
        }
    }
    let v = args.next().unwrap_or(Value::Nil);
    let to = match args.next() {
        Some(Value::String(a)) => Some(inet(&a.as_bytes(), "commit")?),
        Some(Value::Nil) | None => None,
        Some(other) => {
            return Err(mlua::Error::runtime(format!(
                "commit: the address is a raw socket address string, not a {}",
                other.type_name()
            )))
        }
    };
    Ok(match output::commit(s, &v, to)? {
        Ok(n) => n as i64,
        Err(Refused::Full) => {
            log::warn!(
                "broker: socket {}: output over {} bytes (slow consumer); closing it",
                s.id,
                s.output_cap
            );
            -1
        }
        Err(Refused::Closed) => -1,
    })
}

fn handler(v: &Value, what: &str) -> mlua::Result<Option<Arc<Handler>>> {
    match v {
        Value::Nil => Ok(None),
        Value::Function(f) => Handler::new(f).map(Some),
        Value::Table(t) => handler(&t.raw_get::<Value>(what)?, what),
        other => Err(mlua::Error::runtime(format!(
            "socket.{what} must be a function or nil, not a {}",
            other.type_name()
        ))),
    }
}

fn millis(v: &Value, what: &str) -> mlua::Result<Option<Duration>> {
    let ms = match v {
        Value::Nil => return Ok(None),
        Value::Integer(n) => *n as f64,
        Value::Number(n) => *n,
        other => {
            return Err(mlua::Error::runtime(format!(
                "socket.{what} is a number of milliseconds, not a {}",
                other.type_name()
            )))
        }
    };
    if !(0.0..=1e12).contains(&ms) {
        return Err(mlua::Error::runtime(format!(
            "socket.{what} = {ms}: expected 0 or more milliseconds"
        )));
    }
    Ok(Some(Duration::from_millis(ms as u64)))
}

fn limit(v: &Value) -> mlua::Result<Limit> {
    let t: Table = match v {
        Value::Nil => return Ok(Limit::default()),
        Value::Table(t) => t.clone(),
        other => {
            return Err(mlua::Error::runtime(format!(
                "socket.limit is a table {{messages = n, bytes = n}} (per second), not a {}",
                other.type_name()
            )))
        }
    };
    let field = |k: &str| -> mlua::Result<u64> {
        match t.raw_get::<Value>(k)? {
            Value::Nil => Ok(0),
            Value::Integer(n) if n >= 0 => Ok(n as u64),
            Value::Number(n) if n >= 0.0 && n.is_finite() => Ok(n as u64),
            other => Err(mlua::Error::runtime(format!(
                "socket.limit.{k} must be 0 or more per second, got {other:?}"
            ))),
        }
    };
    Ok(Limit {
        messages: field("messages")?,
        bytes: field("bytes")?,
    })
}

fn set(s: &Arc<Socket>, key: Value, v: Value) -> mlua::Result<()> {
    let name = match &key {
        Value::String(k) => k.to_str()?.to_owned(),
        _ => {
            return Err(mlua::Error::runtime(
                "socket fields [-1], [0] and [1] are read-only",
            ))
        }
    };
    match name.as_str() {
        "receive" => {
            let h = handler(&v, "receive")?;
            s.configure(|c| c.receive = h);
        }
        "close" => {
            let h = handler(&v, "close")?;
            s.configure(|c| c.close = h);
        }
        "expire" => {
            let e = millis(&v, "expire")?.filter(|d| !d.is_zero());
            s.configure(|c| c.expire = e);
        }
        "commit" => {
            let d = millis(&v, "commit")?.unwrap_or_default();
            s.configure(|c| c.commit = d);
        }
        "limit" => {
            let l = limit(&v)?;
            s.configure(|c| c.limit = l);
        }
        "crypto" => {
            return Err(mlua::Error::runtime(
                "socket.crypto (the original's encrypted frames) is not supported: put TLS in front of the node",
            ))
        }
        "id" | "errno" | "addrs" => {
            return Err(mlua::Error::runtime(format!(
                "socket.{name} is read-only"
            )))
        }
        _ => {
            let bytes = if v.is_nil() {
                None
            } else {
                let mut buf = Vec::new();
                value::encode_value(&mut buf, &v)
                    .map_err(|e| e.context(format!("socket.{name}")))?;
                Some(bytes::Bytes::from(buf))
            };
            s.set_value(&name, bytes);
        }
    }
    Ok(())
}
