//! Broker URIs (stage-spec §10.2): `[tcp|udp]://HOST:PORT[?ITEM[&ITEM...]]`.
//!
//! * The scheme is optional (`tcp`); an IPv6 host is written in brackets (`[::1]:80`,
//!   `[fe80::1%eth0]:80`); HOST may be a name, resolved by [`Uri::resolve`].
//! * ITEM is the framing `bson|packet|text|raw`, optionally `=IN,OUT` (buffer sizes, each a
//!   number with an optional `k`/`m` suffix for ×1024/×1024²; `IN` alone keeps the default
//!   output size). `IN:OUT` is accepted too: the original's docs write it, though its code read
//!   OUT as 0 there.
//! * or `iface=ADDR`: the IPv4 address of the interface a UDP multicast group is joined on
//!   (default INADDR_ANY).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::framing::{Framing, DEFAULT_INPUT, DEFAULT_OUTPUT};

/// The largest buffer a URI may ask for: more is far more likely a typo than a need, and each
/// socket allocates its buffers.
const MAX_SIZE: usize = 64 << 20;

/// The form every error message repeats, so a script author sees what is expected.
const EXPECTED: &str = "[tcp|udp]://HOST:PORT[?bson|packet|text|raw[=IN[,OUT]]][&iface=IPV4]";

/// The transport of a broker socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A parsed broker URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub proto: Proto,
    /// The host as written, without the brackets of an IPv6 address.
    pub host: String,
    pub port: u16,
    pub framing: Framing,
    /// Input buffer size in bytes.
    pub input: usize,
    /// Output buffer size in bytes.
    pub output: usize,
    /// The interface a UDP multicast group is joined on; `None` = INADDR_ANY.
    pub iface: Option<Ipv4Addr>,
}

/// Why a URI was refused; the message names the bad part and the expected form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError {
    uri: String,
    what: String,
}

impl UriError {
    fn new(uri: &str, what: impl Into<String>) -> UriError {
        UriError {
            uri: uri.to_string(),
            what: what.into(),
        }
    }

    /// The errno the original returned to Lua for a bad URI.
    pub fn errno(&self) -> i32 {
        libc::EINVAL
    }
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad broker URI '{}': {}; expected {EXPECTED}",
            self.uri, self.what
        )
    }
}

impl std::error::Error for UriError {}

impl Uri {
    /// Every address HOST:PORT resolves to (getaddrinfo for names); an error if none.
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no address for '{}'", self.host),
            ));
        }
        Ok(addrs)
    }
}

/// Parses a broker URI (stage-spec §10.2).
pub fn parse(s: &str) -> Result<Uri, UriError> {
    let err = |what: String| UriError::new(s, what);
    let (proto, rest) = match s.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "tcp" => (Proto::Tcp, rest),
            "udp" => (Proto::Udp, rest),
            _ => return Err(err(format!("unknown scheme '{scheme}'"))),
        },
        None => (Proto::Tcp, s),
    };
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (host, port) = host_port(authority).map_err(err)?;
    let mut uri = Uri {
        proto,
        host,
        port,
        framing: Framing::Raw,
        input: DEFAULT_INPUT,
        output: DEFAULT_OUTPUT,
        iface: None,
    };
    if let Some(query) = query {
        let mut framing_seen = false;
        for item in query.split('&') {
            apply_item(&mut uri, item, &mut framing_seen).map_err(err)?;
        }
    }
    Ok(uri)
}

/// Splits `HOST:PORT` or `[V6]:PORT`.
fn host_port(authority: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (v6, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("'{authority}' lacks the closing ']'"))?;
        // A zone (`%eth0`) is left to getaddrinfo; the address before it must be IPv6.
        let bare = v6.split_once('%').map_or(v6, |(a, _)| a);
        if bare.parse::<Ipv6Addr>().is_err() {
            return Err(format!("'[{v6}]' is not an IPv6 address"));
        }
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("port missing after '[{v6}]'"))?;
        (v6, port)
    } else {
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("port missing in '{authority}'"))?;
        if host.contains(':') {
            return Err(format!("IPv6 host '{host}' must be written in brackets"));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("host missing".to_string());
    }
    if port.is_empty() {
        return Err("port missing".to_string());
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("bad port '{port}' (0-65535)"))?;
    Ok((host.to_string(), port))
}

/// Applies one `?ITEM` to `uri`.
fn apply_item(uri: &mut Uri, item: &str, framing_seen: &mut bool) -> Result<(), String> {
    let (key, value) = match item.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (item, None),
    };
    let framing = match key.to_ascii_lowercase().as_str() {
        "bson" => Framing::Bson,
        "packet" => Framing::Packet,
        "text" => Framing::Text,
        "raw" => Framing::Raw,
        "iface" => {
            if uri.proto != Proto::Udp {
                return Err("iface applies to udp only".to_string());
            }
            if uri.iface.is_some() {
                return Err("iface given twice".to_string());
            }
            let v = value.unwrap_or_default();
            let ip = v
                .parse::<Ipv4Addr>()
                .map_err(|_| format!("iface '{v}' is not an IPv4 address"))?;
            uri.iface = Some(ip);
            return Ok(());
        }
        "" => return Err("empty item".to_string()),
        _ => return Err(format!("unknown item '{key}'")),
    };
    if *framing_seen {
        return Err(format!("second framing '{key}'"));
    }
    *framing_seen = true;
    uri.framing = framing;
    if let Some(v) = value {
        let (input, output) = match v.split_once([',', ':']) {
            Some((i, o)) => (i, Some(o)),
            None => (v, None),
        };
        uri.input = size(input)?;
        if let Some(o) = output {
            uri.output = size(o)?;
        }
    }
    Ok(())
}

