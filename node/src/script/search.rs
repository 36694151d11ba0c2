//! The script search path (spec §3.2): `--package` values become [`Location`]s with a fail-over
//! depth, and a relative file name becomes the list of candidate paths to try, in order.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// One search location: a directory (empty = the working directory) and its fail-over depth.
///
/// Depth 0 is a primary location; a script found deeper is a fail-over copy (`stage.load`'s
/// `i[1] > 0`), which the cache re-resolves from the first location once its refresh interval has
/// passed, so a repaired primary copy takes over again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub dir: PathBuf,
    pub depth: u32,
}

impl Location {
    /// The working directory at depth 0: the search path when no `--package` is given.
    pub fn cwd() -> Location {
        Location {
            dir: PathBuf::new(),
            depth: 0,
        }
    }
}

/// Parses `--package` values, in order.
///
/// * `"dir"`: depth = the value's 0-based index in the list;
/// * `"[N]dir"` or `"#N:dir"`: depth N; after the number every `]` and `:` is skipped and the rest
///   is the directory (so `"[0]"` and `"#0:"` are the working directory at depth 0);
/// * `""`: the working directory at the value's index.
///
/// With no values at all the search path is the working directory alone (depth 0). When values
/// are given the working directory is **not** implied: list `"[0]"` to search it (spec §3.2, the
/// shipped `["package","rollback","[0]lib","[0]"]`).
///
/// Unlike the original's `strtol`, a marker without digits, a negative or an overflowing depth is
/// an error rather than depth 0. A location containing `:` (the original's zip-archive prefix) is
/// taken as a plain directory name. A marker value that is not valid UTF-8 is rejected; a plain
/// non-UTF-8 directory is kept byte for byte.
pub fn parse_locations<S: AsRef<OsStr>>(values: &[S]) -> Result<Vec<Location>, String> {
    if values.is_empty() {
        return Ok(vec![Location::cwd()]);
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| parse_one(index, value.as_ref()))
        .collect()
}

fn parse_one(index: usize, value: &OsStr) -> Result<Location, String> {
    let marked = matches!(value.as_encoded_bytes().first(), Some(b'[' | b'#'));
    if !marked {
        let depth = u32::try_from(index).map_err(|_| "too many --package values".to_owned())?;
        return Ok(Location {
            dir: PathBuf::from(value),
            depth,
        });
    }
    let text = value.to_str().ok_or_else(|| {
        format!(
            "--package '{}': a depth marker needs a UTF-8 directory name",
            value.to_string_lossy()
        )
    })?;
    let rest = &text[1..];
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let depth = rest[..digits].parse::<u32>().map_err(|_| {
        format!(
            "--package '{text}': expected a depth after '{}' (e.g. [1]dir or #1:dir)",
            &text[..1]
        )
    })?;
    let dir = rest[digits..].trim_start_matches([']', ':']);
    Ok(Location {
        dir: PathBuf::from(dir),
        depth,
    })
}

/// The paths to try for `file`, in search order, each with its depth.
///
/// The path is `dir/file`, or `file` alone for the working directory. An absolute `file` names
/// one exact script: it is its own single, primary (depth 0) candidate.
pub fn candidates(locations: &[Location], file: &Path) -> Vec<(PathBuf, u32)> {
    if file.is_absolute() {
        return vec![(file.to_owned(), 0)];
    }
    locations
        .iter()
        .map(|l| (l.dir.join(file), l.depth))
        .collect()
}
