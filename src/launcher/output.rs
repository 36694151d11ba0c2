//! Forwarding of child output: each line a child writes is re-emitted on the
//! launcher's matching stream as `[name] line`, so the interleaved output of
//! a whole cluster stays attributable.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::thread::{self, JoinHandle};

/// The launcher stream a child pipe is forwarded to.
#[derive(Clone, Copy, Debug)]
pub enum Sink {
    Stdout,
    Stderr,
}

impl Sink {
    /// Writes one complete line. Holding the stream's lock for a single
    /// `write_all` keeps lines from different children (and the launcher's
    /// own log records, written the same way) from interleaving mid-line.
    fn write_line(self, line: &[u8]) {
        // Write errors are ignored on purpose: if our own output is gone
        // (say, the reading end of a pipe closed), the forwarder must still
        // drain the child's pipe, or the child would block on a full pipe.
        let _ = match self {
            // Flushed per line: stdout is line-buffered only on a terminal,
            // and whoever reads us through a pipe should see lines promptly.
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line).and_then(|()| out.flush())
            }
            Sink::Stderr => io::stderr().lock().write_all(line),
        };
    }
}

/// Starts a thread that copies `source` to `sink` line by line, prefixing
/// each with `[name] `, and then shows the line to `observe` (after writing,
/// so anything `observe` triggers happens after the line is visible).
/// The thread ends when `source` reaches end of file.
pub fn forward(
    name: &str,
    source: impl Read + Send + 'static,
    sink: Sink,
    mut observe: impl FnMut(&str) + Send + 'static,
) -> JoinHandle<()> {
    let prefix = format!("[{name}] ");
    thread::spawn(move || {
        let mut reader = BufReader::new(source);
        // Bytes, not `String`: a child printing invalid UTF-8 must not stop
        // its output from being forwarded.
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            let text = strip_line_end(&raw);
            let mut line = Vec::with_capacity(prefix.len() + text.len() + 1);
            line.extend_from_slice(prefix.as_bytes());
            line.extend_from_slice(text);
            line.push(b'\n');
            sink.write_line(&line);
            observe(&String::from_utf8_lossy(text));
        }
    })
}

/// Removes a trailing `\n` or `\r\n`; a last line without one is kept whole.
fn strip_line_end(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::strip_line_end;

    #[test]
    fn strips_unix_and_windows_line_ends_only() {
        assert_eq!(strip_line_end(b"a\n"), b"a");
        assert_eq!(strip_line_end(b"a\r\n"), b"a");
        assert_eq!(strip_line_end(b"a"), b"a");
        assert_eq!(strip_line_end(b"a\n\n"), b"a\n");
    }
}
