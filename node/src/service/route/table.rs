//! Who subscribed what: routes (a subscribing stage on a node) and their subscriptions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use bson::Bson;

use crate::service::values;
use crate::service::Request;

/// A subscribing stage on a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId {
    pub stage: String,
    pub instance: u32,
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.stage, self.instance)
    }
}

struct Entry {
    subs: HashMap<String, Sub>,
    expires: Instant,
    paused_until: Option<Instant>,
}

struct Sub {
    /// The subscriber's callback id, maybe with its own `=return` part.
    callback: String,
    enabled: bool,
    paused_until: Option<Instant>,
}

/// The route stage's subscriptions.
#[derive(Default)]
pub struct Table {
    routes: HashMap<RouteId, Entry>,
    /// Subscription name → the routes subscribing it.
    by_name: HashMap<String, BTreeSet<RouteId>>,
    /// No route expires before this (refreshes only push expiry later), so the scan for
    /// expired routes runs only then, not after every message.
    next_expiry: Option<Instant>,
}

/// The callback id of a subscription, without its `=return` part.
pub fn callback_id(cb: &str) -> &str {
    cb.split_once('=').map_or(cb, |(id, _)| id)
}

fn active(paused_until: Option<Instant>, now: Instant) -> bool {
    paused_until.is_none_or(|t| t <= now)
}

impl Table {
    /// A `route:@` message from `req`'s stage: subscribe, pause, resume, unsubscribe or keep
    /// alive (see the module docs of `route`); it refreshes the route until `expires`.
    pub fn control(&mut self, req: &Request, expires: Instant, now: Instant) {
        let id = RouteId {
            stage: req.sender.clone(),
            instance: req.instance,
        };
        let entry = self.routes.entry(id.clone()).or_insert_with(|| Entry {
            subs: HashMap::new(),
            expires,
            paused_until: None,
        });
        entry.expires = expires;
        self.next_expiry.get_or_insert(expires);
        match req.args.first() {
            None | Some(Bson::Null) => {
                for name in std::mem::take(&mut entry.subs).into_keys() {
                    unindex(&mut self.by_name, &name, &id);
                }
            }
            Some(Bson::Document(d)) => {
                for (k, v) in d {
                    let name = values::key_int(k).map_or_else(|| k.clone(), |i| i.to_string());
                    if name.is_empty() || name.starts_with('@') {
                        log::warn!("route:@ from {id}: '{name}' cannot be subscribed (reserved)");
                        continue;
                    }
                    apply(entry, &mut self.by_name, &id, name, v, now);
                }
            }
            // A number pauses the route; anything else only keeps it alive (done above).
            Some(v) => {
                if let Some(ms) = values::number(v) {
                    entry.paused_until = Some(now + millis(ms));
                }
            }
        }
    }

    /// Removes routes not refreshed in time.
    pub fn expire(&mut self, now: Instant) {
        if self.next_expiry.is_none_or(|t| t > now) {
            return;
        }
        let dead: Vec<RouteId> = self
            .routes
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            if let Some(e) = self.routes.remove(&id) {
                log::debug!("route {id} expired (no route:@ within 30 s)");
                for name in e.subs.keys() {
                    unindex(&mut self.by_name, name, &id);
                }
            }
        }
        self.next_expiry = self.routes.values().map(|e| e.expires).min();
    }

    /// When the next route may expire.
    pub fn next_change(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// The routes able to take a message published to `names` now, each with its callbacks
    /// for them. A name nobody subscribed falls back to its prefixes (`a.b.c` → `a.b.` →
    /// `a.`).
    pub fn eligible(&self, names: &[String], now: Instant) -> Vec<(RouteId, Vec<String>)> {
        let mut found: BTreeMap<&RouteId, Vec<String>> = BTreeMap::new();
        for name in names {
            let Some((name, routes)) = self.subscribers(name) else {
                continue;
            };
            for id in routes {
                if let Some(cb) = self.callback(id, name, now) {
                    found.entry(id).or_default().push(cb.to_owned());
                }
            }
        }
        found
            .into_iter()
            .map(|(id, cbs)| (id.clone(), cbs))
            .collect()
    }

    /// `route`'s callbacks able to take a message published to `names` now.
    pub fn subscriptions(&self, route: &RouteId, names: &[String], now: Instant) -> Vec<String> {
        names
            .iter()
            .filter_map(|name| {
                let (name, _) = self.subscribers(name)?;
                self.callback(route, name, now).map(str::to_owned)
            })
            .collect()
    }

    /// The name that `name` resolves to (itself or a prefix) and its subscribers.
    fn subscribers<'a>(&'a self, name: &'a str) -> Option<(&'a str, &'a BTreeSet<RouteId>)> {
        if let Some(routes) = self.by_name.get(name) {
            return Some((name, routes));
        }
        let bytes = name.as_bytes();
        (0..bytes.len().saturating_sub(1))
            .rev()
            .filter(|&i| bytes[i] == b'.')
            .find_map(|i| {
                let prefix = &name[..=i];
                self.by_name.get(prefix).map(|r| (prefix, r))
            })
    }

    /// `route`'s callback for `name` if route and subscription are active.
    fn callback(&self, route: &RouteId, name: &str, now: Instant) -> Option<&str> {
        let e = self.routes.get(route)?;
        let s = e.subs.get(name)?;
        (active(e.paused_until, now) && s.enabled && active(s.paused_until, now))
            .then_some(s.callback.as_str())
    }
}

/// One `{ name = v }` element of a `route:@` table.
fn apply(
    entry: &mut Entry,
    by_name: &mut HashMap<String, BTreeSet<RouteId>>,
    id: &RouteId,
    name: String,
    v: &Bson,
    now: Instant,
) {
    match v {
        Bson::Null => {
            entry.subs.remove(&name);
            unindex(by_name, &name, id);
        }
        Bson::Boolean(on) => {
            if let Some(s) = entry.subs.get_mut(&name) {
                s.enabled = *on;
                s.paused_until = None;
            }
        }
        v => match (values::text(v), values::number(v)) {
            (Some(cb), _) if cb.is_empty() => {
                entry.subs.remove(&name);
                unindex(by_name, &name, id);
            }
            (Some(cb), _) => {
                by_name.entry(name.clone()).or_default().insert(id.clone());
                entry.subs.insert(
                    name,
                    Sub {
                        callback: cb.into_owned(),
                        enabled: true,
                        paused_until: None,
                    },
                );
            }
            (None, Some(ms)) => {
                if let Some(s) = entry.subs.get_mut(&name) {
                    s.paused_until = Some(now + millis(ms));
                }
            }
            (None, None) => log::warn!(
                "route:@ from {id}: '{name}' = {v}: expected a callback id, true, false, msec or \"\""
            ),
        },
    }
}

fn unindex(by_name: &mut HashMap<String, BTreeSet<RouteId>>, name: &str, id: &RouteId) {
    if let Some(set) = by_name.get_mut(name) {
        set.remove(id);
        if set.is_empty() {
            by_name.remove(name);
        }
    }
}

/// A pause length from a script: negative or not finite counts as none, at most a day.
fn millis(ms: f64) -> Duration {
    if ms.is_finite() && ms > 0.0 {
        Duration::from_millis(ms.min(86_400_000.0) as u64)
    } else {
        Duration::ZERO
    }
}
