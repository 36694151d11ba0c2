//! Topology files: which routers and nodes `stage run` starts, and with which flags.
//!
//! A topology file is a Lua chunk returning a table, so it can compute values
//! (for example read `os.getenv`):
//!
//! ```lua
//! return {
//!   routers = {
//!     { name = "router", listen = "127.0.0.1:7400", mode = { svc = "hash" } },
//!   },
//!   nodes = {
//!     { name = "alpha", router = { "127.0.0.1:7400" }, stage = { ping = "ping.lua" } },
//!   },
//! }
//! ```
//!
//! Every entry needs a `name`, unique in the file, which prefixes the child's
//! output. Every other key `k` becomes command-line flags of the child as
//! [`stage_cli::flags`] turns values into flags: `k = "v"` gives `--k v`,
//! `k = true` gives `--k`, a list repeats the flag, a `NAME = VALUE` table gives
//! `--k NAME=VALUE` per pair (keys sorted), and underscores become hyphens.
//! Flags are emitted in sorted key order, so the command line does not depend
//! on Lua's table iteration order.
//!
//! The optional key `command = { PROGRAM, ARG... }` runs that program instead
//! of a stage binary, which is useful for auxiliary processes such as a
//! database next to the cluster; it replaces the generated command line.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use mlua::{Lua, Value};
use stage_cli::flags::{classify, lua_type, map_pairs, push_flags, scalar, utf8, Shape};

/// What a child is: decides the `stage` subcommand and its start order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Router,
    Node,
}

impl Role {
    /// The `stage` subcommand that runs this role.
    pub fn subcommand(self) -> &'static str {
        match self {
            Role::Router => "router",
            Role::Node => "node",
        }
    }

    /// The top-level topology key listing entries of this role.
    fn list_key(self) -> &'static str {
        match self {
            Role::Router => "routers",
            Role::Node => "nodes",
        }
    }
}

/// How to start an entry's process.
#[derive(Debug, PartialEq)]
pub enum Launch {
    /// `stage <subcommand> FLAGS...`, generated from the entry's keys.
    Stage(Vec<String>),
    /// An arbitrary program given by the entry's `command` key.
    Command { program: String, args: Vec<String> },
}

/// One child process of the cluster.
#[derive(Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub role: Role,
    pub launch: Launch,
}

/// A parsed topology file.
#[derive(Debug)]
pub struct Topology {
    /// Directory holding the topology file; children run there so relative
    /// script paths in the file resolve next to it.
    pub dir: PathBuf,
    /// Routers first, then nodes, each in file order.
    pub entries: Vec<Entry>,
}

impl Topology {
    /// The `/status` page that draws the whole cluster: the first process serving `--http`
    /// (routers come first) with every other one as `?also=`. Processes on port 0 are left
    /// out (their port is only known once they run); `0.0.0.0` is reached as 127.0.0.1.
    pub fn status_url(&self) -> Option<String> {
        let addrs: Vec<String> = self.entries.iter().filter_map(Entry::http).collect();
        let (first, also) = addrs.split_first()?;
        let mut url = format!("http://{first}/status");
        if !also.is_empty() {
            url.push_str("?also=");
            url.push_str(&also.join(","));
        }
        Some(url)
    }
}

impl Entry {
    /// Where the entry serves `--http`, as a browser on this machine reaches it.
    fn http(&self) -> Option<String> {
        let Launch::Stage(flags) = &self.launch else {
            return None;
        };
        let addr = flags
            .iter()
            .position(|f| f == "--http")
            .and_then(|i| flags.get(i + 1))?;
        let (host, port) = addr.rsplit_once(':')?;
        if port == "0" {
            return None;
        }
        let host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
        Some(format!("{host}:{port}"))
    }
}

/// A topology that cannot be used, with the file it came from.
#[derive(Debug)]
pub struct TopologyError {
    path: PathBuf,
    message: String,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topology {}: {}", self.path.display(), self.message)
    }
}

