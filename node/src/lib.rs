//! stage-node: hosts Lua stages with the `stage.*` API and links them to routers.
//!
//! Each stage runs on its own thread with its own Lua VM ([`stage`]); the [`api`] module is what
//! scripts see; [`cluster`] keeps the router links on a tokio runtime; [`value`] turns Lua values
//! into BSON bytes and back without an intermediate tree.

pub mod api;
pub mod broker;
pub mod budget;
pub mod cli;
pub mod cluster;
pub mod inbound;
pub mod metrics;
pub mod node;
pub mod overload;
pub mod pending;
pub mod pool;
pub mod sandbox;
pub mod script;
pub mod service;
pub mod stage;
pub mod stats;
pub mod status;
pub mod store;
pub mod target;
pub mod value;
pub mod vm;
pub mod worker;

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long start-up waits for the routers before running the stages anyway.
const LINK_WAIT: Duration = Duration::from_secs(3);

/// How long stopping waits for the stages to finish their current callback.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs a node with command-line `args` (program name first); returns the exit code.
pub fn run_cli(args: Vec<OsString>) -> i32 {
    stage_cli::run(args, |a: &cli::Args| &a.log, run)
}

fn run(args: cli::Args) -> Result<(), String> {
    let secret = args
        .secret_file
        .as_deref()
        .map(stage_proto::handshake::read_secret_file)
        .transpose()?;
    if let Some(path) = &args.lua_config {
        api::config::load_file(path)?;
    }
    let locations = script::parse_locations(&args.packages)?;
    let scripts = script::Scripts::new(locations, script::DEFAULT_REFRESH);
    let config = service::Config {
        index_dir: args.index_dir.clone(),
        route_keepalive: Duration::from_millis(args.route_keepalive),
        tickets: args.tickets.clone(),
        ticket_queue: args.ticket_queue,
        agent: service::agent::Settings {
            timeout: Duration::from_millis(args.agent_timeout),
            user_agent: args.user_agent.clone(),
            ca: args.agent_ca.clone(),
            threads: args.agent_threads as usize,
            queue: args.agent_queue as usize,
            max_body: args.agent_max_body,
        },
    };
    let mut specs = Vec::new();
    let mut services = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (name, what) in &args.stages {
        if !names.insert(name) {
            return Err(format!("stage '{name}' is given twice"));
        }
        let file = match what {
            cli::StageImpl::Builtin(kind) => {
                let built = service::build(*kind, name, &config)
                    .map_err(|e| format!("stage {name}: {e}"))?;
                services.push((name.clone(), built));
                continue;
            }
            cli::StageImpl::Lua(file) => file,
        };
        // Find and compile-check every main script before linking to any router: a typo in
        // a path is a start-up error, not a registered stage that never answers.
        let check = mlua::Lua::new();
        match scripts.get(&check, file) {
            Ok(Some(source)) => log::info!(
                "stage {name}: {} (depth {})",
                source.path.display(),
                source.depth
            ),
            Ok(None) => {
                let looked: Vec<String> = script::candidates(scripts.locations(), file)
                    .into_iter()
                    .map(|(p, _)| p.display().to_string())
                    .collect();
                return Err(format!(
                    "stage {name}: script {} not found (looked for {}; add --package DIR)",
                    file.display(),
                    looked.join(", ")
                ));
            }
            Err(e) => return Err(format!("stage {name}: {e}")),
        }
        specs.push(stage::StageSpec {
            name: name.clone(),
            script: file.clone(),
        });
    }
    broker::raise_fd_limit();
    let standalone = args.routers.is_empty();
    let instance = Arc::new(AtomicU32::new(args.id.unwrap_or(if standalone {
        1
    } else {
        0
    })));
    let mut inboxes = HashMap::new();
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for (name, _) in &args.stages {
        let (tx, rx) = inbound::inbox();
        inboxes.insert(name.clone(), tx.clone());
        senders.push(tx);
        receivers.push((name.clone(), rx));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("stage-io")
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // Bound before the stages start, so a taken port is a start-up error.
    let http = args
        .http
        .map(|addr| runtime.block_on(stage_observe::http::bind(addr)))
        .transpose()?;
    let pending = Arc::new(pending::Pending::default());
    let cluster = (!standalone).then(|| {
        let identity = cluster::Identity {
            node: args.name.clone().unwrap_or_else(|| {
                let names: Vec<_> = args.stages.iter().map(|(n, _)| n.as_str()).collect();
                format!("{}-{}", names.join("+"), std::process::id())
            }),
            stages: args.stages.iter().map(|(n, _)| n.clone()).collect(),
            secret,
            max_frame: args.max_frame,
            heartbeat_window: Duration::from_millis(args.heartbeat_window),
            link_buffer: args.link_buffer,
        };
        Arc::new(cluster::Cluster::new(
            identity,
            instance.clone(),
            senders,
            pending.clone(),
        ))
    });
    if let Some(c) = &cluster {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let _guard = runtime.enter();
        c.start(args.routers.clone(), ready_tx);
        // Give the routers a moment so the main scripts' first signals find the cluster.
        let deadline = Instant::now() + LINK_WAIT;
        for _ in &args.routers {
            let left = deadline.saturating_duration_since(Instant::now());
            if ready_rx.recv_timeout(left).is_err() {
                log::warn!(
                    "not every router answered within {LINK_WAIT:?}; starting the stages anyway"
                );
                break;
            }
        }
    } else {
        log::info!("standalone: no --router, signals stay on this node");
    }

    let bounds = node::Bounds {
        max_frame: args.max_frame,
        deadline: Duration::from_millis(args.deadline),
    };
    let node = Arc::new(node::Node::new(
        instance,
        bounds,
        scripts,
        inboxes,
        cluster,
        pending,
        runtime.handle().clone(),
    ));
    if let Some(listener) = http {
        let observer = status::Observer {
            node: node.clone(),
            name: node
                .cluster()
                .map_or("standalone".to_owned(), |c| c.node_name().to_owned()),
            kinds: args
                .stages
                .iter()
                .filter_map(|(n, what)| match what {
                    cli::StageImpl::Builtin(kind) => Some((n.clone(), kind.name().to_owned())),
                    cli::StageImpl::Lua(_) => None,
                })
                .collect(),
            started: Instant::now(),
        };
        let _guard = runtime.enter();
        stage_observe::http::start("stage-node", listener, Arc::new(observer))?;
    }
    let limits = vm::Limits {
        memory: args.memory_limit.saturating_mul(1 << 20),
        instructions: args.instruction_budget,
    };
    let workers = args
        .threads
        .map(|n| n as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mut threads = worker::spawn(&node, node.pool(), workers, limits)
        .map_err(|e| format!("worker thread: {e}"))?;
    threads
        .push(pending::spawn_deadlines(node.clone()).map_err(|e| format!("deadline thread: {e}"))?);
    if !standalone {
        let window = Duration::from_millis(args.overload_window);
        threads.push(
            overload::spawn(node.clone(), window).map_err(|e| format!("overload thread: {e}"))?,
        );
    }
    for (name, rx) in receivers {
        if let Some(spec) = specs.iter().find(|s| s.name == name) {
            threads.push(
                stage::spawn(node.clone(), spec.clone(), limits, rx)
                    .map_err(|e| format!("stage thread: {e}"))?,
            );
        } else if let Some(i) = services.iter().position(|(n, _)| *n == name) {
            let (_, built) = services.swap_remove(i);
            threads.push(
                service::spawn(node.clone(), name, built, rx)
                    .map_err(|e| format!("service thread: {e}"))?,
            );
        }
    }
    let signal = runtime.block_on(stage_proto::shutdown::quit_signal());
    log::info!("{signal}: stopping");
    // A stage stuck in a long callback must not keep the node from exiting: a second signal or
    // the grace period ends it.
    runtime.spawn(async {
        let again = stage_proto::shutdown::quit_signal().await;
        log::warn!("{again} again: exiting without waiting for the stages");
        std::process::exit(1);
    });
    std::thread::spawn(|| {
        std::thread::sleep(STOP_GRACE);
        log::error!("stages did not stop within {STOP_GRACE:?}; exiting");
        std::process::exit(1);
    });
    node.stop_all(signal);
    for t in threads {
        let _ = t.join();
    }
    runtime.shutdown_timeout(Duration::from_millis(500));
    Ok(())
}
