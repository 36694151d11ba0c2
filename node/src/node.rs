//! The node: its stages' inboxes, its instance number, and the way out to the cluster.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use stage_proto::Mode;

use crate::broker::Broker;
use crate::cluster::Cluster;
use crate::inbound::{Delivery, Inbound, InboxTx};
use crate::pending::Pending;
use crate::pool::Pool;
use crate::script::Scripts;
use crate::stats::StageStats;
use crate::store::Store;

/// A message on its way out, its body built behind room for the frame prefix
/// (`stage_proto::frame::begin`) so that no copy is needed to frame it.
pub struct Outgoing<'a> {
    pub stage: &'a str,
    /// Exact instance, or 0 for the class (routed by `mode`).
    pub instance: u32,
    pub mode: Mode,
    pub flags: u16,
    pub key: u64,
    pub from_stage: &'a str,
    pub buf: Vec<u8>,
}

/// A message that could not be sent, handed back so the sender can turn it into a NACK.
pub struct Undelivered {
    pub why: String,
    pub buf: Vec<u8>,
}

/// Shared by every stage thread and the cluster links.
pub struct Node {
    instance: Arc<AtomicU32>,
    /// Largest frame (length prefix excluded) this node sends: a larger one would make the
    /// router close our link.
    max_frame: usize,
    inboxes: HashMap<String, InboxTx>,
    stats: HashMap<String, Arc<StageStats>>,
    cluster: Option<Arc<Cluster>>,
    store: Arc<Store>,
    scripts: Scripts,
    pool: Pool,
    pending: Arc<Pending>,
    /// How long a request waits for its answer unless its target says otherwise.
    deadline: std::time::Duration,
    stopping: std::sync::atomic::AtomicBool,
    broker: Arc<Broker>,
}

/// The sizes and times a node works to (from the command line).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Largest frame sent or accepted (`--max-frame`).
    pub max_frame: usize,
    /// How long a request waits for its answer unless its target says otherwise.
    pub deadline: std::time::Duration,
}

impl Node {
    pub fn new(
        instance: Arc<AtomicU32>,
        bounds: Bounds,
        scripts: Scripts,
        inboxes: HashMap<String, InboxTx>,
        cluster: Option<Arc<Cluster>>,
        pending: Arc<Pending>,
        io: tokio::runtime::Handle,
    ) -> Node {
        let pool = Pool::default();
        Node {
            broker: Broker::new(io, pool.clone()),
            instance,
            max_frame: bounds.max_frame,
            stats: inboxes
                .keys()
                .map(|n| (n.clone(), Arc::default()))
                .collect(),
            inboxes,
            cluster,
            store: Arc::default(),
            scripts,
            pool,
            pending,
            deadline: bounds.deadline,
            stopping: Default::default(),
        }
    }

    /// This node's instance number (0 until a router assigned one).
    pub fn instance(&self) -> u32 {
        self.instance.load(Ordering::Relaxed)
    }

