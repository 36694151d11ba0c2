use super::*;

use bson::{spec::BinarySubtype, Bson, Document};
use mlua::{Function, LightUserData, Lua, MultiValue, Value};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Deep comparison on the Lua side: same types, same `math.type`, raw keys and values.
const PRELUDE: &str = r#"
function deep_eq(a, b, path)
  path = path or "root"
  if type(a) ~= type(b) then
    return false, path .. ": type " .. type(a) .. " vs " .. type(b)
  end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then
      return false, path .. ": math.type " .. math.type(a) .. " vs " .. math.type(b)
    end
    if a ~= b and not (a ~= a and b ~= b) then
      return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
    end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  for k, v in next, a do
    local ok, err = deep_eq(v, rawget(b, k), path .. "." .. tostring(k))
    if not ok then return false, err end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false, path .. ": extra key " .. tostring(k) end
  end
  return true
end
"#;

fn new_lua() -> Lua {
    let lua = Lua::new();
    lua.load(PRELUDE).exec().unwrap();
    lua
}

/// Runs `code` and returns its results. (Packed on the Lua side: mlua 0.10.5's
/// `Chunk::eval::<MultiValue>` overflows the Lua stack — an API assertion in debug builds —
/// when a chunk returns ~19 or more values some of which are strings or tables.)
fn eval(lua: &Lua, code: &str) -> MultiValue {
    let f = lua.load(code).into_function().unwrap();
    let pack: Function = lua
        .load("return function(f) return table.pack(f()) end")
        .eval()
        .unwrap();
    let t: mlua::Table = pack.call(f).unwrap();
    let n: usize = t.raw_get("n").unwrap();
    (1..=n).map(|i| t.raw_get(i).unwrap()).collect()
}

fn encode(args: &MultiValue) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_args(&mut buf, args.iter()).unwrap();
    buf
}

fn encode_err(args: &MultiValue) -> String {
    let mut buf = b"keep".to_vec();
    let e = encode_args(&mut buf, args.iter()).unwrap_err();
    assert_eq!(buf, b"keep", "buffer must be left as it was on error");
    e.to_string()
}

fn assert_deep_eq(lua: &Lua, a: &Value, b: &Value, what: &str) {
    let f: Function = lua.globals().get("deep_eq").unwrap();
    let (ok, err): (bool, Option<String>) = f.call((a.clone(), b.clone())).unwrap();
    assert!(ok, "{what}: {}", err.unwrap_or_default());
}

fn bson_doc(bytes: &[u8]) -> Document {
    Document::from_reader(&mut &bytes[..]).expect("encoded bytes must be a valid BSON document")
}

/// Encodes what `code` returns, checks the bytes with the `bson` crate, decodes them and
/// compares with the original; returns the decoded values.
fn round_trip(lua: &Lua, code: &str) -> MultiValue {
    let orig = eval(lua, code);
    let bytes = encode(&orig);
    let doc = bson_doc(&bytes);
    assert_eq!(doc.len(), orig.len(), "{code}: element count");
    let keys: Vec<String> = doc.keys().cloned().collect();
    let expected: Vec<String> = (1..=orig.len()).map(|i| i.to_string()).collect();
    assert_eq!(keys, expected, "{code}: argument keys");
    let decoded = decode_args(lua, &bytes).unwrap();
    assert_eq!(decoded.len(), orig.len(), "{code}: value count");
    for (i, (a, b)) in orig.iter().zip(decoded.iter()).enumerate() {
        assert_deep_eq(lua, a, b, &format!("{code}: argument {}", i + 1));
    }
    decoded
}

fn lua_check(lua: &Lua, values: MultiValue, check: &str) {
    let f: Function = lua.load(check).eval().unwrap();
    let ok: bool = f.call(values).unwrap();
    assert!(ok, "check failed: {check}");
}

