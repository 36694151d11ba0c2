//! One node's connection: handshake, registration, the read loop, and clean-up on close.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use futures_util::StreamExt;
use mlua::Value;
use stage_proto::handshake::{self, Challenge, Hello, Refuse, Welcome};
use stage_proto::heartbeat;
use stage_proto::writer::write_frames;
use stage_proto::{Frame, FrameCodec, Kind, ServiceId, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::batch::Batch;
use crate::counters::ClassTally;
use crate::forward::{deliver_blocked, forward, Attempt, Outcome};
use crate::inbound::FrameReader;
use crate::link::Link;
use crate::server::Router;
use crate::snapshot::Cached;
use crate::table::Table;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest frame accepted before the handshake: a hello is small, and an unauthenticated peer
/// must not make the router reserve the full maximum.
const HANDSHAKE_MAX_FRAME: usize = 64 * 1024;

/// Stages one node may register: bounds what one hello can take of the 255 class numbers.
const MAX_STAGES_PER_NODE: usize = 64;

type Reader = FramedRead<OwnedReadHalf, FrameCodec>;

/// Serves one connection until it closes.
pub async fn run(router: Arc<Router>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, FrameCodec::new(HANDSHAKE_MAX_FRAME));

    let challenge = Challenge {
        version: PROTOCOL_VERSION,
        router: router.listen.to_string(),
        nonce: handshake::nonce().to_vec(),
        auth: router.settings.secret.is_some(),
    };
    if wr.write_all(&challenge.to_frame().raw).await.is_err() {
        return;
    }
    let hello = match read_hello(&mut reader).await {
        Ok(h) => h,
        Err(reason) => {
            log::warn!("refused connection from {peer}: {reason}");
            refuse(&mut wr, &reason).await;
            return;
        }
    };
    if let Err(reason) = authenticate(&router, &challenge, &hello) {
        log::warn!("refused node '{}' from {peer}: {reason}", hello.node);
        refuse(&mut wr, &reason).await;
        return;
    }

    let (tx, rx) = stage_proto::writer::queue(router.settings.link_buffer);
    let link = Arc::new(Link::new(router.next_token(), hello.node.clone(), peer, tx));
    let instance = match register(&router, &link, &challenge, &hello) {
        Ok(i) => i,
        Err(reason) => {
            log::warn!("refused node '{}' from {peer}: {reason}", hello.node);
            refuse(&mut wr, &reason).await;
            return;
        }
    };
    // From here frames are read in place (the handshake's reader may hold some already).
    let leftover = reader.read_buffer().to_vec();
    let mut frames = FrameReader::new(reader.into_inner(), &leftover, router.settings.max_frame);
    let writer = tokio::spawn(write_frames(rx, wr));
    let beat = tokio::spawn(heartbeat(router.clone(), link.clone()));
    let reason = read_loop(&router, &link, instance, &mut frames).await;
    router.locks.forget(&link);
    link.kill();
    writer.abort();
    beat.abort();
    unregister(&router, &link, instance, &reason);
}

async fn read_hello(reader: &mut Reader) -> Result<Hello, String> {
    match tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await {
        Err(_) => Err(format!("no hello within {HELLO_TIMEOUT:?}")),
        Ok(None) => Err("closed before the handshake".into()),
        Ok(Some(Err(e))) => Err(format!("malformed handshake frame: {e}")),
        Ok(Some(Ok(f))) if f.header.kind == Kind::Refuse => Err(match Refuse::from_frame(&f) {
            Ok(r) => format!("the node refused this router: {}", r.reason),
            Err(e) => format!("the node refused this router: {e}"),
        }),
        Ok(Some(Ok(f))) => Hello::from_frame(&f).map_err(|e| e.to_string()),
    }
}

fn authenticate(router: &Router, challenge: &Challenge, hello: &Hello) -> Result<(), String> {
    if hello.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} (this router speaks {PROTOCOL_VERSION})",
            hello.version
        ));
    }
    let Some(secret) = &router.settings.secret else {
        return Ok(());
    };
    if hello.proof.is_empty() {
        return Err("no proof of the cluster secret (start the node with --secret-file)".into());
    }
    if !handshake::verify_hello(secret, &challenge.nonce, hello) {
        return Err("wrong cluster secret".into());
    }
    Ok(())
}

