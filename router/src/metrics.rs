//! `/metrics`: the router's counters and state in the Prometheus text format (version 0.0.4):
//! per link (node) messages received and sent, NACKs and overload signals, queued bytes and
//! silence; per class its mode, live members, messages addressed to it, and which members
//! reported themselves overloaded.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use stage_observe::prometheus::{escape, family};

use crate::link::Link;
use crate::server::Router;

/// The exposition of `router`'s state now.
pub fn render(router: &Router) -> String {
    let links = router.links_by_token();
    let mut out = String::new();
    family(&mut out, "stage_router_links", "gauge", "Links from nodes.");
    let _ = writeln!(out, "stage_router_links {}", links.len());

    for (series, (name, kind, help)) in LINK_SERIES.iter().enumerate() {
        family(&mut out, name, kind, help);
        for l in &links {
            let labels = format!(
                "link=\"{}\",node=\"{}\",addr=\"{}\"",
                l.token,
                escape(&l.node),
                l.peer
            );
            let _ = writeln!(out, "{name}{{{labels}}} {}", link_value(series, l));
        }
    }

    let table = router.table.load();
    let classes: Vec<_> = table.classes().collect();
    let label = |c: &crate::table::Class| {
        format!("class=\"{}\",mode=\"{}\"", escape(&c.name), c.mode.name())
    };
    family(
        &mut out,
        "stage_router_class_messages_total",
        "counter",
        "Messages addressed to the class.",
    );
    for (number, c) in &classes {
        let count = router.class_messages.get(*number);
        let _ = writeln!(
            out,
            "stage_router_class_messages_total{{{}}} {count}",
            label(c)
        );
    }
    family(
        &mut out,
        "stage_router_class_members",
        "gauge",
        "Live members of the class (registered, linked and not silent).",
    );
    for (_, c) in &classes {
        let live = c.members.iter().filter(|m| m.live().is_some()).count();
        let _ = writeln!(out, "stage_router_class_members{{{}}} {live}", label(c));
    }
    family(
        &mut out,
        "stage_router_member_busy",
        "gauge",
        "1 while the member reports itself overloaded (round-robin and random pass it over).",
    );
    for (number, c) in &classes {
        for m in &c.members {
            let Some(link) = &m.link else { continue };
            let _ = writeln!(
                out,
                "stage_router_member_busy{{class=\"{}\",instance=\"{}\",link=\"{}\"}} {}",
                escape(&c.name),
                m.id.instance(),
                link.token,
                u64::from(link.is_busy(*number))
            );
        }
    }
    out
}

/// The per-link series: name, type, help.
const LINK_SERIES: [(&str, &str, &str); 6] = [
    (
        "stage_router_link_messages_received_total",
        "counter",
        "Messages received from the node.",
    ),
    (
        "stage_router_link_messages_sent_total",
        "counter",
        "Messages forwarded to the node.",
    ),
    (
        "stage_router_link_nacks_total",
        "counter",
        "NACKs sent to the node: its messages that found no taker.",
    ),
    (
        "stage_router_link_overload_signals_total",
        "counter",
        "Overload signals sent to the node: a target of its messages did not keep up.",
    ),
    (
        "stage_router_link_queue_bytes",
        "gauge",
        "Bytes waiting to be written to the node.",
    ),
    (
        "stage_router_link_silent",
        "gauge",
        "1 while the node has been silent for the heartbeat window (it gets no traffic).",
    ),
];

/// The value of `LINK_SERIES[series]` for `l`.
fn link_value(series: usize, l: &Link) -> u64 {
    let c = &l.counters;
    match series {
        0 => c.messages_in.load(Ordering::Relaxed),
        1 => c.messages_out.load(Ordering::Relaxed),
        2 => c.nacks.load(Ordering::Relaxed),
        3 => c.overloads.load(Ordering::Relaxed),
        4 => l.queued() as u64,
        _ => u64::from(l.liveness.is_silent()),
    }
}
