//! Requests for tickets (stage-spec §9.2): CASE 2 `cat=cb[?fb]` asks one ticket for `cb`
//! with all the message's values; CASE 1 `cat[?fb]` asks one per key of the table value
//! `{cb1 = v1, cb2 = v2}`, `cbN` getting `vN`.

use std::time::{Duration, Instant};

use bson::{Bson, Document};

use super::book::{Admitted, Book, Owner, Requester};
use super::key::{check_callback, handle_name, Ask};
use super::send;
use crate::service::{values, Outbox, Request};

/// Handles request `req` (`key` its id without `!fail`).
pub fn handle(
    book: &mut Book,
    out: &Outbox,
    req: &Request,
    ask: &Ask<'_>,
    key: &str,
    fail: Option<&str>,
    now: Instant,
) {
    let from = Requester {
        owner: Owner::of(req),
        corr: req.corr,
        // A request still waiting at its message deadline is dropped: by then the
        // requester's fail path has run, and a grant would come too late to be taken.
        deadline: (req.deadline_ms != 0).then(|| {
            let left = req
                .deadline_ms
                .saturating_sub(crate::api::waitfor::now_ms());
            now + Duration::from_millis(left)
        }),
    };
    let mut ask_one = |cb: &str, values: Vec<Bson>| book.request(&from, ask.cat, cb, values, now);
    match ask.cb {
        Some(cb) => match ask_one(cb, req.args.clone()) {
            Ok(Admitted::Granted(h) | Admitted::Queued(h)) => {
                if let Some(fb) = ask.fb {
                    send::feedback(out, req, fb, key, Bson::String(handle_name(h)), false);
                }
            }
            Err(e) => match ask.fb {
                Some(fb) => {
                    log::debug!("stage {}: '{}' refused: {e}", out.name(), req.key);
                    send::feedback(out, req, fb, key, Bson::Boolean(false), true);
                }
                None => send::refuse(out, req, fail, Some(cb), &e),
            },
        },
        None => {
            let Some(Bson::Document(table)) = req.args.first() else {
                let e = "a request without '=callback' takes a table {callback = value, ...}";
                match ask.fb {
                    Some(fb) => send::feedback(out, req, fb, key, Bson::Boolean(false), true),
                    None => send::refuse(out, req, fail, None, e),
                }
                return;
            };
            let (results, refused) = each_key(table, &mut ask_one);
            match (ask.fb, refused) {
                (Some(fb), refused) => {
                    let settle = refused.is_some();
                    send::feedback(out, req, fb, key, Bson::Document(results), settle)
                }
                (None, Some(e)) => send::refuse(out, req, fail, None, &e),
                (None, None) => {}
            }
        }
    }
}

/// CASE 1: one request per key of `table`. Returns the feedback table (`true` granted,
/// `"@0x..."` queued, `false` refused; the `[""]` entry as it came), and why, if no ticket
/// was granted or queued.
fn each_key(
    table: &Document,
    ask_one: &mut impl FnMut(&str, Vec<Bson>) -> Result<Admitted, String>,
) -> (Document, Option<String>) {
    let mut results = Document::new();
    let mut admitted = false;
    let mut why = None;
    for (cb, v) in table {
        // `[""]` carries the requester's own data back; integer keys name no callback.
        let result = if cb.is_empty() {
            v.clone()
        } else {
            let asked = match values::key_int(cb) {
                Some(_) => Err(format!("integer key {cb} names no callback")),
                None => check_callback(cb).and_then(|()| ask_one(cb, vec![v.clone()])),
            };
            admitted |= asked.is_ok();
            match asked {
                Ok(Admitted::Granted(_)) => Bson::Boolean(true),
                Ok(Admitted::Queued(h)) => Bson::String(handle_name(h)),
                Err(e) => {
                    why = Some(e);
                    Bson::Boolean(false)
                }
            }
        };
        results.insert(cb.clone(), result);
    }
    let refused = (!admitted).then(|| why.unwrap_or_else(|| "no callback in the table".into()));
    (results, refused)
}
