//! The files of `"docs/deployment.md"`, run on loopback. The page's machines become one scratch
//! directory standing for the file system root, and its addresses loopback ports:
//!
//! - `"install"` and `"secret"` run with `sh -c` from this checkout: without `sudo` and
//!   `-o stage` (the test is not root), without `useradd`, and without `cargo build --release`
//!   (the binaries this test was built with stand in for `target/release/`); `/usr/local/bin`,
//!   `/etc/stage`, `/srv/stage` and `/var/lib/stage` are under the scratch root.
//! - The config files (`"router-config"`, `"alpha-config"`, `"beta-config"`) are saved where
//!   their first lines say, with `10.0.0.1:7400` / `10.0.0.2:7400` (and each router's
//!   `0.0.0.0:7400`) moved to free loopback ports and `/metrics` on port 0.
//! - The units (`"router-unit"`, `"node-unit"`) run as their `ExecStart` lines say, `%i` being
//!   the node's name, in the unit's `WorkingDirectory`.
//!
//! Two routers and the nodes `alpha` and `beta` come up and talk (alpha prints what the page
//! shows); a node with another secret is refused; the first router is killed and the hellos go
//! on through the second; SIGTERM (`systemctl stop`) stops a node with status 0.
//! `"staging-topology"` and `"staging-run"` run the one-machine layout with the launcher: hellos
//! through two routers with a secret, the first router killed, the hellos going on, the router
//! restarted.

mod common;
use common::docrun::{cargo_run, file_of, save, sh};
use common::markdown::{example, root, Block};
use common::{free_port, Proc, Scratch, WAIT};
use std::path::{Path, PathBuf};

const PAGE: &str = "docs/deployment.md";

/// The page's machine, under a scratch directory.
struct Machine {
    scratch: Scratch,
    /// `(page's text, the test's)`: paths under the scratch root, addresses on loopback.
    subst: Vec<(String, String)>,
}

impl Machine {
    fn new() -> Machine {
        let scratch = Scratch::new("deployment");
        let root = scratch
            .dir
            .to_str()
            .expect("a UTF-8 scratch path")
            .to_owned();
        std::fs::create_dir_all(scratch.dir.join("usr/local/bin")).unwrap();
        let bins = Path::new(env!("CARGO_BIN_EXE_stage-router"))
            .parent()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let a = format!("127.0.0.1:{}", free_port());
        let b = format!("127.0.0.1:{}", free_port());
        let mut subst = vec![
            ("sudo ".into(), String::new()),
            (" -o stage".into(), String::new()),
            ("target/release/".into(), format!("{bins}/")),
            ("10.0.0.1:7400".into(), a),
            ("10.0.0.2:7400".into(), b),
            ("127.0.0.1:9400".into(), "127.0.0.1:0".into()),
        ];
        for dir in [
            "/usr/local/bin",
            "/etc/stage",
            "/srv/stage",
            "/var/lib/stage",
        ] {
            subst.push((dir.into(), format!("{root}{dir}")));
        }
        Machine { scratch, subst }
    }

    fn apply(&self, text: &str) -> String {
        self.subst
            .iter()
            .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
    }

    /// Router `n`'s address (1 or 2, as 10.0.0.n on the page).
    fn router(&self, n: usize) -> String {
        self.apply(&format!("10.0.0.{n}:7400"))
    }

    /// Runs a shell block's lines as the module comment says.
    fn shell(&self, block: &Block) {
        for line in block.code.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line.starts_with("cargo build --release") || line.starts_with("sudo useradd") {
                continue;
            }
            sh(&self.apply(line), &root());
        }
    }

    /// Saves a config block where its first line says, with `extra` replacements; returns it.
    fn config(&self, name: &str, extra: &[(&str, &str)]) -> PathBuf {
        let block = example(PAGE, name);
        let path = PathBuf::from(self.apply(file_of(&block)));
        let code = extra
            .iter()
            .fold(self.apply(&block.code), |c, (f, t)| c.replace(f, t));
        std::fs::write(&path, code).expect("save a config file");
        path
    }

    /// Starts a unit's `ExecStart` (with `%i` = `instance`).
    fn unit(&self, name: &str, instance: &str) -> Proc {
        let block = example(PAGE, name);
        let line = |key: &str| {
            block
                .code
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| self.apply(&v.replace("%i", instance)))
        };
        let exec = line("ExecStart=").expect("the unit has an ExecStart");
        let cwd = line("WorkingDirectory=").unwrap_or_else(|| self.apply("/var/lib/stage"));
        let words: Vec<&str> = exec.split_whitespace().collect();
        Proc::spawn(instance, words[0], &words[1..], Path::new(&cwd))
    }
}

