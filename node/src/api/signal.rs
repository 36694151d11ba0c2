//! `stage.signal(target, v...)`: the target grammar of stage-spec §8 (see [`crate::target`]),
//! table targets (§8.4) and replies (§8.5).

use bytes::Bytes;
use mlua::{Lua, MultiValue, Table, Value};
use stage_proto::frame::{self, PREFIX_LEN};
use stage_proto::{Envelope, Flags, LockOp, Mode};

use super::{ctx, ctx_mut, waitfor};

/// How deep synchronous `":id"` signals may nest (a callback signalling itself synchronously).
const MAX_SYNC_DEPTH: u32 = 32;

/// The longest lock extension, in ms.
const MAX_EXTEND_MS: f64 = 60_000.0;

use crate::inbound::Delivery;
use crate::node::Outgoing;
use crate::target::{self, hash_key, reply_id, Route};
use crate::value;

/// Extra routing from a table target `{ "T:id", [timeout_ms,] key = K, instance = N }`.
#[derive(Default)]
struct Options {
    key: Option<u64>,
    instance: u32,
    /// This request's deadline, instead of the node's default.
    timeout: Option<u64>,
}

/// Envelope fields besides the message id and sender.
#[derive(Debug, Clone, Copy, Default)]
pub struct Head {
    pub deadline_ms: u64,
    /// The request id (of this request, or of the request this answers).
    pub corr: u64,
    pub answer: bool,
    /// Where answers go when not to this node (a service passing a request on).
    pub origin: u32,
    /// The receiver must not answer (a service's reply or notice).
    pub no_reply: bool,
}

/// `stage.signal(target, v...)`. Returns nothing, like the original.
pub fn signal(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    let mut args = args.into_iter();
    let target = args.next().unwrap_or(Value::Nil);
    let values: Vec<Value> = args.collect();
    match target {
        Value::Nil => reply_to(lua, crate::sandbox::of(lua)?.get("_WAITFOR")?, &values),
        Value::String(s) => send(lua, &s.to_str()?, Options::default(), &values),
        Value::Table(t) if !t.raw_get::<Value>(0)?.is_nil() => {
            reply_to(lua, Value::Table(t), &values)
        }
        Value::Table(t) => {
            let (target, options) = table_target(&t)?;
            send(lua, &target, options, &values)
        }
        other => Err(mlua::Error::runtime(format!(
            "stage.signal: invalid target (expected a string, a table or nil), got {}",
            other.type_name()
        ))),
    }
}

fn table_target(t: &Table) -> mlua::Result<(String, Options)> {
    let target: String = match t.raw_get::<Value>(1)? {
        Value::String(s) => s.to_str()?.to_owned(),
        _ => {
            return Err(mlua::Error::runtime(
                "stage.signal: a table target needs the target string as its first element",
            ))
        }
    };
    let key = match t.raw_get::<Value>("key")? {
        Value::Nil => None,
        Value::Integer(i) => Some(i as u64),
        Value::Number(f) if f.fract() == 0.0 && f.is_finite() => Some(f as i64 as u64),
        Value::String(s) => Some(hash_key(&s.as_bytes())),
        other => {
            return Err(mlua::Error::runtime(format!(
                "stage.signal: key must be an integer or a string, got {}",
                other.type_name()
            )))
        }
    };
    let instance = match t.raw_get::<Value>("instance")? {
        Value::Nil => 0,
        Value::Integer(i) => u32::try_from(i)
            .ok()
            .filter(|i| *i <= stage_proto::service::MAX_INSTANCE)
            .ok_or_else(|| {
                mlua::Error::runtime(format!("stage.signal: instance {i} out of range"))
            })?,
        other => {
            return Err(mlua::Error::runtime(format!(
                "stage.signal: instance must be an integer, got {}",
                other.type_name()
            )))
        }
    };
    // stage-spec §8.4: { "id", addr, timeout } — elements 2 and 3 may be a timeout in ms
    // (addresses belong to the original's datagram transport and are not used here).
    let mut timeout = None;
    for i in [2, 3] {
        match t.raw_get::<Value>(i)? {
            Value::Integer(ms) if ms > 0 => timeout = Some(ms as u64),
            Value::Number(ms) if ms.is_finite() && ms >= 1.0 => timeout = Some(ms as u64),
            _ => {}
        }
    }
    Ok((
        target,
        Options {
            key,
            instance,
            timeout,
        },
    ))
}

