//! `broker.ntoa`, `broker.aton` and `broker.ifaddr` (stage-spec §10.3): conversions between
//! raw socket addresses (the bytes of a C sockaddr in a Lua string, [`crate::broker::addr`])
//! and text.
//!
//! ```lua
//! broker.ntoa(raw)                      -- "1.2.3.4:80", "[::1]:80", "/path"
//! broker.ntoa(raw, t)                   -- t.family (2|10|1), addr, port, scope_id, path; t
//! broker.aton("tcp://h:p")              -- raw of the first address ("udp://", "h:p", "[v6]:p",
//!                                       -- "unix://path"; a "?..." part is ignored)
//! broker.aton("udp://h:p", t)           -- t[1..n] = every resolved raw; t
//! broker.aton(2|10|1, {addr=, port=, scope_id=, path=})  -- builds one
//! broker.aton(raw, {port = 8080})       -- a modified copy
//! broker.aton(10, "h:p")                -- the first address of that family
//! broker.ifaddr([name])                 -- { ifname = {raw, ...}, ... }
//! ```
//!
//! Bad data (no address, a name that does not resolve, a field out of range) returns
//! `nil, message`; an argument of the wrong type raises a Lua error naming it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mlua::{Lua, Table, Value};

use crate::broker::addr::{self, Raw};
use crate::broker::uri;

/// What a function returns to Lua: the value, or `nil, message`.
type Answer = Result<Value, String>;

/// Installs `ntoa`, `aton` and `ifaddr` into the `broker` table.
pub fn install(lua: &Lua, broker: &Table) -> mlua::Result<()> {
    broker.set("ntoa", lua.create_function(ntoa)?)?;
    broker.set("aton", lua.create_function(aton)?)?;
    broker.set("ifaddr", lua.create_function(ifaddr)?)?;
    Ok(())
}

fn bad_arg(n: usize, f: &str, expected: &str, got: &Value) -> mlua::Error {
    mlua::Error::runtime(format!(
        "bad argument #{n} to 'broker.{f}' ({expected} expected, got {})",
        got.type_name()
    ))
}

/// An optional table argument.
fn opt_table(v: Value, n: usize, f: &str) -> mlua::Result<Option<Table>> {
    match v {
        Value::Nil => Ok(None),
        Value::Table(t) => Ok(Some(t)),
        v => Err(bad_arg(n, f, "table", &v)),
    }
}

