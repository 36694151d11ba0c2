//! The file of one index: a write-ahead log of records, compacted now and then by writing a
//! snapshot (the records that rebuild the current state) in its place.
//!
//! Layout: the 8-byte magic [`MAGIC`], then frames `[length u32 LE][CRC-32 u32 LE][payload]`.
//! Frames are only appended; a crash can leave the last one incomplete. Opening replays every
//! intact frame and truncates the file at the first frame that is incomplete, too long, fails
//! its checksum or is refused by the reader: what came before it is kept, and appends go on
//! from there. A snapshot is written to `<file>.tmp`, synced, and renamed over the file, so a
//! crash at any moment leaves either the old file or the new one, never a mix.
//!
//! Durability: [`Log::flush`] hands the buffered frames to the operating system (the index
//! service does it before answering a message, so a killed process loses nothing answered);
//! [`Log::sync`] asks the disk to keep them (the service does it every second: a power loss
//! may lose the last second of updates).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The first bytes of an index file.
pub const MAGIC: &[u8; 8] = b"STGIDX1\n";

/// Longest payload accepted when reading: a longer length field is damage, not data.
const MAX_PAYLOAD: u32 = 1 << 30;

/// What opening a log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Frames replayed.
    pub frames: u64,
    /// Bytes cut from the end (a torn or damaged tail); 0 for a clean file.
    pub truncated: u64,
}

/// An open index file, appending.
pub struct Log {
    path: PathBuf,
    file: File,
    /// Frames appended but not yet handed to the operating system.
    pending: Vec<u8>,
    /// Bytes in the file, pending ones included.
    len: u64,
    /// Whether the operating system holds bytes the disk may not have yet.
    unsynced: bool,
}

impl Log {
    /// Opens the log at `path` (created when missing), passing each intact payload to
    /// `apply` in order; an `Err` from `apply` counts as damage (the file is cut there).
    pub fn open(
        path: &Path,
        mut apply: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> io::Result<(Log, Replay)> {
        let _ = std::fs::remove_file(temp_path(path));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let size = file.metadata()?.len();
        let mut replay = Replay::default();
        let good = if size < MAGIC.len() as u64 {
            // New, or torn while it was being created: start it afresh.
            let mut head = Vec::new();
            file.read_to_end(&mut head)?;
            if !MAGIC.starts_with(&head) {
                return Err(not_an_index(path));
            }
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(MAGIC)?;
            file.sync_all()?;
            sync_dir(path)?;
            MAGIC.len() as u64
        } else {
            let mut reader = BufReader::with_capacity(1 << 20, &mut file);
            let mut magic = [0u8; 8];
            reader.read_exact(&mut magic)?;
            if &magic != MAGIC {
                return Err(not_an_index(path));
            }
            let mut good = MAGIC.len() as u64;
            let mut payload = Vec::new();
            while let Some(n) = read_frame(&mut reader, &mut payload)? {
                if let Err(why) = apply(&payload) {
                    log::error!("{}: record at byte {good} refused: {why}", path.display());
                    break;
                }
                good += n;
                replay.frames += 1;
            }
            good
        };
        if good < size {
            log::warn!(
                "{}: cut {} bytes of a torn or damaged tail at byte {good}",
                path.display(),
                size - good
            );
            file.set_len(good)?;
            file.sync_all()?;
            replay.truncated = size - good;
        }
        file.seek(SeekFrom::Start(good))?;
        let log = Log {
            path: path.to_owned(),
            file,
            pending: Vec::new(),
            len: good,
            unsynced: false,
        };
        Ok((log, replay))
    }

    /// Appends a frame holding `payload` (buffered until [`Log::flush`]).
    pub fn append(&mut self, payload: &[u8]) {
        let start = self.pending.len();
        write_frame(&mut self.pending, payload);
        self.len += (self.pending.len() - start) as u64;
    }

    /// Hands the appended frames to the operating system: after this a killed process loses
    /// none of them.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.pending);
        self.pending.clear();
        self.unsynced = true;
        r
    }

    /// Flushes, and waits until the disk holds everything written.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Bytes in the file (pending frames included).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Replaces the whole log by frames holding `payloads` (a snapshot of the state), written
    /// to a temporary file, synced and renamed over the log.
    pub fn rewrite(
        &mut self,
        payloads: impl IntoIterator<Item = impl AsRef<[u8]>>,
    ) -> io::Result<()> {
        // The old file must be whole should the new one fail to replace it.
        self.sync()?;
        let temp = temp_path(&self.path);
        let result = (|| {
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&temp)?);
            w.write_all(MAGIC)?;
            let mut len = MAGIC.len() as u64;
            let mut frame = Vec::new();
            for p in payloads {
                frame.clear();
                write_frame(&mut frame, p.as_ref());
                w.write_all(&frame)?;
                len += frame.len() as u64;
            }
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&temp, &self.path)?;
            sync_dir(&self.path)?;
            Ok((file, len))
        })();
        match result {
            Ok((mut file, len)) => {
                file.seek(SeekFrom::Start(len))?;
                self.file = file;
                self.len = len;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        }
    }
}

fn not_an_index(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is not an index file", path.display()),
    )
}

fn temp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Makes a created or renamed file's directory entry durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

