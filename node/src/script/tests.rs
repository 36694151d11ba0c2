use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mlua::Lua;

use super::broken::Broken;
use super::source::{relative_below, resolve_with};
use super::*;

const REFRESH: Duration = Duration::from_millis(50);

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "stage-script-{tag}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }

    /// Writes `rel` with `code` and sets its mtime to `secs` seconds after a fixed base, so a
    /// rewrite is a change even within the file system's timestamp resolution.
    fn write(&self, rel: &str, code: &str, secs: u64) -> PathBuf {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, code).expect("write script");
        let mtime = UNIX_EPOCH + Duration::from_secs(1_600_000_000 + secs);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(mtime))
            .expect("set mtime");
        path
    }

    /// `package/` at depth 0 and `rollback/` at depth 1, as absolute directories (tests run in
    /// parallel, so they never change the working directory).
    fn locations(&self) -> Vec<Location> {
        vec![
            Location {
                dir: self.dir.join("package"),
                depth: 0,
            },
            Location {
                dir: self.dir.join("rollback"),
                depth: 1,
            },
        ]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_past_refresh() {
    std::thread::sleep(REFRESH * 2);
}

fn code(source: &Source) -> String {
    String::from_utf8_lossy(&source.code).into_owned()
}

fn get(scripts: &Scripts, lua: &Lua, file: &str) -> Source {
    scripts
        .get(lua, Path::new(file))
        .expect("loads")
        .expect("found")
}

#[test]
fn script_locations_follow_depth_markers() {
    let locations = parse_locations(&["package", "rollback", "[0]lib", "[0]"]).unwrap();
    let expected = [("package", 0), ("rollback", 1), ("lib", 0), ("", 0)];
    assert_eq!(locations.len(), expected.len());
    for (l, (dir, depth)) in locations.iter().zip(expected) {
        assert_eq!((l.dir.as_path(), l.depth), (Path::new(dir), depth));
    }

    let locations = parse_locations(&["#2:deep", "", "[7]]:x"]).unwrap();
    assert_eq!(locations[0].dir, Path::new("deep"));
    assert_eq!(locations[0].depth, 2);
    assert_eq!(
        locations[1],
        Location {
            dir: PathBuf::new(),
            depth: 1
        }
    );
    assert_eq!(locations[2].dir, Path::new("x"));
    assert_eq!(locations[2].depth, 7);

    let none: [&str; 0] = [];
    assert_eq!(parse_locations(&none).unwrap(), vec![Location::cwd()]);
    for bad in ["[x]dir", "#", "[-1]dir", "[99999999999]dir"] {
        assert!(parse_locations(&[bad]).is_err(), "{bad}");
    }
    // PathBufs (as clap gives them) work too.
    let paths = [PathBuf::from("a"), PathBuf::from("#3:b")];
    assert_eq!(parse_locations(&paths).unwrap()[1].depth, 3);
}

#[test]
fn script_names_split_into_file_and_member() {
    let split = |n, for_load| {
        let (file, member) = split_name(n, for_load);
        (file.to_string_lossy().into_owned(), member)
    };
    assert_eq!(split("a.b+id", true), ("a/b.lua".into(), Some("id".into())));
    assert_eq!(
        split("packet+login", false),
        ("packet.lua".into(), Some("login".into()))
    );
    assert_eq!(split("a+b+c", true), ("a.lua".into(), Some("b+c".into())));
    assert_eq!(split("a+", true), ("a.lua".into(), Some(String::new())));
    assert_eq!(
        split("lib/x.v2.lua+m", true),
        ("lib/x.v2.lua".into(), Some("m".into()))
    );
    assert_eq!(split("X.LUA", true), ("X.LUA".into(), None));
    assert_eq!(
        split("script:pkg.sample", true),
        ("script/pkg/sample.lua".into(), None)
    );
    assert_eq!(split("script:pkg", false), ("script:pkg.lua".into(), None));
    assert_eq!(split("", true), (".lua".into(), None));
    // Multi-byte characters near the end must not trip the extension check.
    assert_eq!(split("가.나", true), ("가/나.lua".into(), None));
    assert_eq!(split("é", true), ("é.lua".into(), None));
}

#[test]
fn script_absolute_file_is_its_own_candidate() {
    let abs = std::env::temp_dir().join("x.lua");
    let found = candidates(
        &[
            Location::cwd(),
            Location {
                dir: "p".into(),
                depth: 1,
            },
        ],
        &abs,
    );
    assert_eq!(found, vec![(abs, 0)]);
    let rel = candidates(&[Location::cwd()], Path::new("x.lua"));
    assert_eq!(rel, vec![(PathBuf::from("x.lua"), 0)]);
}

#[test]
fn script_missing_primary_falls_over() {
    let s = Scratch::new("missing");
    s.write("rollback/start.lua", "return 'rollback'", 0);
    let lua = Lua::new();
    let found = resolve(&lua, &s.locations(), Path::new("start.lua"))
        .unwrap()
        .unwrap();
    assert_eq!(found.depth, 1);
    assert_eq!(code(&found), "return 'rollback'");
    assert!(found.path.ends_with("rollback/start.lua"));
    assert_eq!(found.chunk_name(), format!("@{}", found.path.display()));
    assert_eq!(found.mtime_secs(), 1_600_000_000);
    let f = found.compile(&lua).unwrap();
    assert_eq!(f.call::<String>(()).unwrap(), "rollback");

    assert!(resolve(&lua, &s.locations(), Path::new("nope.lua"))
        .unwrap()
        .is_none());
}

#[test]
fn script_syntax_error_falls_over_and_is_reported() {
    let s = Scratch::new("syntax");
    let primary = s.write("package/start.lua", "return (", 0);
    s.write("rollback/start.lua", "return 1", 0);
    let lua = Lua::new();
    let broken = Broken::default();
    let found = resolve_with(&lua, &s.locations(), Path::new("start.lua"), None, &broken)
        .unwrap()
        .unwrap();
    assert_eq!(found.depth, 1);
    let error = broken.last_error(&primary).expect("compile error recorded");
    assert!(error.contains("start.lua"), "{error}");

    // Nothing compiles: the error names every copy.
    s.write("rollback/start.lua", "return )", 1);
    let error = resolve(&lua, &s.locations(), Path::new("start.lua")).unwrap_err();
    assert!(
        error.contains("package") && error.contains("rollback"),
        "{error}"
    );
}

#[test]
fn script_fixed_primary_wins_again() {
    let s = Scratch::new("fixed");
    s.write("package/start.lua", "return (", 0);
    s.write("rollback/start.lua", "return 'rollback'", 0);
    let lua = Lua::new();
    let scripts = Scripts::new(s.locations(), REFRESH);
    let first = get(&scripts, &lua, "start.lua");
    assert_eq!(
        (first.depth, code(&first).as_str()),
        (1, "return 'rollback'")
    );

    s.write("package/start.lua", "return 'package'", 1);
    wait_past_refresh();
    let fixed = get(&scripts, &lua, "start.lua");
    assert_eq!(
        (fixed.depth, code(&fixed).as_str()),
        (0, "return 'package'")
    );
    assert!(fixed.generation > first.generation);
}

#[test]
fn script_hot_reload_keeps_last_good_version() {
    let s = Scratch::new("reload");
    s.write("package/m.lua", "return 1", 0);
    let lua = Lua::new();
    let scripts = Scripts::new(s.locations(), REFRESH);
    let v1 = get(&scripts, &lua, "m.lua");
    // Unchanged: same generation, and `newer` has nothing.
    assert_eq!(get(&scripts, &lua, "m.lua").generation, v1.generation);
    assert!(scripts
        .newer(&lua, Path::new("m.lua"), v1.generation)
        .unwrap()
        .is_none());

    s.write("package/m.lua", "return 2", 1);
    wait_past_refresh();
    let v2 = scripts
        .newer(&lua, Path::new("m.lua"), v1.generation)
        .unwrap()
        .expect("new version");
    assert_eq!(code(&v2), "return 2");
    assert!(v2.generation > v1.generation);

    s.write("package/m.lua", "return (", 2);
    wait_past_refresh();
    let kept = get(&scripts, &lua, "m.lua");
    assert_eq!(
        (code(&kept).as_str(), kept.generation),
        ("return 2", v2.generation)
    );
    wait_past_refresh();
    assert_eq!(get(&scripts, &lua, "m.lua").generation, v2.generation);

    s.write("package/m.lua", "return 3", 3);
    wait_past_refresh();
    assert_eq!(code(&get(&scripts, &lua, "m.lua")), "return 3");
}

#[test]
fn script_vanished_file_is_resolved_again() {
    let s = Scratch::new("vanish");
    let primary = s.write("package/v.lua", "return 'package'", 0);
    s.write("rollback/v.lua", "return 'rollback'", 0);
    let lua = Lua::new();
    let scripts = Scripts::new(s.locations(), REFRESH);
    assert_eq!(get(&scripts, &lua, "v.lua").depth, 0);

    std::fs::remove_file(primary).unwrap();
    wait_past_refresh();
    let fallback = get(&scripts, &lua, "v.lua");
    assert_eq!(
        (fallback.depth, code(&fallback).as_str()),
        (1, "return 'rollback'")
    );

    std::fs::remove_dir_all(s.dir.join("rollback")).unwrap();
    wait_past_refresh();
    assert!(scripts.get(&lua, Path::new("v.lua")).unwrap().is_none());
}

#[test]
fn script_watch_reports_changed_scripts() {
    let s = Scratch::new("watch");
    s.write("package/a.lua", "return 'a1'", 0);
    s.write("package/b.lua", "return 'b1'", 0);
    let lua = Lua::new();
    let scripts = Scripts::new(s.locations(), REFRESH);
    let mut watch = Watch::default();
    for f in ["a.lua", "b.lua"] {
        watch.track(Path::new(f), &get(&scripts, &lua, f));
    }
    assert!(watch.poll(&scripts, &lua).is_empty());

    s.write("package/b.lua", "return 'b2'", 1);
    wait_past_refresh();
    let changed = watch.poll(&scripts, &lua);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, Path::new("b.lua"));
    assert_eq!(code(&changed[0].1), "return 'b2'");
    // Seen now: the next round (past the interval) has nothing.
    wait_past_refresh();
    assert!(watch.poll(&scripts, &lua).is_empty());

    watch.forget(Path::new("b.lua"));
    s.write("package/b.lua", "return 'b3'", 2);
    wait_past_refresh();
    assert!(watch.poll(&scripts, &lua).is_empty());
}