async fn refuse(wr: &mut tokio::net::tcp::OwnedWriteHalf, reason: &str) {
    let frame = Refuse {
        reason: reason.to_owned(),
    }
    .to_frame();
    let _ = wr.write_all(&frame.raw).await;
    let _ = wr.shutdown().await;
}

/// Gives the node its instance and service ids, queues the welcome, and tells the script. All of
/// it under the control lock, so class announcements and registrations are seen in one order.
fn register(
    router: &Router,
    link: &Arc<Link>,
    challenge: &Challenge,
    hello: &Hello,
) -> Result<u32, String> {
    if hello.stages.len() > MAX_STAGES_PER_NODE {
        return Err(format!(
            "{} stages in one node; at most {MAX_STAGES_PER_NODE}",
            hello.stages.len()
        ));
    }
    for name in &hello.stages {
        stage_proto::service::check_stage_name(name)?;
    }
    let mut names: Vec<&String> = hello.stages.iter().collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err("the same stage name is listed twice".into());
    }
    let mut guard = router.control.lock().expect("control lock");
    let control = guard.as_mut().ok_or("router is starting")?;
    let instance = match hello.instance {
        0 => (1..=stage_proto::service::MAX_INSTANCE)
            .find(|i| !control.instances.contains_key(i))
            .ok_or("no free instance number")?,
        i if i > stage_proto::service::MAX_INSTANCE => {
            return Err(format!("instance {i} exceeds 24 bits"));
        }
        i => match control.instances.get(&i) {
            Some(t) => return Err(format!("instance {i} is already registered by link {t}")),
            None => i,
        },
    };
    let mut stages = Vec::new();
    for name in &hello.stages {
        let class = router.ensure_class(name)?;
        let id = ServiceId::new(class, instance).ok_or("bad instance")?;
        let info = registration_info(&control.script, name, id, hello, link)
            .map_err(|e| format!("on_register info: {e}"))?;
        stages.push((name.clone(), id, info));
    }
    let proof = router
        .settings
        .secret
        .as_ref()
        .map(|s| handshake::welcome_proof(s, &hello.nonce, &challenge.nonce, instance))
        .unwrap_or_default();
    let welcome = Welcome {
        instance,
        stages: stages.iter().map(|(n, id, _)| (n.clone(), id.0)).collect(),
        classes: router.table.load().class_list(),
        proof,
    };
    // Nothing below can fail: the link is recorded only once it is certain to be welcomed.
    link.send(welcome.to_frame().raw);
    router
        .links
        .lock()
        .expect("links lock")
        .insert(link.token, link.clone());
    control.instances.insert(instance, link.token);
    for (_, id, info) in stages {
        control
            .script
            .event("on_register", (link.token, id.0, info));
    }
    Ok(instance)
}

/// The `info` table of `on_register`.
fn registration_info(
    script: &crate::script::Script,
    name: &str,
    id: ServiceId,
    hello: &Hello,
    link: &Link,
) -> mlua::Result<mlua::Table> {
    script.info(&[
        ("name", script.string(name)?),
        ("class", Value::Integer(id.class() as i64)),
        ("instance", Value::Integer(id.instance() as i64)),
        ("node", script.string(&hello.node)?),
        ("addr", script.string(&link.peer.to_string())?),
        ("pid", Value::Integer(hello.pid as i64)),
    ])
}

fn unregister(router: &Router, link: &Link, instance: u32, reason: &str) {
    log::info!("{link} closed: {reason}");
    let mut guard = router.control.lock().expect("control lock");
    router.links.lock().expect("links lock").remove(&link.token);
    if let Some(control) = guard.as_mut() {
        if control.instances.get(&instance) == Some(&link.token) {
            control.instances.remove(&instance);
        }
        control
            .script
            .event("on_close", (link.token, reason.to_owned()));
    }
}

