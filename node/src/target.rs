//! The `stage.signal` target grammar (stage-spec §8.1), parsed into where a message goes.
//!
//! ```text
//! "id"            own stage, asynchronously
//! ":id"           own stage, synchronously on the calling thread
//! "S:id"          own stage (S is the caller's own name), asynchronously, own process only
//! "@id"           own stage name, round robin over every process hosting it (self included)
//! "T:id"          stage T through the routers, T's forwarding mode
//! "T+id"          stage T, message id "S:id" (the receiver learns the sender's stage)
//! "*T:id"         every member of T            "*id"  every process hosting the own stage
//! "=T:id"         members of T on this host     "=id"  same, for the own stage
//! "+T:id"         members of T on other hosts   "+id"  same, for the own stage
//! ">NAME.cb"     queue for lock NAME; `cb` runs when granted (">>NAME.x" extends by the
//!                value's ms, "<NAME.x" releases; a grant lasts 100 ms otherwise);
//!                ">NAME.cb!fail" runs `fail` if not granted before the deadline
//! id = name[=ret][!fail]
//! ```
//! `=ret` names the caller's callback for the answer; `!fail` the callback run when the message
//! finds no live target. The original echoed `*id`/`=id`/`+id` to the own process only
//! (stage-spec §13.6); here they do what seed 001 documents.

use stage_proto::{LockOp, Mode};

/// Where a signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An ordered-lock operation on lock `name` (stage-spec §8.3), kept by the router.
    Lock { op: LockOp, name: String },
    /// The caller's own stage in this process; `sync` runs it before `signal` returns.
    Local { sync: bool },
    /// Stage `stage` through the cluster (or locally when standalone).
    Cluster { stage: String, mode: Mode },
}

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub route: Route,
    /// The message id the receiver sees, `=ret` included (`_WAITFOR[0]`).
    pub msgid: String,
    /// The caller's callback for a NACK, if any.
    pub fail: Option<String>,
}

impl Target {
    /// Whether the sender expects an answer (a reply or a failure notice): it names a fail
    /// callback, or a reply callback after its id (`"id=ret"`; a service id such as the
    /// `ticket` stage's `"=cat"` broadcast names none).
    pub fn wants_answer(&self) -> bool {
        self.fail.is_some() || self.msgid.find('=').is_some_and(|i| i > 0)
    }

    /// The message id as it travels: `id[=ret][!fail]`, so that a NACK, which carries the
    /// envelope back, still names both callbacks.
    pub fn wire_msgid(&self) -> String {
        match &self.fail {
            Some(f) => format!("{}!{f}", self.msgid),
            None => self.msgid.clone(),
        }
    }
}

/// Splits a wire message id `id[=ret][!fail]` into (key incl. `=ret`, fail).
pub fn split_fail(msgid: &str) -> (&str, Option<&str>) {
    match msgid.split_once('!') {
        Some((k, f)) => (k, Some(f)),
        None => (msgid, None),
    }
}

/// The callback an answer goes to: the text after `=` up to a `?` (a service's own part, as
/// in `"ticket:cat=cb?feedback"`), or the id itself.
pub fn reply_id(key: &str) -> &str {
    let key = split_fail(key).0;
    match key.split_once('=') {
        Some((_, ret)) => ret.split_once('?').map_or(ret, |(cb, _)| cb),
        None => key,
    }
}

/// Parses `t` sent by stage `own`.
pub fn parse(t: &str, own: &str) -> Result<Target, String> {
    if t.is_empty() {
        return Err("empty signal target".into());
    }
    if let Some(lock) = parse_lock(t)? {
        return Ok(lock);
    }
    let (mode, rest) = match t.as_bytes()[0] {
        b'*' => (Some(Mode::Broadcast), &t[1..]),
        b'=' => (Some(Mode::SameHost), &t[1..]),
        b'+' => (Some(Mode::OtherHost), &t[1..]),
        _ => (None, t),
    };
    let (route, id) = if let Some(id) = rest.strip_prefix('@') {
        (cluster(own, mode), id.to_owned())
    } else if let Some((stage, id)) = rest.split_once(':') {
        match (stage, mode) {
            ("", None) => (Route::Local { sync: true }, id.to_owned()),
            ("", Some(_)) => (Route::Local { sync: false }, id.to_owned()),
            (s, None) if s == own => (Route::Local { sync: false }, id.to_owned()),
            (s, m) => (cluster(s, m), id.to_owned()),
        }
    } else if let Some((stage, id)) = split_plus(rest) {
        (cluster(stage, mode), format!("{own}:{id}"))
    } else {
        match mode {
            None => (Route::Local { sync: false }, rest.to_owned()),
            Some(m) => (cluster(own, Some(m)), rest.to_owned()),
        }
    };
    let (msgid, fail) = match id.split_once('!') {
        Some((k, f)) => (k.to_owned(), Some(f.to_owned())),
        None => (id, None),
    };
    // Another stage's ids are its own business (`"ticket:=cat"`); a callback of ours needs one.
    let foreign = matches!(route, Route::Cluster { .. });
    if msgid.is_empty() || (msgid.starts_with('=') && !foreign) {
        return Err(format!("'{t}': missing message id"));
    }
    if fail.as_deref() == Some("") {
        return Err(format!("'{t}': empty fail callback after '!'"));
    }
    Ok(Target { route, msgid, fail })
}