fn write_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads the next frame into `payload`; `Ok(None)` at the end of the intact frames (end of
/// file, or a frame that is incomplete or damaged). Returns the frame's size in bytes.
fn read_frame(r: &mut impl Read, payload: &mut Vec<u8>) -> io::Result<Option<u64>> {
    let mut head = [0u8; 8];
    if !read_full(r, &mut head)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_PAYLOAD {
        return Ok(None);
    }
    payload.resize(len as usize, 0);
    if !read_full(r, payload)? || crc32(payload) != crc {
        return Ok(None);
    }
    Ok(Some(8 + u64::from(len)))
}

/// Fills `buf`; false when the input ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// CRC-32 (IEEE 802.3, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let d = std::env::temp_dir().join(format!(
                "stage-index-log-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn reopen(path: &Path) -> (Log, Vec<Vec<u8>>, Replay) {
        let mut got = Vec::new();
        let (log, replay) = Log::open(path, |p| {
            got.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        (log, got, replay)
    }

    fn payloads(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("record {i}").into_bytes()).collect()
    }

    fn write(path: &Path, records: &[Vec<u8>]) {
        let (mut log, _, _) = reopen(path);
        for r in records {
            log.append(r);
        }
        log.flush().unwrap();
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn records_survive_reopening_in_order() {
        let dir = Dir::new("order");
        let path = dir.0.join("a.idx");
        write(&path, &payloads(3));
        write(&path, &payloads(2));
        let (log, got, replay) = reopen(&path);
        let mut expected = payloads(3);
        expected.extend(payloads(2));
        assert_eq!(got, expected);
        assert_eq!(
            replay,
            Replay {
                frames: 5,
                truncated: 0
            }
        );
        assert_eq!(log.len(), std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn a_torn_tail_is_cut_and_earlier_records_kept() {
        let dir = Dir::new("torn");
        let path = dir.0.join("a.idx");
        write(&path, &payloads(10));
        let full = std::fs::metadata(&path).unwrap().len();
        // Every cut inside the last frame (a write torn by a crash) keeps the first nine.
        let last = 8 + payloads(10)[9].len() as u64;
        for cut in 1..last {
            let copy = dir.0.join("b.idx");
            std::fs::copy(&path, &copy).unwrap();
            OpenOptions::new()
                .write(true)
                .open(&copy)
                .unwrap()
                .set_len(full - cut)
                .unwrap();
            let (mut log, got, replay) = reopen(&copy);
            assert_eq!(got, payloads(9), "cut {cut}");
            assert_eq!(replay.truncated, last - cut);
            // Appending goes on after the kept records.
            log.append(b"after");
            log.flush().unwrap();
            let (_, got, _) = reopen(&copy);
            assert_eq!(got.len(), 10);
            assert_eq!(got[9], b"after");
        }
    }

    #[test]
    fn a_corrupted_record_cuts_the_log_there() {
        let dir = Dir::new("corrupt");
        let path = dir.0.join("a.idx");
        write(&path, &payloads(10));
        let mut bytes = std::fs::read(&path).unwrap();
        // Flip a byte inside the payload of the fifth record.
        let fifth: usize = 8 + payloads(4).iter().map(|p| 8 + p.len()).sum::<usize>();
        bytes[fifth + 9] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (_, got, replay) = reopen(&path);
        assert_eq!(got, payloads(4));
        assert_eq!(replay.truncated as usize, bytes.len() - fifth);
        // A length field gone wild is damage as well.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 20]);
        std::fs::write(&path, &bytes).unwrap();
        let (_, got, replay) = reopen(&path);
        assert_eq!((got.len(), replay.truncated), (4, 24));
    }

    #[test]
    fn a_record_the_reader_refuses_cuts_the_log_there() {
        let dir = Dir::new("refused");
        let path = dir.0.join("a.idx");
        write(&path, &payloads(5));
        let mut n = 0;
        let (_, replay) = Log::open(&path, |_| {
            n += 1;
            if n == 3 {
                Err("bad".into())
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(replay.frames, 2);
        let (_, got, _) = reopen(&path);
        assert_eq!(got, payloads(2));
    }

    #[test]
    fn rewriting_replaces_the_log_atomically() {
        let dir = Dir::new("rewrite");
        let path = dir.0.join("a.idx");
        write(&path, &payloads(100));
        let (mut log, _, _) = reopen(&path);
        let snapshot = payloads(2);
        log.rewrite(&snapshot).unwrap();
        log.append(b"next");
        log.sync().unwrap();
        assert!(!temp_path(&path).exists());
        let (_, got, _) = reopen(&path);
        assert_eq!(got, [snapshot, vec![b"next".to_vec()]].concat());
        // A snapshot left half-written by a crash is ignored and removed.
        std::fs::write(temp_path(&path), b"STGIDX1\npartial").unwrap();
        let (_, got, _) = reopen(&path);
        assert_eq!(got.len(), 3);
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_foreign_file_is_refused_and_left_alone() {
        let dir = Dir::new("foreign");
        let path = dir.0.join("a.idx");
        std::fs::write(&path, b"hello, this is not an index").unwrap();
        assert!(Log::open(&path, |_| Ok(())).is_err());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"hello, this is not an index"
        );
        std::fs::write(&path, b"hi").unwrap();
        assert!(
            Log::open(&path, |_| Ok(())).is_err(),
            "short, and not our magic"
        );
        // A file torn while its magic was written is started afresh.
        std::fs::write(&path, b"STG").unwrap();
        let (_, got, _) = reopen(&path);
        assert!(got.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), MAGIC);
    }
}