fn family_of(a: &SocketAddr) -> i32 {
    match a {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

fn ntoa(lua: &Lua, (a, t): (Value, Value)) -> mlua::Result<Answer> {
    let Value::String(s) = &a else {
        return Err(bad_arg(1, "ntoa", "raw address string", &a));
    };
    let t = opt_table(t, 2, "ntoa")?;
    let Some(raw) = addr::from_raw(&s.as_bytes()) else {
        return Ok(Err("not a socket address".to_string()));
    };
    let Some(t) = t else {
        return Ok(Ok(Value::String(lua.create_string(addr::ntoa(&raw))?)));
    };
    match &raw {
        Raw::Inet(a) => {
            t.set("family", family_of(a))?;
            t.set("addr", a.ip().to_string())?;
            t.set("port", a.port())?;
            if let SocketAddr::V6(v6) = a {
                t.set("scope_id", v6.scope_id())?;
            }
        }
        Raw::Unix(p) => {
            t.set("family", libc::AF_UNIX)?;
            t.set("addr", p.as_str())?;
            t.set("path", p.as_str())?;
        }
    }
    Ok(Ok(Value::Table(t)))
}

fn aton(lua: &Lua, (a, b): (Value, Value)) -> mlua::Result<Answer> {
    match &a {
        Value::Integer(_) | Value::Number(_) => {
            let Some(family) = integer(&a) else {
                return Err(bad_arg(1, "aton", "address family (integer)", &a));
            };
            let r = match b {
                Value::Table(t) => {
                    Fields::read(&t)?.and_then(|f| empty(family).and_then(|r| f.apply(r)))
                }
                Value::String(s) => of_family(family, &s.to_string_lossy()),
                b => return Err(bad_arg(2, "aton", "table or string", &b)),
            };
            answer(lua, r)
        }
        Value::String(s) => {
            let t = opt_table(b, 2, "aton")?;
            if let Some(raw) = addr::from_raw(&s.as_bytes()) {
                let r = match t {
                    Some(t) => Fields::read(&t)?.and_then(|f| f.apply(raw)),
                    None => Ok(raw),
                };
                return answer(lua, r);
            }
            let all = match resolve(&s.to_string_lossy()) {
                Ok(all) => all,
                Err(e) => return Ok(Err(e)),
            };
            let Some(t) = t else {
                return answer(
                    lua,
                    all.into_iter()
                        .next()
                        .ok_or_else(|| "no address".to_string()),
                );
            };
            for (i, r) in all.iter().enumerate() {
                match raw_string(lua, r)? {
                    Ok(v) => t.raw_set(i + 1, v)?,
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(Value::Table(t)))
        }
        _ => Err(bad_arg(1, "aton", "string or address family", &a)),
    }
}

/// The raw string of a converted address, or its error as `nil, message`.
fn answer(lua: &Lua, r: Result<Raw, String>) -> mlua::Result<Answer> {
    match r {
        Ok(raw) => raw_string(lua, &raw),
        Err(e) => Ok(Err(e)),
    }
}

/// The raw string of `r`; `Err` for a UNIX path that does not fit a `sockaddr_un`.
fn raw_string(lua: &Lua, r: &Raw) -> mlua::Result<Answer> {
    let bytes = match r {
        Raw::Inet(a) => addr::to_raw(a),
        Raw::Unix(p) => match addr::unix_to_raw(p) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        },
    };
    Ok(Ok(Value::String(lua.create_string(bytes)?)))
}

/// The starting point `broker.aton(family, {...})` fills in.
fn empty(family: i64) -> Result<Raw, String> {
    match family {
        f if f == i64::from(libc::AF_INET) => {
            Ok(Raw::Inet(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)))
        }
        f if f == i64::from(libc::AF_INET6) => {
            Ok(Raw::Inet(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)))
        }
        f if f == i64::from(libc::AF_UNIX) => Ok(Raw::Unix(String::new())),
        f => Err(format!("unsupported address family {f} (2, 10 or 1)")),
    }
}

/// Every address `text` names: `unix://path`, or a broker URI whose `?...` part is ignored.
fn resolve(text: &str) -> Result<Vec<Raw>, String> {
    if let Some(path) = text.strip_prefix("unix://") {
        return Ok(vec![Raw::Unix(path.to_string())]);
    }
    let inet = text.split_once('?').map_or(text, |(a, _)| a);
    let u = uri::parse(inet).map_err(|e| e.to_string())?;
    let all = u
        .resolve()
        .map_err(|e| format!("cannot resolve '{}': {e}", u.host))?;
    Ok(all.into_iter().map(Raw::Inet).collect())
}

/// The first address of `family` that `text` names; for AF_UNIX `text` is the path (with or
/// without `unix://`).
fn of_family(family: i64, text: &str) -> Result<Raw, String> {
    let kind = empty(family)?;
    if let Raw::Unix(_) = kind {
        return Ok(Raw::Unix(
            text.strip_prefix("unix://").unwrap_or(text).to_string(),
        ));
    }
    let want = if family == i64::from(libc::AF_INET) {
        "IPv4"
    } else {
        "IPv6"
    };
    resolve(text)?
        .into_iter()
        .find(|r| match (r, &kind) {
            (Raw::Inet(a), Raw::Inet(k)) => a.is_ipv4() == k.is_ipv4(),
            _ => false,
        })
        .ok_or_else(|| format!("no {want} address for '{text}'"))
}

/// The fields of an `aton` table: `addr`, `port`, `scope_id`, `path`.
struct Fields {
    addr: Option<String>,
    port: Option<u16>,
    scope_id: Option<u32>,
    path: Option<String>,
}

