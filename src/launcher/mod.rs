//! `stage run`: starts the routers and nodes of a topology file as child
//! processes, prefixes their output with their names, restarts them when
//! they crash and stops them all on SIGINT / SIGTERM.

mod output;
mod signals;
mod supervisor;
mod topology;

use std::io::Write;
use std::path::Path;

use log::LevelFilter;

use supervisor::Supervisor;

/// Exit code for an unusable topology file, like clap's usage errors.
const EXIT_BAD_TOPOLOGY: i32 = 2;
/// Exit code when the launcher itself cannot work (no children started).
const EXIT_LAUNCHER_FAILURE: i32 = 1;

/// Runs the cluster described by the topology file at `path`; returns the
/// process exit code. `log`, when given, sets the launcher's verbosity and
/// is exported to the children as `RUST_LOG`.
pub fn run(path: &Path, log: Option<LevelFilter>) -> i32 {
    init_logging(log.unwrap_or(LevelFilter::Info));
    let topology = match topology::load(path) {
        Ok(topology) => topology,
        Err(e) => {
            log::error!("{e}");
            return EXIT_BAD_TOPOLOGY;
        }
    };
    // Children run `stage router` / `stage node` through this executable,
    // so `cargo run -- run FILE` works without the other binaries built.
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            log::error!("cannot locate the stage executable to start children with: {e}");
            return EXIT_LAUNCHER_FAILURE;
        }
    };
    if let Err(e) = signals::install() {
        log::error!("cannot install SIGINT/SIGTERM handlers: {e}");
        return EXIT_LAUNCHER_FAILURE;
    }
    if let Some(url) = topology.status_url() {
        log::info!("status page: {url}");
    }
    let child_filter = log.map(|level| level.as_str().to_ascii_lowercase());
    Supervisor::new(topology, exe, child_filter).run()
}

/// The launcher's own messages are log records printed as `[stage] ...` on
/// stderr, matching the `[name] ...` prefix of child output. `RUST_LOG` is
/// deliberately not read: it is meant for the children, and a filter such as
/// `stage_node=debug` would silence the launcher entirely.
fn init_logging(level: LevelFilter) {
    env_logger::Builder::new()
        .filter_level(level)
        .format(|buf, record| writeln!(buf, "[stage] {}", record.args()))
        .init();
}
