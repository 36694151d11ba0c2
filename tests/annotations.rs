//! The LuaLS annotations in `lua/types/`: every file compiles as Lua, and every function the
//! documents in `docs/*.md` name has a `function NAME(` declaration there (issue 8).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The API tables whose calls the documents name: `stage.signal(`, `broker.ready(`, ...
const MODULES: &[&str] = &[
    "stage", "thread", "process", "log4cxx", "logger", "broker", "router",
];

/// `logger` is the same table as `log4cxx`: its functions are declared under that name.
const ALIASES: &[(&str, &str)] = &[("logger", "log4cxx")];

/// Global functions the documents name bare: the stage VM's and the control script's events.
const BARE: &[&str] = &[
    "import",
    "sleep",
    "print",
    "on_register",
    "on_close",
    "on_mode",
    "on_silent",
    "on_back",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir` whose name ends in `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The code of a Markdown text: fenced blocks whole, and the inline `code` spans elsewhere.
fn code_of(markdown: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push(line);
        } else {
            out.extend(line.split('`').skip(1).step_by(2));
        }
    }
    out
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The names called in `code`: `module.name(` for the modules above, and the bare globals.
fn calls(code: &str, found: &mut BTreeSet<String>) {
    for (start, _) in code.char_indices() {
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| ident_char(c) || c == '.' || c == ':') {
            continue;
        }
        let rest = &code[start..];
        for bare in BARE {
            if rest.strip_prefix(bare).is_some_and(|r| r.starts_with('(')) {
                found.insert((*bare).to_owned());
            }
        }
        for module in MODULES {
            let Some(r) = rest.strip_prefix(module).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let name_len = r.find(|c: char| !ident_char(c)).unwrap_or(r.len());
            let name = &r[..name_len];
            let starts_well = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            if starts_well && r[name_len..].starts_with('(') {
                let module = ALIASES
                    .iter()
                    .find(|(alias, _)| alias == module)
                    .map_or(*module, |(_, real)| real);
                found.insert(format!("{module}.{name}"));
            }
        }
    }
}

/// Documented name -> the documents naming it.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for doc in files(&root().join("docs"), "md") {
        let file = doc
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut found = BTreeSet::new();
        for code in code_of(&read(&doc)) {
            calls(code, &mut found);
        }
        for name in found {
            out.entry(name).or_default().insert(file.clone());
        }
    }
    out
}

/// The names of the `function NAME(` declarations in `lua/types/`.
fn declared() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in files(&root().join("lua/types"), "lua") {
        for line in read(&file).lines() {
            if let Some(name) = line
                .strip_prefix("function ")
                .and_then(|r| r.split_once('('))
                .map(|(name, _)| name.trim())
            {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

#[test]
fn annotation_files_compile_as_lua() {
    let files = files(&root().join("lua/types"), "lua");
    assert!(files.len() >= 7, "lua/types holds only {files:?}");
    for file in files {
        let lua = mlua::Lua::new();
        let src = read(&file);
        if let Err(e) = lua
            .load(&src)
            .set_name(file.display().to_string())
            .into_function()
        {
            panic!("{} does not compile: {e}", file.display());
        }
    }
}

#[test]
fn every_documented_function_is_annotated() {
    let documented = documented();
    // The scan itself works: names from each kind of place (inline code, fenced blocks, the
    // router's document, an alias) are found.
    let expected = "stage.signal thread.new broker.ready router.route log4cxx.info import";
    for name in expected.split(' ') {
        assert!(
            documented.contains_key(name),
            "the scan of docs/*.md missed {name}"
        );
    }
    let declared = declared();
    let missing: Vec<String> = documented
        .iter()
        .filter(|(name, _)| !declared.contains(*name))
        .map(|(name, docs)| {
            let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
            format!("{name} ({})", docs.join(", "))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "functions documented in docs/*.md without a `function NAME(` annotation in lua/types/*.lua:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_scan_reads_inline_code_and_fenced_blocks() {
    let md = "Call `stage.signal(t)` or `logger.warn(x)`, not stage.load(x).\n```lua\nlocal t = thread.new(f)\nmy.stage.id() xstage.call() import(\"a\")\n```\n`sleep (1)` `t.print(1)`\n";
    let mut found = BTreeSet::new();
    for code in code_of(md) {
        calls(code, &mut found);
    }
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(
        found,
        ["import", "log4cxx.warn", "stage.signal", "thread.new"]
    );
}