/// Forwards messages until the link closes; returns why it closed.
async fn read_loop(
    router: &Router,
    link: &Arc<Link>,
    instance: u32,
    frames: &mut FrameReader<OwnedReadHalf>,
) -> String {
    let mut reading = Reading {
        table: Cached::new(&router.table),
        batch: Batch::default(),
        classes: ClassTally::default(),
        messages: 0,
    };
    loop {
        let handled = handle_read(router, link, instance, frames, &mut reading).await;
        // Everything this read held for other nodes goes out before the next read (and the
        // messages before a malformed frame before the link closes).
        reading.batch.flush(frames.buffer());
        let messages = std::mem::take(&mut reading.messages);
        link.counters
            .messages_in
            .fetch_add(messages, Ordering::Relaxed);
        reading.classes.publish(&router.class_messages);
        if let Err(why) = handled {
            return closing(link, why);
        }
        match frames.fill().await {
            Ok(true) => {}
            Ok(false) => return "connection closed".into(),
            Err(e) => return closing(link, format!("read error: {e}")),
        }
        if link.liveness.heard().is_some() {
            log::info!("{link} speaks again: back in the forwarding table");
            router.event("on_back", link.token);
        }
    }
}

/// What a session keeps from read to read.
struct Reading {
    table: Cached<Table>,
    batch: Batch,
    /// This read's messages per target class, and in all (added to the counters per read).
    classes: ClassTally,
    messages: u64,
}

/// Handles every complete frame of the last read; an error says why the link must close.
async fn handle_read(
    router: &Router,
    link: &Arc<Link>,
    instance: u32,
    frames: &mut FrameReader<OwnedReadHalf>,
    reading: &mut Reading,
) -> Result<(), String> {
    let Reading {
        table,
        batch,
        classes,
        messages,
    } = reading;
    while let Some((h, range)) = frames
        .next_frame()
        .map_err(|e| format!("malformed frame: {e}"))?
    {
        // A member speaks only for its own instance: a forged source would send answers, NACKs
        // and lock grants to someone else.
        let speaks_for_itself = h.source.instance() == instance;
        match h.kind {
            Kind::Message if !speaks_for_itself => {
                return Err(format!(
                    "protocol error: message from source {} on the link of instance {instance}",
                    h.source
                ))
            }
            Kind::Message => {
                *messages += 1;
                classes.count(h.target.class());
                let buf = frames.buffer();
                let attempt = forward(
                    table.get(&router.table),
                    &h,
                    buf,
                    range.clone(),
                    link,
                    batch,
                );
                let outcome = match attempt {
                    Ok(Attempt::Done(o)) => o,
                    Ok(Attempt::Blocked { links, delivered }) => {
                        batch.flush(buf);
                        let raw = &buf[range];
                        deliver_blocked(&router.table, &h, raw, link, links, delivered).await
                    }
                    Err(e) => return Err(format!("malformed frame: {e}")),
                };
                if let Outcome::Dropped(reason) = outcome {
                    log::debug!(
                        "dropped message from {link} to {}: {}",
                        h.target,
                        reason.describe()
                    );
                }
            }
            Kind::Lock if !speaks_for_itself => {
                return Err(format!(
                "protocol error: lock request from source {} on the link of instance {instance}",
                h.source
            ))
            }
            Kind::Lock => {
                // A grant must not overtake this sender's earlier messages to the holder.
                batch.flush(frames.buffer());
                let frame = Frame {
                    header: h,
                    raw: Bytes::copy_from_slice(frames.get(range)),
                };
                router.locks.handle(&frame, link);
            }
            Kind::Busy if !speaks_for_itself => {
                return Err(format!(
                    "protocol error: busy notice for source {} on the link of instance {instance}",
                    h.source
                ))
            }
            Kind::Busy => {
                let busy = h.mode == 1;
                link.set_busy(h.source.class(), busy);
                log::info!(
                    "{link}: member {} {}",
                    h.source,
                    if busy {
                        "overloaded: round-robin passes it over"
                    } else {
                        "drained"
                    }
                );
            }
            Kind::Ping => {
                link.send(heartbeat::pong(h.key));
            }
            Kind::Pong => {}
            other => {
                return Err(format!(
                    "protocol error: unexpected {other:?} frame after the handshake"
                ))
            }
        }
    }
    Ok(())
}

/// Pings the node and takes it out of the forwarding table while it is silent.
async fn heartbeat(router: Arc<Router>, link: Arc<Link>) {
    let window = router.settings.heartbeat_window;
    heartbeat::run(
        &link.liveness,
        window,
        |ping| link.send(ping),
        |_| {
            log::warn!(
                "{link} silent (heartbeat window {window:?}): no traffic until it speaks again"
            );
            router.event("on_silent", link.token);
        },
    )
    .await;
}

fn closing(link: &Link, why: String) -> String {
    log::warn!("closing {link}: {why}");
    why
}