#[test]
fn script_cache_is_shared_across_threads() {
    let s = Scratch::new("threads");
    s.write("package/t.lua", "return 't'", 0);
    let scripts = Scripts::new(s.locations(), REFRESH);
    let generations: Vec<u64> = (0..4)
        .map(|_| {
            let scripts = scripts.clone();
            std::thread::spawn(move || get(&scripts, &Lua::new(), "t.lua").generation)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let first = get(&scripts, &Lua::new(), "t.lua").generation;
    assert!(generations.iter().all(|g| *g == first), "{generations:?}");
}

#[test]
fn script_odd_inputs_do_not_panic() {
    let s = Scratch::new("odd");
    std::fs::create_dir_all(s.dir.join("package/dir.lua")).unwrap();
    // Not valid UTF-8, but valid Lua: the string literal holds raw bytes.
    let path = s.dir.join("package/bytes.lua");
    std::fs::write(&path, b"return '\xff\xfe'").unwrap();
    let lua = Lua::new();
    let scripts = Scripts::new(s.locations(), REFRESH);
    for file in ["", "dir.lua", "nul\0.lua", "../../nowhere.lua"] {
        assert!(
            scripts.get(&lua, Path::new(file)).unwrap().is_none(),
            "{file:?}"
        );
    }
    let bytes = get(&scripts, &lua, "bytes.lua");
    let value: mlua::LuaString = bytes.compile(&lua).unwrap().call(()).unwrap();
    assert_eq!(value.as_bytes().as_ref(), b"\xff\xfe");
    // A precompiled chunk is refused rather than trusted.
    let dumped = lua.load("return 1").into_function().unwrap().dump(true);
    std::fs::write(s.dir.join("package/bin.lua"), dumped).unwrap();
    assert!(scripts.get(&lua, Path::new("bin.lua")).is_err());
}

#[test]
fn script_paths_are_shown_relative_below_base() {
    let base = Path::new("/srv/stage");
    assert_eq!(
        relative_below(Path::new("/srv/stage/package/a.lua"), base),
        Path::new("package/a.lua")
    );
    assert_eq!(
        relative_below(Path::new("/srv/other/a.lua"), base),
        Path::new("/srv/other/a.lua")
    );
    assert_eq!(relative_below(base, base), base);
}
