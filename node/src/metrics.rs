//! `/metrics` of a node: per stage its handled events, backlog, Lua memory, reloads, Lua
//! errors and overload flag; per router whether it is linked and whether it went silent.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use stage_observe::prometheus::{escape, family};

use crate::inbound::InboxTx;
use crate::stats::StageStats;
use crate::status::Observer;

type Reading<'a> = (&'a str, &'a InboxTx, &'a StageStats);

/// A per-stage series: name, type, help, value.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Reading) -> u64,
);

const STAGE_SERIES: [Series; 8] = [
    (
        "stage_node_stage_handled_total",
        "counter",
        "Events (messages, mostly) the stage took from its inbox.",
        |r| r.1.taken(),
    ),
    (
        "stage_node_stage_sent_total",
        "counter",
        "Messages the stage sent through the routers (answers leaving the node included).",
        |r| r.2.sent.load(Ordering::Relaxed),
    ),
    (
        "stage_node_stage_backlog",
        "gauge",
        "Events waiting in the stage's inbox.",
        |r| r.1.backlog() as u64,
    ),
    (
        "stage_node_stage_backlog_bytes",
        "gauge",
        "Message bytes waiting in the stage's inbox.",
        |r| r.1.backlog_bytes() as u64,
    ),
    (
        "stage_node_stage_lua_memory_bytes",
        "gauge",
        "Bytes held by the stage's Lua VM (0 for a built-in service).",
        |r| r.2.lua_memory.load(Ordering::Relaxed) as u64,
    ),
    (
        "stage_node_stage_reloads_total",
        "counter",
        "Times the stage's main script ran again after its file changed.",
        |r| r.2.reloads.load(Ordering::Relaxed),
    ),
    (
        "stage_node_stage_errors_total",
        "counter",
        "Lua errors logged by the stage's main script, callbacks, timers and jobs.",
        |r| r.2.errors.load(Ordering::Relaxed),
    ),
    (
        "stage_node_stage_overloaded",
        "gauge",
        "1 while the stage is reported to the routers as overloaded.",
        |r| u64::from(r.2.overloaded.load(Ordering::Relaxed)),
    ),
];

/// The exposition of the node's state now.
pub fn render(o: &Observer) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "stage_node_info",
        "gauge",
        "The node's name and instance number (always 1).",
    );
    let _ = writeln!(
        out,
        "stage_node_info{{node=\"{}\",instance=\"{}\"}} 1",
        escape(&o.name),
        o.node.instance()
    );
    let readings = o.node.stage_readings();
    for (name, kind, help, value) in STAGE_SERIES {
        family(&mut out, name, kind, help);
        for r in &readings {
            let _ = writeln!(
                out,
                "{name}{{stage=\"{}\",kind=\"{}\"}} {}",
                escape(r.0),
                o.kind_of(r.0),
                value(r)
            );
        }
    }
    let routers = o.node.router_states();
    for (silent, name, help) in [
        (
            false,
            "stage_node_router_linked",
            "1 while the node has a link to the router.",
        ),
        (
            true,
            "stage_node_router_silent",
            "1 while the linked router has been silent for the heartbeat window.",
        ),
    ] {
        family(&mut out, name, "gauge", help);
        for (addr, is_linked, is_silent) in &routers {
            let v = u64::from(if silent { *is_silent } else { *is_linked });
            let _ = writeln!(out, "{name}{{router=\"{}\"}} {v}", escape(addr));
        }
    }
    out
}
