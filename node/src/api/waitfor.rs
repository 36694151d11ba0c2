//! `stage.waitfor` registrations and the dispatch of a message to them (stage-spec §6.6).

use std::collections::HashMap;

use mlua::{Function, Lua, MultiValue, Value};
use rand::Rng;
use stage_proto::Envelope;

use super::{ctx, ctx_mut, signal};
use crate::inbound::Delivery;
use crate::sandbox::WaitFor;
use crate::target::{reply_id, split_fail};
use crate::value;

/// A registered callback and the arguments bound to it (passed before the message's values).
#[derive(Clone)]
pub struct Handler {
    pub f: Function,
    pub bound: Bound,
}

/// Bound arguments, serialised when bound (stage-spec §6.6): each call gets fresh copies, and
/// later changes to the caller's tables do not leak in.
#[derive(Clone, Default)]
pub struct Bound(Option<std::sync::Arc<[u8]>>);

impl Bound {
    pub fn encode(values: &[Value]) -> mlua::Result<Bound> {
        if values.is_empty() {
            return Ok(Bound(None));
        }
        let mut buf = Vec::new();
        crate::value::encode_args(&mut buf, values.iter()).map_err(mlua::Error::external)?;
        Ok(Bound(Some(buf.into())))
    }

    pub fn values(&self, lua: &Lua) -> mlua::Result<MultiValue> {
        match &self.0 {
            None => Ok(MultiValue::new()),
            Some(b) => crate::value::decode_args(lua, b).map_err(mlua::Error::external),
        }
    }
}

/// The stage's callbacks by id.
#[derive(Default)]
pub struct Registry {
    map: HashMap<String, Handler>,
}

impl Registry {
    /// The handler registered under exactly `id` (no group fallback).
    pub fn get(&self, id: &str) -> Option<Handler> {
        self.map.get(id).cloned()
    }

    /// Unregisters `id`.
    pub fn remove(&mut self, id: &str) {
        self.map.remove(id);
    }

    /// Finds the handler for `key`: the exact id, then its group prefixes (`"a:b.c.d"` →
    /// `"a:b.c."` → `"a:b."` → `"a:"`, never cutting left of the first `:`), then `"@"`.
    /// Returns the id that matched.
    pub fn lookup(&self, key: &str) -> Option<(String, Handler)> {
        if let Some(h) = self.map.get(key) {
            return Some((key.to_owned(), h.clone()));
        }
        let floor = match (key.find(':'), key.find('?')) {
            (Some(c), Some(q)) if q < c => 0,
            (Some(c), _) => c,
            (None, _) => 0,
        };
        let bytes = key.as_bytes();
        for i in (floor..bytes.len().saturating_sub(1)).rev() {
            if matches!(bytes[i], b'.' | b'?' | b':') {
                if let Some(h) = self.map.get(&key[..=i]) {
                    return Some((key[..=i].to_owned(), h.clone()));
                }
            }
        }
        self.map.get("@").map(|h| ("@".to_owned(), h.clone()))
    }
}

const ID_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random id of `len` characters, `len` clamped to 4..=64 (a script asking for a billion
/// characters gets 64, not an allocation failure that aborts the node).
fn generated_id(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len.clamp(4, 64))
        .map(|_| ID_CHARS[rng.gen_range(0..ID_CHARS.len())] as char)
        .collect()
}

