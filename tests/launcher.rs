//! End-to-end tests of `stage run`. The children are `/bin/sh` scripts given
//! through the topology's `command` key, so output prefixing, restarts and
//! shutdown are tested independently of the real router and node.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A temporary directory holding `topology.lua`, removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(tag: &str, topology: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "stage-launcher-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        std::fs::write(dir.join("topology.lua"), topology).expect("write topology");
        Scratch { dir }
    }

    fn topology(&self) -> PathBuf {
        self.dir.join("topology.lua")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A running `stage run`, stopped on drop so a failing test leaves no
/// processes behind.
struct Launcher {
    child: Child,
    lines: Receiver<(Stream, String)>,
    /// Every line received so far, in arrival order.
    seen: Vec<(Stream, String)>,
}

impl Launcher {
    fn start(topology: &Path) -> Launcher {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stage"))
            .arg("run")
            .arg(topology)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stage run");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        read_lines(stdout, Stream::Stdout, sender.clone());
        read_lines(stderr, Stream::Stderr, sender);
        Launcher {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to `timeout` for a line on `stream` containing `needle`.
    fn expect_line(&mut self, stream: Stream, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.0 == stream && line.1.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no {stream:?} line containing {needle:?} within {timeout:?}; got {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits up to `timeout` for the launcher to exit, then collects the
    /// rest of its output.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll stage run") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "stage run still running after {timeout:?}; output {:#?}",
                self.seen
            );
            thread::sleep(Duration::from_millis(20));
        };
        // The pipes close once the launcher is gone; a short bound covers
        // any child that might still hold them.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        status
    }

    fn signal(&self, signal: libc::c_int) {
        assert!(send_signal(&self.child, signal), "signal stage run");
    }

    fn lines_on(&self, stream: Stream) -> Vec<&str> {
        self.seen
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, line)| line.as_str())
            .collect()
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first so the launcher stops its children too. No
            // asserts here: a panic while already panicking aborts.
            send_signal(&self.child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_lines(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    sender: mpsc::Sender<(Stream, String)>,
) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if sender.send((stream, line)).is_err() {
                break;
            }
        }
    });
}

/// Sends `signal` to `child`; false if that failed.
fn send_signal(child: &Child, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return false;
    };
    // SAFETY: plain kill(2) on our own child, which is not reaped yet.
    unsafe { libc::kill(pid, signal) == 0 }
}

fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Extracts the number after `marker` in `line`.
fn number_after(line: &str, marker: &str) -> libc::pid_t {
    let (_, rest) = line.split_once(marker).expect("marker present");
    rest.trim().parse().expect("a pid")
}

#[test]
fn child_output_is_prefixed_and_kept_on_its_stream() {
    let scratch = Scratch::new(
        "prefix",
        r#"return { nodes = { {
            name = "talker",
            command = { "/bin/sh", "-c", "echo out-line; echo err-line >&2; pwd" },
        } } }"#,
    );
    let mut launcher = Launcher::start(&scratch.topology());
    let status = launcher.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "output {:#?}", launcher.seen);

    let stdout = launcher.lines_on(Stream::Stdout);
    let stderr = launcher.lines_on(Stream::Stderr);
    let dir = scratch.dir.canonicalize().expect("canonical scratch dir");
    assert_eq!(
        stdout,
        [
            "[talker] out-line".to_string(),
            format!("[talker] {}", dir.display())
        ],
        "stdout lines, the second from `pwd` in the topology's directory"
    );
    assert!(stderr.contains(&"[talker] err-line"), "stderr {stderr:#?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("[stage] started talker (pid ")),
        "stderr {stderr:#?}"
    );
    assert!(
        stderr.contains(&"[stage] talker exited with exit status: 0; not restarting"),
        "stderr {stderr:#?}"
    );
}

#[test]
fn crashed_child_is_restarted() {
    let scratch = Scratch::new(
        "restart",
        r#"return { nodes = { {
            name = "flaky",
            command = { "/bin/sh", "-c", "echo attempt; exit 1" },
        } } }"#,
    );
    let mut launcher = Launcher::start(&scratch.topology());
    let timeout = Duration::from_secs(10);
    launcher.expect_line(Stream::Stdout, "[flaky] attempt", timeout);
    launcher.expect_line(
        Stream::Stderr,
        "[stage] flaky exited with exit status: 1; restarting in 1s",
        timeout,
    );
    launcher.expect_line(Stream::Stdout, "[flaky] attempt", timeout);
    launcher.expect_line(
        Stream::Stderr,
        "[stage] flaky exited with exit status: 1; restarting in 2s",
        timeout,
    );

    launcher.signal(libc::SIGTERM);
    let status = launcher.wait(timeout);
    assert_eq!(status.code(), Some(0), "output {:#?}", launcher.seen);
}

#[test]
fn sigint_stops_children_after_routers_are_ready() {
    let scratch = Scratch::new(
        "sigint",
        r#"return {
          routers = { {
            name = "hub",
            command = { "/bin/sh", "-c", "echo listening on pid $$; exec sleep 30" },
          } },
          nodes = { {
            name = "worker",
            command = { "/bin/sh", "-c", "echo worker pid $$; exec sleep 30" },
          } },
        }"#,
    );
    let mut launcher = Launcher::start(&scratch.topology());
    let timeout = Duration::from_secs(10);
    launcher.expect_line(Stream::Stdout, "[worker] worker pid", timeout);
    let stdout = launcher.lines_on(Stream::Stdout);
    assert!(
        stdout[0].starts_with("[hub] listening on pid"),
        "the node starts after its router is listening: {stdout:#?}"
    );
    let hub = number_after(stdout[0], "pid");
    let worker = number_after(stdout[1], "pid");

    let asked = Instant::now();
    launcher.signal(libc::SIGINT);
    let status = launcher.wait(timeout);
    assert_eq!(status.code(), Some(0), "output {:#?}", launcher.seen);
    assert!(asked.elapsed() < timeout);
    let stderr = launcher.lines_on(Stream::Stderr);
    assert_eq!(
        stderr.last(),
        Some(&"[stage] stopped"),
        "stderr {stderr:#?}"
    );
    assert!(
        !stderr.iter().any(|l| l.contains("restarting")),
        "nothing restarts during shutdown: {stderr:#?}"
    );
    assert!(!process_exists(hub), "router process {hub} survived");
    assert!(!process_exists(worker), "node process {worker} survived");
}

#[test]
fn bad_topology_exits_2_naming_the_problem() {
    let cases = [
        (
            r#"return { nodes = { { name = "a", command = { "true" } } }, servers = {} }"#,
            "unknown top-level key `servers`; the valid keys are `routers` and `nodes`",
        ),
        (
            r#"return { nodes = { { name = "a" }, { name = "b", stage = 5 } } }"#,
            "nodes[2].stage must be a table of NAME = SCRIPT, got number",
        ),
        ("return {", "syntax error"),
    ];
    for (source, expected) in cases {
        let scratch = Scratch::new("bad", source);
        let mut launcher = Launcher::start(&scratch.topology());
        let status = launcher.wait(Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "for {source}: {:#?}", launcher.seen);
        let stderr = launcher.lines_on(Stream::Stderr);
        let expected_start = format!("[stage] topology {}: ", scratch.topology().display());
        assert!(
            stderr
                .iter()
                .any(|l| l.starts_with(&expected_start) && l.contains(expected)),
            "for {source}: stderr {stderr:#?} lacks {expected:?}"
        );
        assert!(launcher.lines_on(Stream::Stdout).is_empty());
    }
}