#[test]
fn scalars_round_trip() {
    let lua = new_lua();
    let decoded = round_trip(
        &lua,
        r#"return nil, true, false, 0, 1, -1, math.maxinteger, math.mininteger,
                  1.0, -0.0, 0.5, -2.25, 1e300, 5e-324, math.huge, -math.huge,
                  "", "hello", "h\xc3\xa9llo \u{1F600}""#,
    );
    lua_check(
        &lua,
        decoded,
        r#"return function(...)
             local t = table.pack(...)
             return t.n == 19 and t[1] == nil and t[2] == true and t[3] == false
               and math.type(t[5]) == "integer" and math.type(t[9]) == "float" and t[9] == 1.0
               and 1 / t[10] == -math.huge and t[15] == math.huge
               and t[7] == math.maxinteger and t[8] == math.mininteger
           end"#,
    );
}

#[test]
fn nan_round_trips() {
    let lua = new_lua();
    let decoded = decode_args(&lua, &encode(&eval(&lua, "return 0/0"))).unwrap();
    match decoded[0] {
        Value::Number(f) => assert!(f.is_nan()),
        ref other => panic!("expected NaN, got {other:?}"),
    }
}

#[test]
fn strings_with_nul_and_non_utf8_bytes() {
    let lua = new_lua();
    let decoded = round_trip(&lua, r#"return "a\0b", "\xff\xfe\0x", "\0", "\xc3""#);
    let bytes = encode(&eval(&lua, r#"return "a\0b", "\xff\xfe\0x""#));
    let doc = bson_doc(&bytes);
    assert_eq!(doc.get("1"), Some(&Bson::String("a\0b".into())));
    match doc.get("2") {
        Some(Bson::Binary(b)) => {
            assert_eq!(b.subtype, BinarySubtype::Generic);
            assert_eq!(b.bytes, b"\xff\xfe\0x");
        }
        other => panic!("expected binary, got {other:?}"),
    }
    match &decoded[1] {
        Value::String(s) => assert_eq!(&s.as_bytes()[..], b"\xff\xfe\0x"),
        other => panic!("expected string, got {other:?}"),
    }
}

#[test]
fn exact_bytes_of_a_simple_payload() {
    let lua = new_lua();
    let bytes = encode(&eval(&lua, r#"return 1, "a", nil"#));
    let mut expected = Vec::new();
    expected.extend_from_slice(&[0; 4]);
    expected.extend_from_slice(&[0x12, b'1', 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[0x02, b'2', 0, 2, 0, 0, 0, b'a', 0]);
    expected.extend_from_slice(&[0x0A, b'3', 0]);
    expected.push(0);
    let len = expected.len() as i32;
    expected[..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(bytes, expected);
}

#[test]
fn tables_round_trip() {
    let lua = new_lua();
    for code in [
        "return {}",
        "return {1, 2, 3}",
        "return {'a', 'b', {}}",
        "return {a = 1, b = {c = {d = 'e'}}}",
        "return {1, 2, {3, {4, {5}}}}",
        "return {1, 2, 3, x = 'y'}",
        "return {1, nil, 3}",
        "return {nil, nil, 3}",
        "return {[5] = 'x', a = 1}",
        "return {[2] = 'two'}",
        "return {[0] = 1, [-1] = 2, [math.mininteger] = 3, [math.maxinteger] = 4}",
        "return {{}, {{}}, {{{}}}}",
        "return {{a = 1}, {b = 2}, {1, 2, nil, 4}}",
        "return {['#x'] = 1, ['#05'] = 2, ['#-0'] = 3, ['#+5'] = 4, ['#'] = 5, ['# 5'] = 6}",
        "return {['a\\xffb'] = 1}",
        "return {[2.0] = 'two', [3] = 'three'}",
        "local t = {} for i = 10, 1, -1 do t[i] = i * 1.5 end return t",
        "local t = {} for i = 1, 1000 do t[i] = {i, tostring(i)} end return t",
        "local t = {} for i = 1, 100 do t['k' .. i] = i end return t",
        "return {true, false}, {x = {y = {z = {}}}}, nil",
    ] {
        if code.contains("\\xff") {
            // Non-UTF-8 keys are written byte for byte (strict BSON readers reject them).
            let orig = eval(&lua, code);
            let decoded = decode_args(&lua, &encode(&orig)).unwrap();
            assert_deep_eq(&lua, &orig[0], &decoded[0], code);
        } else {
            round_trip(&lua, code);
        }
    }
}

#[test]
fn table_shapes_on_the_wire() {
    let lua = new_lua();
    let doc = bson_doc(&encode(&eval(
        &lua,
        "return {1, 2.5, 'x'}, {[5] = 'x', a = 1}, {1, nil, 3}, {}, {1, 2, k = true}",
    )));
    assert_eq!(
        doc.get("1"),
        Some(&Bson::Array(vec![
            Bson::Int64(1),
            Bson::Double(2.5),
            Bson::String("x".into())
        ]))
    );
    let d2 = doc.get_document("2").unwrap();
    assert_eq!(d2.len(), 2);
    assert_eq!(d2.get("#5"), Some(&Bson::String("x".into())));
    assert_eq!(d2.get("a"), Some(&Bson::Int64(1)));
    let d3 = doc.get_document("3").unwrap();
    assert_eq!(d3.len(), 2);
    assert_eq!(d3.get("#1"), Some(&Bson::Int64(1)));
    assert_eq!(d3.get("#3"), Some(&Bson::Int64(3)));
    assert_eq!(doc.get("4"), Some(&Bson::Document(Document::new())));
    let d5 = doc.get_document("5").unwrap();
    assert_eq!(d5.len(), 3);
    assert_eq!(d5.get("#1"), Some(&Bson::Int64(1)));
    assert_eq!(d5.get("k"), Some(&Bson::Boolean(true)));
}

#[test]
fn lossy_keys() {
    let lua = new_lua();
    let orig = eval(
        &lua,
        "return {[1.5] = 'f', [true] = 't', [false] = 'f', [1e100] = 'big', [-math.huge] = 'ninf'}",
    );
    let bytes = encode(&orig);
    let doc = bson_doc(&bytes);
    let d = doc.get_document("1").unwrap();
    for k in ["1.5", "true", "false", "1e+100", "-inf"] {
        assert!(d.contains_key(k), "missing key {k:?} in {d:?}");
    }
    let decoded = decode_args(&lua, &bytes).unwrap();
    lua_check(
        &lua,
        decoded,
        r#"return function(t)
             return t["1.5"] == "f" and t["true"] == "t" and t["false"] == "f"
               and t["1e+100"] == "big" and t["-inf"] == "ninf" and t[1.5] == nil
           end"#,
    );
    // "#5" written as a string key comes back as the integer key 5.
    let decoded = decode_args(&lua, &encode(&eval(&lua, "return {['#5'] = 'x'}"))).unwrap();
    lua_check(
        &lua,
        decoded,
        "return function(t) return t[5] == 'x' and t['#5'] == nil end",
    );
}

#[test]
fn lua_float_string_matches_tostring() {
    let lua = new_lua();
    for f in [
        1.5,
        0.1,
        -2.75,
        1e100,
        1e-100,
        123456.789,
        12345678901234.5,
        1e15 + 0.5,
        std::f64::consts::PI,
        2.5e-7,
        0.0001,
        0.00001234,
        f64::INFINITY,
        f64::NEG_INFINITY,
        2f64.powi(70),
        -2f64.powi(63) * 4.0,
    ] {
        let expected: String = lua
            .load("return tostring(...)")
            .call(Value::Number(f))
            .unwrap();
        assert_eq!(lua_float_string(f), expected, "tostring({f})");
    }
}

#[test]
fn huge_float_keys_stay_floats_on_the_wire() {
    let lua = new_lua();
    let doc = bson_doc(&encode(&eval(&lua, "return {[2^63] = 1, [-2^63] = 2}")));
    let d = doc.get_document("1").unwrap();
    assert!(d.contains_key("9.2233720368548e+18"), "{d:?}");
    assert!(d.contains_key("#-9223372036854775808"), "{d:?}");
}

#[test]
fn trailing_nils_are_counted() {
    let lua = new_lua();
    let decoded = round_trip(&lua, "return 1, nil, nil");
    assert_eq!(decoded.len(), 3);
    assert!(decoded[1].is_nil() && decoded[2].is_nil());
    assert_eq!(round_trip(&lua, "return nil").len(), 1);
    assert_eq!(round_trip(&lua, "return").len(), 0);
    let mut buf = Vec::new();
    encode_args(&mut buf, []).unwrap();
    assert_eq!(buf, [5, 0, 0, 0, 0]);
    let bytes = encode(&eval(&lua, "return nil, nil, nil, nil"));
    assert_eq!(decode_args(&lua, &bytes).unwrap().len(), 4);
}

#[test]
fn single_values() {
    let lua = new_lua();
    for code in [
        "return nil",
        "return 1",
        "return 1.0",
        "return 'x'",
        "return {1, {a = 2}}",
    ] {
        let v: Value = lua.load(code).eval().unwrap();
        let mut buf = vec![9, 9];
        encode_value(&mut buf, &v).unwrap();
        assert_eq!(&buf[..2], &[9, 9]);
        let doc = bson_doc(&buf[2..]);
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["1"]);
        let back = decode_value(&lua, &buf[2..]).unwrap();
        assert_deep_eq(&lua, &v, &back, code);
    }
    assert!(decode_value(&lua, &[5, 0, 0, 0, 0]).unwrap().is_nil());
    let two = encode(&eval(&lua, "return 1, 2"));
    assert!(decode_value(&lua, &two).is_err());

    let f: Value = lua.load("return {a = {print}}").eval().unwrap();
    let mut buf = vec![7];
    let e = encode_value(&mut buf, &f).unwrap_err();
    assert_eq!(buf, [7]);
    assert_eq!(e.to_string(), r#"key "a".1: cannot send a function"#);
    assert_eq!(
        e.clone().context("reply").to_string(),
        r#"reply: key "a".1: cannot send a function"#
    );
    let le: mlua::Error = e.into();
    assert!(le.to_string().contains("cannot send a function"));
}

#[test]
fn values_that_cannot_be_sent() {
    let lua = new_lua();
    assert_eq!(
        encode_err(&eval(&lua, "return 1, print")),
        "argument 2: cannot send a function"
    );
    assert_eq!(
        encode_err(&eval(&lua, "return 1, {a = {b = print}}")),
        r#"argument 2: key "a"."b": cannot send a function"#
    );
    assert_eq!(
        encode_err(&eval(&lua, "return {1, {2, print}}")),
        "argument 1: key 2.2: cannot send a function"
    );
    assert_eq!(
        encode_err(&eval(&lua, "return {[7] = {x = print}}")),
        r#"argument 1: key 7."x": cannot send a function"#
    );
    assert_eq!(
        encode_err(&eval(&lua, "return coroutine.create(print)")),
        "argument 1: cannot send a thread"
    );
    assert_eq!(
        encode_err(&eval(&lua, "return {f = io.stdout}")),
        r#"argument 1: key "f": cannot send a userdata"#
    );
    let light = MultiValue::from_vec(vec![Value::LightUserData(LightUserData(
        std::ptr::null_mut(),
    ))]);
    assert_eq!(
        encode_err(&light),
        "argument 1: cannot send a light userdata"
    );
    assert_eq!(
        encode_err(&eval(&lua, "return {['a\\0b'] = 1}")),
        r#"argument 1: key "a\0b": cannot send a table key containing a NUL byte"#
    );
    assert_eq!(
        encode_err(&eval(&lua, "return {[{}] = 1}")),
        "argument 1: key (table): cannot send a table as a table key"
    );
}

#[test]
fn nesting_limit_and_cycles() {
    let lua = new_lua();
    let nested = |n: usize| {
        format!("local t = {{}} local cur = t for i = 2, {n} do cur[1] = {{}} cur = cur[1] end return t")
    };
    round_trip(&lua, &nested(MAX_DEPTH));
    let e = encode_err(&eval(&lua, &nested(MAX_DEPTH + 1)));
    assert!(
        e.ends_with("table nesting deeper than 32 (cyclic table?)"),
        "{e}"
    );
    let e = encode_err(&eval(&lua, "local t = {} t.self = t return t"));
    assert!(
        e.starts_with(r#"argument 1: key "self"."self"."#)
            && e.ends_with("table nesting deeper than 32 (cyclic table?)"),
        "{e}"
    );
    let e = encode_err(&eval(&lua, "local t = {1} t[1] = t return 1, t"));
    assert!(
        e.starts_with("argument 2: key 1.1.1.") && e.contains("cyclic table"),
        "{e}"
    );
    // Shared (non-cyclic) subtables are fine: written once per reference.
    round_trip(&lua, "local s = {1, 2} return {a = s, b = s, s}");
}

#[test]
fn metatables_are_ignored() {
    let lua = new_lua();
    let orig = eval(
        &lua,
        r#"local mt = {
             __index = function() error("__index called") end,
             __newindex = function() error("__newindex called") end,
             __pairs = function() error("__pairs called") end,
             __len = function() return 10 end,
           }
           return setmetatable({a = 1, [2] = 2}, mt),
                  setmetatable({1, 2}, mt),
                  setmetatable({1, 2}, {__index = {3, 4, 5}, __len = function() return 5 end})"#,
    );
    let bytes = encode(&orig);
    let doc = bson_doc(&bytes);
    assert_eq!(
        doc.get("2"),
        Some(&Bson::Array(vec![Bson::Int64(1), Bson::Int64(2)]))
    );
    assert_eq!(
        doc.get("3"),
        Some(&Bson::Array(vec![Bson::Int64(1), Bson::Int64(2)]))
    );
    let decoded = decode_args(&lua, &bytes).unwrap();
    lua_check(
        &lua,
        decoded,
        r#"return function(a, b, c)
             return getmetatable(a) == nil and a.a == 1 and a[2] == 2 and #b == 2 and #c == 2
           end"#,
    );
}

#[test]
fn decodes_other_bson_types() {
    let lua = new_lua();
    let oid = bson::oid::ObjectId::from_bytes(*b"0123456789ab");
    let doc = bson::doc! {
        "i32": 7i32,
        "neg": -7i32,
        "dt": bson::DateTime::from_millis(1_700_000_000_123),
        "oid": oid,
        "sym": Bson::Symbol("sym".into()),
        "bin": Bson::Binary(bson::Binary { subtype: BinarySubtype::UserDefined(0x80), bytes: vec![1, 0, 2] }),
        "uuid": Bson::Binary(bson::Binary { subtype: BinarySubtype::Uuid, bytes: vec![0xAB; 16] }),
        "arr": [1i32, "two", Bson::Null, 4.5f64, [true]],
        "sub": { "x": 1i64, "#3": "three", "#03": "not int" },
    };
    let mut bytes = Vec::new();
    doc.to_writer(&mut bytes).unwrap();
    let values = decode_args(&lua, &bytes).unwrap();
    assert_eq!(values.len(), 9);
    lua_check(
        &lua,
        values,
        r##"return function(i32, neg, dt, oid, sym, bin, uuid, arr, sub)
             return math.type(i32) == "integer" and i32 == 7 and neg == -7
               and math.type(dt) == "integer" and dt == 1700000000123
               and oid == "0123456789ab" and sym == "sym" and bin == "\1\0\2"
               and uuid == string.rep("\xab", 16)
               and arr[1] == 1 and arr[2] == "two" and arr[3] == nil and arr[4] == 4.5
               and math.type(arr[4]) == "float" and arr[5][1] == true
               and sub.x == 1 and sub[3] == "three" and sub["#03"] == "not int"
           end"##,
    );
    // Obsolete binary subtype 0x02 carries an inner length, which is removed.
    let mut old = vec![
        0, 0, 0, 0, 0x05, b'1', 0, 7, 0, 0, 0, 0x02, 3, 0, 0, 0, b'x', b'y', b'z', 0,
    ];
    let n = old.len() as i32;
    old[..4].copy_from_slice(&n.to_le_bytes());
    let v = decode_value(&lua, &old).unwrap();
    assert_eq!(v.as_string().unwrap().as_bytes().to_vec(), b"xyz");
}

#[test]
fn unsupported_bson_types_are_errors() {
    let lua = new_lua();
    let cases: Vec<(Bson, &str)> = vec![
        (
            Bson::Decimal128(bson::Decimal128::from_bytes([0; 16])),
            "0x13 (decimal128)",
        ),
        (
            Bson::RegularExpression(bson::Regex {
                pattern: "a".into(),
                options: "i".into(),
            }),
            "0x0b (regular expression)",
        ),
        (Bson::JavaScriptCode("x".into()), "0x0d (JavaScript code)"),
        (
            Bson::Timestamp(bson::Timestamp {
                time: 1,
                increment: 2,
            }),
            "0x11 (timestamp)",
        ),
        (Bson::MinKey, "0xff (min key)"),
        (Bson::MaxKey, "0x7f (max key)"),
        (Bson::Undefined, "0x06 (undefined)"),
    ];
    for (value, name) in cases {
        let doc = bson::doc! { "1": 1i32, "2": { "deep": value } };
        let mut bytes = Vec::new();
        doc.to_writer(&mut bytes).unwrap();
        let e = decode_args(&lua, &bytes).unwrap_err().to_string();
        assert!(
            e.contains(name) && e.contains(r#"of key "deep""#),
            "{e} should name {name} and the key"
        );
    }
}

/// A document with the given elements (type, key, payload).
fn raw_doc(elements: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
    let mut d = vec![0; 4];
    for (ty, key, payload) in elements {
        d.push(*ty);
        d.extend_from_slice(key);
        d.push(0);
        d.extend_from_slice(payload);
    }
    d.push(0);
    let n = d.len() as i32;
    d[..4].copy_from_slice(&n.to_le_bytes());
    d
}

#[test]
fn malformed_input_is_rejected() {
    let lua = new_lua();
    let good = encode(&eval(&lua, "return 1, 'str', {1, {a = 2}}"));
    assert!(decode_args(&lua, &good).is_ok());
    let bad = |bytes: &[u8]| decode_args(&lua, bytes).unwrap_err().to_string();

    assert!(bad(&[]).contains("need 4 bytes"));
    assert!(bad(&[4, 0, 0, 0]).contains("below 5"));
    assert!(bad(&[6, 0, 0, 0, 0]).contains("exceeds"));
    assert!(bad(&[5, 0, 0, 0, 1]).contains("not terminated"));
    assert!(bad(&[5, 0, 0, 0, 0, 0]).contains("trailing"));
    for cut in 0..good.len() {
        assert!(
            decode_args(&lua, &good[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    // Element value runs past the document end.
    let mut d = raw_doc(&[(0x12, b"1", &[1, 0, 0, 0])]);
    assert!(bad(&d).contains("need 8 bytes"));
    // Unterminated key.
    d = vec![8, 0, 0, 0, 0x0A, b'a', b'b', 0];
    assert!(bad(&d).contains("unterminated key"));
    // String lengths: negative, zero, too long, not NUL-terminated.
    assert!(bad(&raw_doc(&[(0x02, b"1", &(-1i32).to_le_bytes())])).contains("negative"));
    assert!(bad(&raw_doc(&[(0x02, b"1", &[0, 0, 0, 0])])).contains("length 0"));
    assert!(bad(&raw_doc(&[(0x02, b"1", &[9, 0, 0, 0, b'a', 0])])).contains("need 9 bytes"));
    assert!(bad(&raw_doc(&[(0x02, b"1", &[2, 0, 0, 0, b'a', b'b'])])).contains("not terminated"));
    // Binary: negative and too long.
    assert!(bad(&raw_doc(&[(0x05, b"1", &[0xff, 0xff, 0xff, 0xff, 0])])).contains("negative"));
    assert!(bad(&raw_doc(&[(0x05, b"1", &[4, 0, 0, 0, 0, 1])])).contains("need 4 bytes"));
    // Bad boolean byte.
    assert!(bad(&raw_doc(&[(0x08, b"1", &[2])])).contains("boolean"));
    // Nested document longer than its parent's remaining body.
    let inner = raw_doc(&[(0x12, b"x", &[0; 8])]);
    let mut long = inner.clone();
    long[0] += 1;
    assert!(bad(&raw_doc(&[(0x03, b"1", &long)])).contains("exceeds"));
    // Nested document shorter than its content: the rest is parsed as elements of the parent.
    let mut short = inner.clone();
    short[0] -= 4;
    assert!(decode_args(&lua, &raw_doc(&[(0x03, b"1", &short)])).is_err());
    // Nested document whose declared length ends before its terminator.
    let mut unterminated = raw_doc(&[(0x0A, b"x", &[])]);
    unterminated.pop();
    unterminated.push(1);
    assert!(bad(&raw_doc(&[(0x04, b"1", &unterminated)])).contains("not terminated"));
}

/// `levels` nested embedded documents as the value of argument 1.
fn nested_docs(levels: usize, ty: u8) -> Vec<u8> {
    let mut v = raw_doc(&[]);
    for _ in 1..levels {
        v = raw_doc(&[(ty, b"0", &v)]);
    }
    raw_doc(&[(ty, b"1", &v)])
}

#[test]
fn decode_nesting_limit() {
    let lua = new_lua();
    for ty in [0x03, 0x04] {
        assert!(decode_args(&lua, &nested_docs(MAX_DEPTH, ty)).is_ok());
        let e = decode_args(&lua, &nested_docs(MAX_DEPTH + 1, ty)).unwrap_err();
        assert!(e.to_string().contains("nesting deeper than 32"), "{e}");
    }
    // Far deeper than the limit: rejected without recursing further.
    assert!(decode_args(&lua, &nested_docs(10_000, 0x03)).is_err());
}

fn random_key(rng: &mut StdRng) -> String {
    let len = rng.gen_range(1..8);
    (0..len)
        .map(|_| rng.gen_range(b'a'..=b'z') as char)
        .collect()
}

fn random_value(lua: &Lua, rng: &mut StdRng, depth: usize) -> Value {
    let kinds = if depth < 4 { 11 } else { 8 };
    match rng.gen_range(0..kinds) {
        0 => Value::Nil,
        1 => Value::Boolean(rng.gen()),
        2 => Value::Integer(if rng.gen() {
            rng.gen()
        } else {
            rng.gen_range(-5..100)
        }),
        3 => Value::Number(match rng.gen_range(0..4) {
            0 => rng.gen_range(-10..10) as f64,
            1 => rng.gen::<f64>() * 1e6,
            2 => f64::from_bits(rng.gen()),
            _ => -0.0,
        }),
        4 => Value::String(lua.create_string(random_key(rng)).unwrap()),
        5 => {
            let len = rng.gen_range(0..16);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            Value::String(lua.create_string(bytes).unwrap())
        }
        6 => Value::String(lua.create_string("ünï\0cödé \u{1F600}").unwrap()),
        7 => Value::Integer(0),
        8 => {
            // Sequence.
            let t = lua.create_table().unwrap();
            for i in 1..=rng.gen_range(1..6) {
                let mut v = random_value(lua, rng, depth + 1);
                if v.is_nil() {
                    v = Value::Boolean(false);
                }
                t.raw_set(i, v).unwrap();
            }
            Value::Table(t)
        }
        9 => {
            // Map with string and integer keys.
            let t = lua.create_table().unwrap();
            for _ in 0..rng.gen_range(0..6) {
                let v = random_value(lua, rng, depth + 1);
                if rng.gen() {
                    t.raw_set(random_key(rng), v).unwrap();
                } else {
                    t.raw_set(rng.gen_range(-3i64..10), v).unwrap();
                }
            }
            Value::Table(t)
        }
        _ => {
            // Array with holes.
            let t = lua.create_table().unwrap();
            for i in 1..=rng.gen_range(1..8) {
                if rng.gen_bool(0.6) {
                    t.raw_set(i, random_value(lua, rng, depth + 1)).unwrap();
                }
            }
            Value::Table(t)
        }
    }
}

#[test]
fn random_values_round_trip() {
    let lua = new_lua();
    let mut rng = StdRng::seed_from_u64(0x57a6e);
    for round in 0..2_000 {
        let n = rng.gen_range(0..5);
        let args: MultiValue = (0..n).map(|_| random_value(&lua, &mut rng, 0)).collect();
        let bytes = encode(&args);
        bson_doc(&bytes);
        let decoded = decode_args(&lua, &bytes).unwrap();
        assert_eq!(decoded.len(), args.len());
        for (a, b) in args.iter().zip(decoded.iter()) {
            assert_deep_eq(&lua, a, b, &format!("round {round}"));
        }
    }
}

#[test]
fn decoding_garbage_never_panics() {
    let lua = new_lua();
    let mut rng = StdRng::seed_from_u64(0xbad_b50e);
    let mut corpus = Vec::new();
    for _ in 0..200 {
        let n = rng.gen_range(0..4);
        let args: MultiValue = (0..n).map(|_| random_value(&lua, &mut rng, 0)).collect();
        corpus.push(encode(&args));
    }
    let mut ok = 0;
    for i in 0..20_000 {
        let bytes: Vec<u8> = match i % 4 {
            0 => {
                // Random bytes, often with a plausible length prefix.
                let len = rng.gen_range(0..64);
                let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                if len >= 5 && rng.gen() {
                    b[..4].copy_from_slice(&(len as i32).to_le_bytes());
                    b[len - 1] = 0;
                }
                b
            }
            1 => {
                // Truncation of a valid encoding: always an error.
                let src = &corpus[rng.gen_range(0..corpus.len())];
                let cut = rng.gen_range(0..src.len());
                let b = src[..cut].to_vec();
                assert!(decode_args(&lua, &b).is_err());
                b
            }
            2 => {
                // Bit flips.
                let mut b = corpus[rng.gen_range(0..corpus.len())].clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..b.len());
                    b[at] ^= 1 << rng.gen_range(0..8);
                }
                b
            }
            _ => {
                // Random byte overwrites of type/length bytes, plus splices.
                let mut b = corpus[rng.gen_range(0..corpus.len())].clone();
                let at = rng.gen_range(0..b.len());
                b[at] = *[0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0A, 0x7F, 0x80, 0xFF]
                    .get(rng.gen_range(0..10))
                    .unwrap();
                if rng.gen_bool(0.3) {
                    let other = &corpus[rng.gen_range(0..corpus.len())];
                    let from = rng.gen_range(0..other.len());
                    let at = rng.gen_range(0..b.len());
                    b.splice(at..at, other[from..].iter().copied());
                }
                b
            }
        };
        if decode_args(&lua, &bytes).is_ok() {
            ok += 1;
        }
        let _ = decode_value(&lua, &bytes);
    }
    // Some mutations (e.g. flips inside a double) still decode; most should not.
    assert!(ok > 0 && ok < 20_000, "{ok} decoded");
}
