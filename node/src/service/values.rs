//! Reading and writing BSON the way Lua stages encode it (see [`crate::value`]): integer table
//! keys travel as `"#n"`, strings that are not UTF-8 as binary.

use bson::{Binary, Bson};

/// The text of a string value (a Lua string sent as BSON string or binary).
pub fn text(v: &Bson) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Bson::String(s) => Some(s.as_str().into()),
        Bson::Binary(b) => Some(String::from_utf8_lossy(&b.bytes)),
        Bson::Symbol(s) => Some(s.as_str().into()),
        _ => None,
    }
}

/// An integral number (Lua integer, or a float with an integer value).
pub fn int(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int64(i) => Some(*i),
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Double(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        _ => None,
    }
}

/// Any number, as a float.
pub fn number(v: &Bson) -> Option<f64> {
    match v {
        Bson::Double(f) => Some(*f),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Int32(i) => Some(f64::from(*i)),
        _ => None,
    }
}

/// The integer a table key stands for (`"#3"` → 3), if it is one.
pub fn key_int(k: &str) -> Option<i64> {
    let n = k.strip_prefix('#')?;
    let v: i64 = n.parse().ok()?;
    (v.to_string() == n).then_some(v)
}

/// The key under which a Lua integer key travels.
pub fn int_key(n: i64) -> String {
    format!("#{n}")
}

/// A byte string as Lua stages send it: a BSON string when it is UTF-8, else binary.
pub fn bytes(b: Vec<u8>) -> Bson {
    match String::from_utf8(b) {
        Ok(s) => Bson::String(s),
        Err(e) => Bson::Binary(Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: e.into_bytes(),
        }),
    }
}
