//! `--config FILE`: a Lua file whose globals are long flags, so a deployment keeps its flags in
//! one reviewed file instead of a unit file's command line:
//!
//! ```lua
//! listen = "0.0.0.0:7400"
//! secret_file = "/etc/stage/secret"      -- a flag's dashes become underscores
//! heartbeat_window = 500
//! mode = { rank = "hash", chat = "broadcast" }   -- repeatable NAME=VALUE flags: a table
//! insecure = false                               -- switches: true or false
//! ```
//!
//! Values become flags as [`crate::flags`] says. Flags on the command line win: a key whose flag is also given there is ignored (for a
//! repeatable flag, the command line's list replaces the file's). Every key is checked before
//! anything runs; an error names the file, the key and the form it expects.

use std::ffi::OsString;
use std::path::Path;

use clap::{Arg, ArgAction, Command};
use mlua::{Lua, Value};

use crate::flags::{flag_name, push_flags, utf8};

/// `argv` with the flags of its `--config FILE` (if any) inserted after the program name.
pub fn expand(command: &Command, argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(file) = config_file(&argv) else {
        return Ok(argv);
    };
    let given = given_flags(&argv);
    let mut inserted: Vec<OsString> = Vec::new();
    for (flag, args) in read(Path::new(&file), command)? {
        if !given.contains(&flag) {
            inserted.extend(args.into_iter().map(OsString::from));
        }
    }
    let mut out = Vec::with_capacity(argv.len() + inserted.len());
    let mut argv = argv.into_iter();
    out.extend(argv.next());
    out.extend(inserted);
    out.extend(argv);
    Ok(out)
}

/// The value of `--config FILE` / `--config=FILE` on the command line.
fn config_file(argv: &[OsString]) -> Option<String> {
    let mut args = argv.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        if a == "--config" {
            return args.next().map(|f| f.into_owned());
        }
        if let Some(f) = a.strip_prefix("--config=") {
            return Some(f.to_owned());
        }
        if a == "--" {
            break;
        }
    }
    None
}

/// The long flags given on the command line.
fn given_flags(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .skip(1)
        .filter_map(|a| a.to_str()?.strip_prefix("--").map(str::to_owned))
        .map(|f| f.split('=').next().unwrap_or_default().to_owned())
        .collect()
}

/// Runs the file in a bare Lua state; for each global it set, the flag's name and its
/// command-line arguments, checked against `command` (sorted by flag).
fn read(path: &Path, command: &Command) -> Result<Vec<(String, Vec<String>)>, String> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| format!("config file {file}: {e}"))?;
    let lua = Lua::new();
    let globals = lua.globals();
    // The standard library's globals, to tell them from the file's. Compared by value, not by
    // name: a flag may share a name with a library (`package = { "/srv/stage" }` is --package).
    let before: Vec<(String, Value)> = globals
        .pairs::<String, Value>()
        .filter_map(Result::ok)
        .collect();
    lua.load(&source)
        .set_name(format!("@{file}"))
        .exec()
        .map_err(|e| format!("config file {file}: {e}"))?;
    let mut out = Vec::new();
    for pair in globals.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| format!("config file {file}: {e}"))?;
        let Value::String(key) = key else {
            return Err(format!("config file {file}: keys must be flag names"));
        };
        let key = utf8(&key, &format!("a key in {file}"))?;
        if before.iter().any(|(k, v)| *k == key && *v == value) {
            continue;
        }
        let at = format!("{file}: key '{key}'");
        let flag = flag_name(&key, &at)?;
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == flag.strip_prefix("--") && flag != "--config")
            .ok_or_else(|| unknown_key(&file, &key, command))?;
        check_shape(arg, &value).map_err(|e| format!("{at}: {e}"))?;
        let mut args = Vec::new();
        push_flags(&mut args, &key, value, &at)?;
        check(command, &args).map_err(|e| format!("{at}: {e}"))?;
        out.push((flag.trim_start_matches('-').to_owned(), args));
    }
    out.sort();
    Ok(out)
}

/// Whether `value` has the shape `arg` takes: a switch `true` or `false`, a value flag a
/// string or number, a repeatable flag also a table.
fn check_shape(arg: &Arg, value: &Value) -> Result<(), String> {
    let flag = format!("--{}", arg.get_long().unwrap_or_default());
    let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    let repeatable = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count);
    match value {
        Value::Boolean(_) if !switch => Err(format!("{flag} takes a value, not true or false")),
        Value::Boolean(_) => Ok(()),
        _ if switch => Err(format!("{flag} is a switch: write true or false")),
        Value::Table(_) if !repeatable => Err(format!("{flag} takes one value, not a table")),
        _ => Ok(()),
    }
}

