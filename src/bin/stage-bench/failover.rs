//! `failover` — master/slave fail-over: a driver sends a request every millisecond to a class
//! in master mode; the master is killed with SIGKILL (`failover_ms`: from the kill to the first
//! answer from the next master), or frozen with SIGSTOP (`frozen_ms`: the same, which the
//! heartbeat window bounds). Medians over `--runs`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::procs::{self, median, now_ms, wait_line, Scratch};
use crate::Args;

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
fn once(dir: &Path, signal: i32, deadline: Instant) -> Result<f64, String> {
    let (router, addr) = procs::router(&["--mode", "m=master"], dir, deadline)?;
    let node = |stage: &str, id: &str| {
        procs::stage(
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
    for _ in 0..2 {
        wait_line(&router, deadline, |l| l.contains("registered m:"))?;
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

pub fn run(args: &Args) -> Result<(), String> {
    let dir = Scratch::new("failover")?;
    dir.write("member.lua", MEMBER)?;
    dir.write("driver.lua", DRIVER)?;
    let measure = |signal: i32, what: &str| -> Result<f64, String> {
        let mut samples = Vec::new();
        for run in 0..args.runs {
            let deadline = Instant::now() + Duration::from_secs(args.timeout);
            let ms =
                once(&dir.0, signal, deadline).map_err(|e| format!("{what} run {run}: {e}"))?;
            eprintln!("{what} run {run}: {ms} ms");
            samples.push(ms);
        }
        Ok(median(&mut samples))
    };
    let killed = measure(libc::SIGKILL, "killed master")?;
    let frozen = measure(libc::SIGSTOP, "frozen master")?;
    println!(
        "RESULT workload=failover_master peer=stage failover_ms={killed:.1} frozen_ms={frozen:.1} runs={}",
        args.runs
    );
    Ok(())
}
