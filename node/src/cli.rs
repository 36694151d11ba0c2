//! Command line of `stage-node`.

use std::path::PathBuf;

use clap::Parser;

use crate::service::Builtin;

/// Hosts Lua stages with the stage.* API and links them to routers.
#[derive(Debug, Parser)]
#[command(
    name = "stage-node",
    version,
    after_help = "Examples:\n  stage-node --stage hello=hello.lua                       (standalone: local signals only)\n  stage-node --router 127.0.0.1:7400 --stage game=game.lua --id 3\n  stage-node --router 127.0.0.1:7400 --stage game=game.lua --http 127.0.0.1:9401   (/metrics, /status)\n  stage-node --router 10.0.0.1:7400 --router 10.0.0.2:7400 --secret-file /etc/stage/secret --stage rank=rank.lua --package /srv/stage/lib\n  stage-node --config /etc/stage/game.lua              (router = { \"10.0.0.1:7400\" }  stage = { game = \"game.lua\" } ...)"
)]
pub struct Args {
    /// Router to link to (repeatable). Without any, the node runs standalone.
    #[arg(long = "router", value_name = "ADDR")]
    pub routers: Vec<String>,
    /// A stage to host: NAME=SCRIPT, or NAME=SERVICE for a built-in service: route, ticket,
    /// index, agent (or curl), e.g. --stage rank=index (repeatable).
    #[arg(long = "stage", value_name = "NAME=SCRIPT", value_parser = parse_stage, required = true)]
    pub stages: Vec<(String, StageImpl)>,
    /// Instance number of this node's stages (1..16777215); assigned by the first router when absent.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=0x00ff_ffff))]
    pub id: Option<u32>,
    /// A script location, searched in order (repeatable). `[N]DIR` gives its fail-over depth
    /// (default: its position); `[0]` alone is the working directory. A script that is missing
    /// or does not compile in one location is taken from the next. Without any: the working
    /// directory.
    #[arg(long = "package", value_name = "DIR")]
    pub packages: Vec<String>,
    /// File holding the cluster secret to prove to routers.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// A JSON object scripts read as process["$NAME"] (the Lua configuration).
    #[arg(long, value_name = "FILE")]
    pub lua_config: Option<PathBuf>,
    /// Name of this node in router logs (default: its stage names and pid).
    #[arg(long)]
    pub name: Option<String>,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = stage_proto::DEFAULT_MAX_FRAME)]
    pub max_frame: usize,
    /// VM instructions one callback may run before it is interrupted with an error
    /// (about a second of CPU by default; 0: no limit).
    #[arg(long, default_value_t = crate::budget::DEFAULT_INSTRUCTIONS)]
    pub instruction_budget: u64,
    /// Worker threads (each with its own Lua VM) for stage.submit and thread.new
    /// [default: the number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Memory each Lua VM may allocate, in MiB (0: no limit).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub memory_limit: usize,
    /// Milliseconds a request (`=ret`, `!fail`) waits for its answer before its fail path runs,
    /// unless the target gives its own (`{ "stage:id=ret", 2000 }`).
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub deadline: u64,
    /// Bytes of messages that may wait for a router to read them; beyond that, sends fail
    /// (the fail path runs) instead of queueing without bound.
    #[arg(long, value_name = "BYTES", default_value_t = stage_proto::writer::DEFAULT_LINK_BUFFER)]
    pub link_buffer: usize,
    /// Milliseconds a stage's backlog may keep growing before the routers are told it is
    /// overloaded (round-robin then passes it over until it drains).
    #[arg(long, value_name = "MS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub overload_window: u64,
    /// Milliseconds a router may stay silent (heartbeats go every fifth of it) before this node
    /// sends through another one.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub heartbeat_window: u64,
    /// Directory of the `index` service's files (one per index name; created if missing).
    #[arg(long, value_name = "DIR", default_value = "index")]
    pub index_dir: PathBuf,
    /// Milliseconds a `route` subscription lives without a `route:@` message from its stage
    /// (stage-spec §9.1: 30 s).
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub route_keepalive: u64,
    /// A category of the `ticket` service: CAT=LIMIT (repeatable). At most LIMIT tickets
    /// of CAT are held at once; requests wait in order for one. A negative LIMIT keeps no
    /// waiting queue: requests fail when no ticket is free. Scripts add categories with
    /// stage.signal("ticket:@CAT", limit, close_ms).
    #[arg(long = "ticket", value_name = "CAT=LIMIT", value_parser = parse_ticket)]
    pub tickets: Vec<(String, i64)>,
    /// Requests the `ticket` service keeps waiting, over all its categories; beyond that,
    /// requests fail (feedback false).
    #[arg(long, value_name = "N", default_value_t = crate::service::ticket::DEFAULT_QUEUE)]
    pub ticket_queue: usize,
    /// Milliseconds an `agent` request may take when it sets no `timeout` (less when its
    /// message's deadline is nearer); connecting gets half of it, at least a second.
    #[arg(long, value_name = "MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub agent_timeout: u64,
    /// User-Agent header of the `agent` service's requests ("" sends none).
    #[arg(long, value_name = "TEXT", default_value = concat!("stage/", env!("CARGO_PKG_VERSION")))]
    pub user_agent: String,
    /// PEM file of CA certificates the `agent` service trusts for HTTPS besides Mozilla's
    /// roots (a private CA).
    #[arg(long, value_name = "FILE")]
    pub agent_ca: Option<PathBuf>,
    /// Threads of the `agent` service doing HTTP exchanges (its requests run at most this many
    /// at a time).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub agent_threads: u32,
    /// Requests that may wait for an `agent` thread; beyond that a request is answered at once
    /// with an error (result 89).
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub agent_queue: u32,
    /// Largest response body the `agent` service takes, in bytes; a larger one is an error
    /// answer (result 63). An answer must also fit in --max-frame to cross the cluster.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub agent_max_body: u64,
    /// Read flags from a Lua file whose globals are long flags (`router = { "10.0.0.1:7400" }`,
    /// `stage = { game = "game.lua" }`, `id = 3`); flags given here win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Serve `GET /metrics` (Prometheus text), `/status` (a live page of this node) and
    /// `/status.json` on this address, e.g. 127.0.0.1:9500 (port 0 picks a free port; the log
    /// says which).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Log filter: error, warn, info, debug, trace, or env_logger syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
}

