//! The optional HTTP endpoint of `stage-router` and `stage-node` (`--http ADDR`):
//!
//! - `GET /metrics` — the process's counters and state in the Prometheus text format;
//! - `GET /status` — a live page that draws the cluster as this process sees it (and, with
//!   `?also=HOST:PORT,…`, as other routers and nodes see it), refreshed every second without
//!   reloading;
//! - `GET /status.json` — what the page draws, for scripts and for other processes' pages.
//!
//! The process supplies the two texts ([`Observed`]); this crate serves them and the page.

pub mod http;
pub mod prometheus;

/// What a process tells its HTTP endpoint, rendered afresh for each request.
pub trait Observed: Send + Sync + 'static {
    /// `/metrics`: the Prometheus text exposition (version 0.0.4).
    fn metrics(&self) -> String;
    /// `/status.json`: one JSON object with `"kind": "router"` or `"kind": "node"` (the shapes
    /// are documented in docs/observability.md).
    fn status(&self) -> String;
}

/// The `/status` page: static HTML and script that fetch `status.json` every second.
pub const STATUS_PAGE: &str = include_str!("status.html");
