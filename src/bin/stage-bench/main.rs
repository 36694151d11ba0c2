//! `stage-bench`: measures stage on real processes and prints one `RESULT` line per workload
//! and system (the format of `../shared/bench/WORKLOADS.md`), plus `RATIO` lines against the
//! peers measured in the same run.
//!
//! Workloads: [`wire`] (W1–W3 of WORKLOADS.md on the stage router, nats-server and
//! redis-server), the Lua-level workloads [`lua`] (L1–L4, the idle node's memory), `--all` for
//! all of these; [`failover`] (master/slave fail-over times), [`index`] (the leaderboard
//! service against Redis sorted sets) and [`idle`] (memory per idle broker connection, beside
//! Redis's).

mod failover;
mod idle;
mod index;
mod lua;
mod procs;
mod redis;
mod report;
mod sys;
mod wire;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    /// W1 fan-in, 4 publishers → 1 subscriber, on stage, NATS and Redis.
    W1,
    /// W2 request-reply, 1 in flight (unpinned and pinned to one CPU) and 64 in flight.
    W2,
    /// W3 fan-out, 1 publisher → 8 subscribers.
    W3,
    /// W1, W2 and W3.
    Peers,
    Failover,
    Index,
    Idle,
    /// L1: signals from a stage on one node to a stage on another, through a router.
    L1,
    /// L2: calls `B:echo=ret` and their answers, sequential and 64 in flight.
    L2,
    /// L3: signals to a stage's own `waitfor`, in process.
    L3,
    /// L4: keyed `stage.submit` jobs on the worker pool, per-key order checked.
    L4,
    /// RSS of an idle node.
    Node,
}

/// Benchmarks stage on real router and node processes on 127.0.0.1.
#[derive(Parser)]
#[command(
    name = "stage-bench",
    version,
    after_help = "Examples:\n  scripts/install-peers.sh && cargo build --release --bins\n  target/release/stage-bench --all                 # W1-W3 vs NATS and Redis, L1-L4, idle node\n  target/release/stage-bench w2 --runs 5\n  target/release/stage-bench l3 --messages 200000\n  target/release/stage-bench failover --runs 5\n  target/release/stage-bench index --members 100000 --ops 200000\n  target/release/stage-bench idle --conns 10000 --redis-server /usr/bin/redis-server"
)]
pub struct Args {
    /// The workload to run (or --all).
    #[arg(required_unless_present = "all")]
    workload: Option<Workload>,
    /// Every workload of WORKLOADS.md: W1–W3 against NATS and Redis, then L1–L4 and the idle
    /// node.
    #[arg(long)]
    all: bool,
    /// Overrides the workload's count (W1/W3: deliveries; W2: measured round trips; L1–L4:
    /// messages, calls, jobs), e.g. for smoke tests.
    #[arg(long)]
    messages: Option<u64>,
    /// The nats-server program (default: nats-server on the PATH or in /usr/sbin).
    #[arg(long)]
    nats_server: Option<String>,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Time bound of one run, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// index: members on the board.
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    /// index: updates, then as many rank queries, per run and system.
    #[arg(long, default_value_t = 200_000)]
    ops: usize,
    /// index: requests in flight (sent before their answers are read).
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// The redis-server program to compare with (W1–W3 and index: `redis-server` on the PATH
    /// unless given; idle: only when given).
    #[arg(long)]
    redis_server: Option<String>,
    /// idle: connections held open.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
}

fn main() {
    let args = Args::parse();
    use wire::Wire;
    let workload = if args.all { None } else { args.workload };
    let result = match workload {
        None => all(&args),
        Some(Workload::W1) => wire::run(&args, &[Wire::W1]).map(drop),
        Some(Workload::W2) => wire::run(&args, &[Wire::W2]).map(drop),
        Some(Workload::W3) => wire::run(&args, &[Wire::W3]).map(drop),
        Some(Workload::Peers) => wire::run(&args, &[Wire::W1, Wire::W2, Wire::W3]).map(drop),
        Some(Workload::Failover) => failover::run(&args),
        Some(Workload::Index) => index::run(&args),
        Some(Workload::Idle) => idle::run(&args),
        Some(Workload::L1) => lua::run_l1(&args),
        Some(Workload::L2) => lua::run_l2(&args),
        Some(Workload::L3) => lua::run_l3(&args),
        Some(Workload::L4) => lua::run_l4(&args),
        Some(Workload::Node) => lua::run_node(&args),
    };
    if let Err(e) = result {
        eprintln!("FAIL {e}");
        std::process::exit(1);
    }
}

/// `--all`: every workload of WORKLOADS.md — W1–W3 against NATS and Redis, L1–L4, the idle
/// node. A failing workload does not stop the others; the first failure is returned.
fn all(args: &Args) -> Result<(), String> {
    use wire::Wire;
    type Run<'a> = &'a dyn Fn(&Args) -> Result<(), String>;
    let runs: [(&str, Run); 6] = [
        ("peers", &|a| {
            wire::run(a, &[Wire::W1, Wire::W2, Wire::W3]).map(drop)
        }),
        ("l1", &lua::run_l1),
        ("l2", &lua::run_l2),
        ("l3", &lua::run_l3),
        ("l4", &lua::run_l4),
        ("node", &lua::run_node),
    ];
    let mut first = None;
    for (name, run) in runs {
        if let Err(e) = run(args) {
            println!("FAIL {name}: {e}");
            first = first.or(Some(e));
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_help_example_parses() {
        assert_eq!(
            stage_cli::check_help_examples::<super::Args>("stage-bench"),
            6
        );
    }
}
