//! `stage-bench`: measures stage on real processes and prints one `RESULT` line per workload
//! and system (the format of `../shared/bench/WORKLOADS.md`), plus `RATIO` lines against the
//! peers measured in the same run.
//!
//! Workloads so far: [`failover`] (master/slave fail-over times), [`index`] (the leaderboard
//! service against Redis sorted sets) and [`idle`] (memory per idle broker connection, beside
//! Redis's), and the Lua-level workloads [`lua`] (L1–L4, the idle node's memory).

mod failover;
mod idle;
mod index;
mod lua;
mod procs;
mod redis;
mod report;
mod sys;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    Failover,
    Index,
    Idle,
    L1,
    L2,
    L3,
    L4,
    Node,
}

/// Benchmarks stage on real router and node processes on 127.0.0.1.
#[derive(Parser)]
#[command(
    name = "stage-bench",
    version,
    after_help = "Examples:\n  cargo build --release --bins && target/release/stage-bench failover --runs 5\n  target/release/stage-bench index --members 100000 --ops 200000\n  target/release/stage-bench idle --conns 10000 --redis-server /usr/bin/redis-server"
)]
pub struct Args {
    /// The workload to run.
    workload: Workload,
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
    /// The redis-server program to compare with (index: `redis-server` unless given; idle:
    /// only when given).
    #[arg(long)]
    redis_server: Option<String>,
    /// idle: connections held open.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Overrides the workload's message (call, job) count, e.g. for smoke tests.
    #[arg(long)]
    messages: Option<u64>,
}

fn main() {
    let args = Args::parse();
    let result = match args.workload {
        Workload::Failover => failover::run(&args),
        Workload::Index => index::run(&args),
        Workload::Idle => idle::run(&args),
        Workload::L1 => lua::run_l1(&args),
        Workload::L2 => lua::run_l2(&args),
        Workload::L3 => lua::run_l3(&args),
        Workload::L4 => lua::run_l4(&args),
        Workload::Node => lua::run_node(&args),
    };
    if let Err(e) = result {
        eprintln!("FAIL {e}");
        std::process::exit(1);
    }
}
