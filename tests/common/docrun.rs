//! Running what a document shows: its `cargo run -- ARGS` lines as the built `stage` binary
//! (what cargo runs), and its Lua files saved where their first line says.

use super::markdown::{root, Block};
use super::Proc;
use std::path::{Path, PathBuf};

/// One `cargo run -- ARGS` line of a shell block.
#[derive(Debug, Clone)]
pub struct CargoRun {
    /// ARGS, split on whitespace.
    pub args: Vec<String>,
    /// Whether the line ends with `&` (started in the background).
    pub background: bool,
}

/// The `cargo run -- ARGS` lines of `block`; panics on any other line, naming the block.
pub fn cargo_runs(block: &Block) -> Vec<CargoRun> {
    block
        .code
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let rest = line.strip_prefix("cargo run -- ").unwrap_or_else(|| {
                panic!(
                    "{}:{}: not a `cargo run -- ` line: {line}",
                    block.doc, block.line
                )
            });
            let (rest, background) = match rest.strip_suffix('&') {
                Some(r) => (r, true),
                None => (rest, false),
            };
            CargoRun {
                args: rest.split_whitespace().map(str::to_owned).collect(),
                background,
            }
        })
        .collect()
}

/// The one `cargo run -- ARGS` line of `block`.
pub fn cargo_run(block: &Block) -> CargoRun {
    let mut runs = cargo_runs(block);
    assert_eq!(runs.len(), 1, "{}:{}: one command", block.doc, block.line);
    runs.remove(0)
}

/// The path a Lua block names on its first line (`-- PATH`).
pub fn file_of(block: &Block) -> &str {
    let first = block.code.lines().next().unwrap_or_default();
    first.strip_prefix("-- ").unwrap_or_else(|| {
        panic!(
            "{}:{}: the first line should be `-- PATH`, not {first:?}",
            block.doc, block.line
        )
    })
}

/// Saves a Lua block in `dir` where its first line (`-- PATH`) says, creating directories;
/// returns the path.
pub fn save(block: &Block, dir: &Path) -> PathBuf {
    let path = dir.join(file_of(block));
    std::fs::create_dir_all(path.parent().expect("a file in a directory"))
        .expect("create the documented file's directory");
    std::fs::write(&path, &block.code).expect("save a documented file");
    path
}

/// Runs a shell line with `sh -c` in `cwd`, as a reader would type it; panics with its output
/// unless it succeeds.
pub fn sh(line: &str, cwd: &Path) {
    let out = std::process::Command::new("sh")
        .args(["-c", line])
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("sh -c {line:?}: {e}"));
    assert!(
        out.status.success(),
        "`{line}` failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Proc {
    /// Runs `cargo run -- ARGS` as the built `stage` binary with ARGS in `cwd`, each argument
    /// with the `(from, to)` replacements applied (ports moved to free ones).
    pub fn cargo_run(
        run: &CargoRun,
        cwd: &Path,
        replace: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Proc {
        let args: Vec<String> = run
            .args
            .iter()
            .map(|a| replace.iter().fold(a.clone(), |a, (f, t)| a.replace(f, t)))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn_env("stage", env!("CARGO_BIN_EXE_stage"), &args, cwd, env)
    }

    /// Saves a Lua block where its first line says and starts a standalone node hosting it as
    /// the stage named after the file (`--stage hello=hello.lua`), in `dir`.
    pub fn standalone(block: &Block, dir: &Path) -> Proc {
        let path = save(block, dir);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a file name");
        let stage = format!("{stem}={}", file_of(block));
        Proc::node(stem, &["--stage", &stage], dir)
    }

    /// Runs the `cargo run -- ARGS` block `name` of `doc` from the repository root with extra
    /// environment variables (the cluster examples take their ports from them).
    pub fn documented(doc: &str, name: &str, env: &[(&str, &str)]) -> Proc {
        let run = cargo_run(&super::markdown::example(doc, name));
        Proc::cargo_run(&run, &root(), &[], env)
    }
}

impl Proc {
    /// Starts `program args` in `cwd` with a pipe to its stdin, for [`Proc::type_line`].
    pub fn spawn_typed(name: &str, program: &str, args: &[&str], cwd: &Path) -> Proc {
        let mut cmd = std::process::Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::piped());
        Proc::start(name, &mut cmd)
    }

    /// Writes `line` and a newline to the process's stdin (started by [`Proc::spawn_typed`]).
    pub fn type_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self
            .child
            .stdin
            .as_mut()
            .expect("started with a stdin pipe");
        writeln!(stdin, "{line}").unwrap_or_else(|e| panic!("{}: stdin: {e}", self.name));
    }
}

impl Proc {
    /// Starts `program args` in `cwd` the way a shell starts a foreground job: in a process
    /// group of its own, which [`Proc::ctrl_c`] signals as a whole.
    pub fn spawn_job(
        name: &str,
        program: &str,
        args: &[&str],
        cwd: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        use std::os::unix::process::CommandExt;
        let mut cmd = Proc::command(program, args, cwd, env);
        Proc::start(name, cmd.process_group(0))
    }

    /// Ctrl-C in a terminal: SIGINT to every process of the job's group (started by
    /// [`Proc::spawn_job`]), not only to its leader; asserts the leader exits with status 0
    /// within 10 s.
    pub fn ctrl_c(&mut self) {
        unsafe { libc::kill(-self.pid(), libc::SIGINT) };
        self.assert_clean_exit("Ctrl-C");
    }
}

/// Runs the Lua example `name` of `doc` on a standalone node in a scratch directory and waits
/// for the output the document shows after it.
pub fn run_standalone(doc: &str, name: &str) {
    let dir = super::Scratch::new(name);
    let block = super::markdown::example(doc, name);
    let node = Proc::standalone(&block, &dir.dir);
    node.wait_lines(&block.output_lines(), super::WAIT);
}
