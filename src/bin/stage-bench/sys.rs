//! What the operating system says about processes: resident memory, on-CPU time from
//! `/proc/<pid>/task/*/schedstat` (exact, unlike the tick-sampled utime/stime), the machine's
//! busy time for the noise fields of a RESULT line, and CPU pinning.

use std::time::Instant;

/// `VmRSS` of `pid`, in KiB.
pub fn rss_kb(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS for {pid}"))
}

/// Nanoseconds every thread of `pid` has spent on a CPU (threads that exited are not counted:
/// the stage and peer servers keep theirs).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Every process's on-CPU time, and the machine's busy and total time, at one moment.
pub struct Machine {
    at: Instant,
    /// Sum of every task's schedstat, ns.
    tasks_ns: u64,
    /// Busy time from `/proc/stat` (all but idle and iowait), ns.
    busy_ns: u64,
    cpus: u32,
}

/// The two noise fields of a RESULT line.
pub struct Noise {
    /// CPU of processes other than the client and the servers, as a share of the machine.
    pub foreign_pct: f64,
    /// Busy time attributed to no process (interrupts, softirqs, processes that exited).
    pub kernel_other_pct: f64,
}

impl Machine {
    pub fn now() -> Machine {
        let tasks_ns = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .map(cpu_ns)
            .sum();
        let (busy_ns, cpus) = proc_stat();
        Machine {
            at: Instant::now(),
            tasks_ns,
            busy_ns,
            cpus,
        }
    }

    /// The noise between `self` and `later`, given the CPU the measured processes used.
    pub fn noise(&self, later: &Machine, measured_ns: u64) -> Noise {
        let capacity = later.at.duration_since(self.at).as_nanos() as f64 * self.cpus.max(1) as f64;
        let tasks = later.tasks_ns.saturating_sub(self.tasks_ns);
        let busy = later.busy_ns.saturating_sub(self.busy_ns);
        Noise {
            foreign_pct: 100.0 * tasks.saturating_sub(measured_ns) as f64 / capacity,
            kernel_other_pct: 100.0 * busy.saturating_sub(tasks) as f64 / capacity,
        }
    }
}

/// Busy nanoseconds of all CPUs together and the number of CPUs, from `/proc/stat`.
fn proc_stat() -> (u64, u32) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let tick_ns = 1_000_000_000 / clock_ticks();
    let mut busy = 0;
    let mut cpus = 0;
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal ...
                busy = v
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
                    .map(|(_, x)| x)
                    .sum::<u64>()
                    * tick_ns;
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (busy, cpus)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Pins every thread of `pid` (0: this process) to `cpu`, or lets them run anywhere again
/// (`None`). Threads created later inherit the mask of the thread that creates them, so pinning
/// a process before it starts its runtime pins all of it.
pub fn pin(pid: u32, cpu: Option<usize>) -> Result<(), String> {
    let dir = if pid == 0 {
        "/proc/self/task".to_owned()
    } else {
        format!("/proc/{pid}/task")
    };
    let tasks: Vec<i32> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect();
    for tid in tasks {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within it.
        let ok = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            match cpu {
                Some(c) => libc::CPU_SET(c, &mut set),
                None => (0..libc::CPU_SETSIZE as usize).for_each(|c| libc::CPU_SET(c, &mut set)),
            }
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        };
        // A thread may exit between listing and pinning.
        if !ok && std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH) {
            return Err(format!(
                "pin task {tid} to {cpu:?}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The CPU model from `/proc/cpuinfo`, for the header of a report.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into())
}
