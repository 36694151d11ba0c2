//! The per-process script cache (spec §3.3), shared by every VM of the node.
//!
//! Entries are keyed by the requested file and re-validated lazily, on use, at most once per
//! refresh interval:
//!
//! * a primary (depth 0) entry is re-stat'ed; a changed file is re-read and compiled, and a
//!   version that does not compile is ignored (the last good code stays, the error is logged
//!   once per version);
//! * a fail-over (depth > 0) entry is resolved again from the first location, so a repaired
//!   primary copy wins again;
//! * a file that vanished is dropped and resolved again.
//!
//! The original waited 30 s (`%reflush`); the default here is 1 s so that an edited script is
//! live within a second.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mlua::Lua;

use super::broken::Broken;
use super::search::Location;
use super::source::{load_at, resolve_with, Loaded, Source, Stamp};

/// How often a cached script is checked against its file, unless configured otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(1);

/// The cache of resolved scripts; clones share it.
#[derive(Clone)]
pub struct Scripts {
    shared: Arc<Shared>,
}

impl fmt::Debug for Scripts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scripts")
            .field("locations", &self.shared.locations)
            .field("refresh", &self.shared.refresh)
            .finish_non_exhaustive()
    }
}

struct Shared {
    locations: Vec<Location>,
    refresh: Duration,
    entries: Mutex<State>,
    broken: Broken,
}

#[derive(Default)]
struct State {
    entries: HashMap<PathBuf, Entry>,
    /// Last generation handed out; a counter, so versions are ordered by acceptance.
    generation: u64,
}

struct Entry {
    source: Source,
    /// When the entry is next checked against the file system.
    due: Instant,
}

impl Scripts {
    /// A cache over `locations` (see [`super::parse_locations`]) that re-validates an entry at
    /// most every `refresh`.
    pub fn new(locations: Vec<Location>, refresh: Duration) -> Scripts {
        Scripts {
            shared: Arc::new(Shared {
                locations,
                refresh,
                entries: Mutex::new(State::default()),
                broken: Broken::default(),
            }),
        }
    }

    /// The search path.
    pub fn locations(&self) -> &[Location] {
        &self.shared.locations
    }

    /// How often an entry is checked against its file.
    pub fn refresh(&self) -> Duration {
        self.shared.refresh
    }

    /// The current good version of `file` (a path relative to the locations, see
    /// [`super::split_name`]), re-validated when due. `lua` is only used to compile-check.
    ///
    /// `Ok(None)`: found nowhere. `Err`: found, but no copy loads and there is no earlier good
    /// version to keep.
    pub fn get(&self, lua: &Lua, file: &Path) -> Result<Option<Source>, String> {
        self.lookup(lua, file, None)
    }

    /// Like [`Scripts::get`], but `Ok(None)` also when the current version is the one with
    /// `generation` — the cheap poll of a VM running that version (no copy when unchanged).
    pub fn newer(&self, lua: &Lua, file: &Path, generation: u64) -> Result<Option<Source>, String> {
        self.lookup(lua, file, Some(generation))
    }

    fn lookup(&self, lua: &Lua, file: &Path, seen: Option<u64>) -> Result<Option<Source>, String> {
        let pick = |s: &Source| (seen != Some(s.generation)).then(|| s.clone());
        let now = Instant::now();
        let current = {
            let mut state = self.lock();
            match state.entries.get_mut(file) {
                Some(e) if now < e.due => return Ok(pick(&e.source)),
                // Claim the check: VMs arriving meanwhile keep using the cached version rather
                // than checking the same file again.
                Some(e) => {
                    e.due = now + self.shared.refresh;
                    Some(e.source.clone())
                }
                None => None,
            }
        };
        // The file system and the compiler are used without holding the lock.
        let next = match current {
            Some(current) => self.revalidate(lua, file, current),
            None => resolve_with(lua, &self.shared.locations, file, None, &self.shared.broken),
        };
        let installed = self.install(file, next)?;
        Ok(installed.and_then(|s| pick(&s)))
    }

    /// The version to keep after checking `current` against the file system.
    fn revalidate(
        &self,
        lua: &Lua,
        file: &Path,
        current: Source,
    ) -> Result<Option<Source>, String> {
        let shared = &self.shared;
        if current.depth == 0 {
            match load_at(
                lua,
                &current.name,
                &current.origin,
                0,
                Some(&current),
                &shared.broken,
            ) {
                Loaded::Good(source) => return Ok(Some(source)),
                // Logged by `broken`; the last good version keeps serving.
                Loaded::Bad(_) => return Ok(Some(current)),
                Loaded::Missing => {}
            }
        }
        match resolve_with(lua, &shared.locations, file, Some(&current), &shared.broken) {
            // Nothing loads any more, but the copy in use is still there (only changed for the
            // worse): keep it, as for a primary copy.
            Err(_) if Stamp::of(&current.origin).is_some() => Ok(Some(current)),
            other => other,
        }
    }

    /// Stores the outcome of a check; returns what `file` now resolves to.
    fn install(
        &self,
        file: &Path,
        next: Result<Option<Source>, String>,
    ) -> Result<Option<Source>, String> {
        let mut state = self.lock();
        let mut source = match next {
            Ok(Some(source)) => source,
            other => {
                state.entries.remove(file);
                return other;
            }
        };
        if let Some(e) = state.entries.get(file) {
            // Unchanged (or installed by another VM meanwhile): keep its generation.
            if e.source.same_version(&source) {
                return Ok(Some(e.source.clone()));
            }
        }
        state.generation += 1;
        source.generation = state.generation;
        match state.entries.get(file) {
            Some(old) => log::info!(
                "script '{}' updated: '{}' (depth {}, was '{}' depth {})",
                source.name,
                source.path.display(),
                source.depth,
                old.source.path.display(),
                old.source.depth
            ),
            None => log::info!(
                "script '{}': '{}' (depth {})",
                source.name,
                source.path.display(),
                source.depth
            ),
        }
        let due = Instant::now() + self.shared.refresh;
        state.entries.insert(
            file.to_owned(),
            Entry {
                source: source.clone(),
                due,
            },
        );
        Ok(Some(source))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the map consistent (every update is a
        // single insert or remove), so poisoning is ignored.
        self.shared
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}
