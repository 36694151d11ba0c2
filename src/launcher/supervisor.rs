//! Supervision of the cluster's child processes: routers start before nodes,
//! crashed children restart with backoff, and SIGINT / SIGTERM stop them all.
//!
//! Everything runs on the calling thread, polling children with `try_wait`
//! every [`POLL_INTERVAL`]; only output forwarding uses extra threads. This
//! keeps the state machine simple and lets the shutdown flag be checked
//! between polls, since a signal handler cannot safely do the work itself.

use std::io::Read;
use std::path::PathBuf;
use std::process::{self, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::output::{self, Sink};
use super::signals;
use super::topology::{Entry, Launch, Role, Topology};

const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A router prints a line containing this once it accepts connections.
const READY_MARKER: &str = "listening on";
/// Nodes start after this long even if some router never reported readiness.
const READY_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A child that ran this long is considered healthy: its next crash is
/// treated as a fresh one and restarts after [`FIRST_BACKOFF`] again.
const STABLE_UPTIME: Duration = Duration::from_secs(10);
/// How long children get to exit after SIGTERM before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a dead child's last output lines. Normally its pipes
/// close at once; they stay open only if it left a grandchild holding them.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(250);

/// How child processes are started.
struct Spawner {
    /// The `stage` executable, run as `stage router` / `stage node`.
    exe: PathBuf,
    /// Working directory of every child: the topology file's directory.
    dir: PathBuf,
    /// Exported as `RUST_LOG` to children when `stage run --log` was given.
    log_filter: Option<String>,
}

impl Spawner {
    fn command(&self, entry: &Entry) -> Command {
        let mut command = match &entry.launch {
            Launch::Stage(flags) => {
                let mut command = Command::new(&self.exe);
                command.arg(entry.role.subcommand()).args(flags);
                command
            }
            Launch::Command { program, args } => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
        };
        command
            .current_dir(&self.dir)
            // Children must not compete with each other for the terminal.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(filter) = &self.log_filter {
            command.env("RUST_LOG", filter);
        }
        stop_with_launcher(&mut command);
        // A process group of its own: Ctrl-C in a terminal signals the whole foreground group,
        // and a child that got SIGINT from the terminal and then the launcher's SIGTERM would
        // take the second as "stop now" and skip its clean shutdown. The launcher alone gets
        // the terminal's signals and stops every child once.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }
}

/// Asks Linux to SIGTERM the child if the launcher dies without stopping it
/// (e.g. SIGKILL), so no orphaned router keeps holding its port.
#[cfg(target_os = "linux")]
fn stop_with_launcher(command: &mut Command) {
    use std::os::unix::process::CommandExt;

    let launcher = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls, allocating nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The launcher may have died before prctl took effect.
            if u32::try_from(libc::getppid()) != Ok(launcher) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_launcher(_command: &mut Command) {}

/// A supervised child and where it is in its life cycle.
struct Slot {
    entry: Entry,
    state: State,
    /// Delay before the next restart; grows with consecutive crashes.
    backoff: Duration,
    /// Set once the child printed [`READY_MARKER`]; shared with its
    /// output forwarders.
    ready: Arc<AtomicBool>,
}

enum State {
    Running {
        process: process::Child,
        since: Instant,
        forwarders: Vec<JoinHandle<()>>,
    },
    /// Crashed (or failed to start); starts again at `at`.
    Restarting { at: Instant },
    /// Exited and will not be started again.
    Finished,
}

impl Slot {
    fn start(&mut self, spawner: &Spawner) {
        let name = &self.entry.name;
        let mut command = spawner.command(&self.entry);
        log::debug!("starting {name}: {command:?}");
        let mut process = match command.spawn() {
            Ok(process) => process,
            Err(e) => return self.restart_later(&format!("cannot start {name}: {e}"), None),
        };
        log::info!("started {name} (pid {})", process.id());
        let mut forwarders = Vec::new();
        if let Some(pipe) = process.stdout.take() {
            forwarders.push(self.forward(pipe, Sink::Stdout));
        }
        if let Some(pipe) = process.stderr.take() {
            forwarders.push(self.forward(pipe, Sink::Stderr));
        }
        self.state = State::Running {
            process,
            since: Instant::now(),
            forwarders,
        };
    }

    /// Forwards one of the child's pipes, watching it for [`READY_MARKER`].
    fn forward(&self, pipe: impl Read + Send + 'static, sink: Sink) -> JoinHandle<()> {
        let ready = Arc::clone(&self.ready);
        output::forward(&self.entry.name, pipe, sink, move |line| {
            if line.contains(READY_MARKER) {
                ready.store(true, Ordering::SeqCst);
            }
        })
    }

    /// Notices whether the child exited and decides what happens next.
    /// `stopping` suppresses restarts once shutdown has begun.
    fn reap(&mut self, stopping: bool) {
        let State::Running { process, since, .. } = &mut self.state else {
            return;
        };
        let uptime = since.elapsed();
        let outcome = match process.try_wait() {
            Ok(None) => return,
            Ok(Some(status)) => Outcome::Exited(status),
            // Cannot tell what happened to it; treating it as crashed
            // restarts it instead of leaving a hole in the cluster.
            Err(e) => Outcome::Unknown(e),
        };
        self.finish();
        let name = &self.entry.name;
        match outcome {
            Outcome::Exited(status) if stopping || status.success() => {
                let note = if stopping { "" } else { "; not restarting" };
                log::info!("{name} exited with {status}{note}");
            }
            Outcome::Exited(status) => {
                self.restart_later(&format!("{name} exited with {status}"), Some(uptime));
            }
            Outcome::Unknown(e) if stopping => log::warn!("cannot check on {name}: {e}"),
            Outcome::Unknown(e) => {
                self.restart_later(&format!("cannot check on {name}: {e}"), Some(uptime));
            }
        }
    }

    /// Marks the child finished, after letting its last output through.
    fn finish(&mut self) {
        if let State::Running { forwarders, .. } =
            std::mem::replace(&mut self.state, State::Finished)
        {
            let deadline = Instant::now() + DRAIN_TIMEOUT;
            while Instant::now() < deadline && !forwarders.iter().all(JoinHandle::is_finished) {
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Schedules a restart after the current backoff, then doubles it.
    /// `uptime` is how long the crashed child ran, if it ran at all.
    fn restart_later(&mut self, reason: &str, uptime: Option<Duration>) {
        if uptime.is_some_and(|uptime| uptime >= STABLE_UPTIME) {
            self.backoff = FIRST_BACKOFF;
        }
        let delay = self.backoff;
        self.backoff = (delay * 2).min(MAX_BACKOFF);
        log::warn!("{reason}; restarting in {}s", delay.as_secs());
        self.state = State::Restarting {
            at: Instant::now() + delay,
        };
    }

    fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }
}

enum Outcome {
    Exited(ExitStatus),
    Unknown(std::io::Error),
}

/// Runs a whole topology until every child is gone or a signal arrives.
pub struct Supervisor {
    spawner: Spawner,
    slots: Vec<Slot>,
}

impl Supervisor {
    /// `exe` is the `stage` executable; `log_filter`, if any, becomes the
    /// children's `RUST_LOG`.
    pub fn new(topology: Topology, exe: PathBuf, log_filter: Option<String>) -> Self {
        let slots = topology
            .entries
            .into_iter()
            .map(|entry| Slot {
                entry,
                state: State::Finished,
                backoff: FIRST_BACKOFF,
                ready: Arc::new(AtomicBool::new(false)),
            })
            .collect();
        Supervisor {
            spawner: Spawner {
                exe,
                dir: topology.dir,
                log_filter,
            },
            slots,
        }
    }

    /// Starts the cluster and supervises it; returns the exit code.
    pub fn run(mut self) -> i32 {
        // Routers first, so nodes find them listening when they connect.
        self.start(Role::Router);
        if self.wait_for_routers() {
            self.start(Role::Node);
            while !signals::shutdown_requested() {
                self.poll();
                if self
                    .slots
                    .iter()
                    .all(|s| matches!(s.state, State::Finished))
                {
                    log::info!("all children exited");
                    return 0;
                }
                thread::sleep(POLL_INTERVAL);
            }
        }
        self.shutdown()
    }

    fn start(&mut self, role: Role) {
        for slot in self.slots.iter_mut().filter(|s| s.entry.role == role) {
            slot.start(&self.spawner);
        }
    }

    /// Waits until every router still alive printed [`READY_MARKER`], or
    /// [`READY_TIMEOUT`] passed. Returns false if a shutdown was requested.
    fn wait_for_routers(&mut self) -> bool {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !signals::shutdown_requested() {
            self.poll();
            // A router that exited for good will never become ready.
            let pending: Vec<&str> = self
                .slots
                .iter()
                .filter(|s| s.entry.role == Role::Router)
                .filter(|s| !matches!(s.state, State::Finished))
                .filter(|s| !s.ready.load(Ordering::SeqCst))
                .map(|s| s.entry.name.as_str())
                .collect();
            if pending.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                log::warn!(
                    "{} did not report \"{READY_MARKER}\" within {}s; starting nodes anyway",
                    pending.join(", "),
                    READY_TIMEOUT.as_secs()
                );
                return true;
            }
            thread::sleep(POLL_INTERVAL);
        }
        false
    }

    /// Reaps exited children and starts those whose restart is due.
    fn poll(&mut self) {
        let stopping = signals::shutdown_requested();
        let now = Instant::now();
        for slot in &mut self.slots {
            slot.reap(stopping);
            if !stopping && matches!(slot.state, State::Restarting { at } if at <= now) {
                slot.start(&self.spawner);
            }
        }
    }

    /// Sends SIGTERM to every child, kills those still alive after
    /// [`STOP_TIMEOUT`], and returns the exit code.
    fn shutdown(mut self) -> i32 {
        log::info!("stopping");
        for slot in &mut self.slots {
            match &slot.state {
                State::Running { process, .. } => terminate(process),
                State::Restarting { .. } => slot.state = State::Finished,
                State::Finished => {}
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.slots.iter().any(Slot::is_running) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
            for slot in &mut self.slots {
                slot.reap(true);
            }
        }
        for slot in self.slots.iter_mut().filter(|s| s.is_running()) {
            if let State::Running { process, .. } = &mut slot.state {
                log::warn!(
                    "{} still running after {}s; killing it",
                    slot.entry.name,
                    STOP_TIMEOUT.as_secs()
                );
                // Errors mean it is already gone, which is what we want.
                let _ = process.kill();
                let _ = process.wait();
            }
            slot.finish();
        }
        log::info!("stopped");
        0
    }
}

/// Politely asks a child to exit.
fn terminate(process: &process::Child) {
    // A pid always fits in pid_t; a failed conversion would mean there is
    // no such process to signal.
    if let Ok(pid) = libc::pid_t::try_from(process.id()) {
        // SAFETY: kill has no memory-safety preconditions. The child is not
        // reaped yet, so its pid cannot have been reused by another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}
