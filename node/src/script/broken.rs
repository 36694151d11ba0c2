//! Memory of script versions that failed to load, so each failure is logged once per version
//! and a version known not to compile is not read and compiled again on every re-validation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::source::Stamp;

/// Failures by file path (as found, `dir/file`); at most one per file, so the map stays as
/// small as the set of files.
#[derive(Debug, Default)]
pub struct Broken {
    failures: Mutex<HashMap<PathBuf, Failure>>,
}

#[derive(Debug)]
struct Failure {
    stamp: Stamp,
    error: String,
    /// A compile error is a property of the content, so the same version can be skipped. A read
    /// error (e.g. permissions) is retried: fixing it does not change the mtime.
    compile: bool,
}

impl Broken {
    /// The compile error of exactly this version of `origin`, if it is known not to compile.
    pub fn known(&self, origin: &Path, stamp: Stamp) -> Option<String> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(origin)
            .filter(|f| f.compile && f.stamp == stamp)
            .map(|f| f.error.clone())
    }

    /// Records a failure of this version of `origin`; logs it at warn unless already logged.
    pub fn report(&self, origin: &Path, stamp: Stamp, error: &str, compile: bool) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let seen = failures
            .get(origin)
            .is_some_and(|f| f.stamp == stamp && f.error == error);
        if !seen {
            log::warn!("script {}: {error}", origin.display());
            failures.insert(
                origin.to_owned(),
                Failure {
                    stamp,
                    error: error.to_owned(),
                    compile,
                },
            );
        }
    }

    /// Forgets `origin` once a version of it loaded, so a later failure is logged again.
    pub fn forget(&self, origin: &Path) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(origin);
    }

    /// The last recorded error for `origin`, whatever its version.
    #[cfg(test)]
    pub fn last_error(&self, origin: &Path) -> Option<String> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(origin).map(|f| f.error.clone())
    }
}
