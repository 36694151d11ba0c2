//! The peer workloads in one invocation: a stage router, a nats-server and a redis-server
//! started on loopback ports of their own, each workload run interleaved on all three
//! (`--runs` times), CPU and memory read from /proc, then the medians as RESULT lines and the
//! ratios to the peers as RATIO lines with the goals.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{pubsub, reqrep, System};
use crate::procs::{self, Process, Scratch};
use crate::report::{self, Line};
use crate::sys;
use crate::Args;

/// Threads of the client's runtime (WORKLOADS.md `CLIENT_THREADS`).
const CLIENT_THREADS: usize = 2;

/// The peer workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    W1,
    W2,
    W3,
}

/// One measured variant of a workload, with the goals its ratio to NATS must meet.
struct Variant {
    workload: Workload,
    /// Pin every process to CPU 0 (latency: both ends on one vCPU).
    pinned: bool,
    /// (field, ratio bound, whether the ratio must be at most the bound).
    goals: &'static [(&'static str, f64, bool)],
}

enum Workload {
    PubSub(pubsub::Plan),
    ReqRep(reqrep::Plan),
}

fn variants(which: &[Wire], args: &Args) -> Vec<Variant> {
    let timeout = Duration::from_secs(args.timeout);
    let fan = |total: u64, workload, subject, publishers: u32, subscribers: u32| {
        let per_publisher = args.messages.unwrap_or(total) / (publishers * subscribers) as u64;
        Workload::PubSub(pubsub::Plan {
            workload,
            subject,
            publishers,
            subscribers,
            per_publisher: per_publisher.max(1),
            timeout,
        })
    };
    let measured = args.messages.unwrap_or(50_000);
    let reqrep = |in_flight| {
        Workload::ReqRep(reqrep::Plan {
            warmup: (measured / 50).min(1_000),
            measured,
            in_flight,
        })
    };
    const LATENCY: &[(&str, f64, bool)] = &[("p50_us", 0.75, true), ("p99_us", 0.5, true)];
    let mut out = Vec::new();
    for w in which {
        match w {
            Wire::W1 => out.push(Variant {
                workload: fan(1_000_000, "w1_fanin", "peerbench.w1", 4, 1),
                pinned: false,
                goals: &[
                    ("msgs_per_s", 1.5, false),
                    ("server_cpu_ns_per_msg", 0.5, true),
                ],
            }),
            Wire::W2 => {
                for pinned in [false, true] {
                    out.push(Variant {
                        workload: reqrep(1),
                        pinned,
                        goals: LATENCY,
                    });
                }
                out.push(Variant {
                    workload: reqrep(64),
                    pinned: false,
                    goals: &[("msgs_per_s", 1.0, false)],
                });
            }
            Wire::W3 => out.push(Variant {
                workload: fan(800_000, "w3_fanout", "peerbench.w3", 1, 8),
                pinned: false,
                goals: &[("msgs_per_s", 1.0, false)],
            }),
        }
    }
    out
}

/// A server under test and its process.
struct Server {
    system: System,
    process: Process,
}

impl Server {
    fn pid(&self) -> u32 {
        self.process.child.id()
    }
}

fn start_servers(args: &Args, dir: &Scratch) -> Result<Vec<Server>, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    // W3's subject is a broadcast class: every member gets every message, as every NATS or
    // Redis subscriber does.
    let (router, addr) = procs::router(&["--mode", "peerbench.w3=broadcast"], &dir.0, deadline)?;
    let nats_port = procs::free_port()?;
    let nats = procs::spawn(
        &nats_program(args)?,
        &["-a", "127.0.0.1", "-p", &nats_port.to_string()],
        &dir.0,
        true,
    )?;
    procs::wait_line(&nats, deadline, |l| l.contains("Server is ready"))
        .map_err(|e| format!("nats-server: {e}"))?;
    let redis_program = args.redis_server.as_deref().unwrap_or("redis-server");
    let redis = crate::redis::start(redis_program, &[], &dir.0, deadline)?;
    Ok(vec![
        Server {
            system: System::Stage(addr),
            process: router,
        },
        Server {
            system: System::Nats(format!("127.0.0.1:{nats_port}")),
            process: nats,
        },
        Server {
            system: System::Redis(format!("127.0.0.1:{}", redis.port)),
            process: redis.process,
        },
    ])
}

/// `--nats-server`, or nats-server on the PATH or in the sbin directories Debian installs to.
fn nats_program(args: &Args) -> Result<PathBuf, String> {
    if let Some(p) = &args.nats_server {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "nats-server not found: run scripts/install-peers.sh (Debian's nats-server package) \
             or pass --nats-server PATH"
                .into()
        })
}

