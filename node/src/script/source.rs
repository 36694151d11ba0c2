//! A script that was found and compiles, and the search that finds it (spec §3.2): the first
//! location whose file exists **and compiles** wins, so a broken primary copy falls over to the
//! next location.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua};

use super::broken::Broken;
use super::search::{candidates, Location};

/// A script that was found and compiles.
#[derive(Clone)]
pub struct Source {
    /// The requested file, as given (for logs).
    pub name: String,
    /// Where it was found (symlinks resolved), relative to the working directory when below it.
    pub path: PathBuf,
    /// The depth of the location it came from; > 0 means a fail-over copy.
    pub depth: u32,
    /// The file's modification time when it was read.
    pub mtime: SystemTime,
    /// The file's bytes (Lua source text).
    pub code: Arc<[u8]>,
    /// Increases every time [`super::Scripts`] accepts a new version of any script; 0 for a
    /// source from [`resolve`]. A VM compares it to the one it ran to see that a reload is due.
    pub generation: u64,
    /// The path as searched (`dir/file`), re-stat'ed by the cache. Not canonical on purpose: a
    /// deployment that swaps a symlinked directory must be seen as a change.
    pub(super) origin: PathBuf,
    pub(super) stamp: Stamp,
}

impl Source {
    /// The chunk name for tracebacks and error messages: `"@path"`.
    pub fn chunk_name(&self) -> String {
        format!("@{}", self.path.display())
    }

    /// `mtime` in whole seconds since the epoch (`stage.load`'s `i[3]`); 0 if before it.
    pub fn mtime_secs(&self) -> u64 {
        self.mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Compiles the code in `lua` (without running it), named for tracebacks.
    pub fn compile(&self, lua: &Lua) -> mlua::Result<Function> {
        compile(lua, &self.code, self.chunk_name())
    }

    /// Whether `other` is the same version of the same file.
    pub(super) fn same_version(&self, other: &Source) -> bool {
        self.origin == other.origin && self.stamp == other.stamp
    }
}

impl fmt::Debug for Source {
    // The code is left out: it can be large and is rarely useful in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("depth", &self.depth)
            .field("mtime", &self.mtime)
            .field("bytes", &self.code.len())
            .field("generation", &self.generation)
            .finish()
    }
}

/// What identifies a version of a file: its mtime, plus its size so that two writes within the
/// file system's timestamp resolution are still told apart (the seed docs say "size or mtime").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    mtime: SystemTime,
    len: u64,
}

impl Stamp {
    /// The stamp of the regular file at `path` (following symlinks); `None` when it is missing,
    /// not a regular file or cannot be stat'ed.
    pub fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        Some(Stamp {
            // Platforms without mtime still get a stamp; the size then carries the changes.
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            len: meta.len(),
        })
    }
}

/// The outcome of trying one candidate path.
pub enum Loaded {
    Good(Source),
    /// Exists but cannot be read or does not compile; the message names the path.
    Bad(String),
    Missing,
}

/// Tries the file at `origin`: stat, read, compile. A `known` source with the same path and
/// stamp is returned as is (nothing read), and a version `broken` knows not to compile is not
/// compiled again; new failures are reported to `broken` (which logs them once).
pub fn load_at(
    lua: &Lua,
    name: &str,
    origin: &Path,
    depth: u32,
    known: Option<&Source>,
    broken: &Broken,
) -> Loaded {
    let Some(stamp) = Stamp::of(origin) else {
        return Loaded::Missing;
    };
    if let Some(k) = known.filter(|k| k.origin == origin && k.stamp == stamp) {
        return Loaded::Good(k.clone());
    }
    if let Some(error) = broken.known(origin, stamp) {
        return Loaded::Bad(error);
    }
    // The stamp is taken before reading: a write racing the read changes the stamp again, so
    // the next re-validation reads the file once more.
    let code: Arc<[u8]> = match std::fs::read(origin) {
        Ok(code) => code.into(),
        Err(e) => {
            let error = format!("cannot read {}: {e}", origin.display());
            broken.report(origin, stamp, &error, false);
            return Loaded::Bad(error);
        }
    };
    let path = shown_path(origin);
    if let Err(e) = compile(lua, &code, format!("@{}", path.display())) {
        let error = e.to_string();
        broken.report(origin, stamp, &error, true);
        return Loaded::Bad(error);
    }
    broken.forget(origin);
    Loaded::Good(Source {
        name: name.to_owned(),
        path,
        depth,
        mtime: stamp.mtime,
        code,
        generation: 0,
        origin: origin.to_owned(),
        stamp,
    })
}

/// Resolves `file` (a relative path, see [`super::split_name`]) through `locations` in order:
/// the first location where the file exists **and** compiles wins; a syntax error is logged at
/// warn with the path and the search goes on. Compiles with `lua` but never runs anything.
///
/// `Ok(None)`: found nowhere. `Err`: found, but no copy could be read and compiled (the message
/// lists each location's error).
pub fn resolve(lua: &Lua, locations: &[Location], file: &Path) -> Result<Option<Source>, String> {
    resolve_with(lua, locations, file, None, &Broken::default())
}

/// [`resolve`] with the cache's hooks: `known` is reused when unchanged, `broken` remembers
/// versions that failed.
pub fn resolve_with(
    lua: &Lua,
    locations: &[Location],
    file: &Path,
    known: Option<&Source>,
    broken: &Broken,
) -> Result<Option<Source>, String> {
    let name = file.to_string_lossy();
    let mut errors = Vec::new();
    for (origin, depth) in candidates(locations, file) {
        match load_at(lua, &name, &origin, depth, known, broken) {
            Loaded::Good(source) => return Ok(Some(source)),
            Loaded::Bad(error) => errors.push(error),
            Loaded::Missing => {}
        }
    }
    if errors.is_empty() {
        Ok(None)
    } else {
        Err(format!(
            "script {name}: no copy loads: {}",
            errors.join("; ")
        ))
    }
}

/// Compiles in text mode only: a malformed binary chunk can crash the Lua VM, and scripts are
/// shipped as source. (The original also accepted precompiled chunks.)
fn compile(lua: &Lua, code: &[u8], chunk_name: String) -> mlua::Result<Function> {
    lua.load(code)
        .set_name(chunk_name)
        .set_mode(ChunkMode::Text)
        .into_function()
}

/// `origin` with symlinks resolved, made relative to the working directory when below it (the
/// path `stage.load` reports and tracebacks show); `origin` itself if it cannot be resolved.
fn shown_path(origin: &Path) -> PathBuf {
    let Ok(full) = origin.canonicalize() else {
        return origin.to_owned();
    };
    match std::env::current_dir().and_then(|d| d.canonicalize()) {
        Ok(cwd) => relative_below(&full, &cwd),
        Err(_) => full,
    }
}

/// `full` relative to `base` when strictly below it, else `full`.
pub(super) fn relative_below(full: &Path, base: &Path) -> PathBuf {
    match full.strip_prefix(base) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_owned(),
        _ => full.to_owned(),
    }
}
