//! `stage-bench`: measures stage on real processes and prints one `RESULT` line per workload
//! (the format of `../shared/bench/WORKLOADS.md`).
//!
//! Workloads so far:
//! * `failover` — master/slave fail-over: a driver sends a request every millisecond to a class
//!   in master mode; the master is killed with SIGKILL (`failover_ms`: from the kill to the
//!   first answer from the next master), or frozen with SIGSTOP (`frozen_ms`: the same, which
//!   the heartbeat window bounds). Medians over `--runs`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    Failover,
}

/// Benchmarks stage on real router and node processes on 127.0.0.1.
#[derive(Parser)]
#[command(
    name = "stage-bench",
    version,
    after_help = "Examples:\n  cargo build --release --bins && target/release/stage-bench failover --runs 5"
)]
struct Args {
    /// The workload to run.
    workload: Workload,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Time bound of one run, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// A child process whose stdout lines arrive on a channel; killed when dropped.
struct Child2 {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Child2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let path = exe.with_file_name(name);
    path.is_file().then_some(path.clone()).ok_or_else(|| {
        format!(
            "{} not found next to stage-bench: build it with `cargo build --release --bins`",
            path.display()
        )
    })
}

fn spawn(
    bin: &str,
    args: &[&str],
    dir: &std::path::Path,
    from_stderr: bool,
) -> Result<Child2, String> {
    let mut child = Command::new(sibling(bin)?)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {bin}: {e}"))?;
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
    Ok(Child2 { child, lines })
}

fn wait_line(c: &Child2, deadline: Instant, pred: impl Fn(&str) -> bool) -> Result<String, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.lines.recv_timeout(left) {
            Ok(l) if pred(&l) => return Ok(l),
            Ok(_) => {}
            Err(_) => return Err("timed out waiting for a line".into()),
        }
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

const MEMBER: &str = r#"stage.waitfor("q", function(n) return n, stage.id() end)"#;

const DRIVER: &str = r#"
local n = 0
stage.waitfor("a", function(k, who)
  if k ~= nil then print("ANS", who, math.floor(thread.tick * 1000)) end
end)
stage.addtask(1, function() n = n + 1; stage.signal({ "m:q=a", 1000 }, n) end)
"#;

/// One fail-over: milliseconds from stopping the master with `signal` (SIGKILL, SIGSTOP) to the
/// next master's first answer.
fn failover_once(dir: &std::path::Path, signal: i32, deadline: Instant) -> Result<f64, String> {
    let router = spawn(
        "stage-router",
        &[
            "--listen",
            "127.0.0.1:0",
            "--mode",
            "m=master",
            "--log",
            "info",
        ],
        dir,
        true,
    )?;
    let line = wait_line(&router, deadline, |l| l.contains("listening on "))?;
    let addr = line
        .rsplit("listening on ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let node = |stage: &str, id: &str| {
        spawn(
            "stage-node",
            &[
                "--router", &addr, "--stage", stage, "--id", id, "--log", "warn",
            ],
            dir,
            false,
        )
    };
    let first = node("m=member.lua", "1")?;
    let _second = node("m=member.lua", "2")?;
    // Both members, in whatever order they register.
    let mut registered = 0;
    while registered < 2 {
        wait_line(&router, deadline, |l| l.contains("registered m:"))?;
        registered += 1;
    }
    let driver = node("d=driver.lua", "9")?;
    wait_line(&driver, deadline, |l| l.starts_with("ANS\t1\t"))?;
    let killed = now_ms();
    // SAFETY: kill(2) on our own child's pid.
    if unsafe { libc::kill(first.child.id() as i32, signal) } != 0 {
        return Err(format!(
            "signal the master: {}",
            std::io::Error::last_os_error()
        ));
    }
    let line = wait_line(&driver, deadline, |l| l.starts_with("ANS\t2\t"))?;
    let answered: u128 = line
        .rsplit('\t')
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or("bad answer line")?;
    Ok(answered.saturating_sub(killed) as f64)
}

fn failover(args: &Args) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("stage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("member.lua"), MEMBER).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("driver.lua"), DRIVER).map_err(|e| e.to_string())?;
    let median = |signal: i32, what: &str| -> Result<f64, String> {
        let mut samples = Vec::new();
        for run in 0..args.runs {
            let deadline = Instant::now() + Duration::from_secs(args.timeout);
            let ms = failover_once(&dir, signal, deadline)
                .map_err(|e| format!("{what} run {run}: {e}"))?;
            eprintln!("{what} run {run}: {ms} ms");
            samples.push(ms);
        }
        samples.sort_by(f64::total_cmp);
        Ok(samples[samples.len() / 2])
    };
    let killed = median(libc::SIGKILL, "killed master")?;
    let frozen = median(libc::SIGSTOP, "frozen master")?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "RESULT workload=failover_master peer=stage failover_ms={killed:.1} frozen_ms={frozen:.1} runs={}",
        args.runs
    );
    Ok(())
}

fn main() {
    let args = Args::parse();
    let result = match args.workload {
        Workload::Failover => failover(&args),
    };
    if let Err(e) = result {
        eprintln!("FAIL {e}");
        std::process::exit(1);
    }
}
