//! The node's side of the cluster: one link per router, and the choice of the link to send on.
//!
//! A node registers its stages with every router and sends through one live link, the first in
//! `--router` order, switching only when that link is lost (luna-spec §1.7: switching per message
//! would reorder a sender's stream).

mod link;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};

use stage_proto::frame;
use stage_proto::writer::Push;
use stage_proto::{Header, Kind, ServiceId};

use crate::inbound::InboxTx;
use crate::node::{Outgoing, Undelivered};

/// Who this node is, as told to routers.
pub struct Identity {
    pub node: String,
    pub stages: Vec<String>,
    pub secret: Option<Vec<u8>>,
    pub max_frame: usize,
    pub heartbeat_window: std::time::Duration,
    /// Bytes that may wait for a router to read them.
    pub link_buffer: usize,
}

/// One welcomed router link.
pub struct RouterLink {
    /// Position in `--router` order.
    order: usize,
    addr: String,
    /// Stage name ↔ class number on this router (router-assigned, so per link).
    classes: RwLock<HashMap<String, u8>>,
    names: RwLock<HashMap<u8, String>>,
    /// Class number → index of our own stage, fixed at the welcome.
    local: HashMap<u8, usize>,
    tx: stage_proto::writer::QueueTx,
    alive: AtomicBool,
    /// Heartbeats: a silent router is not sent through until it speaks again.
    liveness: stage_proto::heartbeat::Liveness,
}

impl RouterLink {
    fn class_of(&self, stage: &str) -> Option<u8> {
        self.classes
            .read()
            .expect("classes lock")
            .get(stage)
            .copied()
    }

    fn name_of(&self, class: u8) -> String {
        self.names
            .read()
            .expect("names lock")
            .get(&class)
            .cloned()
            .unwrap_or_else(|| format!("class {class}"))
    }

    fn learn(&self, classes: &[(String, u32)]) {
        let mut by_name = self.classes.write().expect("classes lock");
        let mut by_class = self.names.write().expect("names lock");
        for (name, class) in classes {
            if let Ok(c) = u8::try_from(*class) {
                by_name.insert(name.clone(), c);
                by_class.insert(c, name.clone());
            }
        }
    }
}