impl Head {
    /// Starts a message body in a new frame buffer (after room for the frame prefix): the
    /// envelope of `msgid` from `sender` with this head; the payload goes after it.
    pub fn begin(&self, msgid: &str, sender: &str) -> Result<Vec<u8>, stage_proto::FrameError> {
        let mut buf = frame::begin(64 + msgid.len());
        Envelope {
            msgid: msgid.as_bytes(),
            sender: sender.as_bytes(),
            deadline_ms: self.deadline_ms,
            corr: self.corr,
            answer: self.answer,
            origin: self.origin,
            no_reply: self.no_reply,
        }
        .write(&mut buf)?;
        Ok(buf)
    }
}

/// Builds a message body (after room for the frame prefix): envelope, then the values.
pub fn body(msgid: &str, sender: &str, head: Head, values: &[Value]) -> mlua::Result<Vec<u8>> {
    let mut buf = head.begin(msgid, sender).map_err(mlua::Error::external)?;
    value::encode_args(&mut buf, values.iter()).map_err(mlua::Error::external)?;
    Ok(buf)
}

fn send(lua: &Lua, t: &str, options: Options, values: &[Value]) -> mlua::Result<()> {
    let (node, own) = {
        let c = ctx(lua)?;
        (c.node.clone(), c.name.clone())
    };
    let target =
        target::parse(t, &own).map_err(|e| mlua::Error::runtime(format!("stage.signal: {e}")))?;
    let wants_answer = target.wants_answer();
    // A request waits for its answer until its deadline; a synchronous call has its answer
    // (or none) before signal returns.
    let mut head = Head::default();
    if let Some(ms) = options.timeout {
        head.deadline_ms = waitfor::now_ms() + ms;
    }
    // A lock request's answer is its grant: the router sends the request back, so it is
    // marked as the answer to itself, and it waits under a deadline like any request.
    let acquire = matches!(
        target.route,
        Route::Lock {
            op: LockOp::Acquire,
            ..
        }
    );
    let request = acquire || (wants_answer && target.route != (Route::Local { sync: true }));
    head.answer = acquire;
    if request {
        let ms = options
            .timeout
            .unwrap_or(node.deadline().as_millis() as u64);
        head.deadline_ms = waitfor::now_ms() + ms;
        head.corr = node.pending().reserve();
    }
    let buf = body(&target.wire_msgid(), &own, head, values)?;
    if request {
        let copy = Bytes::copy_from_slice(&buf[PREFIX_LEN..]);
        node.pending().open(head.corr, &own, copy, head.deadline_ms);
    }
    match target.route {
        Route::Local { sync: true } if ctx(lua)?.worker => Err(mlua::Error::runtime(format!(
            "stage.signal('{t}'): a synchronous call runs the stage's callbacks, which live on its main loop; signal without ':' from a job"
        ))),
        Route::Local { sync: true } => {
            // Each level nests a Lua call on this thread's stack: bound it before it overflows.
            let depth = {
                let mut c = ctx_mut(lua)?;
                c.sync_depth += 1;
                c.sync_depth
            };
            let result = if depth > MAX_SYNC_DEPTH {
                Err(mlua::Error::runtime(format!(
                    "stage.signal('{t}'): synchronous signals nested deeper than {MAX_SYNC_DEPTH}"
                )))
            } else {
                waitfor::dispatch(lua, Delivery::local(buf, node.instance(), None));
                // The nested callback's errors are its own (logged), but a spent budget is the
                // caller's too.
                if crate::budget::exhausted(lua) {
                    Err(crate::budget::interruption(lua))
                } else {
                    Ok(())
                }
            };
            ctx_mut(lua)?.sync_depth -= 1;
            result
        }
        Route::Local { sync: false } => {
            node.deliver_local(&own, Delivery::local(buf, node.instance(), None));
            Ok(())
        }
        Route::Lock { op, name } => {
            // An extension's value is its length in ms (at most a minute); an acquire tells
            // the router how long it may wait, so an expired request is not granted.
            let ms = match (op, values.first()) {
                // An integer or a float: mlua's `as_f64` takes floats only, and `500` is
                // an integer in Lua 5.4.
                (LockOp::Extend, Some(v)) => match v {
                    Value::Integer(i) => Some(*i as f64),
                    Value::Number(x) => Some(*x),
                    _ => None,
                }
                .filter(|x| x.is_finite() && *x >= 0.0)
                    .map_or(0, |x| x.min(MAX_EXTEND_MS) as u32),
                (LockOp::Acquire, _) => head.deadline_ms.saturating_sub(waitfor::now_ms()) as u32,
                _ => 0,
            };
            match node.send_lock(op, hash_key(name.as_bytes()), ms, &own, buf) {
                Ok(()) => Ok(()),
                // An acquire that cannot be sent fails now, once, through its fail path.
                Err(u) if acquire && node.pending().failed(head.corr) => {
                    let why = format!("lock '{name}': {}", u.why);
                    node.deliver_local(&own, Delivery::local(u.buf, node.instance(), Some(why)));
                    Ok(())
                }
                Err(u) => Err(mlua::Error::runtime(format!("stage.signal('{t}'): {}", u.why))),
            }
        }
        Route::Cluster { stage, mode } => {
            let mut flags = 0;
            if wants_answer {
                flags |= Flags::WANT_NACK;
            }
            if options.key.is_some() {
                flags |= Flags::KEYED;
            }
            let out = Outgoing {
                stage: &stage,
                instance: options.instance,
                mode: if options.instance != 0 {
                    Mode::Direct
                } else {
                    mode
                },
                flags,
                key: options.key.unwrap_or(0),
                from_stage: &own,
                buf,
            };
            if let Err(u) = node.send(out) {
                let why = format!("stage '{stage}': {}", u.why);
                if wants_answer && node.pending().failed(head.corr) {
                    node.deliver_local(&own, Delivery::local(u.buf, node.instance(), Some(why)));
                } else {
                    log::warn!("signal '{t}' dropped: {why}");
                }
            }
            Ok(())
        }
    }
}

