//! Raw socket addresses (stage-spec §10.3, §10.4): scripts see a peer, local or resolved
//! address as the bytes of a C `struct sockaddr_in` / `sockaddr_in6` / `sockaddr_un` in a Lua
//! string, as the original did, so they can keep it, compare it and pass it back.

use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A decoded raw address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    Inet(SocketAddr),
    /// A UNIX socket path.
    Unix(String),
}

/// The bytes of a plain-data libc struct.
fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: T is one of the sockaddr structs: plain data whose padding is explicit fields
    // (sin_zero), every byte initialised by zeroed() before the fields were set.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
}

/// A libc struct filled from exactly `size_of::<T>()` bytes.
fn struct_from<T: Copy>(b: &[u8]) -> Option<T> {
    if b.len() != size_of::<T>() {
        return None;
    }
    // SAFETY: the length was checked; the sockaddr structs are valid for any bit pattern and
    // read_unaligned copes with the Lua string's alignment.
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) })
}

fn sa_family(family: i32) -> libc::sa_family_t {
    // The AF_* constants are small positive numbers that fit sa_family_t by definition.
    family as libc::sa_family_t
}

/// The exact bytes of the C struct for `a` (16 for IPv4, 28 for IPv6 on Linux): family in
/// native order, port and address in network order, IPv6 flowinfo and scope_id.
pub fn to_raw(a: &SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = sa_family(libc::AF_INET);
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            bytes_of(&sin)
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = sa_family(libc::AF_INET6);
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_flowinfo = v6.flowinfo().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            bytes_of(&sin6)
        }
    }
}

/// The bytes of a `struct sockaddr_un` for `path` (the whole struct, path NUL-terminated).
pub fn unix_to_raw(path: &str) -> Result<Vec<u8>, String> {
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if path.is_empty() {
        return Err("empty UNIX socket path".to_string());
    }
    if path.contains('\0') {
        return Err("UNIX socket path contains a NUL byte".to_string());
    }
    // One byte stays for the terminating NUL.
    if path.len() >= sun.sun_path.len() {
        return Err(format!(
            "UNIX socket path longer than {} bytes",
            sun.sun_path.len() - 1
        ));
    }
    sun.sun_family = sa_family(libc::AF_UNIX);
    for (dst, &src) in sun.sun_path.iter_mut().zip(path.as_bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(bytes_of(&sun))
}

fn v4_from(sin: &libc::sockaddr_in) -> SocketAddr {
    let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
    SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)))
}

fn v6_from(sin6: &libc::sockaddr_in6) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(sin6.sin6_addr.s6_addr),
        u16::from_be(sin6.sin6_port),
        u32::from_be(sin6.sin6_flowinfo),
        sin6.sin6_scope_id,
    ))
}

