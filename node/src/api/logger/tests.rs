//! Runs Lua code calling `logger.*` and inspects the records captured by a test `log::Log`.

use std::sync::{Mutex, Once};

use log::{Level, LevelFilter, Log, Metadata, Record};
use mlua::Lua;

/// (target, level, message) of every record logged in this test binary.
static RECORDS: Mutex<Vec<(String, Level, String)>> = Mutex::new(Vec::new());
static INIT: Once = Once::new();

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, r: &Record) {
        RECORDS.lock().unwrap_or_else(|e| e.into_inner()).push((
            r.target().to_owned(),
            r.level(),
            r.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

/// Runs `code` (chunk name `package/start.lua`) in a fresh VM with `logger` installed.
fn run(code: &str) {
    INIT.call_once(|| {
        log::set_boxed_logger(Box::new(Capture)).expect("no other logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
    });
    let lua = Lua::new();
    super::install(&lua).unwrap();
    lua.load(code).set_name("package/start.lua").exec().unwrap();
}

/// The records whose message contains `marker`, in logging order.
fn records(marker: &str) -> Vec<(String, Level, String)> {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|r| r.2.contains(marker))
        .cloned()
        .collect()
}

fn rec(target: &str, level: Level, msg: &str) -> (String, Level, String) {
    (target.to_owned(), level, msg.to_owned())
}

const SRC: &str = "[string \"package/start.lua\"]";

#[test]
fn logger_verification_line() {
    std::env::set_var("STAGE_LOGGER_T_HOME", "/srv/stage");
    run(r#"
-- line 2
logger.out("M-VER LOG %l|%F|%M|%L|%{STAGE_LOGGER_T_HOME}|%6{STAGE_LOGGER_T_HOME}|%0{STAGE_LOGGER_T_HOME}|%12{STAGE_LOGGER_T_HOME}|x", "%{=bot:warn}", 12)
"#);
    let msg =
        format!("M-VER LOG {SRC}[main:3]|{SRC}|main|3|/srv/stage|/stage||  /srv/stage|x\t\t12");
    assert_eq!(records("M-VER"), vec![rec("lua.bot", Level::Warn, &msg)]);
}

#[test]
fn logger_percent_literals() {
    run(r#"
logger.info("M-PCT 100%")
logger.info("M-PCT2 %% %x %5x %{unterminated %3 %")
logger.info("M-PCT3 50%", "%")
"#);
    assert_eq!(
        records("M-PCT"),
        vec![
            rec("lua", Level::Info, "M-PCT 100%"),
            rec("lua", Level::Info, "M-PCT2 % %x %5x %{unterminated %3 %"),
            rec("lua", Level::Info, "M-PCT3 50%\t%"),
        ]
    );
}

#[test]
fn logger_levels_and_alias() {
    run(r#"
logger.out("M-LVL out")
logger.info("M-LVL info")
logger.warn("M-LVL warn")
logger.error("M-LVL error")
logger.trace("M-LVL trace")
logger.debug("M-LVL debug")
log4cxx.warn("M-LVL alias")
assert(rawequal(logger, log4cxx))
"#);
    assert_eq!(
        records("M-LVL"),
        vec![
            rec("lua", Level::Info, "M-LVL out"),
            rec("lua", Level::Info, "M-LVL info"),
            rec("lua", Level::Warn, "M-LVL warn"),
            rec("lua", Level::Error, "M-LVL error"),
            rec("lua", Level::Trace, "M-LVL trace"),
            rec("lua", Level::Debug, "M-LVL debug"),
            rec("lua", Level::Warn, "M-LVL alias"),
        ]
    );
}

#[test]
fn logger_tab_join_tostring() {
    run(r#"
local t = setmetatable({}, { __tostring = function() return "T%%%L" end })
logger.info("M-TAB", nil, true, 1.5, 7, t, "")
logger.info()
"#);
    assert_eq!(
        records("M-TAB"),
        vec![rec("lua", Level::Info, "M-TAB\tnil\ttrue\t1.5\t7\tT%3\t")]
    );
}

#[test]
fn logger_location() {
    run(r#"
local function f()
  logger.info("M-LOC f %l %F %M %L")
end
f()
pcall(logger.info, "M-LOC pcall %l %M %L")
logger.info("M-LOC main %M", "%L")
"#);
    assert_eq!(
        records("M-LOC"),
        vec![
            rec(
                "lua",
                Level::Info,
                &format!("M-LOC f {SRC}[Lua:3] {SRC} Lua 3")
            ),
            rec("lua", Level::Info, "M-LOC pcall [C][C:-1] C -1"),
            rec("lua", Level::Info, "M-LOC main main\t7"),
        ]
    );
}

#[test]
fn logger_called_from_rust() {
    run("");
    let lua = Lua::new();
    super::install(&lua).unwrap();
    let info: mlua::Function = lua.load("logger.info").eval().unwrap();
    info.call::<()>("M-RUST %l").unwrap();
    assert_eq!(
        records("M-RUST"),
        vec![rec("lua", Level::Info, "M-RUST [C][C:-1]")]
    );
}

#[test]
fn logger_env_vars() {
    std::env::set_var("STAGE_LOGGER_T_ENV", "abcdef");
    std::env::set_var("STAGE_LOGGER_T_UTF", "ääää");
    std::env::remove_var("STAGE_LOGGER_T_UNSET");
    run(r#"
logger.info("M-ENV [%{STAGE_LOGGER_T_ENV}] [%3{STAGE_LOGGER_T_ENV}] [%8{STAGE_LOGGER_T_ENV}]")
logger.info("M-ENV2 [%{STAGE_LOGGER_T_UNSET}] [%4{STAGE_LOGGER_T_UNSET}] [%{}] [%2{}] [%{A=B}]")
logger.info("M-ENV3 [%2{STAGE_LOGGER_T_UTF}] [%5{STAGE_LOGGER_T_UTF}] [%00{STAGE_LOGGER_T_ENV}]")
"#);
    assert_eq!(
        records("M-ENV"),
        vec![
            rec("lua", Level::Info, "M-ENV [abcdef] [def] [  abcdef]"),
            rec("lua", Level::Info, "M-ENV2 [] [    ] [] [  ] []"),
            rec("lua", Level::Info, "M-ENV3 [ää] [ ääää] []"),
        ]
    );
}

#[test]
fn logger_overrides() {
    run(r#"
logger.info("M-OVR a%{=:ERROR}b")
logger.warn("M-OVR only-name", "%{=only}")
logger.info("M-OVR bogus %{=x:bogus}")
logger.info("M-OVR lua %{=lua:Warn}")
logger.error("M-OVR last %{=a:trace}", "%{=b}%{=:debug}")
logger.info("M-OVR width %3{=w:warn}")
"#);
    assert_eq!(
        records("M-OVR"),
        vec![
            rec("lua", Level::Error, "M-OVR ab"),
            rec("lua.only", Level::Warn, "M-OVR only-name\t"),
            rec("lua.x", Level::Info, "M-OVR bogus "),
            rec("lua", Level::Warn, "M-OVR lua "),
            rec("lua.b", Level::Debug, "M-OVR last \t"),
            rec("lua.w", Level::Warn, "M-OVR width "),
        ]
    );
}

#[test]
fn logger_binary_and_no_tostring() {
    run(r#"
logger.info("M-BIN \255\0x")
tostring = nil
logger.info("M-BIN2", 5, nil)
"#);
    assert_eq!(
        records("M-BIN"),
        vec![
            rec("lua", Level::Info, "M-BIN \u{FFFD}\0x"),
            rec("lua", Level::Info, "M-BIN2\t5\tnil"),
        ]
    );
}
