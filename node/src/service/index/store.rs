//! Persistent indexes: an [`Index`] is a [`Board`] kept in memory and its log file
//! ([`super::wal`]); [`Indexes`] opens them by name under one directory, on first use, and
//! closes those unused for a minute.
//!
//! Usable without a node (a benchmark, a tool):
//!
//! ```no_run
//! use stage_node::service::index::{Indexes, Score};
//! let mut all = Indexes::new("index".as_ref()).unwrap();
//! let board = all.get("scores", std::time::Instant::now()).unwrap();
//! let distance = board.set("alice", 0, Score::Int(120)); // tier 0 = tier 1 of the messages
//! let rank = board.rank("alice", 0);                       // Some(1)
//! all.flush();
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::board::Board;
use super::codec::{self, Op};
use super::score::Score;
use super::wal::{Log, MAGIC};

/// An index unused this long is closed (stage-spec §9.3: 60 s).
pub const IDLE: Duration = Duration::from_secs(60);

/// The log is compacted when it is larger than this and more than twice its live records.
const COMPACT_MIN: u64 = 4 << 20;

/// One index: its board and its file.
pub struct Index {
    board: Board,
    log: Log,
    /// Bytes a snapshot of the current state takes (the live records).
    live: u64,
}

impl Index {
    /// Opens (or creates) the index file at `path` and replays it.
    pub fn open(path: &Path) -> io::Result<Index> {
        let mut board = Board::default();
        let (log, replay) = Log::open(path, |payload| {
            match codec::decode(payload)? {
                Op::Put(key, record) => board.put(&key, record),
                Op::Del(key) => {
                    board.remove(&key);
                }
            }
            Ok(())
        })?;
        let live = board
            .records()
            .map(|(k, r)| frame_len(codec::put_len(k, r)))
            .sum();
        log::debug!(
            "{}: {} members from {} records",
            path.display(),
            board.len(),
            replay.frames
        );
        Ok(Index { board, log, live })
    }

    /// The index's contents.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// Changes member `key` with `f` and logs its new state (every change to the board goes
    /// through here, so the log always rebuilds the board).
    pub fn change<R>(&mut self, key: &str, f: impl FnOnce(&mut Board) -> R) -> R {
        let before = self
            .board
            .record(key)
            .map_or(0, |r| frame_len(codec::put_len(key, r)));
        let r = f(&mut self.board);
        let after = match self.board.record(key) {
            Some(record) => {
                let payload = codec::put(key, record);
                self.log.append(&payload);
                frame_len(payload.len())
            }
            None if before > 0 => {
                self.log.append(&codec::del(key));
                0
            }
            None => 0,
        };
        self.live = self.live - before + after;
        r
    }

    /// Sets member `key`'s scores in `tier` (0-based) to `score` alone; its distance
    /// ([`Board::set_scores`]).
    pub fn set(&mut self, key: &str, tier: usize, score: Score) -> i64 {
        self.change(key, |b| b.set_scores(key, tier, vec![score]))
    }

    /// The best rank (1-based) of member `key` in `tier` (0-based).
    pub fn rank(&self, key: &str, tier: usize) -> Option<usize> {
        let best = self.board.record(key)?.scores(tier).first()?;
        self.board.rank(tier, best, key)
    }

    /// Hands the logged changes to the operating system.
    pub fn flush(&mut self) -> io::Result<()> {
        self.log.flush()
    }

    /// Makes the logged changes durable on disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.log.sync()
    }

    /// Whether the log holds so many replaced records that it is worth compacting.
    pub fn wants_compaction(&self) -> bool {
        let size = self.log.len();
        size > COMPACT_MIN && size > 2 * (self.live + MAGIC.len() as u64)
    }

    /// Replaces the log by a snapshot of the current state.
    pub fn compact(&mut self) -> io::Result<()> {
        let board = &self.board;
        self.log
            .rewrite(board.records().map(|(k, r)| codec::put(k, r)))
    }

    /// Size of the index file in bytes.
    pub fn file_len(&self) -> u64 {
        self.log.len()
    }
}

fn frame_len(payload: usize) -> u64 {
    8 + payload as u64
}

/// The indexes of one directory, opened on first use.
pub struct Indexes {
    dir: PathBuf,
    open: HashMap<String, Opened>,
    /// Held for the service's life: two processes appending to the same files would ruin them.
    _lock: File,
}

struct Opened {
    index: Index,
    used: Instant,
}