/// Parses `args` alone with every flag optional: a bad value is reported in clap's words.
fn check(command: &Command, args: &[String]) -> Result<(), String> {
    let probe = command
        .clone()
        .mut_args(|a| a.required(false))
        .try_get_matches_from(std::iter::once("probe".to_owned()).chain(args.iter().cloned()));
    probe.map(drop).map_err(|e| {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        first.trim_start_matches("error: ").to_owned()
    })
}

fn unknown_key(file: &str, key: &str, command: &Command) -> String {
    let keys: Vec<String> = command
        .get_arguments()
        .filter_map(Arg::get_long)
        .filter(|l| *l != "config")
        .map(|l| l.replace('-', "_"))
        .collect();
    format!(
        "{file}: unknown key '{key}' (the keys are the long flags: {})",
        keys.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Args {
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: std::net::SocketAddr,
        #[arg(long)]
        mode: Vec<String>,
        #[arg(long)]
        insecure: bool,
        #[arg(long, value_name = "MS", default_value_t = 500)]
        heartbeat_window: u64,
        #[arg(long)]
        config: Option<String>,
        #[arg(long)]
        package: Vec<String>,
    }

    fn run(config: &str, argv: &[&str]) -> Result<Args, String> {
        let dir = std::env::temp_dir().join(format!("stage-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.lua", argv.len() + config.len()));
        std::fs::write(&path, config).unwrap();
        let mut full: Vec<OsString> = vec!["bin".into(), "--config".into(), path.clone().into()];
        full.extend(argv.iter().map(OsString::from));
        let out = expand(&Args::command(), full);
        let _ = std::fs::remove_file(&path);
        Args::try_parse_from(out?).map_err(|e| e.to_string())
    }

    #[test]
    fn globals_become_flags_and_the_command_line_wins() {
        let config = r#"
            listen = "0.0.0.0:7500"
            heartbeat_window = 250
            insecure = true
            mode = { rank = "hash", chat = "broadcast" }
        "#;
        let a = run(config, &[]).unwrap();
        assert_eq!(a.listen.port(), 7500);
        assert_eq!(a.heartbeat_window, 250);
        assert!(a.insecure);
        assert_eq!(a.mode, ["chat=broadcast", "rank=hash"]);
        let a = run(config, &["--listen", "127.0.0.1:1", "--mode", "x=random"]).unwrap();
        assert_eq!(a.listen.port(), 1);
        assert_eq!(a.mode, ["x=random"]);
        assert_eq!(
            run(r#"_G["heartbeat-window"] = 9"#, &[])
                .unwrap()
                .heartbeat_window,
            9
        );
    }

    #[test]
    fn a_flag_named_like_a_lua_library_is_read() {
        // `package` is also Lua's library table: setting it in the file is still the flag.
        let a = run(
            r#"package = { "/srv/stage/scripts", "/srv/stage/rollback" }"#,
            &[],
        )
        .unwrap();
        assert_eq!(a.package, ["/srv/stage/scripts", "/srv/stage/rollback"]);
        assert!(run("", &[]).unwrap().package.is_empty());
    }

    #[test]
    fn errors_name_the_key_and_the_expected_form() {
        let e = run("heartbeat = 5", &[]).unwrap_err();
        assert!(
            e.contains("unknown key 'heartbeat'") && e.contains("heartbeat_window"),
            "{e}"
        );
        let e = run("heartbeat_window = 'soon'", &[]).unwrap_err();
        assert!(
            e.contains("key 'heartbeat_window'") && e.contains("<MS>"),
            "{e}"
        );
        let e = run("insecure = 'yes'", &[]).unwrap_err();
        assert!(
            e.contains("key 'insecure'") && e.contains("true or false"),
            "{e}"
        );
        let e = run("listen = { 'a', 'b' }", &[]).unwrap_err();
        assert!(e.contains("key 'listen'") && e.contains("one value"), "{e}");
        let e = run("mode = { 'a=b', x = 'y' }", &[]).unwrap_err();
        assert!(e.contains("key 'mode'") && e.contains("mixes"), "{e}");
        let e = run("listen = ", &[]).unwrap_err();
        assert!(e.contains("config file"), "{e}");
    }
}