/// A buffer size: digits with an optional `k` (×1024) or `m` (×1024²) suffix, 1..=64 MiB.
fn size(s: &str) -> Result<usize, String> {
    let bad = || format!("bad size '{s}' (a number with optional k or m suffix)");
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("size '{s}' is above 64m"))?;
    match n {
        0 => Err(format!("size '{s}' is zero")),
        n if n > MAX_SIZE => Err(format!("size '{s}' is above 64m")),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Uri {
        match parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn bad(s: &str, needle: &str) {
        match parse(s) {
            Ok(u) => panic!("{s} parsed as {u:?}"),
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains(needle), "{s}: '{m}' lacks '{needle}'");
                assert!(m.contains(EXPECTED), "{m}");
                assert_eq!(e.errno(), libc::EINVAL);
            }
        }
    }

    /// stage-spec §10.2: scheme optional, defaults from framing.rs, Raw framing.
    #[test]
    fn plain_and_defaults() {
        let u = ok("0.0.0.0:8081");
        assert_eq!(
            u,
            Uri {
                proto: Proto::Tcp,
                host: "0.0.0.0".into(),
                port: 8081,
                framing: Framing::Raw,
                input: DEFAULT_INPUT,
                output: DEFAULT_OUTPUT,
                iface: None,
            }
        );
        assert_eq!(ok("udp://224.0.0.1:8082").proto, Proto::Udp);
        assert_eq!(ok("TCP://localhost:1").host, "localhost");
        assert_eq!(ok("tcp://h:65535").port, 65535);
    }

    #[test]
    fn ipv6_in_brackets() {
        let u = ok("tcp://[::1]:80");
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        assert_eq!(ok("[fe80::1%eth0]:9?text").host, "fe80::1%eth0");
        bad("tcp://::1:80", "brackets");
        bad("tcp://[::1:80", "']'");
        bad("tcp://[::1]", "port missing");
        bad("tcp://[::1]80", "port missing");
        bad("tcp://[host]:80", "not an IPv6 address");
    }

    /// The framings, sizes with suffixes, both separators, `IN` alone (stage-spec §10.2).
    #[test]
    fn framing_and_sizes() {
        let u = ok("tcp://0.0.0.0:8081?packet=10k,40k");
        assert_eq!(
            (u.framing, u.input, u.output),
            (Framing::Packet, 10 << 10, 40 << 10)
        );
        let u = ok("h:1?bson=1m:2M");
        assert_eq!(
            (u.framing, u.input, u.output),
            (Framing::Bson, 1 << 20, 2 << 20)
        );
        let u = ok("h:1?text=100");
        assert_eq!(
            (u.framing, u.input, u.output),
            (Framing::Text, 100, DEFAULT_OUTPUT)
        );
        let u = ok("h:1?raw=64m,1");
        assert_eq!((u.framing, u.input, u.output), (Framing::Raw, 64 << 20, 1));
        assert_eq!(ok("h:1?text").input, DEFAULT_INPUT);
    }

    #[test]
    fn iface_for_multicast() {
        let u = ok("udp://239.1.2.3:5000?iface=192.0.2.2&bson");
        assert_eq!(u.iface, Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(u.framing, Framing::Bson);
        bad("udp://239.1.2.3:5000?iface=eth0", "not an IPv4 address");
        bad("udp://239.1.2.3:5000?iface", "not an IPv4 address");
        bad("udp://h:1?iface=1.2.3.4&iface=1.2.3.4", "twice");
        bad("tcp://h:1?iface=1.2.3.4", "udp only");
    }

    #[test]
    fn errors_name_the_part() {
        bad("http://h:1", "scheme 'http'");
        bad("tcp://h", "port missing");
        bad("tcp://h:", "port missing");
        bad("tcp://:80", "host missing");
        bad("tcp://h:65536", "bad port '65536'");
        bad("tcp://h:1?json", "unknown item 'json'");
        bad("tcp://h:1?", "empty item");
        bad("tcp://h:1?text&&raw", "empty item");
        bad("tcp://h:1?text&bson", "second framing");
        bad("tcp://h:1?packet=0", "zero");
        bad("tcp://h:1?packet=1k,0m", "zero");
        bad("tcp://h:1?packet=65m", "above 64m");
        bad("tcp://h:1?packet=67108865", "above 64m");
        bad("tcp://h:1?packet=99999999999999999999999k", "above 64m");
        bad("tcp://h:1?packet=", "bad size ''");
        bad("tcp://h:1?packet=k", "bad size 'k'");
        bad("tcp://h:1?packet=1g", "bad size '1g'");
        bad("tcp://h:1?packet=-1", "bad size '-1'");
        bad("tcp://h:1?packet=1,2,3", "bad size '2,3'");
    }

    #[test]
    fn resolve_literals_and_names() {
        let v = ok("[::1]:80").resolve().expect("v6 literal");
        assert_eq!(v, vec!["[::1]:80".parse::<SocketAddr>().expect("addr")]);
        let v = ok("127.0.0.1:9").resolve().expect("v4 literal");
        assert_eq!(v, vec!["127.0.0.1:9".parse::<SocketAddr>().expect("addr")]);
        let v = ok("localhost:7").resolve().expect("localhost resolves");
        assert!(
            v.iter().all(|a| a.port() == 7 && a.ip().is_loopback()),
            "{v:?}"
        );
        assert!(ok("no-such-host.invalid:1").resolve().is_err());
    }
}