/// One run of `variant` on `server`, with the CPU and memory fields of WORKLOADS.md.
fn measure(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    variant: &Variant,
) -> Result<Line, String> {
    let own = std::process::id();
    let cpu = variant.pinned.then_some(0);
    sys::pin(0, cpu)?;
    sys::pin(server.pid(), cpu)?;
    let machine = sys::Machine::now();
    let (client0, server0) = (sys::cpu_ns(own), sys::cpu_ns(server.pid()));
    let result = rt.block_on(async {
        match &variant.workload {
            Workload::PubSub(plan) => pubsub::run(&server.system, plan).await,
            Workload::ReqRep(plan) => reqrep::run(&server.system, plan).await,
        }
    });
    let client_ns = sys::cpu_ns(own).saturating_sub(client0);
    let server_ns = sys::cpu_ns(server.pid()).saturating_sub(server0);
    let noise = machine.noise(&sys::Machine::now(), client_ns + server_ns);
    if variant.pinned {
        sys::pin(0, None)?;
        sys::pin(server.pid(), None)?;
    }
    let line = result?;
    let per_msg = server_ns as f64 / line.get("deliveries").unwrap_or(1.0).max(1.0);
    let mut line = line
        .text("cpus", if variant.pinned { "0" } else { "all" })
        .num("client_cpu_s", client_ns as f64 / 1e9)
        .num("server_cpu_s", server_ns as f64 / 1e9)
        .num("server_cpu_ns_per_msg", per_msg)
        .num("foreign_cpu_pct", noise.foreign_pct)
        .num("kernel_other_pct", noise.kernel_other_pct)
        .num("client_threads", CLIENT_THREADS as f64);
    if let System::Stage(_) = server.system {
        line = line
            .num("router_cpu_ns_per_msg", per_msg)
            .num("router_rss_kb", sys::rss_kb(server.pid())? as f64);
    }
    Ok(line)
}

/// Runs the peer workloads `which` on stage, NATS and Redis; prints RUN, RESULT and RATIO
/// lines. Returns the RESULT lines.
pub fn run(args: &Args, which: &[Wire]) -> Result<Vec<Line>, String> {
    println!(
        "# {} ({} CPUs); stage, nats-server and redis-server on 127.0.0.1, {} interleaved runs",
        sys::cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.runs.max(1)
    );
    let dir = Scratch::new("wire")?;
    let servers = start_servers(args, &dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CLIENT_THREADS)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let mut results = Vec::new();
    for variant in variants(which, args) {
        let mut runs: Vec<Vec<Line>> = vec![Vec::new(); servers.len()];
        for _ in 0..args.runs.max(1) {
            for (server, runs) in servers.iter().zip(&mut runs) {
                let line = measure(&rt, server, &variant)?;
                line.clone().into_kind("RUN").print();
                runs.push(line);
            }
        }
        let medians: Vec<Line> = runs.iter().map(|r| report::median(r)).collect();
        medians.iter().for_each(Line::print);
        for peer in &medians[1..] {
            ratio(&variant, &medians[0], peer).print();
        }
        results.extend(medians);
    }
    Ok(results)
}

/// stage's figures over a peer's, and (against NATS) whether the goals hold.
fn ratio(variant: &Variant, stage: &Line, peer: &Line) -> Line {
    let name = peer.get_text("peer").unwrap_or("?").to_owned();
    let mut line = Line::new("RATIO");
    for field in ["workload", "in_flight", "cpus"] {
        if let Some(v) = stage.get_text(field) {
            line = line.text(field, v);
        }
    }
    line = line.text("stage_over", &name);
    let mut met = true;
    for field in ["msgs_per_s", "p50_us", "p99_us", "server_cpu_ns_per_msg"] {
        let (Some(s), Some(p)) = (stage.get(field), peer.get(field)) else {
            continue;
        };
        let r = s / p;
        line = line.text(field, format!("{r:.2}"));
        if name == "nats" {
            for &(goal_field, bound, at_most) in variant.goals {
                if goal_field == field && (if at_most { r > bound } else { r < bound }) {
                    met = false;
                }
            }
        }
    }
    if name == "nats" {
        let goal: Vec<String> = variant
            .goals
            .iter()
            .map(|(f, b, at_most)| format!("{f}{}{b}", if *at_most { "<=" } else { ">=" }))
            .collect();
        line = line
            .text("goal", goal.join(","))
            .text("met", if met { "yes" } else { "no" });
    }
    line
}
