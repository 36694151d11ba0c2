//! A small HTTP/1.1 server for `/metrics`, `/status` and `/status.json`: one request per
//! connection, a bounded request head read within a time limit, and nothing a client sends
//! trusted beyond the request line. It runs on the process's tokio runtime beside its real
//! work, which a slow or hostile client cannot hold up.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Observed;

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the endpoint's listener on `addr` (bound before the process starts its work, so a taken
/// port is a start-up error naming the address).
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve http on {addr}: {e}"))
}

/// Prints `PROGRAM: http on ADDR` on stderr — launchers and tests wait for that line whatever
/// the log level — and serves `listener` on the current tokio runtime until the process ends.
pub fn start(
    program: &str,
    listener: TcpListener,
    observed: Arc<dyn Observed>,
) -> Result<(), String> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("http listener address: {e}"))?;
    eprintln!("{program}: http on {addr}");
    tokio::spawn(serve(listener, observed));
    Ok(())
}

/// Answers requests on `listener` until the process ends.
pub async fn serve(listener: TcpListener, observed: Arc<dyn Observed>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, observed.clone()));
            }
            Err(e) => {
                log::warn!("http accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A response: status line, content type, extra headers, body.
struct Response {
    status: &'static str,
    kind: &'static str,
    extra: &'static str,
    body: String,
}

fn respond(method: &str, path: &str, observed: &dyn Observed) -> Response {
    let text = |status, body: &str| Response {
        status,
        kind: "text/plain; charset=utf-8",
        extra: "",
        body: body.to_owned(),
    };
    if method != "GET" && method != "HEAD" {
        return text("405 Method Not Allowed", "only GET and HEAD\n");
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => Response {
            status: "200 OK",
            kind: "text/plain; version=0.0.4; charset=utf-8",
            extra: "",
            body: observed.metrics(),
        },
        "/status" | "/" => Response {
            status: "200 OK",
            kind: "text/html; charset=utf-8",
            extra: "",
            body: crate::STATUS_PAGE.to_owned(),
        },
        // Any origin may read it: a status page served by one process draws the others
        // (`?also=`) from their status.json. It holds nothing /metrics does not.
        "/status.json" => Response {
            status: "200 OK",
            kind: "application/json",
            extra: "Access-Control-Allow-Origin: *\r\nCache-Control: no-store\r\n",
            body: observed.status(),
        },
        _ => text("404 Not Found", "not found: try /status or /metrics\n"),
    }
}

async fn answer(mut stream: TcpStream, observed: Arc<dyn Observed>) {
    let Ok(Some(line)) = tokio::time::timeout(READ_TIMEOUT, request_line(&mut stream)).await else {
        return;
    };
    let mut words = line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let r = respond(method, path, observed.as_ref());
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        r.status,
        r.kind,
        r.body.len(),
        r.extra
    );
    let _ = stream.write_all(head.as_bytes()).await;
    if method != "HEAD" {
        let _ = stream.write_all(r.body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

/// Reads the request head; its first line, or `None` for a closed, oversized or garbled one.
async fn request_line(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    String::from_utf8(head[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Observed for Fixed {
        fn metrics(&self) -> String {
            "m 1\n".into()
        }
        fn status(&self) -> String {
            "{\"kind\":\"node\"}".into()
        }
    }

    #[test]
    fn paths_answer_their_documents() {
        assert_eq!(respond("GET", "/metrics", &Fixed).body, "m 1\n");
        let json = respond("GET", "/status.json?x=1", &Fixed);
        assert_eq!(json.body, "{\"kind\":\"node\"}");
        assert!(json.extra.contains("Access-Control-Allow-Origin: *"));
        assert!(respond("GET", "/status", &Fixed)
            .kind
            .starts_with("text/html"));
        assert_eq!(respond("GET", "/nope", &Fixed).status, "404 Not Found");
        assert_eq!(respond("HEAD", "/metrics", &Fixed).status, "200 OK");
        assert_eq!(
            respond("DELETE", "/metrics", &Fixed).status,
            "405 Method Not Allowed"
        );
    }
}
