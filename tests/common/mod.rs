//! Harness for integration tests: real `stage-router` / `stage-node` processes on 127.0.0.1,
//! their output collected line by line, killed when the test ends (pass or fail).
#![allow(dead_code)] // each test binary uses its own subset of the harness

pub mod docrun;
pub mod markdown;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default bound for waiting on a line.
pub const WAIT: Duration = Duration::from_secs(15);

/// A scratch directory for scripts and secrets, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("stage-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        Scratch { dir }
    }

    /// Writes `name` with `content`; returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Default)]
struct Lines {
    out: Vec<String>,
    err: Vec<String>,
    closed: usize,
}

/// A child process whose stdout and stderr lines are collected.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Arc<(Mutex<Lines>, Condvar)>,
}

impl Proc {
    /// Starts `bin` with `args` in `cwd`.
    pub fn spawn(name: &str, bin: &str, args: &[&str], cwd: &Path) -> Proc {
        Proc::spawn_env(name, bin, args, cwd, &[])
    }

    /// Starts `bin` with `args` in `cwd`, with extra environment variables.
    pub fn spawn_env(
        name: &str,
        bin: &str,
        args: &[&str],
        cwd: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        Proc::start(name, &mut Proc::command(bin, args, cwd, env))
    }

    /// The command that runs `bin` with `args` in `cwd` and `env`, stdin closed.
    fn command(bin: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .envs(env.iter().copied())
            .current_dir(cwd)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `cmd` with its stdout and stderr collected (stdin as `cmd` says).
    fn start(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let lines: Arc<(Mutex<Lines>, Condvar)> = Arc::default();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, is_err) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, false),
            (Box::new(err), true),
        ] {
            let lines = lines.clone();
            let tag = name.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if std::env::var_os("STAGE_TEST_ECHO").is_some() {
                        eprintln!("[{tag}] {line}");
                    }
                    let (m, cv) = &*lines;
                    let mut l = m.lock().unwrap();
                    if is_err {
                        l.err.push(line)
                    } else {
                        l.out.push(line)
                    }
                    cv.notify_all();
                }
                let (m, cv) = &*lines;
                m.lock().unwrap().closed += 1;
                cv.notify_all();
            });
        }
        Proc {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// Starts a router on an ephemeral loopback port; returns it and its address.
    pub fn router(name: &str, extra: &[&str], cwd: &Path) -> (Proc, String) {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let p = Proc::spawn(name, env!("CARGO_BIN_EXE_stage-router"), &args, cwd);
        let line = p.wait_err("listening on ", WAIT);
        let addr = line
            .rsplit("listening on ")
            .next()
            .unwrap()
            .trim()
            .to_owned();
        (p, addr)
    }

    /// The address of the process's `--http` endpoint (from its "http on ADDR" line).
    pub fn http_addr(&self) -> String {
        self.wait_err("http on ", WAIT)
            .rsplit("http on ")
            .next()
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Starts a node.
    pub fn node(name: &str, args: &[&str], cwd: &Path) -> Proc {
        Proc::spawn(name, env!("CARGO_BIN_EXE_stage-node"), args, cwd)
    }

    fn wait_for(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&Lines) -> Option<String>,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.lines;
        let mut l = m.lock().unwrap();
        loop {
            if let Some(s) = found(&l) {
                return Some(s);
            }
            let now = Instant::now();
            if now >= deadline || l.closed == 2 {
                return found(&l);
            }
            l = cv.wait_timeout(l, deadline - now).unwrap().0;
        }
    }

    /// Waits for a stdout line containing `needle`; panics with the output on timeout.
    pub fn wait_out(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for(timeout, |l| {
            l.out.iter().find(|s| s.contains(needle)).cloned()
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: no stdout line with {needle:?} within {timeout:?}\n{}",
                self.name,
                self.dump()
            )
        })
    }

    /// Waits for a stderr (log) line containing `needle`.
    pub fn wait_err(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for(timeout, |l| {
            l.err.iter().find(|s| s.contains(needle)).cloned()
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: no log line with {needle:?} within {timeout:?}\n{}",
                self.name,
                self.dump()
            )
        })
    }

    /// Waits until stdout holds `expected` in order (each an exact line, others may come
    /// between): a documented example's `text output`. Panics with the output on timeout.
    pub fn wait_lines(&self, expected: &[String], timeout: Duration) {
        let seen = self.wait_for(timeout, |l| {
            markdown::in_order(&l.out, expected).then(String::new)
        });
        assert!(
            seen.is_some(),
            "{}: stdout lacks, in this order, within {timeout:?}:\n  {}\n{}",
            self.name,
            expected.join("\n  "),
            self.dump()
        );
    }

    /// Waits until at least `n` stdout lines start with `prefix`; returns them.
    pub fn wait_count(&self, prefix: &str, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_matching(|l| &l.out, |s| s.starts_with(prefix), prefix, n, timeout)
    }

    /// Waits until at least `n` stderr (log) lines contain `needle`; returns them.
    pub fn wait_count_err(&self, needle: &str, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_matching(|l| &l.err, |s| s.contains(needle), needle, n, timeout)
    }

    fn wait_matching(
        &self,
        stream: impl Fn(&Lines) -> &Vec<String>,
        matches: impl Fn(&str) -> bool,
        what: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let mut got = Vec::new();
        self.wait_for(timeout, |l| {
            got = stream(l).iter().filter(|s| matches(s)).cloned().collect();
            (got.len() >= n).then(String::new)
        });
        assert!(
            got.len() >= n,
            "{}: {} of {n} lines {what:?} within {timeout:?}\n{}",
            self.name,
            got.len(),
            self.dump()
        );
        got
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().out.clone()
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().err.clone()
    }

    pub fn dump(&self) -> String {
        let l = self.lines.0.lock().unwrap();
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            l.out.join("\n"),
            l.err.join("\n")
        )
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// kill -9, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops a launcher with SIGINT and asserts it exits cleanly (status 0) within 10 s.
    pub fn stop_cleanly(&mut self) {
        self.signal(libc::SIGINT);
        self.assert_clean_exit("SIGINT");
    }

    /// Asserts the process exits with status 0 within 10 s of `what` (a signal sent to it).
    pub fn assert_clean_exit(&mut self, what: &str) {
        let status = self.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
            panic!("{}: still running after {what}\n{}", self.name, self.dump())
        });
        assert!(status.success(), "exit status {status}\n{}", self.dump());
    }

    /// Waits for the process to exit within `timeout`; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A loopback port that was free a moment ago (for programs that need a fixed port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr` (HTTP/1.1, one request): the status line and the whole response.
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the http endpoint");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let status = response.lines().next().unwrap_or_default().to_owned();
    (status, response)
}

/// Replaces `path` with `code` in one step (write a temporary file, rename it over), with an
/// mtime two seconds after the old one so the change is seen even when the size is the same
/// and the file system's timestamps are coarse.
pub fn rewrite(path: &Path, code: &str) {
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("old mtime");
    let tmp = path.with_extension("lua.new");
    std::fs::write(&tmp, code).expect("write the new version");
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_modified(old + Duration::from_secs(2)))
        .expect("set the new version's mtime");
    std::fs::rename(&tmp, path).expect("replace the script");
}