/// `stage.waitfor(...)`, every form of stage-spec §6.6.
pub fn waitfor(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    if ctx(lua)?.worker {
        return from_worker(lua, args);
    }
    let args: Vec<Value> = args.into_iter().collect();
    if args.is_empty() {
        // Copy out first: creating Lua values may run finalizers that call stage.waitfor.
        let entries: Vec<(String, Bound)> = ctx(lua)?
            .waitfors
            .map
            .iter()
            .map(|(id, h)| (id.clone(), h.bound.clone()))
            .collect();
        let all = lua.create_table()?;
        for (id, bound) in entries {
            all.set(id, bound_value(lua, bound.values(lua)?)?)?;
        }
        return Ok(MultiValue::from_iter([Value::Table(all)]));
    }
    let kind = args[0].type_name();
    let Some((id, rest)) = split_id(args)? else {
        return Err(mlua::Error::runtime(format!(
            "stage.waitfor: expected an id string or a function, got {kind}"
        )));
    };
    let mut rest = rest.into_iter();
    let first = rest.next();
    let rest: Vec<Value> = rest.collect();
    // Exactly (id, nil) unregisters; (id, nil, v...) binds (nil, v...).
    let unregister = matches!(first, Some(Value::Nil)) && rest.is_empty();
    // Serialise before borrowing the registry: encoding a function runs Lua code.
    let bound = match &first {
        Some(Value::Function(_)) => Bound::encode(&rest)?,
        None => Bound::default(),
        Some(_) if unregister => Bound::default(),
        Some(v) => {
            let all: Vec<Value> = std::iter::once(v.clone()).chain(rest).collect();
            Bound::encode(&all)?
        }
    };
    let mut c = ctx_mut(lua)?;
    match first {
        None => {
            let Some(h) = c.waitfors.map.get(&id).cloned() else {
                return Ok(MultiValue::new());
            };
            drop(c);
            let bound = bound_value(lua, h.bound.values(lua)?)?;
            Ok(MultiValue::from_iter([Value::Function(h.f), bound]))
        }
        Some(Value::Nil) if unregister => {
            c.waitfors.map.remove(&id);
            Ok(MultiValue::new())
        }
        Some(Value::Function(f)) => {
            c.waitfors.map.insert(id.clone(), Handler { f, bound });
            drop(c);
            Ok(MultiValue::from_iter([Value::String(
                lua.create_string(&id)?,
            )]))
        }
        Some(_) => {
            let h = c.waitfors.map.get_mut(&id).ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "stage.waitfor: no callback '{id}' to bind arguments to"
                ))
            })?;
            h.bound = bound;
            drop(c);
            Ok(MultiValue::from_iter([Value::String(
                lua.create_string(&id)?,
            )]))
        }
    }
}

/// `stage.waitfor` in a job: registrations belong to the job's stage (stage-spec §6.6), so
/// (un)registering is sent to its main loop, the function as bytecode. Queries need the main
/// loop's registry and are refused.
fn from_worker(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    let parsed = split_id(args.into_iter().collect())?;
    let Some((id, rest)) =
        parsed.filter(|(_, rest)| matches!(rest.first(), Some(Value::Function(_) | Value::Nil)))
    else {
        return Err(mlua::Error::runtime(
            "stage.waitfor in a job: only (id, function, ...), (function, ...) and (id, nil); queries run on the stage's main loop",
        ));
    };
    let body = match rest.first() {
        Some(Value::Function(_)) => {
            let mut buf = Vec::new();
            crate::value::encode_args(&mut buf, rest.iter()).map_err(mlua::Error::external)?;
            buf
        }
        _ => Vec::new(),
    };
    let (node, stage) = {
        let c = ctx(lua)?;
        (c.node.clone(), c.name.clone())
    };
    let registering = !body.is_empty();
    node.deliver_inbound(
        &stage,
        crate::inbound::Inbound::Register {
            id: id.clone(),
            body: body.into(),
        },
    );
    if !registering {
        return Ok(MultiValue::new());
    }
    Ok(MultiValue::from_iter([Value::String(
        lua.create_string(&id)?,
    )]))
}

/// Applies a registration a job sent (see [`from_worker`]).
pub fn registered_by_worker(lua: &Lua, id: &str, body: &[u8]) -> mlua::Result<()> {
    if body.is_empty() {
        ctx_mut(lua)?.waitfors.remove(id);
        return Ok(());
    }
    let mut values = crate::value::decode_args(lua, body).map_err(mlua::Error::external)?;
    let Some(Value::Function(f)) = values.pop_front() else {
        return Err(mlua::Error::runtime(
            "a registration from a job without its function",
        ));
    };
    let bound: Vec<Value> = values.into_iter().collect();
    register(lua, id, f, &bound)
}

