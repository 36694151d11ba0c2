//! `/status.json` and the router's side of the HTTP endpoint: the router, the node links it
//! has, and every class with its mode and members, as the live `/status` page draws them.
//! Counters are totals; the page turns two readings into rates.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::server::Router;

impl stage_observe::Observed for Router {
    fn metrics(&self) -> String {
        crate::metrics::render(self)
    }

    fn status(&self) -> String {
        render(self).to_string()
    }
}

/// The router's state now.
pub fn render(router: &Router) -> Value {
    let links = router.links_by_token();
    let links: Vec<Value> = links
        .iter()
        .map(|l| {
            let c = &l.counters;
            json!({
                "link": l.token,
                "node": l.node,
                "addr": l.peer.to_string(),
                "received": c.messages_in.load(Ordering::Relaxed),
                "sent": c.messages_out.load(Ordering::Relaxed),
                "nacks": c.nacks.load(Ordering::Relaxed),
                "overloads": c.overloads.load(Ordering::Relaxed),
                "queue_bytes": l.queued(),
                "silent": l.liveness.is_silent(),
            })
        })
        .collect();

    let table = router.table.load();
    let mut classes = Vec::new();
    for (number, class) in table.classes() {
        let master = class.master_link().map(|l| l.token);
        let members: Vec<Value> = class
            .members
            .iter()
            .map(|m| {
                let link = m.link.as_ref();
                json!({
                    "instance": m.id.instance(),
                    "link": link.map(|l| l.token),
                    "node": link.map(|l| l.node.as_str()),
                    "live": m.live().is_some(),
                    "busy": link.is_some_and(|l| l.is_busy(number)),
                    "master": class.mode == stage_proto::Mode::Master
                        && link.is_some_and(|l| Some(l.token) == master),
                })
            })
            .collect();
        classes.push(json!({
            "name": class.name,
            "mode": class.mode.name(),
            "messages": router.class_messages.get(number),
            "members": members,
        }));
    }
    json!({
        "kind": "router",
        "name": format!("router {}", router.listen),
        "listen": router.listen.to_string(),
        "uptime_ms": router.started.elapsed().as_millis() as u64,
        "links": links,
        "classes": classes,
    })
}