/// `>NAME.cb` (acquire; `cb` runs when granted), `>>NAME.x` (extend), `<NAME.x` (release).
/// NAME is everything up to the last `.`.
fn parse_lock(t: &str) -> Result<Option<Target>, String> {
    let (op, rest) = if let Some(r) = t.strip_prefix(">>") {
        (LockOp::Extend, r)
    } else if let Some(r) = t.strip_prefix('>') {
        (LockOp::Acquire, r)
    } else if let Some(r) = t.strip_prefix('<') {
        (LockOp::Release, r)
    } else {
        return Ok(None);
    };
    // `>NAME.cb!fail`: the fail callback runs if the lock is not granted before the deadline.
    let (rest, fail) = match rest.split_once('!') {
        Some((r, f)) if op == LockOp::Acquire && !f.is_empty() => (r, Some(f.to_owned())),
        _ => (rest, None),
    };
    let Some((name, id)) = rest.rsplit_once('.') else {
        return Err(format!(
            "'{t}': a lock target is NAME.id (e.g. >orders.process)"
        ));
    };
    if name.is_empty() || (op == LockOp::Acquire && id.is_empty()) {
        return Err(format!(
            "'{t}': a lock target is NAME.id (e.g. >orders.process)"
        ));
    }
    Ok(Some(Target {
        route: Route::Lock {
            op,
            name: name.to_owned(),
        },
        msgid: id.to_owned(),
        fail,
    }))
}

fn cluster(stage: &str, mode: Option<Mode>) -> Route {
    Route::Cluster {
        stage: stage.to_owned(),
        mode: mode.unwrap_or(Mode::Default),
    }
}

/// `T+id`: a `+` after a non-empty stage name, before any `=` or `!`.
fn split_plus(s: &str) -> Option<(&str, &str)> {
    let end = s.find(['=', '!']).unwrap_or(s.len());
    let i = s[..end].find('+')?;
    (i > 0).then(|| (&s[..i], &s[i + 1..]))
}

/// FNV-1a over the bytes of a string hash key: stable across processes and versions, so every
/// node sends the same key to the same member.
pub fn hash_key(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(stage: &str, mode: Mode) -> Route {
        Route::Cluster {
            stage: stage.into(),
            mode,
        }
    }

    #[test]
    fn grammar_of_spec_8_1() {
        let p = |t| parse(t, "me").unwrap();
        assert_eq!(p("id").route, Route::Local { sync: false });
        assert_eq!(p(":id").route, Route::Local { sync: true });
        assert_eq!(p("me:id").route, Route::Local { sync: false });
        assert_eq!(p("@id").route, c("me", Mode::Default));
        let t = p("game:hello=ret");
        assert_eq!(t.route, c("game", Mode::Default));
        assert_eq!(t.msgid, "hello=ret");
        assert!(t.wants_answer());
        assert_eq!(p("*game:x").route, c("game", Mode::Broadcast));
        assert_eq!(p("=game:x").route, c("game", Mode::SameHost));
        assert_eq!(p("+game:x").route, c("game", Mode::OtherHost));
        assert_eq!(p("*id").route, c("me", Mode::Broadcast));
        let t = p("game+hello");
        assert_eq!(
            (t.route, t.msgid.as_str()),
            (c("game", Mode::Default), "me:hello")
        );
        let t = p("game:x=r!oops");
        assert_eq!((t.msgid.as_str(), t.fail.as_deref()), ("x=r", Some("oops")));
        assert_eq!(t.wire_msgid(), "x=r!oops");
        assert!(!p("game:x").wants_answer());
        // Service ids: the ticket stage's broadcast is not a request.
        let t = p("ticket:=login");
        assert_eq!(
            (t.route, t.msgid.as_str()),
            (c("ticket", Mode::Default), "=login")
        );
        assert!(!p("ticket:=login").wants_answer());
        assert!(parse("=x", "me").is_ok() && parse(":=x", "me").is_err());
        assert!(parse("", "me").is_err());
        assert!(parse("game:", "me").is_err());
        let lock = |op, name: &str| Route::Lock {
            op,
            name: name.into(),
        };
        let t = p(">orders.v2.cb");
        assert_eq!(
            (t.route, t.msgid.as_str()),
            (lock(LockOp::Acquire, "orders.v2"), "cb")
        );
        assert_eq!(p(">>L.x").route, lock(LockOp::Extend, "L"));
        assert_eq!(p("<L.*").route, lock(LockOp::Release, "L"));
        let t = p(">L.cb!late");
        assert_eq!((t.msgid.as_str(), t.fail.as_deref()), ("cb", Some("late")));
        assert!(parse(">L", "me").is_err());
        assert!(parse(">.cb", "me").is_err());
    }

    #[test]
    fn reply_ids() {
        assert_eq!(reply_id("hello=ret!f"), "ret");
        assert_eq!(reply_id("hello"), "hello");
        assert_eq!(reply_id("login=cb?fb"), "cb");
        assert_eq!(reply_id("chat?arg"), "chat?arg");
        assert_eq!(split_fail("a=b!c"), ("a=b", Some("c")));
    }

    #[test]
    fn hash_key_is_fnv1a() {
        assert_eq!(hash_key(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash_key(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