/// Answers a message: `_WAITFOR` (or a saved copy of it) says where.
fn reply_to(lua: &Lua, w: Value, values: &[Value]) -> mlua::Result<()> {
    let Value::Table(w) = w else {
        return Err(mlua::Error::runtime(
            "stage.signal(nil, ...) outside a message callback: no _WAITFOR to answer",
        ));
    };
    if !w.raw_get::<Value>("error")?.is_nil() {
        return Err(mlua::Error::runtime(
            "stage.signal(nil, ...): this callback handles a failure notice; there is nobody to answer",
        ));
    }
    if w.raw_get::<bool>("final")? {
        return Err(mlua::Error::runtime(
            "stage.signal(nil, ...): this message is a service's answer or notice; it takes no answer",
        ));
    }
    let key: String = w.raw_get(0)?;
    let instance: Option<u32> = w.raw_get(1)?;
    let stage: Option<String> = w.raw_get(2)?;
    let corr: Option<u64> = w.raw_get("corr")?;
    let head = answer_head(corr);
    match stage {
        Some(stage) => reply(
            lua,
            &stage,
            instance.unwrap_or(0),
            reply_id(&key),
            head,
            values.iter(),
        ),
        None => {
            let (node, own) = {
                let c = ctx(lua)?;
                (c.node.clone(), c.name.clone())
            };
            let buf = body(reply_id(&key), "", head, values)?;
            node.deliver_local(&own, Delivery::local(buf, node.instance(), None));
            Ok(())
        }
    }
}

/// The head of an answer to request `corr` (if the message was one).
pub fn answer_head(corr: Option<u64>) -> Head {
    Head {
        deadline_ms: 0,
        corr: corr.unwrap_or(0),
        answer: corr.is_some_and(|c| c != 0),
        origin: 0,
        no_reply: false,
    }
}

/// Sends `values` to callback `cb` of `stage` on the node with `instance`.
pub fn reply<'a>(
    lua: &Lua,
    stage: &str,
    instance: u32,
    cb: &str,
    head: Head,
    values: impl Iterator<Item = &'a Value>,
) -> mlua::Result<()> {
    let (node, own) = {
        let c = ctx(lua)?;
        (c.node.clone(), c.name.clone())
    };
    let values: Vec<Value> = values.cloned().collect();
    let buf = body(cb, &own, head, &values)?;
    let out = Outgoing {
        stage,
        instance,
        mode: Mode::Direct,
        flags: Flags::REPLY,
        key: 0,
        from_stage: &own,
        buf,
    };
    if let Err(u) = node.send_reply(out) {
        log::warn!(
            "answer '{cb}' to stage '{stage}' (instance {instance}) dropped: {}",
            u.why
        );
    }
    Ok(())
}
