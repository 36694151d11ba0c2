//! One router link: connect, prove the secret, register, then read until it breaks; then again,
//! with backoff, for as long as the node runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use stage_proto::handshake::{self, Challenge, Hello, Refuse, Welcome};
use stage_proto::heartbeat;
use stage_proto::writer::write_frames;
use stage_proto::writer::Push;
use stage_proto::{Frame, FrameCodec, Kind, NackReason, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::{Cluster, RouterLink};
use crate::inbound::{Delivery, Inbound};

type Reader = FramedRead<OwnedReadHalf, FrameCodec>;

/// How long the other links of a node without an instance number wait for the router that
/// assigns it ([`Cluster::assigns_instances`]) before registering anyway (when that router is
/// down, any router assigns the number).
const ASSIGNER_WAIT: Duration = Duration::from_secs(1);

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps the link to `addr` up for as long as the node runs.
pub async fn maintain(cluster: Arc<Cluster>, order: usize, addr: String, ready: Sender<()>) {
    let mut backoff = MIN_BACKOFF;
    let mut ready = Some(ready);
    let mut failures = 0u32;
    if !cluster.assigns_instances(&addr) {
        let deadline = tokio::time::Instant::now() + ASSIGNER_WAIT;
        while cluster.instance.load(Ordering::Relaxed) == 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    loop {
        let outcome = connect(&cluster, order, &addr).await;
        // Start-up waits for a first answer from each router, whatever it was; an unreachable
        // router is not an answer.
        if !matches!(outcome, Err(Failure::Io(_))) {
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
        match outcome {
            Ok((link, mut reader)) => {
                backoff = MIN_BACKOFF;
                failures = 0;
                log::info!("linked to router {addr}");
                let beat = tokio::spawn(heartbeat(cluster.identity.heartbeat_window, link.clone()));
                let why = read_loop(&cluster, &link, &mut reader).await;
                beat.abort();
                cluster.remove_link(&link);
                log::warn!("lost router {addr}: {why}");
            }
            Err(Failure::Refused(reason)) => {
                log::error!("router {addr} refused this node: {reason}")
            }
            Err(Failure::Declined(reason)) => log::error!("not linking to router {addr}: {reason}"),
            Err(Failure::Io(e)) => {
                // Say it once, then quietly keep trying: a router that is still starting or
                // restarting is normal.
                failures += 1;
                if failures == 1 || failures.is_multiple_of(50) {
                    log::warn!("cannot link to router {addr}: {e} (retrying)");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Failure {
    Io(String),
    /// The router refused us.
    Refused(String),
    /// We refused the router (it cannot prove the secret, or disagrees on our identity).
    Declined(String),
}

async fn connect(
    cluster: &Cluster,
    order: usize,
    addr: &str,
) -> Result<(Arc<RouterLink>, Reader), Failure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::Io(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, FrameCodec::new(cluster.identity.max_frame));
    let _gate = cluster.register_gate.lock().await;
    let challenge = Challenge::from_frame(&next_frame(&mut reader).await?)
        .map_err(|e| Failure::Io(e.to_string()))?;
    if challenge.version != PROTOCOL_VERSION {
        let reason = format!(
            "router speaks protocol version {}, this node {PROTOCOL_VERSION}",
            challenge.version
        );
        let _ = wr
            .write_all(
                &Refuse {
                    reason: reason.clone(),
                }
                .to_frame()
                .raw,
            )
            .await;
        return Err(Failure::Declined(reason));
    }
    let id = &cluster.identity;
    if id.secret.is_some() && !challenge.auth {
        // Our messages would be accepted from anyone there; do not join such a cluster.
        let reason = "router does not check the cluster secret, but this node has one (give the router --secret-file)";
        let _ = wr
            .write_all(
                &Refuse {
                    reason: reason.into(),
                }
                .to_frame()
                .raw,
            )
            .await;
        return Err(Failure::Declined(reason.into()));
    }
    let hello = Hello::answer(
        &challenge,
        &id.node,
        id.stages.clone(),
        cluster.instance.load(Ordering::Relaxed),
        id.secret.as_deref(),
    );
    wr.write_all(&hello.to_frame().raw)
        .await
        .map_err(|e| Failure::Io(e.to_string()))?;
    let answer = next_frame(&mut reader).await?;
    if answer.header.kind == Kind::Refuse {
        let reason = Refuse::from_frame(&answer).map_or_else(|e| e.to_string(), |r| r.reason);
        return Err(Failure::Refused(reason));
    }
    let welcome = Welcome::from_frame(&answer).map_err(|e| Failure::Io(e.to_string()))?;
    if let Some(secret) = &id.secret {
        if !handshake::verify_welcome(secret, &hello.nonce, &challenge.nonce, &welcome) {
            return Err(Failure::Declined(
                "router failed to prove the cluster secret (wrong secret on the router?)".into(),
            ));
        }
    }
    let mine = cluster.instance.load(Ordering::Relaxed);
    if mine != 0 && mine != welcome.instance {
        return Err(Failure::Declined(format!(
            "router gave instance {} but this node is {mine}",
            welcome.instance
        )));
    }
    cluster.instance.store(welcome.instance, Ordering::Relaxed);
    let mut local = HashMap::new();
    for (name, sid) in &welcome.stages {
        if let Some(i) = id.stages.iter().position(|s| s == name) {
            local.insert((sid >> 24) as u8, i);
        }
    }
    let (tx, rx) = stage_proto::writer::queue(id.link_buffer);
    let link = Arc::new(RouterLink {
        order,
        addr: addr.to_owned(),
        classes: Default::default(),
        names: Default::default(),
        local,
        tx,
        alive: AtomicBool::new(true),
        liveness: Default::default(),
    });
    link.learn(&welcome.classes);
    tokio::spawn(write_frames(rx, wr));
    cluster.add_link(link.clone());
    Ok((link, reader))
}

async fn next_frame(reader: &mut Reader) -> Result<Frame, Failure> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next()).await {
        Err(_) => Err(Failure::Io("handshake timed out".into())),
        Ok(None) => Err(Failure::Io("closed during the handshake".into())),
        Ok(Some(Err(e))) => Err(Failure::Io(e.to_string())),
        Ok(Some(Ok(f))) => Ok(f),
    }
}

/// Pings the router; while it is silent this node sends through another one.
async fn heartbeat(window: Duration, link: Arc<RouterLink>) {
    heartbeat::run(
        &link.liveness,
        window,
        |ping| link.tx.control(&ping) != Push::Closed,
        |_| {
            log::warn!(
                "router {} silent (heartbeat window {window:?}): sending through another router until it speaks again",
                link.addr
            )
        },
    )
    .await;
}

/// Whether a NACK's request still waits for its outcome (a request without a correlation id —
/// a plain message — always takes its NACK).
fn nack_applies(cluster: &Cluster, body: &[u8]) -> bool {
    match stage_proto::Envelope::parse(body) {
        Ok((env, _)) if env.corr != 0 => cluster.pending.failed(env.corr),
        _ => true,
    }
}

/// Delivers frames to the stages until the link breaks; returns why.
async fn read_loop(cluster: &Cluster, link: &RouterLink, reader: &mut Reader) -> String {
    while let Some(item) = reader.next().await {
        let frame = match item {
            Ok(f) => f,
            Err(e) => return format!("malformed frame from router: {e}"),
        };
        if link.liveness.heard().is_some() {
            log::info!("router {} speaks again", link.addr);
        }
        let h = frame.header;
        match h.kind {
            Kind::Message | Kind::Nack => {
                let Some(stage) = link.local.get(&h.target.class()).copied() else {
                    log::warn!(
                        "router {} sent a frame for {} which this node does not host",
                        link.addr,
                        h.target
                    );
                    continue;
                };
                if h.kind == Kind::Nack && !nack_applies(cluster, frame.body()) {
                    log::debug!("NACK of a request that was answered or failed already: dropped");
                    continue;
                }
                let nack = (h.kind == Kind::Nack).then(|| {
                    format!(
                        "stage '{}': {}",
                        link.name_of(h.source.class()),
                        NackReason::from_u8(h.mode).describe()
                    )
                });
                let d = Delivery {
                    body: frame.body_bytes(),
                    from_instance: h.source.instance(),
                    nack,
                    remote: true,
                };
                // A stage that falls behind stops this link's reading: TCP then fills the
                // router's capped queue for us, and the router refuses and signals upstream.
                let inbox = &cluster.inboxes[stage];
                if inbox.backlog_bytes() > cluster.identity.link_buffer {
                    // Not reading is our doing: the router's quiet meanwhile is not silence.
                    let _pause = link.liveness.pause();
                    while inbox.backlog_bytes() > cluster.identity.link_buffer {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                inbox.send(Inbound::Message(d));
            }
            Kind::ClassMap => match handshake::ClassMap::from_frame(&frame) {
                Ok(m) => link.learn(&m.classes),
                Err(e) => return format!("bad class map: {e}"),
            },
            Kind::Ping => {
                link.tx.control(&heartbeat::pong(h.key));
            }
            Kind::Pong => {}
            Kind::Overload => {
                if let Some(stage) = link.local.get(&h.target.class()).copied() {
                    let busy = link.name_of(h.source.class());
                    cluster.inboxes[stage].send(Inbound::Overload(busy));
                }
            }
            other => return format!("unexpected {other:?} frame from router"),
        }
    }
    "connection closed".into()
}