/// Decodes a raw address; `None` unless the length fits the family. A UNIX path must be
/// non-empty UTF-8 (the abstract namespace and unnamed sockets are not addresses a script can
/// pass back).
pub fn from_raw(b: &[u8]) -> Option<Raw> {
    if b.len() < size_of::<libc::sa_family_t>() {
        return None;
    }
    // The family is read through sockaddr_storage so its place follows the platform's layout.
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let head = b.len().min(size_of::<libc::sockaddr_storage>());
    // SAFETY: `head` bytes fit both the source slice and the destination struct.
    unsafe {
        std::ptr::copy_nonoverlapping(
            b.as_ptr(),
            (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
            head,
        )
    };
    match i32::from(ss.ss_family) {
        libc::AF_INET => struct_from::<libc::sockaddr_in>(b).map(|s| Raw::Inet(v4_from(&s))),
        libc::AF_INET6 => struct_from::<libc::sockaddr_in6>(b).map(|s| Raw::Inet(v6_from(&s))),
        libc::AF_UNIX => unix_from(b),
        _ => None,
    }
}

/// The path of a `sockaddr_un`: up to its NUL, which must fit in `sun_path` as
/// [`unix_to_raw`] writes it.
fn unix_from(b: &[u8]) -> Option<Raw> {
    let start = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    if b.len() > size_of::<libc::sockaddr_un>() {
        return None;
    }
    let path = b.get(start..)?;
    let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
    if end + start >= size_of::<libc::sockaddr_un>() {
        return None;
    }
    match std::str::from_utf8(&path[..end]) {
        Ok(p) if !p.is_empty() => Some(Raw::Unix(p.to_string())),
        _ => None,
    }
}

/// The text form: `1.2.3.4:80`, `[::1]:80` (`[fe80::1%2]:80` with a scope id), or the path.
pub fn ntoa(r: &Raw) -> String {
    match r {
        // std's Display writes `%scope_id` when it is not zero.
        Raw::Inet(a) => a.to_string(),
        Raw::Unix(p) => p.clone(),
    }
}

/// Frees the getifaddrs list however [`ifaddrs`] returns.
struct IfList(*mut libc::ifaddrs);

impl Drop for IfList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a successful getifaddrs and is freed once.
            unsafe { libc::freeifaddrs(self.0) };
        }
    }
}

