//! `route`: subscription routing (stage-spec §9.1, seed 001 "route로 메시지 전달").
//!
//! Stages subscribe names to callbacks with `stage.signal("route:@", { name = "callback" })`;
//! a publisher sends `stage.signal("route:name?argument", value)`. Route offers the message to
//! every eligible subscriber (their `route:@` callback gets `(request_id, token)` and accepts by
//! answering the token); the first acceptance within 300 ms wins and that subscriber's callbacks
//! for the name receive `(request_key, values...)`, answering to the publisher. `route:*name`
//! delivers to every eligible subscription at once.
//!
//! Publish spec: `[*]name[,name…][?argument][!fail_cb][=return_cb]` (the optional parts in any
//! order). With no accepting subscriber, `!fail_cb` receives `(request_key, values...)`; with
//! only `=return_cb`, it receives `(nil, why)` like any failed request.
//!
//! Subscription control (`route:@`, each message also keeps the route alive for 30 s):
//!
//! | value | effect |
//! |---|---|
//! | `{ name = "callback[=ret]" }` | subscribe (or change the callback) |
//! | `{ name = false }` / `{ name = true }` | pause / resume the subscription |
//! | `{ name = msec }` | pause it for msec |
//! | `{ name = "" }` | unsubscribe (Lua tables cannot hold `nil`) |
//! | `true` | keep-alive only |
//! | `msec` | pause the whole route for msec |
//! | nothing / `nil` | unsubscribe everything |
//!
//! `route:@=cb` does the same and then answers `cb(true)`, once the change is in place.
//!
//! The reference's quirks are not reproduced: a paused route is not removed, names dropped
//! with `nil` can be subscribed again, prefix fallback (`a.b.c` → `a.b.` → `a.`) works with
//! `?`, `!` and `=` parts, and every value of a multi-value message is delivered.

mod publish;
mod table;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bson::Bson;

use super::{Outbox, Request, Service};
use publish::Spec;
use table::{RouteId, Table};

/// How long subscribers have to accept an offer.
const OFFER_WINDOW: Duration = Duration::from_millis(300);

/// The message id subscribers answer offers to (`stage.signal(nil, token)` in their
/// `route:@` callback replies to the text after `=`).
const ACCEPT: &str = "@accept";

/// The route stage.
pub struct Route {
    /// How long a route lives without a `route:@` message (`--route-keepalive`).
    keep_alive: Duration,
    table: Table,
    offers: HashMap<u64, Offer>,
    /// When each offer's window ends, oldest first (accepted ones are skipped).
    ends: VecDeque<(Instant, u64)>,
    next_offer: u64,
}

/// A message offered to subscribers, waiting for the first acceptance.
struct Offer {
    publish: Published,
    /// The routes offered to, by their number in the token.
    candidates: Vec<RouteId>,
}

/// A publish request, kept until it is delivered or fails.
struct Published {
    req: Request,
    spec: Spec,
    /// The key subscribers see first: `"<route stage>:<key>"`.
    full_key: String,
}

impl Published {
    /// What subscribers (and a `!fail` callback) receive: `(request_key, values...)`.
    fn with_key(&self) -> bson::Document {
        super::args(
            std::iter::once(Bson::String(self.full_key.clone()))
                .chain(self.req.args.iter().cloned()),
        )
    }
}

impl Route {
    pub fn new(keep_alive: Duration) -> Route {
        Route {
            keep_alive,
            table: Table::default(),
            offers: HashMap::new(),
            ends: VecDeque::new(),
            next_offer: 0,
        }
    }
}

impl Service for Route {
    fn handle(&mut self, out: &Outbox, req: Request) {
        let now = Instant::now();
        // `route:@`, `route:@=cb`, `route:@!fail`: subscription control; names starting with
        // `@` are reserved for it (and for the acceptance of offers).
        let control = crate::target::split_fail(&req.key).0;
        if control == ACCEPT {
            self.accept(out, &req);
        } else if control == "@" {
            self.table.control(&req, now + self.keep_alive, now);
            out.acknowledge(&req);
        } else if let Some(cb) = control.strip_prefix("@=") {
            // `route:@=cb`: the subscriber wants to know the change is in place.
            self.table.control(&req, now + self.keep_alive, now);
            out.answer(&req, cb, &super::args([Bson::Boolean(true)]));
        } else if control.starts_with('@') {
            log::warn!(
                "stage {}: '{}': unknown control message",
                out.name(),
                req.key
            );
        } else {
            match Spec::parse(&req.key) {
                Ok(spec) => self.publish(out, req, spec, now),
                Err(e) => log::warn!("stage {}: '{}': {e}", out.name(), req.key),
            }
        }
    }