impl Fields {
    /// The fields of `t`; `Err` names the first with a bad value.
    fn read(t: &Table) -> mlua::Result<Result<Fields, String>> {
        let (addr, port) = (t.get::<Value>("addr")?, t.get::<Value>("port")?);
        let (scope_id, path) = (t.get::<Value>("scope_id")?, t.get::<Value>("path")?);
        let fields = || {
            Ok(Fields {
                addr: text_field("addr", &addr)?,
                port: int_field("port", &port, "an integer 0-65535")?,
                scope_id: int_field("scope_id", &scope_id, "an integer 0-4294967295")?,
                path: text_field("path", &path)?,
            })
        };
        Ok(fields())
    }

    /// A copy of `raw` with these fields set. `addr` must keep the family; `scope_id` only
    /// concerns IPv6 and `path` (or `addr`) UNIX addresses: others ignore them, so one table
    /// can modify addresses of every family.
    fn apply(self, raw: Raw) -> Result<Raw, String> {
        match raw {
            Raw::Inet(mut a) => {
                if let Some(text) = &self.addr {
                    let ip: IpAddr = text
                        .parse()
                        .map_err(|_| format!("addr '{text}' is not an IP address"))?;
                    if ip.is_ipv4() != a.is_ipv4() {
                        let want = if a.is_ipv4() { "IPv4" } else { "IPv6" };
                        return Err(format!("addr '{text}' is not an {want} address"));
                    }
                    a.set_ip(ip);
                }
                if let Some(p) = self.port {
                    a.set_port(p);
                }
                if let (Some(s), SocketAddr::V6(v6)) = (self.scope_id, &mut a) {
                    v6.set_scope_id(s);
                }
                Ok(Raw::Inet(a))
            }
            Raw::Unix(p) => Ok(Raw::Unix(self.path.or(self.addr).unwrap_or(p))),
        }
    }
}

fn text_field(name: &str, v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_string_lossy())),
        _ => Err(format!("field '{name}' must be a string")),
    }
}

fn int_field<T: TryFrom<i64>>(name: &str, v: &Value, expected: &str) -> Result<Option<T>, String> {
    if v.is_nil() {
        return Ok(None);
    }
    match integer(v).map(T::try_from) {
        Some(Ok(n)) => Ok(Some(n)),
        _ => Err(format!("field '{name}' must be {expected}")),
    }
}

/// A Lua integer, or a float with an integral value.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(*n as i64),
        _ => None,
    }
}

