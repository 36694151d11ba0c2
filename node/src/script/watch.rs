//! What one VM has loaded, for hot reload of a running stage: the stage thread records each
//! script it runs and polls between callbacks; a changed script comes back as a new [`Source`]
//! to run again (luna-spec §5.3: re-run in the same environment; a version that does not compile
//! never shows up here, the old code keeps running).

use std::path::{Path, PathBuf};
use std::time::Instant;

use mlua::Lua;

use super::cache::Scripts;
use super::source::Source;

/// The scripts a VM runs, with the generation it last ran of each.
#[derive(Debug, Default)]
pub struct Watch {
    seen: Vec<(PathBuf, u64)>,
    /// No poll before this: a stage may poll on every tick, and a script missing everywhere is
    /// not cached, so each poll would search every location again.
    next_poll: Option<Instant>,
}

impl Watch {
    /// Records that the VM now runs `source` for `file` (the name it was requested by).
    pub fn track(&mut self, file: &Path, source: &Source) {
        match self.seen.iter_mut().find(|(f, _)| f == file) {
            Some(entry) => entry.1 = source.generation,
            None => self.seen.push((file.to_owned(), source.generation)),
        }
    }

    /// Stops watching `file`.
    pub fn forget(&mut self, file: &Path) {
        self.seen.retain(|(f, _)| f != file);
    }

    /// The watched scripts that have a newer good version, in the order they were first
    /// tracked; each is recorded as seen. Does nothing until the cache's refresh interval has
    /// passed since the last poll, so it can be called on every tick. A script that vanished
    /// everywhere is not reported (the VM keeps what it runs); errors are logged at debug (the
    /// cache already warned).
    pub fn poll(&mut self, scripts: &Scripts, lua: &Lua) -> Vec<(PathBuf, Source)> {
        let now = Instant::now();
        if self.next_poll.is_some_and(|next| now < next) {
            return Vec::new();
        }
        self.next_poll = Some(now + scripts.refresh());
        let mut changed = Vec::new();
        for (file, generation) in &mut self.seen {
            match scripts.newer(lua, file, *generation) {
                Ok(Some(source)) => {
                    *generation = source.generation;
                    changed.push((file.clone(), source));
                }
                Ok(None) => {}
                Err(e) => log::debug!("reload {}: {e}", file.display()),
            }
        }
        changed
    }
}