    fn tick(&mut self, out: &Outbox, now: Instant) {
        self.table.expire(now);
        // Every offer gets the same window, so they end in the order they were made.
        while let Some(&(until, id)) = self.ends.front() {
            if until > now {
                break;
            }
            self.ends.pop_front();
            if let Some(o) = self.offers.remove(&id) {
                fail(out, &o.publish, "no subscriber accepted within 300 ms");
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        let next_offer = self.ends.front().map(|(until, _)| *until);
        [self.table.next_change(), next_offer]
            .into_iter()
            .flatten()
            .min()
    }
}

impl Route {
    fn publish(&mut self, out: &Outbox, req: Request, spec: Spec, now: Instant) {
        let full_key = format!("{}:{}", out.name(), req.key);
        let publish = Published {
            req,
            spec,
            full_key,
        };
        let found = self.table.eligible(&publish.spec.names, now);
        if found.is_empty() {
            return fail(out, &publish, "no subscriber");
        }
        if publish.spec.broadcast {
            let delivered = found
                .iter()
                .filter(|(route, subs)| deliver(out, &publish, route, subs))
                .count();
            if delivered == 0 {
                fail(out, &publish, "no subscriber could be reached");
            } else if !publish.spec.passes_answer() {
                out.acknowledge(&publish.req);
            }
            return;
        }
        self.next_offer += 1;
        let id = self.next_offer;
        let request_id = publish.spec.request_id();
        let mut offered = 0;
        for (n, (route, _)) in found.iter().enumerate() {
            let token = format!("{id:x}+{n}");
            let to = super::To {
                stage: &route.stage,
                instance: route.instance,
            };
            let payload = super::args([Bson::String(request_id.clone()), Bson::String(token)]);
            let key = format!("route:@={ACCEPT}");
            match out.try_send(to, &key, Default::default(), None, &payload) {
                Ok(()) => offered += 1,
                Err(why) => log::debug!("stage {}: offer to {route}: {why}", out.name()),
            }
        }
        if offered == 0 {
            return fail(out, &publish, "no subscriber could be reached");
        }
        self.offers.insert(
            id,
            Offer {
                publish,
                candidates: found.into_iter().map(|(r, _)| r).collect(),
            },
        );
        self.ends.push_back((now + OFFER_WINDOW, id));
    }

    /// A subscriber answered an offer: `token` or `token?cb1,cb2` (accept only those
    /// callbacks). The first acceptance wins; later or foreign ones are ignored.
    fn accept(&mut self, out: &Outbox, req: &Request) {
        let Some(answer) = super::values::text(req.value()) else {
            return;
        };
        let (token, only) = match answer.split_once('?') {
            Some((t, cbs)) => (t, Some(cbs.split(',').collect::<Vec<_>>())),
            None => (&*answer, None),
        };
        let Some((id, n)) = token.split_once('+').and_then(|(id, n)| {
            Some((u64::from_str_radix(id, 16).ok()?, n.parse::<usize>().ok()?))
        }) else {
            log::debug!("stage {}: '{answer}' is no offer token", out.name());
            return;
        };
        let Some(offer) = self.offers.get(&id) else {
            return; // decided already, or timed out
        };
        let Some(route) = offer.candidates.get(n) else {
            return;
        };
        // Only the route the token was offered to may use it.
        if route.stage != req.sender || route.instance != req.instance {
            log::warn!(
                "stage {}: offer token {token} answered by {}:{}, not by {route}",
                out.name(),
                req.sender,
                req.instance
            );
            return;
        }
        let Some(offer) = self.offers.remove(&id) else {
            return;
        };
        let route = &offer.candidates[n];
        let mut subs = self
            .table
            .subscriptions(route, &offer.publish.spec.names, Instant::now());
        if let Some(only) = &only {
            subs.retain(|cb| only.contains(&table::callback_id(cb)));
        }
        if subs.is_empty() || !deliver(out, &offer.publish, route, &subs) {
            return fail(out, &offer.publish, "the accepting subscriber is gone");
        }
        if !offer.publish.spec.passes_answer() {
            out.acknowledge(&offer.publish.req);
        }
    }
}

/// Delivers a published message to `route`'s callbacks `subs`: `(request_key, values...)`,
/// answering to the publisher. False if nothing could be sent.
fn deliver(out: &Outbox, p: &Published, route: &RouteId, subs: &[String]) -> bool {
    let to = super::To {
        stage: &route.stage,
        instance: route.instance,
    };
    let payload = p.with_key();
    // The subscriber answers the publisher's request itself when it waits for a return.
    let head = crate::api::signal::Head {
        deadline_ms: p.req.deadline_ms,
        corr: if p.spec.passes_answer() {
            p.req.corr
        } else {
            0
        },
        answer: false,
        origin: p.req.instance,
        no_reply: false,
    };
    let mut sent = false;
    for cb in subs {
        let key = match &p.spec.ret {
            Some(ret) => format!("{}={ret}", table::callback_id(cb)),
            None => cb.clone(),
        };
        match out.try_send(to, &key, head, Some(&p.req.sender), &payload) {
            Ok(()) => sent = true,
            Err(why) => log::debug!("stage {}: delivery to {route}: {why}", out.name()),
        }
    }
    sent
}

/// Tells the publisher its message found no taker: `fail_cb(request_key, values...)`, or
/// `return_cb(nil, why)`; nothing when it named neither.
fn fail(out: &Outbox, p: &Published, why: &str) {
    log::debug!("stage {}: '{}': {why}", out.name(), p.req.key);
    if let Some(cb) = &p.spec.fail {
        out.answer(&p.req, cb, &p.with_key());
    } else if let Some(cb) = &p.spec.ret {
        let why = format!("route: '{}': {why}", p.spec.request_id());
        out.answer(&p.req, cb, &super::args([Bson::Null, Bson::String(why)]));
    }
}