/// The addresses of the interfaces that are UP and not loopback, IPv4 and IPv6 only, whose
/// name contains `filter` (all with `None`), each with port 0 (stage-spec §10.3
/// `broker.ifaddr`). In the order the system lists them.
pub fn ifaddrs(filter: Option<&str>) -> std::io::Result<Vec<(String, SocketAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head` or fails without touching it.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let list = IfList(head);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list, alive until `list` drops.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags as libc::c_int;
        if ifa.ifa_addr.is_null()
            || ifa.ifa_name.is_null()
            || flags & libc::IFF_UP == 0
            || flags & libc::IFF_LOOPBACK != 0
        {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr whose family says which
        // struct it is; getifaddrs allocates the full struct for INET and INET6.
        let mut addr = match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_INET => v4_from(unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() }),
            libc::AF_INET6 => v6_from(unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() }),
            _ => continue,
        };
        // SAFETY: ifa_name is a non-null NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        addr.set_port(0);
        out.push((name.into_owned(), addr));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address literal")
    }

    /// The IPv4 bytes are libc's sockaddr_in: native family, network-order port and address.
    #[test]
    fn v4_bytes_are_sockaddr_in() {
        let b = to_raw(&sa("1.2.3.4:80"));
        assert_eq!(b.len(), 16);
        let fam = (libc::AF_INET as libc::sa_family_t).to_ne_bytes();
        assert_eq!(&b[..2], &fam);
        assert_eq!(&b[2..4], &[0, 80]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[8..], &[0; 8]);
        assert_eq!(from_raw(&b), Some(Raw::Inet(sa("1.2.3.4:80"))));
    }

    /// IPv6 keeps port, flowinfo and scope_id in their C places.
    #[test]
    fn v6_bytes_are_sockaddr_in6() {
        let ip = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let a = SocketAddr::V6(SocketAddrV6::new(ip, 0x1234, 7, 3));
        let b = to_raw(&a);
        assert_eq!(b.len(), 28);
        let fam = (libc::AF_INET6 as libc::sa_family_t).to_ne_bytes();
        assert_eq!(&b[..2], &fam);
        assert_eq!(&b[2..4], &[0x12, 0x34]);
        assert_eq!(&b[4..8], &7u32.to_be_bytes());
        assert_eq!(b[8], 0xfe);
        assert_eq!(b[23], 1);
        assert_eq!(&b[24..], &3u32.to_ne_bytes());
        assert_eq!(from_raw(&b), Some(Raw::Inet(a)));
    }

    #[test]
    fn unix_round_trip_and_limits() {
        let b = unix_to_raw("/tmp/stage.sock").expect("path fits");
        assert_eq!(b.len(), size_of::<libc::sockaddr_un>());
        assert_eq!(from_raw(&b), Some(Raw::Unix("/tmp/stage.sock".into())));
        // A raw cut right after the path (SUN_LEN style) decodes too.
        assert_eq!(
            from_raw(&b[..2 + "/tmp/stage.sock".len()]),
            Some(Raw::Unix("/tmp/stage.sock".into()))
        );
        assert!(unix_to_raw("").is_err());
        assert!(unix_to_raw("a\0b").is_err());
        assert!(unix_to_raw(&"x".repeat(107)).is_ok());
        assert!(unix_to_raw(&"x".repeat(108)).is_err());
        // A path that fills sun_path with no NUL is refused, as unix_to_raw would refuse it.
        let mut full = unix_to_raw("x").expect("path fits");
        full[2..].fill(b'x');
        assert_eq!(from_raw(&full), None);
    }

    #[test]
    fn ntoa_forms() {
        assert_eq!(ntoa(&Raw::Inet(sa("1.2.3.4:80"))), "1.2.3.4:80");
        assert_eq!(ntoa(&Raw::Inet(sa("[::1]:80"))), "[::1]:80");
        assert_eq!(ntoa(&Raw::Inet(sa("[fe80::1%2]:80"))), "[fe80::1%2]:80");
        assert_eq!(ntoa(&Raw::Unix("/run/x".into())), "/run/x");
    }

    /// Wrong lengths and unknown families are refused, not misread.
    #[test]
    fn from_raw_validates() {
        let v4 = to_raw(&sa("1.2.3.4:80"));
        assert_eq!(from_raw(&v4[..15]), None);
        assert_eq!(from_raw(&[v4.as_slice(), &[0]].concat()), None);
        let v6 = to_raw(&sa("[::1]:80"));
        assert_eq!(from_raw(&v6[..27]), None);
        assert_eq!(from_raw(b""), None);
        assert_eq!(from_raw(b"\x02"), None);
        assert_eq!(from_raw(b"tcp://1.2.3.4:80"), None);
        let un = unix_to_raw("/p").expect("path fits");
        assert_eq!(from_raw(&[un.as_slice(), &[0]].concat()), None);
        assert_eq!(from_raw(&un[..2]), None);
    }

    /// Random bytes never panic, and whatever decodes encodes back to a valid raw address.
    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let families = [libc::AF_INET, libc::AF_INET6, libc::AF_UNIX];
        for i in 0..20_000 {
            let len = rng.gen_range(0..140);
            let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // Most rounds carry a known family so the per-family checks get exercised.
            if len >= 2 && i % 4 != 0 {
                let f = sa_family(families[i % 3]).to_ne_bytes();
                b[..2].copy_from_slice(&f);
            }
            match from_raw(&b) {
                Some(Raw::Inet(a)) => assert_eq!(from_raw(&to_raw(&a)), Some(Raw::Inet(a))),
                Some(Raw::Unix(p)) => {
                    let again = unix_to_raw(&p).expect("a decoded path re-encodes");
                    assert_eq!(from_raw(&again), Some(Raw::Unix(p)));
                }
                None => {}
            }
        }
    }

    /// Only UP, non-loopback, INET/INET6 entries with port 0; the filter narrows by name.
    #[test]
    fn ifaddrs_lists_non_loopback() {
        let all = ifaddrs(None).expect("getifaddrs");
        for (name, a) in &all {
            assert_ne!(name, "lo");
            assert!(!a.ip().is_loopback(), "{name} {a}");
            assert_eq!(a.port(), 0);
        }
        if let Some((first, _)) = all.first() {
            let some = ifaddrs(Some(first)).expect("getifaddrs");
            assert!(!some.is_empty());
            assert!(some.iter().all(|(n, _)| n.contains(first.as_str())));
        }
        let none = ifaddrs(Some("no-such-interface-name")).expect("getifaddrs");
        assert!(none.is_empty());
    }
}