/// How many of `lines` start with `prefix`.
fn count(lines: Vec<String>, prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

#[test]
fn two_routers_two_nodes_a_secret_and_fail_over() {
    let m = Machine::new();
    m.shell(&example(PAGE, "install"));
    m.shell(&example(PAGE, "secret"));
    let secret = std::fs::read_to_string(m.apply("/etc/stage/secret")).unwrap();
    assert!(
        secret.trim().len() >= 32,
        "a long random secret: {secret:?}"
    );

    // Two routers, each from the unit with the page's config, listening on its own port (the
    // page's machines each have their /etc/stage/router.lua; here one is written, read at
    // start-up, and written again for the next).
    let mut routers = Vec::new();
    for n in [1, 2] {
        let addr = m.router(n);
        m.config("router-config", &[("0.0.0.0:7400", &addr)]);
        let r = m.unit("router-unit", &format!("router{n}"));
        r.wait_err(&format!("listening on {addr}"), WAIT);
        routers.push(r);
    }
    m.config("alpha-config", &[]);
    m.config("beta-config", &[]);
    let mut alpha = m.unit("node-unit", "alpha");
    let _beta = m.unit("node-unit", "beta");
    // What the page shows of alpha (its output block follows the last config).
    alpha.wait_lines(&example(PAGE, "beta-config").output_lines(), WAIT);
    for r in &routers {
        r.wait_err("registered pong:2", WAIT);
    }

    // A node with another secret is refused by the routers: alpha's config, but its own id
    // and a secret file of its own.
    let wrong = m
        .scratch
        .write("wrong-secret", "not the cluster's secret at all\n");
    let alpha_config = std::fs::read_to_string(m.apply("/etc/stage/alpha.lua")).unwrap();
    let intruder_config = alpha_config
        .replace(&m.apply("/etc/stage/secret"), wrong.to_str().unwrap())
        .replace("id = 1 ", "id = 9 ");
    assert_ne!(intruder_config, alpha_config);
    std::fs::write(m.apply("/etc/stage/intruder.lua"), intruder_config).unwrap();
    let _intruder = m.unit("node-unit", "intruder");
    routers[0].wait_err("refused node 'intruder'", WAIT);
    assert!(!routers[0]
        .stderr()
        .iter()
        .any(|l| l.contains("from node 'intruder'")));

    // The first router dies: the hellos go on through the second.
    routers[0].kill9();
    let before = count(alpha.stdout(), "ping: pong answered");
    alpha.wait_count("ping: pong answered", before + 2, WAIT);

    // systemctl stop: SIGTERM, and the node exits 0.
    alpha.signal(libc::SIGTERM);
    let status = alpha
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("alpha did not stop\n{}", alpha.dump()));
    assert!(status.success(), "{status}\n{}", alpha.dump());
}

#[test]
fn staging_topology_fails_over_between_its_routers() {
    let dir = Scratch::new("deployment-staging");
    std::os::unix::fs::symlink(
        root().join("cluster-examples"),
        dir.dir.join("cluster-examples"),
    )
    .unwrap();
    std::fs::create_dir(dir.dir.join("staging")).unwrap();
    save(&example(PAGE, "staging-topology"), &dir.dir);
    let run = example(PAGE, "staging-run");
    let (shell, cargo): (Vec<&str>, Vec<&str>) = run
        .code
        .lines()
        .filter(|l| !l.trim().is_empty())
        .partition(|l| !l.starts_with("cargo run"));
    for line in shell {
        sh(line, &dir.dir);
    }
    let cargo = Block {
        code: cargo.join("\n"),
        ..run.clone()
    };
    let (a, b) = (free_port().to_string(), free_port().to_string());
    let env = [("STAGE_PORT_A", a.as_str()), ("STAGE_PORT_B", b.as_str())];
    let mut stage = Proc::cargo_run(&cargo_run(&cargo), &dir.dir, &[], &env);
    stage.wait_lines(&run.output_lines(), WAIT);
    for router in ["router-a", "router-b"] {
        stage.wait_err(&format!("[{router}] stage-router: listening"), WAIT);
    }

    // Kill router-a: the hellos go on through router-b, and the launcher restarts router-a.
    let started = stage.wait_err("[stage] started router-a (pid ", WAIT);
    let pid: i32 = started
        .rsplit("(pid ")
        .next()
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .expect("a pid");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    stage.wait_err("[stage] router-a exited", WAIT);
    let before = count(stage.stdout(), "[alpha] ping: pong answered");
    stage.wait_count("[alpha] ping: pong answered", before + 2, WAIT);
    let deadline = std::time::Instant::now() + WAIT;
    while count(stage.stderr(), "[stage] started router-a ") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "router-a was not restarted\n{}",
            stage.dump()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    stage.stop_cleanly();
}
