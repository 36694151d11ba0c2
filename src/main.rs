//! `stage`: the STAGE:Platform command. `stage run` launches a whole cluster
//! from a topology file; `stage router` and `stage node` run single
//! processes (the launcher starts its children through them).

mod launcher;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use log::LevelFilter;

#[derive(Parser)]
#[command(
    name = "stage",
    version,
    about = "STAGE:Platform: Lua-scripted services on a router cluster",
    after_help = "Examples:\n  stage run cluster-examples/hello/topology.lua\n  stage router --listen 127.0.0.1:7400 --mode rank=hash\n  stage node --router 127.0.0.1:7400 --stage hello=hello.lua\n  stage node --config /etc/stage/game.lua"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the routers and nodes described by a Lua topology file.
    ///
    /// The file returns { routers = { ... }, nodes = { ... } }. Each entry
    /// has a unique `name` (prefixing its output lines) and turns every
    /// other key into flags of `stage router` / `stage node`: k = "v" gives
    /// --k v, k = true gives --k, a list repeats the flag, and a
    /// NAME = VALUE table gives --k NAME=VALUE per pair. `command = { PROG,
    /// ARG... }` runs that program instead, e.g. a database beside the
    /// cluster. Children run in the topology file's directory; crashed ones
    /// restart with backoff; Ctrl-C stops them all.
    #[command(
        after_help = "Examples:\n  stage run cluster-examples/hello/topology.lua\n  stage run cluster-examples/chat/topology.lua --log debug"
    )]
    Run {
        /// The topology file (Lua).
        topology: PathBuf,
        /// Launcher verbosity, also passed to the children as RUST_LOG.
        #[arg(long, value_name = "LEVEL")]
        log: Option<LogLevel>,
    },
    /// Run a router; all arguments go to stage-router (try `stage router --help`).
    #[command(disable_help_flag = true)]
    Router {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run a node; all arguments go to stage-node (try `stage node --help`).
    #[command(disable_help_flag = true)]
    Node {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Off => LevelFilter::Off,
            LogLevel::Error => LevelFilter::Error,
            LogLevel::Warn => LevelFilter::Warn,
            LogLevel::Info => LevelFilter::Info,
            LogLevel::Debug => LevelFilter::Debug,
            LogLevel::Trace => LevelFilter::Trace,
        }
    }
}

fn main() {
    let code = match Cli::parse().command {
        Command::Run { topology, log } => launcher::run(&topology, log.map(LevelFilter::from)),
        Command::Router { args } => stage_router::run_cli(with_program("stage-router", args)),
        Command::Node { args } => stage_node::run_cli(with_program("stage-node", args)),
    };
    std::process::exit(code);
}

/// Shapes passed-through arguments like `std::env::args_os()`, which the
/// library entry points expect: program name first.
fn with_program(program: &str, args: Vec<OsString>) -> Vec<OsString> {
    std::iter::once(OsString::from(program))
        .chain(args)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_help_example_parses() {
        assert_eq!(stage_cli::check_help_examples::<super::Cli>("stage"), 4);
    }
}