/// Reads, evaluates and validates the topology file at `path`.
pub fn load(path: &Path) -> Result<Topology, TopologyError> {
    let fail = |message: String| TopologyError {
        path: path.to_path_buf(),
        message,
    };
    let source = std::fs::read(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    let entries = parse(&source, &path.display().to_string()).map_err(fail)?;
    // `parent` of a bare file name is "", which is the current directory.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // An absolute directory keeps `command` programs given by relative path
    // unambiguous: they are looked up after the child changes directory.
    let dir = dir
        .canonicalize()
        .map_err(|e| fail(format!("cannot resolve its directory: {e}")))?;
    Ok(Topology { dir, entries })
}

/// Evaluates topology source and turns it into entries, routers first.
/// `chunk_name` names the file in Lua error messages.
fn parse(source: &[u8], chunk_name: &str) -> Result<Vec<Entry>, String> {
    let lua = Lua::new();
    // The '@' prefix makes Lua report positions as "file:line:".
    let value: Value = lua
        .load(source)
        .set_name(format!("@{chunk_name}"))
        .eval()
        .map_err(|e| {
            // The position in the first line says where the error is; the
            // Lua stack traceback after it would only add noise.
            let message = e.to_string();
            match message.split_once("\nstack traceback:") {
                Some((head, _)) => head.to_string(),
                None => message,
            }
        })?;

    let Value::Table(table) = value else {
        return Err(format!(
            "the file must return a table like {{ routers = {{ ... }}, nodes = {{ ... }} }}, got {}",
            lua_type(&value)
        ));
    };
    let mut routers = Value::Nil;
    let mut nodes = Value::Nil;
    let mut unknown = Vec::new();
    for (key, value) in map_pairs(&table, "the returned table")? {
        match key.as_str() {
            "routers" => routers = value,
            "nodes" => nodes = value,
            _ => unknown.push(format!("`{key}`")),
        }
    }
    if !unknown.is_empty() {
        let plural = if unknown.len() == 1 { "" } else { "s" };
        return Err(format!(
            "unknown top-level key{plural} {}; the valid keys are `routers` and `nodes`",
            unknown.join(", ")
        ));
    }

    let mut names = HashMap::new();
    let mut entries = parse_list(routers, Role::Router, &mut names, true)?;
    let standalone = entries.is_empty();
    entries.extend(parse_list(nodes, Role::Node, &mut names, !standalone)?);
    if entries.is_empty() {
        return Err("no routers and no nodes; add at least one entry, \
                    e.g. nodes = { { name = \"alpha\", stage = { ping = \"ping.lua\" } } }"
            .to_string());
    }
    Ok(entries)
}

/// Parses the `routers` or `nodes` list (absent means empty).
/// `names` maps every name seen so far to where it was declared.
/// `routers_exist` tells whether nodes may name routers to connect to.
fn parse_list(
    value: Value,
    role: Role,
    names: &mut HashMap<String, String>,
    routers_exist: bool,
) -> Result<Vec<Entry>, String> {
    let key = role.list_key();
    let items = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Table(table) => match classify(&table, key)? {
            Shape::List(items) => items,
            Shape::Map(_) => {
                return Err(format!(
                    "{key} must be a list of entries like {{ {{ name = \"...\", ... }} }}, \
                     got a table with NAME = VALUE keys"
                ))
            }
        },
        other => {
            return Err(format!(
                "{key} must be a list of entries like {{ {{ name = \"...\", ... }} }}, got {}",
                lua_type(&other)
            ))
        }
    };
    let mut entries = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let at = format!("{key}[{}]", index + 1);
        let entry = parse_entry(item, role, &at, routers_exist)?;
        if let Some(first) = names.insert(entry.name.clone(), at.clone()) {
            return Err(format!(
                "{at}.name \"{}\" is already used by {first}; names must be unique \
                 because they label each child's output",
                entry.name
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Parses one router or node table found at `at` (e.g. `nodes[2]`).
fn parse_entry(value: Value, role: Role, at: &str, routers_exist: bool) -> Result<Entry, String> {
    let Value::Table(table) = value else {
        return Err(format!(
            "{at} must be a table like {{ name = \"...\", ... }}, got {}",
            lua_type(&value)
        ));
    };
    let mut name = None;
    let mut command = None;
    let mut flag_keys = Vec::new();
    let mut flags = Vec::new();
    for (key, value) in map_pairs(&table, at)? {
        let key_at = format!("{at}.{key}");
        match key.as_str() {
            "name" => name = Some(parse_name(value, &key_at)?),
            "command" => command = Some(parse_command(value, &key_at)?),
            "router" if role == Role::Node && !routers_exist => {
                return Err(format!(
                    "{key_at} connects to a router, but the topology defines no routers; \
                     add a `routers` list, or remove `router` to run the node standalone"
                ))
            }
            _ => {
                if role == Role::Node && key == "stage" {
                    check_stages(&value, &key_at)?;
                }
                push_flags(&mut flags, &key, value, &key_at)?;
                flag_keys.push(format!("`{key}`"));
            }
        }
    }
    let name = name.ok_or_else(|| {
        format!("{at} has no name; add name = \"...\" (a unique label for its output)")
    })?;
    let launch = match command {
        // A node also goes by its entry name in router logs and scripts (`info.node`).
        None if role == Role::Node => {
            flags.splice(0..0, ["--name".to_owned(), name.clone()]);
            Launch::Stage(flags)
        }
        None => Launch::Stage(flags),
        Some(_) if !flag_keys.is_empty() => {
            return Err(format!(
                "{at} sets `command`, which replaces the generated command line, so its \
                 other keys ({}) would be ignored; remove them or remove `command`",
                flag_keys.join(", ")
            ))
        }
        Some(launch) => launch,
    };
    Ok(Entry { name, role, launch })
}

/// Checks a node's `stage` key up front: the generic rules would turn a
/// string or list into flags the node rejects with a less helpful message.
fn check_stages(value: &Value, at: &str) -> Result<(), String> {
    let got = match value {
        Value::Table(table) => match classify(table, at)? {
            Shape::List(items) if !items.is_empty() => "a list",
            _ => return Ok(()),
        },
        other => lua_type(other),
    };
    Err(format!("{at} must be a table of NAME = SCRIPT, got {got}"))
}

/// Validates an entry name; it is printed as `[name]` before every line.
fn parse_name(value: Value, at: &str) -> Result<String, String> {
    let name = match value {
        Value::String(s) => utf8(&s, at)?,
        other => return Err(format!("{at} must be a string, got {}", lua_type(&other))),
    };
    if name.trim().is_empty() {
        return Err(format!("{at} must not be empty"));
    }
    if name == "stage" {
        return Err(format!(
            "{at} \"stage\" is reserved for the launcher's own messages; pick another name"
        ));
    }
    Ok(name)
}

/// Parses `command = { PROGRAM, ARG... }`.
fn parse_command(value: Value, at: &str) -> Result<Launch, String> {
    let usage = "must be a non-empty list like { \"/bin/sh\", \"-c\", \"...\" }";
    let items = match value {
        Value::Table(table) => match classify(&table, at)? {
            Shape::List(items) if !items.is_empty() => items,
            _ => return Err(format!("{at} {usage}")),
        },
        other => return Err(format!("{at} {usage}, got {}", lua_type(&other))),
    };
    let mut words = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        words.push(scalar(item, &format!("{at}[{}]", index + 1))?);
    }
    let program = words.remove(0);
    Ok(Launch::Command {
        program,
        args: words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(source: &str) -> Vec<Entry> {
        parse(source.as_bytes(), "test.lua").unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(source: &str) -> String {
        match parse(source.as_bytes(), "test.lua") {
            Ok(entries) => panic!("expected an error, got {entries:?}"),
            Err(e) => e,
        }
    }

    fn flags(entry: &Entry) -> Vec<&str> {
        match &entry.launch {
            Launch::Stage(flags) => flags.iter().map(String::as_str).collect(),
            Launch::Command { .. } => panic!("{} has a command", entry.name),
        }
    }

    #[test]
    fn example_topology_becomes_flags() {
        let entries = entries(
            r#"
            return {
              routers = {
                { name = "router", listen = "127.0.0.1:7400", mode = { svc = "hash" }, log = "info" },
              },
              nodes = {
                { name = "alpha", router = { "127.0.0.1:7400" }, stage = { ping = "ping.lua" }, id = 1 },
                { name = "beta",  router = { "127.0.0.1:7400" }, stage = { pong = "pong.lua" }, id = 2 },
              },
            }"#,
        );
        let summary: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.role)).collect();
        assert_eq!(
            summary,
            [
                ("router", Role::Router),
                ("alpha", Role::Node),
                ("beta", Role::Node)
            ]
        );
        assert_eq!(
            flags(&entries[0]),
            [
                "--listen",
                "127.0.0.1:7400",
                "--log",
                "info",
                "--mode",
                "svc=hash"
            ]
        );
        assert_eq!(
            flags(&entries[1]),
            [
                "--name",
                "alpha",
                "--id",
                "1",
                "--router",
                "127.0.0.1:7400",
                "--stage",
                "ping=ping.lua"
            ]
        );
    }

    #[test]
    fn routers_come_first_whatever_the_key_order() {
        let entries = entries(
            r#"return { nodes = { { name = "n", router = "r:1" } }, routers = { { name = "r" } } }"#,
        );
        assert_eq!(entries[0].name, "r");
        assert_eq!(entries[1].name, "n");
    }

    #[test]
    fn value_kinds_map_to_flags() {
        let entries = entries(
            r#"return { nodes = { {
                name = "n",
                verbose = true,
                quiet = false,
                ratio = 0.5,
                max_conn = 3,
                peer = { "a:1", "b:2" },
                env = { zeta = "z", alpha = 1 },
                empty = {},
            } } }"#,
        );
        assert_eq!(
            flags(&entries[0]),
            [
                "--name",
                "n",
                "--env",
                "alpha=1",
                "--env",
                "zeta=z",
                "--max-conn",
                "3",
                "--peer",
                "a:1",
                "--peer",
                "b:2",
                "--ratio",
                "0.5",
                "--verbose",
            ]
        );
    }

    #[test]
    fn topology_can_compute_values() {
        let entries = entries(
            r#"
            local port = tonumber(os.getenv("STAGE_TEST_UNSET_VARIABLE") or "7400")
            local nodes = {}
            for i = 1, 2 do nodes[i] = { name = "n" .. i, id = i, router = "127.0.0.1:" .. port } end
            return { routers = { { name = "r", listen = "127.0.0.1:" .. port } }, nodes = nodes }"#,
        );
        assert_eq!(
            flags(&entries[2]),
            ["--name", "n2", "--id", "2", "--router", "127.0.0.1:7400"]
        );
    }

    #[test]
    fn command_replaces_the_stage_command_line() {
        let entries = entries(
            r#"return { nodes = { { name = "db", command = { "/bin/sh", "-c", "exec db" } } } }"#,
        );
        assert_eq!(
            entries[0].launch,
            Launch::Command {
                program: "/bin/sh".to_string(),
                args: vec!["-c".to_string(), "exec db".to_string()],
            }
        );
    }

    #[test]
    fn nodes_may_run_standalone() {
        let entries =
            entries(r#"return { nodes = { { name = "solo", stage = { a = "a.lua" } } } }"#);
        assert_eq!(flags(&entries[0]), ["--name", "solo", "--stage", "a=a.lua"]);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (
                "return { nodes = {}, servers = {} }",
                "unknown top-level key `servers`; the valid keys are `routers` and `nodes`",
            ),
            (
                r#"return { nodes = { { name = "a" }, { name = "b", stage = 5 } } }"#,
                "nodes[2].stage must be a table of NAME = SCRIPT, got number",
            ),
            (
                r#"return { nodes = { { name = "a", stage = { "x.lua" } } } }"#,
                "nodes[1].stage must be a table of NAME = SCRIPT, got a list",
            ),
            (
                r#"return { nodes = { { name = "a", x = { y = { 1 } } } } }"#,
                "nodes[1].x.y must be a string or number, got table",
            ),
            (
                r#"return { nodes = { { name = "a", x = { { 1 } } } } }"#,
                "nodes[1].x[1] must be a string or number, got table",
            ),
            (
                r#"return { routers = { { name = "a" } }, nodes = { { name = "a" } } }"#,
                "nodes[1].name \"a\" is already used by routers[1]",
            ),
            (
                r#"return { nodes = { { id = 1 } } }"#,
                "nodes[1] has no name",
            ),
            (
                r#"return { nodes = { { name = "a", router = "r:1" } } }"#,
                "nodes[1].router connects to a router, but the topology defines no routers",
            ),
            ("return { routers = {} }", "no routers and no nodes"),
            ("return 5", "the file must return a table"),
            ("return {", "syntax error: test.lua:1:"),
            ("error('boom')", "test.lua:1: boom"),
            (
                r#"return { nodes = { { name = "a", command = { "x" }, id = 1 } } }"#,
                "nodes[1] sets `command`, which replaces the generated command line, \
                 so its other keys (`id`) would be ignored",
            ),
            (
                r#"return { nodes = { { name = "a", command = {} } } }"#,
                "nodes[1].command must be a non-empty list",
            ),
            (
                r#"return { nodes = { { name = "a", x = { 1, k = 2 } } } }"#,
                "nodes[1].x mixes list items with NAME = VALUE pairs",
            ),
            (
                r#"return { nodes = { { name = "a", x = { [1] = 1, [3] = 3 } } } }"#,
                "nodes[1].x is a list with holes",
            ),
            (
                r#"return { nodes = { { name = "a", ["-x"] = 1 } } }"#,
                "nodes[1].-x: the key cannot become a command-line flag",
            ),
            (
                r#"return { nodes = { { name = "a", x = print } } }"#,
                "nodes[1].x must be a string, number, boolean, list or NAME = VALUE table, \
                 got function",
            ),
            (r#"return { nodes = { "a" } }"#, "nodes[1] must be a table"),
            (
                r#"return { nodes = { name = "a" } }"#,
                "nodes must be a list of entries",
            ),
            (
                r#"return { nodes = { { name = "stage" } } }"#,
                "is reserved",
            ),
        ];
        for (source, expected) in cases {
            let message = error(source);
            assert!(
                message.contains(expected),
                "for {source}\n  got: {message}\n  expected it to contain: {expected}"
            );
        }
    }

    #[test]
    fn the_status_page_url_names_every_process_serving_http() {
        let topology = |source: &str| Topology {
            dir: PathBuf::new(),
            entries: entries(source),
        };
        let t = topology(
            r#"return {
              routers = { { name = "r", listen = "127.0.0.1:7400", http = "0.0.0.0:9400" } },
              nodes = {
                { name = "a", router = { "127.0.0.1:7400" }, stage = { a = "a.lua" }, http = "127.0.0.1:9401" },
                { name = "b", router = { "127.0.0.1:7400" }, stage = { b = "b.lua" }, http = "127.0.0.1:0" },
                { name = "c", router = { "127.0.0.1:7400" }, stage = { c = "c.lua" } },
              },
            }"#,
        );
        assert_eq!(
            t.status_url().as_deref(),
            Some("http://127.0.0.1:9400/status?also=127.0.0.1:9401")
        );
        let none =
            topology(r#"return { routers = { { name = "r", listen = "127.0.0.1:7400" } } }"#);
        assert_eq!(none.status_url(), None);
    }

    #[test]
    fn lua_tracebacks_are_dropped() {
        assert!(!error("error('boom')").contains("traceback"));
    }
}
