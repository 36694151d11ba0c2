//! The node's side of the HTTP endpoint (`--http ADDR`): `/status.json` — the node, its
//! router links and each stage's backlog, handled count, Lua memory, reloads, errors and
//! overload state — and `/metrics` ([`crate::metrics`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::node::Node;

/// What the endpoint reads: the node, and what only start-up knows.
pub struct Observer {
    pub node: Arc<Node>,
    /// The name routers know the node by ("standalone" without routers).
    pub name: String,
    /// Each stage's kind: "lua", or the built-in service it runs (route, ticket, index, agent).
    pub kinds: Vec<(String, String)>,
    pub started: Instant,
}

impl Observer {
    pub fn kind_of(&self, stage: &str) -> &str {
        self.kinds
            .iter()
            .find(|(n, _)| n == stage)
            .map_or("lua", |(_, k)| k.as_str())
    }
}

impl stage_observe::Observed for Observer {
    fn metrics(&self) -> String {
        crate::metrics::render(self)
    }

    fn status(&self) -> String {
        render(self).to_string()
    }
}

/// The node's state now.
pub fn render(o: &Observer) -> Value {
    let stages: Vec<Value> = o
        .node
        .stage_readings()
        .into_iter()
        .map(|(name, inbox, stats)| {
            json!({
                "name": name,
                "kind": o.kind_of(name),
                "handled": inbox.taken(),
                "sent": stats.sent.load(Ordering::Relaxed),
                "backlog": inbox.backlog(),
                "backlog_bytes": inbox.backlog_bytes(),
                "lua_memory": stats.lua_memory.load(Ordering::Relaxed),
                "reloads": stats.reloads.load(Ordering::Relaxed),
                "errors": stats.errors.load(Ordering::Relaxed),
                "overloaded": stats.overloaded.load(Ordering::Relaxed),
            })
        })
        .collect();
    let routers: Vec<Value> = o
        .node
        .router_states()
        .into_iter()
        .map(|(addr, linked, silent)| json!({ "addr": addr, "linked": linked, "silent": silent }))
        .collect();
    json!({
        "kind": "node",
        "name": o.name,
        "instance": o.node.instance(),
        "uptime_ms": o.started.elapsed().as_millis() as u64,
        "routers": routers,
        "stages": stages,
    })
}
