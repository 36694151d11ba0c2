//! A small threaded HTTP/1.1 server on 127.0.0.1 for the agent tests, plain or TLS
//! (rustls): one thread per connection, one request per connection (`Connection: close`).
//!
//! | path | answer |
//! |---|---|
//! | `/echo…` | 200 text: `method=…`, `path=…`, `h:<name>=<value>` per header, `body=…` |
//! | `/redirect/CODE/REST` | status CODE, `Location: /REST` |
//! | `/sleep/MS` | 200 `slept` after MS ms |
//! | `/big/N` | N bytes of [`big_byte`], `application/octet-stream` |
//! | `/cookie` | 302 to `/echo` with two `Set-Cookie` |
//! | `/gzip` | [`GZIP_TEXT`] gzip-encoded (406 unless the request accepts gzip) |
//! | anything else | 404 `no such page` |

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The text `/gzip` serves (compressed on the wire).
pub const GZIP_TEXT: &str = "hello gzip world; ";

/// Byte `i` of a `/big` body.
pub fn big_byte(i: usize) -> u8 {
    ((i * 31 + i / 251) % 256) as u8
}

/// A running server; stops accepting when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves plain HTTP, or HTTPS with `tls`.
    pub fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let tls = tls.clone();
                std::thread::spawn(move || connection(stream, tls));
            }
        });
        Server { addr, stop }
    }

    /// `http://127.0.0.1:PORT` (or https).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

fn connection(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    match tls {
        None => serve(stream),
        Some(config) => {
            let Ok(conn) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut s = rustls::StreamOwned::new(conn, stream);
            serve(&mut s);
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), content_type.into())],
        body: body.into(),
    }
}

fn serve(mut stream: impl Read + Write) {
    let mut r = BufReader::new(&mut stream);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return; // a TLS client that gave up, or the wake-up connection
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    drop(r);
    let out = route(&method, &path, &headers, &body);
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        out.status,
        out.body.len()
    );
    for (n, v) in &out.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&out.body);
    let _ = stream.flush();
}

fn route(method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    match segments.as_slice() {
        [p, ..] if p.starts_with("echo") => {
            let mut text = format!("method={method}\npath={path}\n");
            for (n, v) in headers {
                text.push_str(&format!("h:{n}={v}\n"));
            }
            text.push_str(&format!("body={}\n", String::from_utf8_lossy(body)));
            reply(200, "text/plain; charset=utf-8", text)
        }
        ["redirect", code, rest] => {
            let mut r = reply(code.parse().unwrap_or(302), "text/plain", "moved");
            r.headers.push(("Location".into(), format!("/{rest}")));
            r
        }
        ["sleep", ms] => {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            reply(200, "text/plain", "slept")
        }
        ["big", n] => {
            let n: usize = n.parse().unwrap_or(0);
            reply(
                200,
                "application/octet-stream",
                (0..n).map(big_byte).collect::<Vec<u8>>(),
            )
        }
        ["cookie"] => {
            let mut r = reply(302, "text/plain", "login");
            r.headers
                .push(("Set-Cookie".into(), "session=abc; Path=/".into()));
            r.headers.push(("Set-Cookie".into(), "theme=dark".into()));
            r.headers.push(("Location".into(), "/echo".into()));
            r
        }
        ["gzip"] => {
            let accepts = headers
                .iter()
                .any(|(n, v)| n == "accept-encoding" && v.contains("gzip"));
            if !accepts {
                return reply(406, "text/plain", "gzip only");
            }
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(GZIP_TEXT.repeat(200).as_bytes()).unwrap();
            let mut r = reply(200, "text/plain; charset=iso-8859-1", z.finish().unwrap());
            r.headers.push(("Content-Encoding".into(), "gzip".into()));
            r
        }
        _ => reply(404, "text/plain", "no such page"),
    }
}

/// TLS for the test server: a CA and a server certificate for 127.0.0.1 made with the openssl
/// command (Debian's `openssl` package); returns the server config and the CA's PEM file.
pub fn tls_files(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, std::path::PathBuf) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=stage test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(&ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    (Arc::new(config), dir.join("ca.pem"))
}
