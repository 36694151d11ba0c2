//! The processes a workload starts: stage binaries beside `stage-bench`, and peers such as
//! `redis-server`; their output lines arrive on a channel, and they are killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A child process whose stdout (or stderr) lines arrive on a channel; killed when dropped.
pub struct Process {
    pub child: Child,
    lines: Receiver<String>,
}

impl Drop for Process {
    /// Asks the process to stop (SIGTERM), so a server run under a profiler writes its
    /// profile, and kills it if it has not exited within a few seconds.
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stage binary next to `stage-bench`.
pub fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let path = exe.with_file_name(name);
    path.is_file().then_some(path.clone()).ok_or_else(|| {
        format!(
            "{} not found next to stage-bench: build it with `cargo build --release --bins`",
            path.display()
        )
    })
}

/// Starts `program` in `dir`, reading the lines of its stdout, or its stderr.
pub fn spawn(
    program: &Path,
    args: &[&str],
    dir: &Path,
    from_stderr: bool,
) -> Result<Process, String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {}: {e}", program.display()))?;
    let (tx, lines) = channel();
    let out: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(child.stderr.take().expect("piped"))
    } else {
        Box::new(child.stdout.take().expect("piped"))
    };
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(Process { child, lines })
}

/// Starts a stage binary (`stage-router`, `stage-node`).
pub fn stage(bin: &str, args: &[&str], dir: &Path, from_stderr: bool) -> Result<Process, String> {
    spawn(&sibling(bin)?, args, dir, from_stderr)
}

/// Waits for the first line that `pred` accepts.
pub fn wait_line(
    c: &Process,
    deadline: Instant,
    pred: impl Fn(&str) -> bool,
) -> Result<String, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.lines.recv_timeout(left) {
            Ok(l) if pred(&l) => return Ok(l),
            Ok(_) => {}
            Err(_) => return Err("timed out waiting for a line".into()),
        }
    }
}

/// Starts a router on an ephemeral loopback port; returns it and its address.
pub fn router(extra: &[&str], dir: &Path, deadline: Instant) -> Result<(Process, String), String> {
    let mut args = vec!["--listen", "127.0.0.1:0", "--log", "info"];
    args.extend_from_slice(extra);
    let router = stage("stage-router", &args, dir, true)?;
    let line = wait_line(&router, deadline, |l| l.contains("listening on "))?;
    let addr = line
        .rsplit("listening on ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok((router, addr))
}

/// A scratch directory for one workload's scripts and files, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("stage-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }

    pub fn write(&self, name: &str, content: &str) -> Result<(), String> {
        std::fs::write(self.0.join(name), content).map_err(|e| format!("{name}: {e}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Milliseconds since the Unix epoch (the clock of `thread.tick` in scripts).
pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A free loopback port (for peers that cannot report an ephemeral one).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

/// The median of `samples` (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}
