//! `node_idle`: the resident memory of a standalone node running one trivial stage, once it
//! has settled (2 s after its script ran). Goal: at most 16 MB.

use std::time::Duration;

use crate::procs::{self, Scratch};
use crate::report::Line;
use crate::sys::rss_kb;
use crate::Args;

use super::{deadline, repeat, script, Report};

const SETTLE: Duration = Duration::from_secs(2);

const TRIVIAL: &str = r#"
stage.waitfor("ping", function(v) return v end)
report("READY", {})
"#;

pub fn run(args: &Args) -> Result<(), String> {
    let dir = Scratch::new("node")?;
    dir.write("main.lua", &script(TRIVIAL))?;
    repeat(args, || {
        let node = procs::stage("stage-node", &["--stage", "main=main.lua"], &dir.0, false)?;
        Report::wait(&node, "READY", deadline(args))?;
        std::thread::sleep(SETTLE);
        Ok(vec![Line::result("node_idle", "stage")
            .num("node_rss_kb", rss_kb(node.child.id())? as f64)
            .num("threads", threads(node.child.id()) as f64)])
    })
}

/// The number of threads of `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}