/// Registers (or replaces) callback `id`.
pub fn register(lua: &Lua, id: &str, f: Function, bound: &[Value]) -> mlua::Result<()> {
    let bound = Bound::encode(bound)?;
    ctx_mut(lua)?
        .waitfors
        .map
        .insert(id.to_owned(), Handler { f, bound });
    Ok(())
}

/// The callback id of a `stage.waitfor` call and the arguments after it: `(f, ...)` gets a
/// generated 16-character id, `(n, f, ...)` one of `n` characters, `("id", ...)` that id.
/// `None` for any other first argument.
fn split_id(mut args: Vec<Value>) -> mlua::Result<Option<(String, Vec<Value>)>> {
    Ok(Some(match (args.first(), args.get(1)) {
        (Some(Value::Function(_)), _) => (generated_id(16), args),
        (Some(Value::Integer(n)), Some(Value::Function(_))) => {
            let n = usize::try_from(*n).unwrap_or(0);
            (generated_id(n), args.split_off(1))
        }
        (Some(Value::String(s)), _) => {
            let id = s.to_str()?.to_owned();
            (id, args.split_off(1))
        }
        _ => return Ok(None),
    }))
}

/// Bound arguments as `stage.waitfor("id")` reports them: one value as is, several as a table.
fn bound_value(lua: &Lua, bound: MultiValue) -> mlua::Result<Value> {
    let bound: Vec<Value> = bound.into_iter().collect();
    match bound.as_slice() {
        [] => Ok(Value::Nil),
        [one] => Ok(one.clone()),
        many => Ok(Value::Table(
            lua.create_sequence_from(many.iter().cloned())?,
        )),
    }
}

/// Runs the callback for a delivery; errors are logged with their traceback, never raised.
pub fn dispatch(lua: &Lua, d: Delivery) {
    if let Err(e) = try_dispatch(lua, d) {
        let name = ctx(lua).map(|c| c.name.clone()).unwrap_or_default();
        log::error!("stage {name}: {e}");
        count_error(lua);
    }
}

/// Counts a Lua error of the stage (or job) running on `lua` for /metrics and /status.
pub fn count_error(lua: &Lua) {
    if let Ok(c) = ctx(lua) {
        c.node.count_error(&c.name);
    }
}

