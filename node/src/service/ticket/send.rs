//! The messages the `ticket` service sends (stage-spec §9.2): grants, cancel notices,
//! feedback, broadcasts, and what a refused request gets.

use std::collections::BTreeMap;

use bson::{Bson, Document};

use super::book::{Event, Grant, Owner};
use super::key::handle_name;
use crate::api::signal::Head;
use crate::service::{answer_head, args, notice_head, Outbox, Request, To};

impl Owner {
    pub fn of(req: &Request) -> Owner {
        Owner {
            stage: req.sender.clone(),
            instance: req.instance,
        }
    }

    fn to(&self) -> To<'_> {
        To {
            stage: &self.stage,
            instance: self.instance,
        }
    }
}

/// Sends what the book says happened: cancel notices first (one per requester), then the
/// grants in order.
pub fn events(out: &Outbox, events: Vec<Event>) {
    let mut cancels: BTreeMap<Owner, Document> = BTreeMap::new();
    let mut grants = Vec::new();
    for e in events {
        match e {
            Event::Cancel { handle, owner, cb } => {
                log::debug!(
                    "stage {}: {} of {}:{} '{cb}' cancelled at {} ms",
                    out.name(),
                    handle_name(handle),
                    owner.stage,
                    owner.instance,
                    crate::api::waitfor::now_ms()
                );
                cancels
                    .entry(owner)
                    .or_default()
                    .insert(handle_name(handle), cb);
            }
            Event::Grant(g) => grants.push(g),
            Event::Settle { owner, corr } => out.settle(owner.to(), corr),
        }
    }
    // `stage.waitfor("ticket:@", function(result_id, result) ... end)` at the requester.
    let key = format!("{}:@", out.name());
    for (owner, list) in cancels {
        let notice = args([Bson::String("cancel".into()), Bson::Document(list)]);
        out.send(owner.to(), &key, notice_head(), &notice);
    }
    for g in grants {
        grant(out, g);
    }
}

/// `cb(values...)` with `_TICKET = "@0x<handle>"`, under the key `cb=@0x<handle>`: the
/// callback's `stage.signal(nil, ms)` (or its return value) comes back to this service as
/// `@0x<handle>`, extending or releasing the ticket. It answers the request, if one waits.
fn grant(out: &Outbox, g: Grant) {
    let name = handle_name(g.handle);
    log::debug!(
        "stage {}: {name} granted to {}:{} '{}' at {} ms",
        out.name(),
        g.owner.stage,
        g.owner.instance,
        g.cb,
        crate::api::waitfor::now_ms()
    );
    let mut payload = args(g.values);
    payload.insert("._TICKET", name.as_str());
    out.send(
        g.owner.to(),
        &format!("{}={name}", g.cb),
        // Unlike the service's other messages, a grant is answered: that is how its holder
        // extends or releases the ticket.
        Head {
            no_reply: false,
            ..answer_head(g.corr)
        },
        &payload,
    );
}

/// `fb(request_key, result)`. When nothing of the request was admitted this is its answer
/// (`settle`): the requester learnt of the failure, so its fail path must not run too.
pub fn feedback(out: &Outbox, req: &Request, fb: &str, key: &str, result: Bson, settle: bool) {
    let payload = args([Bson::String(key.to_owned()), result]);
    if settle {
        out.answer(req, fb, &payload);
    } else {
        out.notify(req, fb, &payload);
    }
}

/// A request that got nothing and asked for no feedback: `fail(err, values...)` with
/// `!fail`, else `cb(nil, err)` if the requester waits for `cb` (as when a message cannot
/// be delivered), else only the log.
pub fn refuse(out: &Outbox, req: &Request, fail: Option<&str>, cb: Option<&str>, err: &str) {
    log::debug!("stage {}: '{}' refused: {err}", out.name(), req.key);
    let err = Bson::String(err.to_owned());
    match (fail, cb) {
        (Some(fail), _) => {
            let payload = args(std::iter::once(err).chain(req.args.iter().cloned()));
            out.answer(req, fail, &payload);
        }
        // A waiting sender hears of the failure at its reply callback, named or not.
        (None, cb) if req.corr != 0 => {
            let cb = cb.unwrap_or_else(|| crate::target::reply_id(&req.key));
            out.answer(req, cb, &args([Bson::Null, err]))
        }
        _ => out.acknowledge(req),
    }
}

/// The values of `req` to callback `{service}:{cat}` of every stage in `audience`.
pub fn broadcast<'a>(
    out: &Outbox,
    req: &Request,
    cat: &str,
    audience: impl IntoIterator<Item = &'a Owner>,
) {
    let key = format!("{}:{cat}", out.name());
    let payload = args(req.args.iter().cloned());
    for owner in audience {
        out.send(owner.to(), &key, notice_head(), &payload);
    }
}