/// All router links of this node.
pub struct Cluster {
    identity: Identity,
    instance: Arc<AtomicU32>,
    inboxes: Vec<InboxTx>,
    /// Requests waiting for answers: a NACK of one that already failed is dropped.
    pending: Arc<crate::pending::Pending>,
    links: RwLock<Vec<Arc<RouterLink>>>,
    /// The `--router` addresses, sorted: a lock's router is chosen among them by its name.
    routers: RwLock<Vec<String>>,
    /// Serialises handshakes so that the first router's instance assignment is used with the
    /// others.
    register_gate: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// `inboxes` are in the order of `identity.stages`.
    pub fn new(
        identity: Identity,
        instance: Arc<AtomicU32>,
        inboxes: Vec<InboxTx>,
        pending: Arc<crate::pending::Pending>,
    ) -> Cluster {
        Cluster {
            identity,
            instance,
            inboxes,
            pending,
            links: RwLock::new(Vec::new()),
            routers: Default::default(),
            register_gate: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts one link task per router address; `ready` gets one message per router once its
    /// first handshake finished (welcomed or refused), so start-up can wait for the cluster.
    pub fn start(self: &Arc<Self>, routers: Vec<String>, ready: Sender<()>) {
        let mut sorted = routers.clone();
        sorted.sort();
        *self.routers.write().expect("routers lock") = sorted;
        for (order, addr) in routers.into_iter().enumerate() {
            let cluster = self.clone();
            let ready = ready.clone();
            tokio::spawn(async move { link::maintain(cluster, order, addr, ready).await });
        }
    }

    /// Whether links prove the cluster secret (a node with a secret never links to a router
    /// without one).
    pub fn authenticated(&self) -> bool {
        self.identity.secret.is_some()
    }

    /// The link to send on: the first live, not silent one in router order.
    fn current(&self) -> Option<Arc<RouterLink>> {
        self.links
            .read()
            .expect("links lock")
            .iter()
            .find(|l| l.alive.load(Ordering::Relaxed) && !l.liveness.is_silent())
            .cloned()
    }

    fn add_link(&self, link: Arc<RouterLink>) {
        let mut links = self.links.write().expect("links lock");
        links.push(link);
        links.sort_by_key(|l| l.order);
    }

    fn remove_link(&self, link: &Arc<RouterLink>) {
        link.alive.store(false, Ordering::Relaxed);
        self.links
            .write()
            .expect("links lock")
            .retain(|l| !Arc::ptr_eq(l, link));
    }

    /// Whether the router at `addr` hands this node its instance number when it has none
    /// (no `--id`): the first of the sorted `--router` addresses. Nodes given the same routers
    /// all ask the same one first, so two of them starting at once cannot be handed the same
    /// number by two different routers (and then refused by the other one, forever).
    pub fn assigns_instances(&self, addr: &str) -> bool {
        self.routers
            .read()
            .expect("routers lock")
            .first()
            .is_some_and(|first| first == addr)
    }

    /// The name routers know this node by.
    pub fn node_name(&self) -> &str {
        &self.identity.node
    }

    /// Each `--router` address (sorted) with whether it is linked now and whether it has gone
    /// silent (messages then go through another one).
    pub fn router_states(&self) -> Vec<(String, bool, bool)> {
        let links = self.links.read().expect("links lock");
        self.routers
            .read()
            .expect("routers lock")
            .iter()
            .map(|addr| {
                let link = links
                    .iter()
                    .find(|l| l.addr == *addr && l.alive.load(Ordering::Relaxed));
                (
                    addr.clone(),
                    link.is_some(),
                    link.is_some_and(|l| l.liveness.is_silent()),
                )
            })
            .collect()
    }

    /// Tells every router that `stage` is (or no longer is) overloaded.
    pub fn report_busy(&self, stage: &str, busy: bool) {
        let instance = self.instance.load(Ordering::Relaxed);
        for link in self.links.read().expect("links lock").iter() {
            let Some(class) = link.class_of(stage) else {
                continue;
            };
            let mut h = Header::new(Kind::Busy);
            h.mode = u8::from(busy);
            h.source = ServiceId::new(class, instance).unwrap_or_default();
            link.tx.control(&frame::finish(frame::begin(0), h).raw);
        }
    }

    /// Frames and queues a lock operation on the current link.
    pub fn send_lock(
        &self,
        op: stage_proto::LockOp,
        key: u64,
        extend_ms: u32,
        from_stage: &str,
        buf: Vec<u8>,
    ) -> Result<(), Undelivered> {
        // Every operation on one lock goes to the same router — the one its name hashes to
        // among the --router addresses (sorted, so every node given the same routers agrees,
        // in whatever order) — so there is one queue per lock in the cluster. While that
        // router is unreachable the lock fails.
        let addr = {
            let routers = self.routers.read().expect("routers lock");
            match routers.len() {
                0 => String::new(),
                n => routers[(key % n as u64) as usize].clone(),
            }
        };
        let link = self
            .links
            .read()
            .expect("links lock")
            .iter()
            .find(|l| l.addr == addr && l.alive.load(Ordering::Relaxed))
            .cloned()
            .ok_or_else(|| Undelivered {
                why: format!("the router of this lock ({addr}) is not linked"),
                buf: buf.clone(),
            })?;
        let mut header = Header::new(Kind::Lock);
        header.mode = op as u8;
        header.target = ServiceId(extend_ms);
        header.key = key;
        self.push(&link, header, from_stage, buf)
    }

    /// Frames and queues a message on the current link.
    pub fn send(&self, out: Outgoing<'_>) -> Result<(), Undelivered> {
        let link = self.pick(&out.buf)?;
        let Some(class) = link.class_of(out.stage) else {
            return Err(Undelivered {
                why: format!("not registered with router {}", link.addr),
                buf: out.buf,
            });
        };
        let header = Header {
            kind: Kind::Message,
            mode: out.mode as u8,
            flags: stage_proto::Flags(out.flags),
            target: ServiceId::new(class, out.instance).unwrap_or(ServiceId(0)),
            source: ServiceId(0),
            key: out.key,
        };
        self.push(&link, header, out.from_stage, out.buf)
    }

    /// The link to send on, or the reason there is none (with the buffer back: cheap, rare).
    fn pick(&self, buf: &[u8]) -> Result<Arc<RouterLink>, Undelivered> {
        self.current().ok_or_else(|| Undelivered {
            why: "no router link is up".into(),
            buf: buf.to_vec(),
        })
    }

    /// Fills in the sender's service id on `link`, frames, and queues.
    fn push(
        &self,
        link: &RouterLink,
        mut header: Header,
        from_stage: &str,
        buf: Vec<u8>,
    ) -> Result<(), Undelivered> {
        let source_class = link.class_of(from_stage).unwrap_or(0);
        let instance = self.instance.load(Ordering::Relaxed);
        header.source = ServiceId::new(source_class, instance).unwrap_or_default();
        let frame = frame::finish(buf, header);
        // A refused frame comes back as its bytes (rare: copying is fine) for the NACK.
        match link.tx.push(&frame.raw) {
            Push::Queued => Ok(()),
            // The router is not reading fast enough: refuse rather than queue without bound.
            Push::Full => Err(Undelivered {
                why: format!(
                    "the link to router {} is full (the router is not keeping up)",
                    link.addr
                ),
                buf: frame.raw.to_vec(),
            }),
            // The link died between the choice and the send.
            Push::Closed => Err(Undelivered {
                why: {
                    link.alive.store(false, Ordering::Relaxed);
                    format!("router link {} closed", link.addr)
                },
                buf: frame.raw.to_vec(),
            }),
        }
    }
}
