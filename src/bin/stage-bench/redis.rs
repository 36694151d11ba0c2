//! A `redis-server` of our own on a loopback port, and just enough of RESP to pipeline
//! commands at it and check every reply.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Instant;

use crate::procs::{self, Process};
use crate::wire::push_decimal;

/// A running redis-server, stopped when dropped.
pub struct Redis {
    pub process: Process,
    pub port: u16,
}

/// Starts `program` (`redis-server`) with default settings but for `extra` options, on a free
/// loopback port, its files in `dir`.
pub fn start(
    program: &str,
    extra: &[&str],
    dir: &Path,
    deadline: Instant,
) -> Result<Redis, String> {
    let port = procs::free_port()?;
    let port_text = port.to_string();
    let dir_text = dir.display().to_string();
    let mut args = vec![
        "--port",
        &port_text,
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir_text,
    ];
    args.extend_from_slice(extra);
    let process = procs::spawn(Path::new(program), &args, dir, false)
        .map_err(|e| format!("{e} (install it: apt-get install redis-server)"))?;
    procs::wait_line(&process, deadline, |l| {
        l.contains("Ready to accept connections")
    })
    .map_err(|e| format!("redis-server: {e}"))?;
    Ok(Redis { process, port })
}

/// One reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Int(i64),
    Nil,
    Text(Vec<u8>),
}

/// A connection to Redis.
pub struct Conn {
    out: TcpStream,
    input: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(port: u16) -> Result<Conn, String> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("redis: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let input = BufReader::with_capacity(256 << 10, s.try_clone().map_err(|e| e.to_string())?);
        Ok(Conn { out: s, input })
    }

    /// Sends `total` commands (`command(i, buf)` appends command `i`) in windows of `window`,
    /// reading each window's replies before sending the next; `check(i, reply)` judges each.
    /// Returns commands per second.
    pub fn pipeline(
        &mut self,
        total: usize,
        window: usize,
        command: impl Fn(usize, &mut Vec<u8>),
        check: impl Fn(usize, Reply) -> Result<(), String>,
    ) -> Result<f64, String> {
        let t0 = Instant::now();
        let mut buf = Vec::with_capacity(window * 64);
        let mut i = 0;
        while i < total {
            let end = (i + window).min(total);
            buf.clear();
            for j in i..end {
                command(j, &mut buf);
            }
            self.out
                .write_all(&buf)
                .map_err(|e| format!("redis: {e}"))?;
            for j in i..end {
                check(j, self.reply()?)?;
            }
            i = end;
        }
        Ok(total as f64 / t0.elapsed().as_secs_f64())
    }

    fn line(&mut self) -> Result<Vec<u8>, String> {
        let mut line = Vec::new();
        self.input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("redis: {e}"))?;
        if !line.ends_with(b"\r\n") {
            return Err("redis: connection closed".into());
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn reply(&mut self) -> Result<Reply, String> {
        let line = self.line()?;
        let rest = String::from_utf8_lossy(&line[1.min(line.len())..]).into_owned();
        match line.first() {
            Some(b':') => rest
                .parse()
                .map(Reply::Int)
                .map_err(|_| format!("redis: bad integer {rest}")),
            Some(b'+') => Ok(Reply::Text(rest.into_bytes())),
            Some(b'-') => Err(format!("redis: {rest}")),
            Some(b'$') if rest == "-1" => Ok(Reply::Nil),
            Some(b'$') => {
                let n: usize = rest
                    .parse()
                    .map_err(|_| format!("redis: bad length {rest}"))?;
                let mut data = vec![0; n + 2];
                self.input
                    .read_exact(&mut data)
                    .map_err(|e| format!("redis: {e}"))?;
                data.truncate(n);
                Ok(Reply::Text(data))
            }
            _ => Err(format!("redis: unexpected reply {rest}")),
        }
    }
}

/// Appends a command as a RESP array of bulk strings.
pub fn command(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    buf.push(b'*');
    push_decimal(buf, parts.len());
    buf.extend_from_slice(b"\r\n");
    for p in parts {
        bulk(buf, p);
    }
}

/// Appends a RESP bulk string (no allocation: the peer workloads publish with it).
pub fn bulk(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'$');
    push_decimal(buf, s.len());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(s);
    buf.extend_from_slice(b"\r\n");
}
