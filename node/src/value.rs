//! Lua values on the wire: a serde-free BSON encoder and decoder.
//!
//! Everything a stage sends to another stage (call arguments, replies, published messages)
//! crosses the wire as a BSON document. This module walks [`mlua::Value`]s and writes the
//! BSON bytes straight into the caller's buffer, and parses BSON bytes straight into Lua
//! values, with no intermediate tree and no per-value heap allocation on the encode side.
//!
//! # Payload shape
//!
//! * [`encode_args`] writes positional values as the document `{"1": a1, "2": a2, ..., "n": an}`.
//!   `nil` is written as BSON null, so trailing `nil`s and the argument count survive:
//!   `(1, nil, nil)` decodes to three values.
//! * [`decode_args`] accepts that, or any BSON document, and returns its values in document
//!   order (the top-level keys are not interpreted).
//! * [`encode_value`] / [`decode_value`] carry a single value, as the one-element document
//!   `{"1": v}` (so the value can be of any type, `nil` and scalars included).
//!
//! # Mapping
//!
//! | Lua                                   | BSON                                           |
//! |---------------------------------------|------------------------------------------------|
//! | `nil`                                 | null (0x0A)                                    |
//! | boolean                               | boolean (0x08)                                 |
//! | integer                               | int64 (0x12)                                   |
//! | float                                 | double (0x01)                                  |
//! | string, valid UTF-8                   | string (0x02)                                  |
//! | string, not valid UTF-8               | binary (0x05), subtype 0x00                    |
//! | table that is a sequence `1..n`, n≥1  | array (0x04), keys `"0"`..`"n-1"`              |
//! | any other table (including `{}`)      | embedded document (0x03)                       |
//!
//! Integers stay integers and floats stay floats (`1.0` comes back with `math.type` "float").
//! Lua strings are byte strings: both the string and the binary form decode to a Lua string
//! with exactly the original bytes, embedded NUL bytes included.
//!
//! Table keys in an embedded document:
//!
//! * string keys are written as they are (BSON keys are C strings, so a key containing a NUL
//!   byte is a [`ValueError`]; a key that is not valid UTF-8 is written byte for byte and
//!   decodes back exactly, although strict BSON readers may reject it);
//! * integer keys are written as `"#<n>"`, e.g. `{[5] = "x", a = 1}` becomes
//!   `{"#5": "x", "a": 1}`; tables with holes (`{1, nil, 3}`) are not sequences, so they go out
//!   as documents with `"#n"` keys and the holes survive;
//! * float keys with an exact integer value are treated as integers (Lua itself normalises
//!   them); other float keys and boolean keys are written in their `tostring` form
//!   (`"1.5"`, `"true"`) and come back as string keys — this is lossy;
//! * other key types (tables, functions, ...) are a [`ValueError`].
//!
//! When decoding a document, a key of the exact form `"#<integer>"` (canonical decimal that
//! fits an i64, as written by the encoder) becomes an integer key; every other key becomes a
//! string key. Consequently a string key that itself looks like `"#5"` comes back as the
//! integer 5, and a table holding both `["#5"]` and `[5]` loses one of them (last one wins).
//!
//! Decoding other BSON types (for payloads not produced by this module):
//!
//! * int32 (0x10) and UTC datetime (0x09, milliseconds since the epoch) → integer;
//! * symbol (0x0E) → string; ObjectId (0x07) → its 12 raw bytes as a string;
//! * binary of any subtype → its raw bytes as a string (for the obsolete subtype 0x02 the
//!   inner length prefix is removed when it is consistent);
//! * arrays → a sequence `1..n` in element order (array keys are not checked; null elements
//!   leave holes);
//! * everything else (undefined, regex, DBPointer, JavaScript code, timestamp, decimal128,
//!   min/max key, unknown bytes) → a [`ValueError`] naming the type byte.
//!
//! # Limits
//!
//! Functions, userdata, light userdata, threads (coroutines) and error objects cannot be
//! sent (`"cannot send a function"`). Tables may be nested at most [`MAX_DEPTH`] (32) levels
//! deep; deeper nesting — which is also what a cyclic table produces — is a [`ValueError`]
//! `"table nesting deeper than 32 (cyclic table?)"`. The decoder applies the same limit, so
//! everything the encoder accepts also decodes. Metatables are ignored: tables are read with
//! raw access only (`__index`, `__pairs`, `__len` are never invoked).
//!
//! Decoding never panics: every length is checked against the remaining input, documents
//! must be NUL-terminated and exactly fill their declared length, keys must be terminated
//! within their document, and trailing bytes after the top-level document are rejected.
//!
//! Error messages name where the problem is, e.g.
//! `argument 2: key "a"."b": cannot send a function`.

