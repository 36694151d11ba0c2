//! The message ids the `ticket` service takes (stage-spec §9.2), after `"ticket:"` and with
//! any `!fail` already split off:
//!
//! ```text
//! @0x<hex>        extend / release ticket <hex>       (value: ms; <= 0 releases)
//! @cat            create / resize category cat        (values: limit [, close_ms])
//! =cat            broadcast to cat's holders and waiters
//! cat=cb[?fb]     CASE 2: one ticket for callback cb  (values: passed to cb)
//! cat[?fb]        CASE 1: one ticket per key of the table value {cb1 = v1, ...}
//! ```

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// Extend or release the ticket with this handle.
    Handle(u64),
    /// Create or resize a category.
    Define(&'a str),
    /// Send the values to every stage holding or waiting for a ticket of the category.
    Broadcast(&'a str),
    /// Ask for tickets.
    Request(Ask<'a>),
}

/// A request for tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask<'a> {
    pub cat: &'a str,
    /// CASE 2's callback; `None` for CASE 1 (the callbacks are the keys of the table value).
    pub cb: Option<&'a str>,
    /// The feedback callback after `?`.
    pub fb: Option<&'a str>,
}

/// Parses a message id.
pub fn parse(key: &str) -> Result<Op<'_>, String> {
    if let Some(rest) = key.strip_prefix('@') {
        if let Some(h) = parse_handle(rest) {
            return Ok(Op::Handle(h));
        }
        check_category(rest)?;
        return Ok(Op::Define(rest));
    }
    if let Some(cat) = key.strip_prefix('=') {
        check_category(cat)?;
        return Ok(Op::Broadcast(cat));
    }
    // `cat=cb?fb`: the callback ends at `?`; without `=`, `cat?fb` (CASE 1).
    let (head, fb) = match key.split_once('?') {
        Some((h, fb)) if !fb.is_empty() => (h, Some(fb)),
        Some(_) => return Err(format!("'{key}': empty feedback callback after '?'")),
        None => (key, None),
    };
    let (cat, cb) = match head.split_once('=') {
        Some((cat, cb)) => (cat, Some(cb)),
        None => (head, None),
    };
    check_category(cat)?;
    if let Some(cb) = cb {
        check_callback(cb)?;
    }
    Ok(Op::Request(Ask { cat, cb, fb }))
}

/// A ticket's name as scripts see it (`_TICKET`, feedback, cancel notices): `"@0x<hex>"`.
pub fn handle_name(h: u64) -> String {
    format!("@0x{h:x}")
}

/// `0x<hex>` (the part after `@`) as a handle.
fn parse_handle(s: &str) -> Option<u64> {
    let hex = s.strip_prefix("0x")?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Whether `name` can be a category: not empty, none of the characters that separate the
/// parts of a message id, and not a ticket handle (`@0x1f` must mean the ticket).
pub fn check_category(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty category name".into());
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '=' | '?' | '!' | '@')) {
        return Err(format!("category '{name}': '{c}' is not allowed in a name"));
    }
    if name.starts_with("0x") && parse_handle(name).is_some() {
        return Err(format!("category '{name}': reads as a ticket handle"));
    }
    Ok(())
}

/// Whether `cb` can be granted to: the grant's key is `cb=@0x<handle>`, and the reply to it
/// must come back as `@0x<handle>`.
pub fn check_callback(cb: &str) -> Result<(), String> {
    if cb.is_empty() || cb.contains(['=', '!']) {
        return Err(format!(
            "'{cb}' is not a callback id (empty, or with '=' or '!')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("@0x1f"), Ok(Op::Handle(0x1f)));
        assert_eq!(parse("@db"), Ok(Op::Define("db")));
        assert_eq!(parse("@0xzz"), Ok(Op::Define("0xzz")));
        assert_eq!(parse("=db"), Ok(Op::Broadcast("db")));
        let ask = |cat, cb, fb| Ok(Op::Request(Ask { cat, cb, fb }));
        assert_eq!(parse("db=q"), ask("db", Some("q"), None));
        assert_eq!(parse("db=q?f"), ask("db", Some("q"), Some("f")));
        assert_eq!(parse("db?f"), ask("db", None, Some("f")));
        assert_eq!(parse("db"), ask("db", None, None));
    }

    #[test]
    fn bad_keys() {
        for k in [
            "", "@", "=", "db=", "db?", "db=q?", "=a?b", "?f", "0x12=q", "a@b=q",
        ] {
            assert!(parse(k).is_err(), "{k}");
        }
        assert_eq!(handle_name(0xab), "@0xab");
    }
}