fn ifaddr(lua: &Lua, name: Value) -> mlua::Result<Answer> {
    let filter = match &name {
        Value::Nil => None,
        Value::String(s) => Some(s.to_string_lossy()),
        _ => return Err(bad_arg(1, "ifaddr", "string", &name)),
    };
    let list = match addr::ifaddrs(filter.as_deref()) {
        Ok(l) => l,
        Err(e) => return Ok(Err(format!("getifaddrs: {e}"))),
    };
    let out = lua.create_table()?;
    for (ifname, a) in list {
        let per = match out.raw_get::<Option<Table>>(ifname.as_str())? {
            Some(t) => t,
            None => {
                let t = lua.create_table()?;
                out.raw_set(ifname.as_str(), &t)?;
                t
            }
        };
        per.raw_push(lua.create_string(addr::to_raw(&a))?)?;
    }
    Ok(Ok(Value::Table(out)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        let broker = lua.create_table().expect("table");
        install(&lua, &broker).expect("install");
        lua.globals().set("broker", broker).expect("global");
        lua
    }

    /// Runs a Lua chunk whose `assert`s carry the checks.
    fn run(code: &str) {
        if let Err(e) = lua().load(code).exec() {
            panic!("{e}");
        }
    }

    /// stage-spec §10.3: text → raw → text for IPv4, IPv6 and UNIX, with and without scheme.
    #[test]
    fn round_trips() {
        run(r#"
            local r = broker.aton("tcp://1.2.3.4:80")
            assert(#r == 16 and broker.ntoa(r) == "1.2.3.4:80")
            assert(broker.aton("1.2.3.4:80") == r)
            assert(broker.aton("udp://1.2.3.4:80?bson=1k,2k") == r)
            local r6 = broker.aton("[::1]:8080")
            assert(#r6 == 28 and broker.ntoa(r6) == "[::1]:8080")
            local u = broker.aton("unix:///tmp/stage.sock")
            assert(broker.ntoa(u) == "/tmp/stage.sock")
            -- a raw passed back is a copy of itself
            assert(broker.aton(r) == r)
        "#);
    }

    #[test]
    fn ntoa_fills_a_table() {
        run(r#"
            local t = {}
            assert(broker.ntoa(broker.aton("1.2.3.4:80"), t) == t)
            assert(t.family == 2 and t.addr == "1.2.3.4" and t.port == 80 and t.scope_id == nil)
            t = broker.ntoa(broker.aton(10, {addr = "fe80::1", port = 1, scope_id = 3}), {})
            assert(t.family == 10 and t.addr == "fe80::1" and t.port == 1 and t.scope_id == 3)
            t = broker.ntoa(broker.aton("unix:///run/s"), {})
            assert(t.family == 1 and t.path == "/run/s" and t.addr == "/run/s" and t.port == nil)
        "#);
    }

    /// Building from a family and fields, and modified copies (the docs' ifaddr example).
    #[test]
    fn build_and_modify() {
        run(r#"
            assert(broker.ntoa(broker.aton(2, {addr = "10.0.0.1", port = 9})) == "10.0.0.1:9")
            assert(broker.ntoa(broker.aton(2, {})) == "0.0.0.0:0")
            assert(broker.ntoa(broker.aton(10, {port = 5})) == "[::]:5")
            assert(broker.ntoa(broker.aton(10, {addr = "fe80::1", scope_id = 2, port = 1}))
                == "[fe80::1%2]:1")
            assert(broker.ntoa(broker.aton(1, {path = "/tmp/x"})) == "/tmp/x")
            assert(broker.ntoa(broker.aton(2.0, {port = 7.0})) == "0.0.0.0:7")
            local r = broker.aton("1.2.3.4:80")
            local c = broker.aton(r, {port = 8080})
            assert(broker.ntoa(c) == "1.2.3.4:8080" and broker.ntoa(r) == "1.2.3.4:80")
            assert(broker.ntoa(broker.aton(r, {addr = "5.6.7.8"})) == "5.6.7.8:80")
            -- one table modifies every family: scope_id/path are ignored where meaningless
            local all = {port = 1, scope_id = 4}
            assert(broker.ntoa(broker.aton(r, all)) == "1.2.3.4:1")
            assert(broker.ntoa(broker.aton(broker.aton("[::1]:9"), all)) == "[::1%4]:1")
            local u = broker.aton(broker.aton("unix:///a"), {path = "/b"})
            assert(broker.ntoa(u) == "/b")
        "#);
    }

    /// `aton(family, "h:p")` keeps that family; the table form returns every address.
    #[test]
    fn family_filter_and_array() {
        run(r#"
            assert(broker.ntoa(broker.aton(2, "127.0.0.1:5")) == "127.0.0.1:5")
            assert(broker.ntoa(broker.aton(10, "udp://[::1]:5")) == "[::1]:5")
            local v, e = broker.aton(2, "[::1]:5")
            assert(v == nil and e:find("no IPv4 address", 1, true), e)
            v, e = broker.aton(10, "1.2.3.4:5")
            assert(v == nil and e:find("no IPv6 address", 1, true), e)
            assert(broker.ntoa(broker.aton(1, "unix:///s")) == "/s")
            local t = {}
            assert(broker.aton("udp://224.0.0.1:8082", t) == t and #t == 1)
            assert(broker.ntoa(broker.aton("udp://224.0.0.1:8082", {})[1]) == "224.0.0.1:8082")
            local l = broker.aton("localhost:7", {})
            assert(#l >= 1)
            for _, r in ipairs(l) do
                local f = broker.ntoa(r, {})
                assert(f.port == 7 and (f.addr == "127.0.0.1" or f.addr == "::1"), f.addr)
            end
            local first = broker.aton(2, "localhost:7")
            assert(broker.ntoa(first) == "127.0.0.1:7")
        "#);
    }

    /// Bad data answers nil and a message; wrong argument types raise naming the argument.
    #[test]
    fn errors() {
        run(r#"
            local function fails(needle, ...)
                local v, e = broker.aton(...)
                assert(v == nil and type(e) == "string" and e:find(needle, 1, true),
                    tostring(e) .. " lacks " .. needle)
            end
            fails("port missing", "nonsense")
            fails("unknown scheme 'http'", "http://h:1")
            fails("cannot resolve 'no-such-host.invalid'", "no-such-host.invalid:1")
            fails("unsupported address family 3", 3, {})
            fails("field 'port' must be an integer 0-65535", 2, {port = 70000})
            fails("field 'port' must be an integer 0-65535", 2, {port = 1.5})
            fails("field 'addr' must be a string", 2, {addr = 5})
            fails("addr 'x' is not an IP address", 2, {addr = "x"})
            fails("addr '::1' is not an IPv4 address", 2, {addr = "::1"})
            fails("addr '1.2.3.4' is not an IPv6 address", 10, {addr = "1.2.3.4"})
            fails("field 'scope_id'", 10, {scope_id = -1})
            fails("empty UNIX socket path", 1, {})
            fails("empty UNIX socket path", "unix://")
            fails("longer than", "unix://" .. string.rep("x", 200))
            fails("field 'port'", broker.aton("1.2.3.4:1"), {port = "x"})
            local v, e = broker.ntoa("garbage")
            assert(v == nil and e == "not a socket address")
            v, e = broker.ntoa(string.rep("\0", 16))
            assert(v == nil and e == "not a socket address")
            local function raises(needle, f, ...)
                local ok, e = pcall(f, ...)
                assert(not ok and tostring(e):find(needle, 1, true), tostring(e))
            end
            raises("bad argument #1 to 'broker.aton'", broker.aton, {})
            raises("bad argument #1 to 'broker.aton'", broker.aton, nil)
            raises("bad argument #1 to 'broker.aton'", broker.aton, 2.5, {})
            raises("bad argument #2 to 'broker.aton'", broker.aton, "h:1", 5)
            raises("bad argument #2 to 'broker.aton'", broker.aton, 2, nil)
            raises("bad argument #1 to 'broker.ntoa'", broker.ntoa, 5)
            raises("bad argument #2 to 'broker.ntoa'", broker.ntoa, "x", "y")
            raises("bad argument #1 to 'broker.ifaddr'", broker.ifaddr, 1)
        "#);
    }

    /// `broker.ifaddr` groups addr::ifaddrs by name, as raw strings (stage-spec §10.3).
    #[test]
    fn ifaddr_matches_getifaddrs() {
        let mut want: BTreeMap<String, Vec<SocketAddr>> = BTreeMap::new();
        for (name, a) in addr::ifaddrs(None).expect("getifaddrs") {
            want.entry(name).or_default().push(a);
        }
        let lua = lua();
        let got: Table = lua.load("return broker.ifaddr()").eval().expect("ifaddr");
        let mut seen: BTreeMap<String, Vec<SocketAddr>> = BTreeMap::new();
        for pair in got.pairs::<String, Vec<mlua::LuaString>>() {
            let (name, raws) = pair.expect("name -> array of raws");
            for r in raws {
                match addr::from_raw(&r.as_bytes()) {
                    Some(Raw::Inet(a)) => seen.entry(name.clone()).or_default().push(a),
                    other => panic!("{name}: {other:?} is not an inet address"),
                }
            }
        }
        assert_eq!(seen, want);
        let empty: Table = lua
            .load("return broker.ifaddr('no-such-interface-name')")
            .eval()
            .expect("ifaddr filtered");
        assert_eq!(empty.pairs::<Value, Value>().count(), 0);
        if let Some(first) = want.keys().next() {
            let code = format!("return broker.ifaddr({first:?})");
            let some: Table = lua.load(code).eval().expect("ifaddr by name");
            for pair in some.pairs::<String, Value>() {
                let (name, _) = pair.expect("pair");
                assert!(name.contains(first.as_str()), "{name} lacks {first}");
            }
            assert!(some.contains_key(first.as_str()).expect("lookup"));
        }
    }
}