use std::fmt;

use mlua::{Lua, MultiValue, Table, Value};

/// Maximum nesting depth of tables (and of embedded documents/arrays when decoding).
pub const MAX_DEPTH: usize = 32;

thread_local! {
    /// Bytes an encoding on this thread may reach before it is abandoned; a stage thread sets
    /// it to its node's maximum frame size ([`set_max_encoded`]).
    static MAX_ENCODED: std::cell::Cell<usize> = const { std::cell::Cell::new(stage_proto::DEFAULT_MAX_FRAME) };
}

/// Sets the size limit of encodings made on the calling thread.
pub fn set_max_encoded(bytes: usize) {
    MAX_ENCODED.with(|m| m.set(bytes));
}

/// A value that cannot cross the wire, or a payload that cannot be decoded.
///
/// The message names where the problem is, e.g.
/// `argument 2: key "a"."b": cannot send a function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    message: String,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
        }
    }

    /// The error message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with `context: ` (e.g. `reply: key "a": cannot send a function`).
    pub fn context(self, context: impl fmt::Display) -> Self {
        ValueError {
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValueError {}

impl From<ValueError> for mlua::Error {
    fn from(e: ValueError) -> Self {
        mlua::Error::external(e)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

const T_DOUBLE: u8 = 0x01;
const T_STRING: u8 = 0x02;
const T_DOCUMENT: u8 = 0x03;
const T_ARRAY: u8 = 0x04;
const T_BINARY: u8 = 0x05;
const T_OBJECT_ID: u8 = 0x07;
const T_BOOL: u8 = 0x08;
const T_DATETIME: u8 = 0x09;
const T_NULL: u8 = 0x0A;
const T_SYMBOL: u8 = 0x0E;
const T_INT32: u8 = 0x10;
const T_INT64: u8 = 0x12;

/// An encoding failure on its way up: the message and the keys crossed, innermost first.
/// Only built on the error path.
struct Fail {
    message: String,
    path: Vec<String>,
}

impl Fail {
    fn new(message: impl Into<String>) -> Self {
        Fail {
            message: message.into(),
            path: Vec::new(),
        }
    }

    fn at(mut self, key: String) -> Self {
        self.path.push(key);
        self
    }

    fn into_error(self, prefix: Option<String>) -> ValueError {
        let mut s = String::new();
        if let Some(p) = prefix {
            s.push_str(&p);
            s.push_str(": ");
        }
        if !self.path.is_empty() {
            s.push_str("key ");
            for (i, k) in self.path.iter().rev().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(k);
            }
            s.push_str(": ");
        }
        s.push_str(&self.message);
        ValueError::new(s)
    }
}

/// Sentinel used to stop `Table::for_each` early; the real reason is kept on the side.
fn stop() -> mlua::Error {
    mlua::Error::RuntimeError(String::new())
}

fn lua_fail(e: mlua::Error) -> Fail {
    Fail::new(format!("lua error: {e}"))
}

/// Appends the BSON document encoding positional arguments: keys `"1"`..`"n"` in order,
/// `nil` as BSON null (so trailing `nil`s and the count survive).
///
/// On error nothing is left appended to `buf` (it is truncated back to its original length).
pub fn encode_args<'a>(
    buf: &mut Vec<u8>,
    args: impl IntoIterator<Item = &'a Value>,
) -> Result<(), ValueError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    for (i, v) in args.into_iter().enumerate() {
        let tpos = buf.len();
        buf.push(0);
        push_decimal(buf, i as u64 + 1);
        buf.push(0);
        match write_value(buf, v, 0) {
            Ok(ty) => buf[tpos] = ty,
            Err(f) => {
                buf.truncate(start);
                return Err(f.into_error(Some(format!("argument {}", i + 1))));
            }
        }
    }
    buf.push(0);
    if let Err(f) = patch_len(buf, start) {
        buf.truncate(start);
        return Err(f.into_error(None));
    }
    Ok(())
}

/// Appends a single value as the one-element BSON document `{"1": v}` (read it back with
/// [`decode_value`], or with [`decode_args`] as one value).
///
/// On error nothing is left appended to `buf`.
pub fn encode_value(buf: &mut Vec<u8>, v: &Value) -> Result<(), ValueError> {
    encode_named(buf, b"1", v)
}

/// Appends the one-element document `{key: v}` (a broker socket sends tables as `{"v": t}`,
/// stage-spec §10.4). `key` must not contain a NUL byte.
///
/// On error nothing is left appended to `buf`.
pub fn encode_named(buf: &mut Vec<u8>, key: &[u8], v: &Value) -> Result<(), ValueError> {
    if key.contains(&0) {
        return Err(ValueError::new("a key cannot contain a NUL byte"));
    }
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.push(0);
    buf.extend_from_slice(key);
    buf.push(0);
    let res = write_value(buf, v, 0).and_then(|ty| {
        buf[start + 4] = ty;
        buf.push(0);
        patch_len(buf, start)
    });
    res.map_err(|f| {
        buf.truncate(start);
        f.into_error(None)
    })
}

/// Writes the int32 length of the document (or array) that starts at `start` and ends at the
/// end of `buf`.
#[inline]
fn patch_len(buf: &mut [u8], start: usize) -> Result<(), Fail> {
    let len = buf.len() - start;
    let len = i32::try_from(len).map_err(|_| Fail::new("value too large for BSON (over 2 GiB)"))?;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends `n` in decimal, without allocating.
#[inline]
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `#<n>` (the document key for integer table key `n`).
#[inline]
fn push_int_key(buf: &mut Vec<u8>, n: i64) {
    buf.push(b'#');
    if n < 0 {
        buf.push(b'-');
    }
    push_decimal(buf, n.unsigned_abs());
}

/// Writes the payload of `v` (after the element's type byte and key) and returns its BSON
/// type byte. `depth` is the number of tables enclosing `v`.
fn write_value(buf: &mut Vec<u8>, v: &Value, depth: usize) -> Result<u8, Fail> {
    match v {
        Value::Nil => Ok(T_NULL),
        Value::Boolean(b) => {
            buf.push(*b as u8);
            Ok(T_BOOL)
        }
        Value::Integer(i) => {
            buf.extend_from_slice(&i.to_le_bytes());
            Ok(T_INT64)
        }
        Value::Number(f) => {
            buf.extend_from_slice(&f.to_le_bytes());
            Ok(T_DOUBLE)
        }
        Value::String(s) => {
            let bytes = s.as_bytes();
            let bytes: &[u8] = &bytes;
            // The string form stores len + 1 (trailing NUL); keep both forms within i32.
            let len = match i32::try_from(bytes.len()) {
                Ok(l) if l < i32::MAX => l,
                _ => return Err(Fail::new("string too large for BSON (over 2 GiB)")),
            };
            if std::str::from_utf8(bytes).is_ok() {
                buf.reserve(bytes.len() + 5);
                buf.extend_from_slice(&(len + 1).to_le_bytes());
                buf.extend_from_slice(bytes);
                buf.push(0);
                Ok(T_STRING)
            } else {
                buf.reserve(bytes.len() + 5);
                buf.extend_from_slice(&len.to_le_bytes());
                buf.push(0x00); // generic binary subtype
                buf.extend_from_slice(bytes);
                Ok(T_BINARY)
            }
        }
        Value::Table(t) => write_table(buf, t, depth + 1),
        Value::Function(f) => function::write(buf, f, depth),
        other => Err(Fail::new(format!("cannot send a {}", type_label(other)))),
    }
}

fn type_label(v: &Value) -> &'static str {
    match v {
        Value::LightUserData(_) => "light userdata",
        Value::Error(_) => "error object",
        other => other.type_name(),
    }
}

/// How a table goes out.
enum Shape {
    Document,
    /// Keys exactly `1..n`; `in_order` if raw traversal (`next`) visits them as 1, 2, ..., n.
    Sequence {
        in_order: bool,
    },
}

/// Whether `t` (with raw length `n`) holds exactly the keys `1..n`. A shallow pass over the
/// keys that reads values only as booleans (no references are created) and stops at the first
/// key that does not fit.
fn shape(t: &Table, n: usize) -> Result<Shape, Fail> {
    let mut count = 0u64;
    let mut ok = true;
    let mut in_order = true;
    let res = t.for_each::<Value, bool>(|k, _| match k {
        Value::Integer(i) if i >= 1 && (i as u64) <= n as u64 => {
            count += 1;
            in_order &= i as u64 == count;
            Ok(())
        }
        _ => {
            ok = false;
            Err(stop())
        }
    });
    if !ok {
        return Ok(Shape::Document);
    }
    res.map_err(lua_fail)?;
    Ok(if count == n as u64 {
        Shape::Sequence { in_order }
    } else {
        Shape::Document
    })
}

/// Writes array element `i` (1-based Lua index) with value `v`.
#[inline]
fn write_array_element(buf: &mut Vec<u8>, i: usize, v: &Value, depth: usize) -> Result<(), Fail> {
    let tpos = buf.len();
    buf.push(0);
    push_decimal(buf, i as u64 - 1);
    buf.push(0);
    buf[tpos] = write_value(buf, v, depth).map_err(|f| f.at(i.to_string()))?;
    Ok(())
}

/// Writes table `t` as an array or embedded document; `depth` counts `t` itself.
fn write_table(buf: &mut Vec<u8>, t: &Table, depth: usize) -> Result<u8, Fail> {
    if depth > MAX_DEPTH {
        return Err(Fail::new(format!(
            "table nesting deeper than {MAX_DEPTH} (cyclic table?)"
        )));
    }
    // The depth limit alone lets a table that holds the same sub-table twice per level grow
    // exponentially; stop at a size no frame can carry anyway.
    let max = MAX_ENCODED.with(|m| m.get());
    if buf.len() > max {
        return Err(Fail::new(format!(
            "payload larger than the maximum frame of {max} bytes (a table shared many times over?)"
        )));
    }
    let n = t.raw_len();
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    if n > 0 {
        if let Shape::Sequence { in_order } = shape(t, n)? {
            if in_order {
                // One traversal in the order the shape pass saw (the table is not modified
                // in between), so elements come as 1, 2, ..., n.
                let mut i = 0usize;
                let mut fail = None;
                let res = t.for_each::<Value, Value>(|k, v| {
                    i += 1;
                    let step = if matches!(k, Value::Integer(j) if j as u64 == i as u64) {
                        write_array_element(buf, i, &v, depth)
                    } else {
                        Err(Fail::new("table modified while being sent"))
                    };
                    step.map_err(|f| {
                        fail = Some(f);
                        stop()
                    })
                });
                if let Some(f) = fail {
                    return Err(f);
                }
                res.map_err(lua_fail)?;
            } else {
                for i in 1..=n {
                    let v: Value = t.raw_get(i as i64).map_err(lua_fail)?;
                    write_array_element(buf, i, &v, depth)?;
                }
            }
            buf.push(0);
            patch_len(buf, start)?;
            return Ok(T_ARRAY);
        }
    }
    let mut fail = None;
    let res = t.for_each::<Value, Value>(|k, v| match write_entry(buf, &k, &v, depth) {
        Ok(()) => Ok(()),
        Err(f) => {
            fail = Some(f.at(key_label(&k)));
            Err(stop())
        }
    });
    if let Some(f) = fail {
        return Err(f);
    }
    res.map_err(lua_fail)?;
    buf.push(0);
    patch_len(buf, start)?;
    Ok(T_DOCUMENT)
}

/// Writes one embedded-document element for table entry `k = v`.
fn write_entry(buf: &mut Vec<u8>, k: &Value, v: &Value, depth: usize) -> Result<(), Fail> {
    let tpos = buf.len();
    buf.push(0);
    match k {
        Value::String(s) => {
            let bytes = s.as_bytes();
            if bytes.contains(&0) {
                return Err(Fail::new("cannot send a table key containing a NUL byte"));
            }
            buf.extend_from_slice(&bytes);
        }
        Value::Integer(i) => push_int_key(buf, *i),
        Value::Number(f) => match float_as_int(*f) {
            Some(i) => push_int_key(buf, i),
            None => buf.extend_from_slice(lua_float_string(*f).as_bytes()),
        },
        Value::Boolean(b) => buf.extend_from_slice(if *b { b"true" } else { b"false" }),
        other => {
            return Err(Fail::new(format!(
                "cannot send a {} as a table key",
                type_label(other)
            )))
        }
    }
    buf.push(0);
    buf[tpos] = write_value(buf, v, depth)?;
    Ok(())
}

/// The integer equal to `f`, if it has one (the same rule Lua uses to normalise keys).
fn float_as_int(f: f64) -> Option<i64> {
    if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
    {
        Some(f as i64)
    } else {
        None
    }
}

/// A table key as shown in error messages: strings quoted, numbers and booleans bare.
fn key_label(k: &Value) -> String {
    match k {
        Value::String(s) => format!("{:?}", String::from_utf8_lossy(&s.as_bytes())),
        Value::Integer(i) => i.to_string(),
        Value::Number(f) => match float_as_int(*f) {
            Some(i) => i.to_string(),
            None => lua_float_string(*f),
        },
        Value::Boolean(b) => b.to_string(),
        other => format!("({})", type_label(other)),
    }
}

/// Lua 5.4's `tostring` of a float: `%.14g`, with `.0` added when it would read as an integer.
fn lua_float_string(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    const P: i32 = 14;
    let sci = format!("{:.*e}", (P - 1) as usize, f);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut s = if !(-4..P).contains(&exp) {
        let m = strip_fraction_zeros(mant);
        format!(
            "{m}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        )
    } else {
        let fixed = format!("{:.*}", (P - 1 - exp) as usize, f);
        strip_fraction_zeros(&fixed).to_string()
    };
    if s.bytes().all(|c| c == b'-' || c.is_ascii_digit()) {
        s.push_str(".0");
    }
    s
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A cursor over a byte slice; `base` is the slice's offset in the whole payload, for messages.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

fn malformed(at: usize, what: impl fmt::Display) -> ValueError {
    ValueError::new(format!("malformed BSON at byte {at}: {what}"))
}

fn lua_error(e: mlua::Error) -> ValueError {
    ValueError::new(format!("lua error while decoding: {e}"))
}

impl<'a> Reader<'a> {
    #[inline]
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    #[inline]
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        if n > self.buf.len() - self.pos {
            return Err(malformed(
                self.offset(),
                format_args!("need {n} bytes, only {} left", self.buf.len() - self.pos),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, ValueError> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    fn i32(&mut self) -> Result<i32, ValueError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    #[inline]
    fn i64(&mut self) -> Result<i64, ValueError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    #[inline]
    fn f64(&mut self) -> Result<f64, ValueError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A NUL-terminated key; returns it without the NUL.
    #[inline]
    fn cstring(&mut self) -> Result<&'a [u8], ValueError> {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => Err(malformed(self.offset(), "unterminated key")),
        }
    }

    /// An int32 length that must be non-negative.
    #[inline]
    fn len(&mut self, what: &str) -> Result<usize, ValueError> {
        let at = self.offset();
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| malformed(at, format_args!("negative {what} length {n}")))
    }

    /// A length-prefixed, NUL-terminated document; returns a reader over its elements and
    /// moves past it.
    fn document(&mut self) -> Result<Reader<'a>, ValueError> {
        let start = self.pos;
        let at = self.offset();
        let len = self.i32()?;
        if len < 5 {
            return Err(malformed(at, format_args!("document length {len} below 5")));
        }
        let len = len as usize;
        let avail = self.buf.len() - start;
        if len > avail {
            return Err(malformed(
                at,
                format_args!("document length {len} exceeds the {avail} bytes left"),
            ));
        }
        let end = start + len;
        if self.buf[end - 1] != 0 {
            return Err(malformed(
                self.base + end - 1,
                "document not terminated by a NUL byte",
            ));
        }
        self.pos = end;
        Ok(Reader {
            buf: &self.buf[start + 4..end - 1],
            pos: 0,
            base: self.base + start + 4,
        })
    }
}

/// Parses a payload produced by [`encode_args`] (or any BSON document) into Lua values: the
/// values of the top-level document's elements, in document order.
pub fn decode_args(lua: &Lua, bytes: &[u8]) -> Result<MultiValue, ValueError> {
    decode_message(lua, bytes, None)
}

/// Like [`decode_args`], but top-level elements whose key starts with `"._"` are not
/// arguments: they go to `globals` as (`"_NAME"`, value), for the callback to see as globals
/// (the `ticket` service's `_TICKET`, stage-spec §9.2).
pub fn decode_message(
    lua: &Lua,
    bytes: &[u8],
    mut globals: Option<&mut Vec<(String, Value)>>,
) -> Result<MultiValue, ValueError> {
    let mut top = Reader {
        buf: bytes,
        pos: 0,
        base: 0,
    };
    let mut body = top.document()?;
    if !top.at_end() {
        return Err(malformed(
            top.pos,
            format_args!(
                "{} trailing bytes after the document",
                bytes.len() - top.pos
            ),
        ));
    }
    let mut out = MultiValue::new();
    while !body.at_end() {
        let ty = body.u8()?;
        let key = body.cstring()?;
        let v = read_value(lua, &mut body, ty, key, 0)?;
        match (&mut globals, key.strip_prefix(b".")) {
            (Some(g), Some(name)) if name.starts_with(b"_") => {
                g.push((String::from_utf8_lossy(name).into_owned(), v))
            }
            _ => out.push_back(v),
        }
    }
    Ok(out)
}

/// Parses a payload produced by [`encode_value`]: a document with one element (whose value
/// is returned) or none (`nil`). More elements are an error.
pub fn decode_value(lua: &Lua, bytes: &[u8]) -> Result<Value, ValueError> {
    let mut values = decode_args(lua, bytes)?;
    match values.len() {
        0 => Ok(Value::Nil),
        1 => Ok(values.pop_front().unwrap_or(Value::Nil)),
        n => Err(ValueError::new(format!(
            "expected a single value, got a document with {n} elements"
        ))),
    }
}

/// Reads the value of element `key` of type `ty`; `depth` is the number of tables enclosing it.
fn read_value(
    lua: &Lua,
    r: &mut Reader<'_>,
    ty: u8,
    key: &[u8],
    depth: usize,
) -> Result<Value, ValueError> {
    let at = r.offset();
    Ok(match ty {
        T_DOUBLE => Value::Number(r.f64()?),
        T_STRING | T_SYMBOL => {
            let len = r.len("string")?;
            if len == 0 {
                return Err(malformed(at, "string length 0 (must include the NUL)"));
            }
            let s = r.take(len)?;
            if s[len - 1] != 0 {
                return Err(malformed(at, "string not terminated by a NUL byte"));
            }
            Value::String(lua.create_string(&s[..len - 1]).map_err(lua_error)?)
        }
        T_DOCUMENT | T_ARRAY => {
            if depth + 1 > MAX_DEPTH {
                return Err(malformed(
                    at,
                    format_args!("nesting deeper than {MAX_DEPTH}"),
                ));
            }
            let mut body = r.document()?;
            // Size the table up front (saves rehashing as it grows).
            let n = count_elements(body.buf).min(MAX_PRESIZE);
            let t = if ty == T_ARRAY {
                lua.create_table_with_capacity(n, 0)
            } else {
                lua.create_table_with_capacity(0, n)
            }
            .map_err(lua_error)?;
            if ty == T_ARRAY {
                read_array(lua, &mut body, &t, depth + 1)?;
            } else {
                read_document(lua, &mut body, &t, depth + 1)?;
            }
            Value::Table(t)
        }
        T_BINARY => {
            let len = r.len("binary")?;
            let subtype = r.u8()?;
            let mut data = r.take(len)?;
            if subtype == function::SUBTYPE {
                return function::read(lua, data, at, depth);
            }
            if subtype == 0x02 && data.len() >= 4 {
                let inner = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                if inner >= 0 && inner as usize == data.len() - 4 {
                    data = &data[4..];
                }
            }
            Value::String(lua.create_string(data).map_err(lua_error)?)
        }
        T_OBJECT_ID => Value::String(lua.create_string(r.take(12)?).map_err(lua_error)?),
        T_BOOL => match r.u8()? {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            b => return Err(malformed(at, format_args!("boolean byte 0x{b:02x}"))),
        },
        T_DATETIME | T_INT64 => Value::Integer(r.i64()?),
        T_NULL => Value::Nil,
        T_INT32 => Value::Integer(r.i32()? as i64),
        other => {
            return Err(ValueError::new(format!(
                "cannot decode BSON type 0x{other:02x} ({}) of key {:?} at byte {at}",
                type_name(other),
                String::from_utf8_lossy(key),
            )))
        }
    })
}

/// Upper bound on the capacity requested for a decoded table (a hint, not a limit).
const MAX_PRESIZE: usize = 1 << 16;

/// The number of elements in a document body, for sizing the table: a shallow pass that skips
/// values by their lengths. Only a hint: 0 if anything looks wrong (the real parse reports it).
fn count_elements(body: &[u8]) -> usize {
    let mut r = Reader {
        buf: body,
        pos: 0,
        base: 0,
    };
    let mut n = 0;
    while !r.at_end() {
        let skipped = (|| {
            let ty = r.u8()?;
            r.cstring()?;
            let fixed = match ty {
                T_DOUBLE | T_DATETIME | T_INT64 | 0x11 => 8,
                T_INT32 => 4,
                T_BOOL => 1,
                T_NULL | 0x06 | 0x7F | 0xFF => 0,
                T_OBJECT_ID => 12,
                0x13 => 16,
                T_STRING | 0x0D | T_SYMBOL => r.len("string")?,
                T_BINARY => r.len("binary")? + 1,
                T_DOCUMENT | T_ARRAY => {
                    r.document()?;
                    0
                }
                _ => return Err(malformed(0, "")),
            };
            r.take(fixed).map(|_| ())
        })();
        if skipped.is_err() {
            return 0;
        }
        n += 1;
    }
    n
}

fn type_name(ty: u8) -> &'static str {
    match ty {
        0x06 => "undefined",
        0x0B => "regular expression",
        0x0C => "DBPointer",
        0x0D => "JavaScript code",
        0x0F => "JavaScript code with scope",
        0x11 => "timestamp",
        0x13 => "decimal128",
        0x7F => "max key",
        0xFF => "min key",
        _ => "unknown type",
    }
}

fn read_array(lua: &Lua, r: &mut Reader<'_>, t: &Table, depth: usize) -> Result<(), ValueError> {
    let mut i: i64 = 0;
    while !r.at_end() {
        let ty = r.u8()?;
        let key = r.cstring()?;
        let v = read_value(lua, r, ty, key, depth)?;
        i += 1;
        if !v.is_nil() {
            t.raw_set(i, v).map_err(lua_error)?;
        }
    }
    Ok(())
}

fn read_document(lua: &Lua, r: &mut Reader<'_>, t: &Table, depth: usize) -> Result<(), ValueError> {
    while !r.at_end() {
        let ty = r.u8()?;
        let key = r.cstring()?;
        let v = read_value(lua, r, ty, key, depth)?;
        if v.is_nil() {
            continue;
        }
        if let Some(i) = int_key(key) {
            t.raw_set(i, v).map_err(lua_error)?;
        } else {
            let k = lua.create_string(key).map_err(lua_error)?;
            t.raw_set(k, v).map_err(lua_error)?;
        }
    }
    Ok(())
}

/// `"#<n>"` in canonical decimal (no `+`, no leading zeros, no `-0`) that fits an i64.
fn int_key(key: &[u8]) -> Option<i64> {
    let digits = key.strip_prefix(b"#")?;
    let unsigned = digits.strip_prefix(b"-").unwrap_or(digits);
    if unsigned.is_empty()
        || !unsigned.iter().all(u8::is_ascii_digit)
        || (unsigned[0] == b'0' && (unsigned.len() > 1 || unsigned.len() != digits.len()))
    {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

pub mod function;

#[cfg(test)]
mod tests;