fn try_dispatch(lua: &Lua, d: Delivery) -> mlua::Result<()> {
    let (env, payload) = match Envelope::parse(&d.body) {
        Ok(x) => x,
        Err(e) => {
            log::warn!("dropped a message: {e}");
            return Ok(());
        }
    };
    // A failure notice carries its request, deadline passed or not.
    if d.nack.is_none() && env.deadline_ms != 0 && now_ms() > env.deadline_ms {
        log::debug!("dropped a message past its deadline");
        return Ok(());
    }
    // An answer counts only while its request waits: after the deadline the request has
    // failed (its fail path ran), and a late answer is void.
    if env.answer && d.nack.is_none() && !ctx(lua)?.node.pending().answered(env.corr) {
        log::debug!("dropped an answer that came after its request's deadline");
        return Ok(());
    }
    // An acknowledgement: a service settled the request (it was handled; no fail path), and
    // has nothing to deliver.
    if env.answer && env.msgid.is_empty() && d.nack.is_none() {
        return Ok(());
    }
    let msgid = String::from_utf8_lossy(env.msgid).into_owned();
    let sender = String::from_utf8_lossy(env.sender).into_owned();
    // A NACK carries our own message back: its functions are ours.
    let accept = !d.remote || d.nack.is_some() || ctx(lua)?.node.authenticated();
    let mut globals = Vec::new();
    let decoded = value::function::accepting(accept, || {
        value::decode_message(lua, payload, Some(&mut globals))
    });
    let values = match decoded {
        Ok(v) => v,
        Err(e) => {
            log::warn!("dropped message '{msgid}' from stage '{sender}': bad payload: {e}");
            return Ok(());
        }
    };
    let (key, fail) = split_fail(&msgid);
    if let Some(err) = d.nack {
        // Our own message came back: run its fail callback, or its reply callback with
        // (nil, error), so the sender learns of the failure instead of waiting forever.
        let (cb, args) = match fail {
            Some(f) => (
                f,
                std::iter::once(Value::String(lua.create_string(&err)?))
                    .chain(values)
                    .collect(),
            ),
            None if key.contains('=') => (
                reply_id(key),
                MultiValue::from_iter([Value::Nil, Value::String(lua.create_string(&err)?)]),
            ),
            None => {
                log::warn!("message '{key}' failed: {err}");
                return Ok(());
            }
        };
        // No [2]: a failure notice has no sender to answer (stage.signal(nil) refuses it).
        let w = WaitFor {
            key: cb,
            error: Some(&err),
            ..Default::default()
        };
        call(lua, cb, w, args, Vec::new())?;
        return Ok(());
    }
    // A request passed on by a service (route) is answered at its origin.
    let from_instance = if env.origin != 0 {
        env.origin
    } else {
        d.from_instance
    };
    let w = WaitFor {
        key,
        instance: Some(from_instance),
        sender: (!sender.is_empty() && !env.no_reply).then_some(sender.as_str()),
        final_: env.no_reply,
        corr: (env.corr != 0 && !env.answer).then_some(env.corr),
        ..Default::default()
    };
    let lookup = key.split_once('=').map_or(key, |(id, _)| id);
    let Some(results) = call(lua, lookup, w, values, globals)? else {
        return Ok(());
    };
    let own = ctx(lua)?.name.clone();
    let answerable = !sender.is_empty() && !env.no_reply;
    if !results.is_empty() && answerable && (key.contains('=') || sender != own) {
        let corr = (!env.answer).then_some(env.corr);
        let head = signal::answer_head(corr);
        signal::reply(
            lua,
            &sender,
            from_instance,
            reply_id(key),
            head,
            results.iter(),
        )?;
    }
    Ok(())
}

/// The globals a message may set for its callback (`"._NAME"` payload elements): only these,
/// so that no sender can shadow `_G`, `_WAITFOR` or a library.
const MESSAGE_GLOBALS: &[&str] = &["_TICKET"];

/// Calls the handler for `id` in a fresh sandbox with `_WAITFOR` set from `w` and the
/// message's `globals` (a synchronous `":id"` signal nests dispatches; the caller's globals come
/// back afterwards). `None` if no handler matched.
pub fn call(
    lua: &Lua,
    id: &str,
    w: WaitFor<'_>,
    args: MultiValue,
    globals: Vec<(String, Value)>,
) -> mlua::Result<Option<MultiValue>> {
    let found = ctx(lua)?.waitfors.lookup(id);
    let Some((matched, h)) = found else {
        log::warn!("no stage.waitfor for '{id}'; message dropped");
        return Ok(None);
    };
    let all: MultiValue = match h.bound.0 {
        None => args,
        Some(_) => h.bound.values(lua)?.into_iter().chain(args).collect(),
    };
    let allowed: Vec<(String, Value)> = globals
        .into_iter()
        .filter(|(name, _)| MESSAGE_GLOBALS.contains(&name.as_str()))
        .collect();
    let globals = if allowed.is_empty() {
        Value::Nil
    } else {
        Value::Table(lua.create_table_from(allowed)?)
    };
    crate::sandbox::of(lua)?
        .call_message(lua, &h.f, &matched, &w, globals, all)
        .map(Some)
}

/// Milliseconds since the Unix epoch (the clock of message deadlines).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
