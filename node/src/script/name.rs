//! Module names to file names (spec §3.1): `"packet+login"` is member `login` of `packet.lua`.

use std::path::PathBuf;

/// Splits a module name into (relative file path, member).
///
/// The member is everything after the **first** `+` (`"a+b+c"` → member `"b+c"`; `"a+"` → the
/// empty member, which the caller looks up like any other key). In the file part every `.`
/// becomes `/` — and with `for_load` every `:` too — and `.lua` is appended: `"a.b+id"` →
/// `("a/b.lua", Some("id"))`. A file part already ending in `.lua` (any case) is a path and kept
/// exactly as written, so `"lib/x.v2.lua"` stays `lib/x.v2.lua`.
///
/// The original applies the `:` rule in its single loader, which serves both `stage.load` and
/// `stage.require`; pass `for_load = true` from both to match it.
pub fn split_name(name: &str, for_load: bool) -> (PathBuf, Option<String>) {
    let (file, member) = match name.split_once('+') {
        Some((file, member)) => (file, Some(member.to_owned())),
        None => (name, None),
    };
    if has_lua_extension(file) {
        return (PathBuf::from(file), member);
    }
    let mut path: String = file
        .chars()
        .map(|c| match c {
            '.' => '/',
            ':' if for_load => '/',
            c => c,
        })
        .collect();
    path.push_str(".lua");
    (PathBuf::from(path), member)
}

fn has_lua_extension(file: &str) -> bool {
    // Byte comparison: slicing the str at `len - 4` could split a multi-byte character.
    let bytes = file.as_bytes();
    bytes.len() >= 4 && bytes[bytes.len() - 4..].eq_ignore_ascii_case(b".lua")
}
