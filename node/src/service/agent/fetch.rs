//! One HTTP(S) exchange with ureq, run on a pool thread: redirects followed by hand (method and
//! body kept), gzip bodies decoded, the body capped, every failure turned into a curl code and
//! a message.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use ureq::http::{self, header};
use ureq::RequestExt;

use super::redirect::{self, Jar};
use super::request::Call;
use super::response::*;

/// Redirects followed before giving up (curl's default limit is 30; 20 is a browser's).
const MAX_REDIRECTS: usize = 20;

/// The shared client: connection pool, TLS roots, user agent.
pub struct Http {
    agent: ureq::Agent,
    max_body: u64,
}

impl Http {
    pub fn new(agent: ureq::Agent, max_body: u64) -> Http {
        Http { agent, max_body }
    }

    /// Makes `call` within `timeout`; whatever happens, an outcome to answer with.
    pub fn fetch(&self, call: &Call, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let mut o = Outcome {
            url: call.url.clone(),
            ..Outcome::default()
        };
        o.failure = self.exchange(call, timeout, &mut o).err();
        o.elapsed = start.elapsed();
        let result = o.failure.as_ref().map_or("ok", |f| f.message.as_str());
        log::debug!(
            "agent: {} {} → {} in {:?}: {result}",
            call.method,
            call.url,
            o.status,
            o.elapsed
        );
        o
    }

    fn exchange(&self, call: &Call, timeout: Duration, o: &mut Outcome) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        let first_host = redirect::host(&call.url);
        let mut url = call.url.clone();
        let mut jar = Jar::default();
        for hop in 0.. {
            o.effective_url = url.clone();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out(timeout, "before the response"));
            }
            let host = redirect::host(&url);
            let request = build(call, &url, host == first_host, jar.header(&host))?;
            let mut response = self
                .send(request, call.body.as_deref(), left)
                .map_err(|e| failure(e, timeout))?;
            let head = response.headers();
            o.status = response.status().as_u16();
            o.content_type = head
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            for v in head.get_all(header::SET_COOKIE) {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                jar.set(&host, &v);
                o.cookies.push(v);
            }
            let location = head
                .get(header::LOCATION)
                .filter(|_| matches!(o.status, 301 | 302 | 303 | 307 | 308));
            if let Some(location) = location {
                let next = redirect::resolve(&url, &String::from_utf8_lossy(location.as_bytes()));
                o.redirect_url = Some(next.clone());
                if hop == MAX_REDIRECTS {
                    return Err(Failure::new(
                        TOO_MANY_REDIRECTS,
                        format!("more than {MAX_REDIRECTS} redirects"),
                    ));
                }
                url = next;
                continue;
            }
            if call.method == "HEAD" {
                return Ok(());
            }
            o.body = response
                .body_mut()
                .with_config()
                .limit(self.max_body)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(n) => Failure::new(
                        FILESIZE_EXCEEDED,
                        format!("the response body is larger than {n} bytes (--agent-max-body)"),
                    ),
                    e => failure(e, timeout),
                })?;
            return Ok(());
        }
        unreachable!("the loop returns")
    }

    /// Sends one request with `left` of the call's time (connect: half of the call's time, at
    /// least a second, as in the original — but never past the call's end).
    fn send(
        &self,
        request: http::request::Builder,
        body: Option<&[u8]>,
        left: Duration,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let connect = left.min(Duration::from_secs(1).max(left / 2));
        // Two body types (none, bytes): one sending path for both.
        macro_rules! run {
            ($req:expr) => {
                $req.with_agent(&self.agent)
                    .configure()
                    .timeout_global(Some(left))
                    .timeout_connect(Some(connect))
                    .run()
            };
        }
        match body {
            Some(b) => run!(request.body(b)?),
            None => run!(request.body(())?),
        }
    }
}

/// The request of one hop: the script's headers (its credentials and cookies only to the host
/// it named, as curl does) and the cookies set during the redirects.
fn build(
    call: &Call,
    url: &str,
    same_host: bool,
    cookies: Option<String>,
) -> Result<http::request::Builder, Failure> {
    let method = http::Method::from_bytes(call.method.as_bytes())
        .map_err(|_| Failure::new(BAD_ARGUMENT, format!("bad method '{}'", call.method)))?;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Failure::new(URL_MALFORMAT, format!("bad url '{url}': {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(Failure::new(
                UNSUPPORTED_PROTOCOL,
                format!("'{url}': only http and https URLs"),
            ))
        }
    }
    let mut b = http::Request::builder().method(method).uri(uri);
    let mut script_cookie = None;
    for (name, value) in &call.headers {
        let private =
            name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie");
        if private && !same_host {
            continue;
        }
        if name.eq_ignore_ascii_case("cookie") {
            script_cookie = Some(value.clone());
            continue;
        }
        b = b.header(name.as_str(), value.as_str());
    }
    let cookie = match (script_cookie, cookies) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    Ok(b)
}

fn timed_out(timeout: Duration, when: &str) -> Failure {
    Failure::new(
        TIMEDOUT,
        format!("timed out after {} ms {when}", timeout.as_millis()),
    )
}

/// A ureq error as curl would have reported it.
fn failure(e: ureq::Error, timeout: Duration) -> Failure {
    use ureq::Error as E;
    let (code, what) = match &e {
        E::Timeout(phase) => return timed_out(timeout, &format!("({phase})")),
        E::HostNotFound => (COULDNT_RESOLVE_HOST, "could not resolve the host"),
        E::ConnectionFailed => (COULDNT_CONNECT, "could not connect"),
        E::BadUri(_) | E::Http(_) => (URL_MALFORMAT, "bad request"),
        E::Protocol(_) => (WEIRD_SERVER_REPLY, "bad HTTP from the server"),
        E::Rustls(r) => tls(r),
        E::Tls(_) | E::Pem(_) => (SSL_CONNECT_ERROR, "TLS failed"),
        E::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(r) => tls(r),
            None => match io.kind() {
                ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                    return timed_out(timeout, "(waiting on the socket)")
                }
                ErrorKind::ConnectionRefused => (COULDNT_CONNECT, "could not connect"),
                ErrorKind::InvalidData => (BAD_CONTENT_ENCODING, "bad response body"),
                ErrorKind::BrokenPipe => (SEND_ERROR, "the connection closed while sending"),
                _ => (RECV_ERROR, "the exchange failed"),
            },
        },
        _ => (RECV_ERROR, "the exchange failed"),
    };
    Failure::new(code, format!("{what}: {e}"))
}

fn tls(e: &rustls::Error) -> (i32, &'static str) {
    match e {
        rustls::Error::InvalidCertificate(_) => (
            PEER_FAILED_VERIFICATION,
            "TLS: the server's certificate is not trusted",
        ),
        _ => (SSL_CONNECT_ERROR, "TLS handshake failed"),
    }
}