    /// Whether this node's router links prove a cluster secret: only then are functions
    /// accepted from other nodes.
    pub fn authenticated(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.authenticated())
    }

    /// Requests waiting for answers.
    pub fn pending(&self) -> &Arc<Pending> {
        &self.pending
    }

    /// The default time a request waits for its answer (`--deadline`).
    pub fn deadline(&self) -> std::time::Duration {
        self.deadline
    }

    /// The worker pool's queue (`stage.submit`, `thread.new`).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The node's client-facing sockets (`broker.*`).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The script cache (search path, fail-over, hot reload).
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// The process-wide store (`*NAME`, `__`, `stage.v`).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Largest frame this node sends or accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// What stage `stage` reports for /metrics and /status (every hosted stage has them).
    pub fn stats(&self, stage: &str) -> Option<&Arc<StageStats>> {
        self.stats.get(stage)
    }

    /// Counts a Lua error logged by `stage` (a worker's job counts for the stage that
    /// submitted it).
    pub fn count_error(&self, stage: &str) {
        if let Some(s) = self.stats.get(stage) {
            s.error();
        }
    }

    /// Each hosted stage's inbox (backlog, events taken) and stats, sorted by name.
    pub fn stage_readings(&self) -> Vec<(&str, &InboxTx, &StageStats)> {
        let mut out: Vec<_> = self
            .inboxes
            .iter()
            .filter_map(|(n, tx)| Some((n.as_str(), tx, self.stats.get(n)?.as_ref())))
            .collect();
        out.sort_by_key(|r| r.0);
        out
    }

    /// The router links (none for a standalone node).
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Each `--router` with whether it is linked and whether it is silent (none standalone).
    pub fn router_states(&self) -> Vec<(String, bool, bool)> {
        self.cluster
            .as_ref()
            .map(|c| c.router_states())
            .unwrap_or_default()
    }

    pub fn hosts(&self, stage: &str) -> bool {
        self.inboxes.contains_key(stage)
    }

    /// Queues a delivery for a local stage; false if there is no such stage or it stopped.
    pub fn deliver_local(&self, stage: &str, d: Delivery) -> bool {
        self.deliver_inbound(stage, Inbound::Message(d))
    }

    /// Queues any event for a local stage's main loop.
    pub fn deliver_inbound(&self, stage: &str, event: Inbound) -> bool {
        self.inboxes.get(stage).is_some_and(|tx| tx.send(event))
    }

    /// Sends a message. Without routers (standalone), a stage of this node is its only member.
    /// `Err` when no target could be reached at all; the caller decides about the NACK.
    pub fn send(&self, out: Outgoing<'_>) -> Result<(), Undelivered> {
        let len = out.buf.len() - 4;
        if len > self.max_frame {
            return Err(Undelivered {
                why: format!(
                    "message of {len} bytes exceeds the maximum frame of {} bytes (--max-frame)",
                    self.max_frame
                ),
                buf: out.buf,
            });
        }
        let from = out.from_stage;
        let sent = match &self.cluster {
            Some(c) => c.send(out),
            None => {
                let standalone_member = out.instance == 0 || out.instance == self.instance();
                if !(standalone_member && self.hosts(out.stage)) {
                    return Err(Undelivered {
                        why: "not on this node (standalone: no --router)".into(),
                        buf: out.buf,
                    });
                }
                self.loopback(out)
            }
        };
        if sent.is_ok() {
            if let Some(s) = self.stats.get(from) {
                s.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        sent
    }

    /// Sends an ordered-lock operation to the router (locks live there: every node shares them).
    pub fn send_lock(
        &self,
        op: stage_proto::LockOp,
        key: u64,
        extend_ms: u32,
        from_stage: &str,
        buf: Vec<u8>,
    ) -> Result<(), Undelivered> {
        match &self.cluster {
            Some(c) => c.send_lock(op, key, extend_ms, from_stage, buf),
            None => Err(Undelivered {
                why: "ordered locks are kept by the routers: run the node with --router".into(),
                buf,
            }),
        }
    }

    /// Sends an answer to `stage` on the node with `instance`: locally when that is us.
    pub fn send_reply(&self, out: Outgoing<'_>) -> Result<(), Undelivered> {
        let here = self.cluster.is_none() || out.instance == self.instance();
        if here && self.hosts(out.stage) {
            return self.loopback(out);
        }
        self.send(out)
    }

    /// Delivers an outgoing message to a stage of this node without framing it.
    fn loopback(&self, out: Outgoing<'_>) -> Result<(), Undelivered> {
        if !self.hosts(out.stage) {
            return Err(Undelivered {
                why: "not on this node".into(),
                buf: out.buf,
            });
        }
        let d = Delivery::local(out.buf, self.instance(), None);
        if !self.deliver_local(out.stage, d) {
            // Only while shutting down: the stage's loop has ended.
            log::debug!("stage '{}' has stopped; message dropped", out.stage);
        }
        Ok(())
    }

    /// Each stage's backlog (events waiting in its inbox).
    pub fn backlogs(&self) -> Vec<(String, usize)> {
        self.inboxes
            .iter()
            .map(|(n, tx)| (n.clone(), tx.backlog()))
            .collect()
    }

    /// Tells the routers that `stage` is (or no longer is) overloaded.
    pub fn report_busy(&self, stage: &str, busy: bool) {
        if let Some(c) = &self.cluster {
            c.report_busy(stage, busy);
        }
    }

    /// Whether the node is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks every stage to leave its main loop, and the workers to stop.
    pub fn stop_all(&self, signal: &'static str) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.pool.stop();
        self.pending.stop();
        for tx in self.inboxes.values() {
            tx.send(Inbound::Stop(signal));
        }
    }
}
