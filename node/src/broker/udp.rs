//! UDP sockets (stage-spec §10.3 `broker.ready("udp://...")`): each datagram is one message;
//! an IPv4 multicast address is joined. A datagram socket cannot push back on its senders, so
//! datagrams over the rate limit or the queue are dropped and counted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::framing::Framing;
use super::limit::Meter;
use super::socket::{Event, Socket};
use super::{errno_of, Broker};

/// Largest datagram read (one byte more than UDP can carry, so that nothing is cut short).
const MAX_DATAGRAM: usize = 65536;

/// Binds `addr`; a multicast address is joined on `iface` (default: any interface).
pub fn bind(addr: SocketAddr, iface: Option<Ipv4Addr>) -> std::io::Result<std::net::UdpSocket> {
    let u = std::net::UdpSocket::bind(addr)?;
    match addr.ip() {
        IpAddr::V4(group) if group.is_multicast() => {
            u.join_multicast_v4(&group, &iface.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
            if let Some(i) = iface {
                set_multicast_if(&u, i);
            }
        }
        IpAddr::V6(group) if group.is_multicast() => u.join_multicast_v6(&group, 0)?,
        _ => {}
    }
    u.set_nonblocking(true)?;
    Ok(u)
}

/// Sends multicast through `iface` (replies to a group leave through the interface it was
/// joined on).
pub fn set_multicast_if(u: &std::net::UdpSocket, iface: Ipv4Addr) {
    use std::os::fd::AsRawFd;
    let a = libc::in_addr {
        s_addr: u32::from(iface).to_be(),
    };
    super::set_option(u.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &a);
}

/// Serves a datagram socket until it is closed.
pub async fn serve(broker: Arc<Broker>, s: Arc<Socket>, std: std::net::UdpSocket) {
    let errno = match UdpSocket::from_std(std) {
        Ok(u) => run(&broker, &s, &u).await,
        Err(e) => errno_of(&e),
    };
    broker.ended(&s, errno);
}

async fn run(broker: &Broker, s: &Arc<Socket>, u: &UdpSocket) -> i32 {
    let mut meter = Meter::new(s.settings().limit, Instant::now());
    // One byte over the input size: a datagram that fills it was larger than `IN`.
    let mut buf = vec![0u8; MAX_DATAGRAM.min(s.input_cap) + 1];
    let mut dropped = 0u64;
    loop {
        if let Some((errno, _)) = s.io(|io| io.close) {
            return errno;
        }
        // Everything queued goes out now (datagrams are not batched).
        while let Some((bytes, to)) = s.io(|io| {
            let d = io.datagrams.pop_front();
            if let Some((b, _)) = &d {
                io.datagram_bytes -= b.len().max(super::socket::DATAGRAM_COST);
            }
            d
        }) {
            // Awaited, not tried: a fresh socket is not known to be writable yet, and
            // `try_send_to` would drop the datagrams queued before it started.
            if let Err(e) = u.send_to(&bytes, to).await {
                log::debug!("broker: socket {}: datagram to {to}: {e}", s.id);
            }
        }
        meter.set(s.settings().limit, Instant::now());
        tokio::select! {
            r = u.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    if n > s.input_cap {
                        log::debug!("broker: socket {}: datagram of {n} bytes over the input size", s.id);
                        continue;
                    }
                    if !meter.take(n, Instant::now()) || s.backlogged() {
                        dropped += 1;
                        if dropped.is_power_of_two() {
                            log::warn!("broker: socket {}: {dropped} datagrams dropped (rate limit or full queue)", s.id);
                        }
                        continue;
                    }
                    let Some(message) = message(s.framing, &buf[..n]) else {
                        log::debug!("broker: socket {}: datagram from {from} is not a {:?} frame", s.id, s.framing);
                        continue;
                    };
                    broker.deliver(s, Event::Received(Bytes::copy_from_slice(message), Some(from)));
                }
                // ICMP errors of earlier sends surface here; the socket itself is fine.
                Err(e) => log::debug!("broker: socket {}: {e}", s.id),
            },
            _ = s.wake.notified() => {}
        }
    }
}

/// The message a datagram carries: a `?packet` datagram is one frame whose length field must
/// match it (the handler gets the payload); other framings take the datagram as it is.
fn message(framing: Framing, datagram: &[u8]) -> Option<&[u8]> {
    if framing != Framing::Packet {
        return Some(datagram);
    }
    let header = datagram.first_chunk::<4>()?;
    (u32::from_le_bytes(*header) as usize == datagram.len()).then(|| &datagram[4..])
}