impl Indexes {
    /// Serves the indexes of `dir` (created if missing). Fails when another process serves it.
    pub fn new(dir: &Path) -> Result<Indexes, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("index directory {}: {e}", dir.display()))?;
        let lock_path = dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!(
                "index directory {} is in use by another index service ({})",
                dir.display(),
                io::Error::last_os_error()
            ));
        }
        Ok(Indexes {
            dir: dir.to_owned(),
            open: HashMap::new(),
            _lock: lock,
        })
    }

    /// The index called `name`, opened (and replayed) if it is not open yet, created if it
    /// does not exist.
    pub fn get(&mut self, name: &str, now: Instant) -> Result<&mut Index, String> {
        self.open_index(name, now, true)?
            .ok_or_else(|| format!("index '{name}' was not created"))
    }

    /// The index called `name` if it exists (opened if it is not open yet).
    pub fn find(&mut self, name: &str, now: Instant) -> Result<Option<&mut Index>, String> {
        self.open_index(name, now, false)
    }

    fn open_index(
        &mut self,
        name: &str,
        now: Instant,
        create: bool,
    ) -> Result<Option<&mut Index>, String> {
        if !self.open.contains_key(name) {
            let path = self.dir.join(file_name(name)?);
            if !create && !path.exists() {
                return Ok(None);
            }
            let index =
                Index::open(&path).map_err(|e| format!("index '{name}' cannot be opened: {e}"))?;
            self.open
                .insert(name.to_owned(), Opened { index, used: now });
        }
        Ok(self.open.get_mut(name).map(|o| {
            o.used = now;
            &mut o.index
        }))
    }

    /// Hands every logged change to the operating system. An index whose log cannot be
    /// written is closed (it is reread from its file when next used, so memory never holds
    /// what the file lost); returns those with the error.
    pub fn flush(&mut self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for (name, o) in &mut self.open {
            if let Err(e) = o.index.flush() {
                log::error!("index '{name}': cannot write its log: {e}");
                failed.push((name.clone(), e.to_string()));
            }
        }
        for (name, _) in &failed {
            self.open.remove(name);
        }
        failed
    }

    /// Periodic work: syncs logs to disk, compacts big ones, closes indexes idle for
    /// [`IDLE`]. Returns whether any index is still open.
    pub fn tick(&mut self, now: Instant) -> bool {
        self.open.retain(|name, o| {
            let idle = now.saturating_duration_since(o.used) >= IDLE;
            if o.index.wants_compaction() {
                if let Err(e) = o.index.compact() {
                    log::error!("index '{name}': compaction failed: {e}");
                }
            }
            match o.index.sync() {
                Ok(()) if idle => {
                    log::debug!("index '{name}': closed after {IDLE:?} unused");
                    false
                }
                Ok(()) => true,
                Err(e) => {
                    log::error!("index '{name}': cannot write its log, closed: {e}");
                    false
                }
            }
        });
        !self.open.is_empty()
    }

    /// Syncs and closes every index.
    pub fn close_all(&mut self) {
        for (name, mut o) in self.open.drain() {
            if let Err(e) = o.index.sync() {
                log::error!("index '{name}': cannot write its log: {e}");
            }
        }
    }

    /// Whether index `name` is open.
    pub fn is_open(&self, name: &str) -> bool {
        self.open.contains_key(name)
    }
}

/// Longest file name made from an index name (file systems allow 255 bytes).
const MAX_FILE_NAME: usize = 200;

/// The file of index `name`: letters, digits, `_`, `-` and (not first) `.` are kept, every
/// other byte is written `%XX`, so that distinct names get distinct files and no name
/// reaches outside the directory (`../x` → `%2E.%2Fx.idx`).
pub fn file_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty index name".into());
    }
    let mut out = String::with_capacity(name.len() + 4);
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_FILE_NAME {
        return Err(format!(
            "index name '{name}' is too long ({} bytes)",
            name.len()
        ));
    }
    out.push_str(".idx");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("stage-index-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn names_become_safe_distinct_file_names() {
        assert_eq!(file_name("scores").unwrap(), "scores.idx");
        assert_eq!(file_name("a.b-c_d").unwrap(), "a.b-c_d.idx");
        assert_eq!(
            file_name("../etc/passwd").unwrap(),
            "%2E.%2Fetc%2Fpasswd.idx"
        );
        assert_eq!(file_name(".").unwrap(), "%2E.idx");
        assert_eq!(file_name("a%2F").unwrap(), "a%252F.idx");
        assert_eq!(file_name("점수").unwrap(), "%EC%A0%90%EC%88%98.idx");
        assert!(file_name("").is_err());
        assert!(file_name(&"x".repeat(300)).is_err());
    }

    #[test]
    fn an_index_reopens_with_its_state_and_compacts() {
        let dir = scratch("reopen");
        let path = dir.join("t.idx");
        std::fs::create_dir_all(&dir).unwrap();
        {
            let mut ix = Index::open(&path).unwrap();
            for round in 0..5i64 {
                for k in 0..20_000 {
                    ix.set(&format!("k{k}"), 0, Score::Int(k * round));
                }
            }
            ix.change("k7", |b| b.remove("k7"));
            ix.flush().unwrap();
            assert!(ix.wants_compaction(), "size {}", ix.file_len());
            let before = ix.file_len();
            ix.compact().unwrap();
            assert!(ix.file_len() * 2 < before);
            assert!(!ix.wants_compaction());
            ix.set("k8", 1, Score::Int(5));
            ix.flush().unwrap();
        }
        let ix = Index::open(&path).unwrap();
        assert_eq!(ix.board().len(), 19_999);
        assert_eq!(ix.rank("k19999", 0), Some(1));
        assert_eq!(ix.rank("k7", 0), None);
        assert_eq!(ix.rank("k8", 1), Some(1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn idle_indexes_close_and_a_directory_has_one_server() {
        let dir = scratch("idle");
        let mut all = Indexes::new(&dir).unwrap();
        assert!(Indexes::new(&dir).is_err(), "the directory is locked");
        let t0 = Instant::now();
        all.get("a", t0).unwrap().set("x", 0, Score::Int(1));
        assert!(all.flush().is_empty());
        assert!(all.tick(t0 + Duration::from_secs(59)));
        assert!(!all.tick(t0 + IDLE));
        assert!(!all.is_open("a"));
        assert!(
            all.find("b", t0).unwrap().is_none(),
            "reading creates nothing"
        );
        assert!(!dir.join("b.idx").exists());
        assert_eq!(all.get("a", t0).unwrap().rank("x", 0), Some(1));
        all.close_all();
        drop(all);
        assert!(Indexes::new(&dir).is_ok(), "the lock goes with its holder");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