/// What runs a stage: a Lua main script or a built-in service.
#[derive(Debug, Clone)]
pub enum StageImpl {
    Lua(PathBuf),
    Builtin(Builtin),
}

fn parse_stage(s: &str) -> Result<(String, StageImpl), String> {
    let (name, script) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=SCRIPT (e.g. --stage game=game.lua)"))?;
    stage_proto::service::check_stage_name(name).map_err(|e| format!("'{s}': {e}"))?;
    if script.is_empty() {
        return Err(format!(
            "'{s}': missing script path (e.g. --stage game=game.lua)"
        ));
    }
    // A bare service name is the built-in service; a script is a path (`route.lua`).
    let what = match Builtin::from_name(script) {
        Some(b) => StageImpl::Builtin(b),
        None => StageImpl::Lua(PathBuf::from(script)),
    };
    Ok((name.to_owned(), what))
}

fn parse_ticket(s: &str) -> Result<(String, i64), String> {
    let (cat, limit) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not CAT=LIMIT (e.g. --ticket db=10)"))?;
    crate::service::ticket::check_category(cat)?;
    match limit.parse::<i64>() {
        Ok(0) | Err(_) => Err(format!(
            "'{s}': LIMIT is a non-zero integer (negative: no waiting queue)"
        )),
        Ok(n) => Ok((cat.to_owned(), n)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_help_example_parses() {
        assert_eq!(
            stage_cli::check_help_examples::<super::Args>("stage-node"),
            5
        );
    }
}
