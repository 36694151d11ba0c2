//! One node's connection: handshake, registration, the read loop, and clean-up on close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mlua::Value;
use stage_proto::handshake::{self, Challenge, Hello, Refuse, Welcome};
use stage_proto::writer::write_frames;
use stage_proto::{Frame, FrameCodec, Header, Kind, ServiceId, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc::unbounded_channel;
use tokio_util::codec::FramedRead;

use crate::forward::{forward, Outcome};
use crate::link::Link;
use crate::server::Router;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

type Reader = FramedRead<OwnedReadHalf, FrameCodec>;

/// Serves one connection until it closes.
pub async fn run(router: Arc<Router>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, FrameCodec::new(router.settings.max_frame));

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

    let (tx, rx) = unbounded_channel();
    let link = Arc::new(Link::new(router.next_token(), hello.node.clone(), peer, tx));
    let instance = match register(&router, &link, &challenge, &hello) {
        Ok(i) => i,
        Err(reason) => {
            log::warn!("refused node '{}' from {peer}: {reason}", hello.node);
            refuse(&mut wr, &reason).await;
            return;
        }
    };
    let writer = tokio::spawn(write_frames(rx, wr));
    let reason = read_loop(&router, &link, &mut reader).await;
    link.kill();
    writer.abort();
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
    if !handshake::verify_hello(
        secret,
        &challenge.nonce,
        &hello.nonce,
        &hello.node,
        &hello.proof,
    ) {
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
    let mut guard = router.control.lock().expect("control lock");
    let control = guard.as_mut().ok_or("router is starting")?;
    let mut names: Vec<&String> = hello.stages.iter().collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err("the same stage name is listed twice".into());
    }
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
        stages.push((name.clone(), id));
    }
    let proof = router
        .settings
        .secret
        .as_ref()
        .map(|s| handshake::welcome_proof(s, &hello.nonce, &challenge.nonce))
        .unwrap_or_default();
    let welcome = Welcome {
        instance,
        stages: stages.iter().map(|(n, id)| (n.clone(), id.0)).collect(),
        classes: router.table.read().expect("table lock").class_list(),
        proof,
    };
    link.send(welcome.to_frame().raw);
    router
        .links
        .lock()
        .expect("links lock")
        .insert(link.token, link.clone());
    control.instances.insert(instance, link.token);
    for (name, id) in stages {
        let info = control.script.info(&[
            (
                "name",
                control.script.string(&name).map_err(|e| e.to_string())?,
            ),
            ("class", Value::Integer(id.class() as i64)),
            ("instance", Value::Integer(instance as i64)),
            (
                "node",
                control
                    .script
                    .string(&hello.node)
                    .map_err(|e| e.to_string())?,
            ),
            (
                "addr",
                control
                    .script
                    .string(&link.peer.to_string())
                    .map_err(|e| e.to_string())?,
            ),
            ("pid", Value::Integer(hello.pid as i64)),
        ]);
        match info {
            Ok(info) => control
                .script
                .event("on_register", (link.token, id.0, info)),
            Err(e) => log::error!("on_register info: {e}"),
        }
    }
    Ok(instance)
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
async fn read_loop(router: &Router, link: &Link, reader: &mut Reader) -> String {
    while let Some(item) = reader.next().await {
        let frame = match item {
            Ok(f) => f,
            Err(e) => {
                log::warn!("closing {link}: malformed frame: {e}");
                return format!("malformed frame: {e}");
            }
        };
        match frame.header.kind {
            Kind::Message => {
                let outcome = forward(&router.table.read().expect("table lock"), &frame, link);
                if let Outcome::Dropped(reason) = outcome {
                    log::debug!(
                        "dropped message from {link} to {}: {}",
                        frame.header.target,
                        reason.describe()
                    );
                }
            }
            Kind::Ping => {
                let mut h = Header::new(Kind::Pong);
                h.key = frame.header.key;
                link.send(Frame::new(h, &[]).raw);
            }
            Kind::Pong => {}
            other => {
                log::warn!("closing {link}: unexpected {other:?} frame after the handshake");
                return format!("protocol error: unexpected {other:?} frame");
            }
        }
    }
    "connection closed".into()
}
