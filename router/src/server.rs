//! The router's shared state and its accept loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use stage_proto::handshake::ClassMap;
use stage_proto::ServiceId;
use tokio::net::TcpListener;

use crate::counters::ClassCounters;
use crate::link::Link;
use crate::script::Script;
use crate::session;
use crate::snapshot::Snapshot;
use crate::table::Table;

/// Settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub secret: Option<Vec<u8>>,
    pub max_frame: usize,
    /// Silence after which a node gets no traffic until it speaks again.
    pub heartbeat_window: std::time::Duration,
    /// Bytes a link's queue may hold before messages to it are refused.
    pub link_buffer: usize,
}

/// Registration state changed only under the control lock, together with script events, so a
/// registration and the script's reaction to it are one step as seen by every other link.
pub struct Control {
    pub script: Script,
    /// Instance number → token of the link holding it.
    pub instances: HashMap<u32, u32>,
}

/// Everything the links share.
pub struct Router {
    /// Read per message without a lock; changed by the control script (copy-on-write).
    pub table: Snapshot<Table>,
    /// Ordered-lock queues (`>NAME.cb`).
    pub locks: Arc<crate::locks::Locks>,
    pub control: Mutex<Option<Control>>,
    pub links: Mutex<HashMap<u32, Arc<Link>>>,
    pub settings: Settings,
    pub listen: SocketAddr,
    /// Messages addressed to each class (for `/metrics`).
    pub class_messages: ClassCounters,
    /// When the router started (uptime on `/status`).
    pub started: std::time::Instant,
    next_token: AtomicU32,
}

impl Router {
    /// Every node link now, in token order (for /metrics and /status).
    pub fn links_by_token(&self) -> Vec<Arc<Link>> {
        let mut links: Vec<_> = self
            .links
            .lock()
            .expect("links lock")
            .values()
            .cloned()
            .collect();
        links.sort_by_key(|l| l.token);
        links
    }

    /// Allocates a link token (from 1; 0 means "hole" in `router.route`).
    pub fn next_token(&self) -> u32 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// `router.route(id, token|0|nil)`.
    pub fn route(&self, id: ServiceId, token: Option<u32>) -> Result<(), String> {
        if id.class() == 0 {
            return Err(format!("service id {:#x} has class 0", id.0));
        }
        let link = match token {
            None | Some(0) => None,
            Some(t) => Some(
                self.links
                    .lock()
                    .expect("links lock")
                    .get(&t)
                    .cloned()
                    .ok_or_else(|| format!("no link with token {t}"))?,
            ),
        };
        self.table.update(|t| t.route(id, link, token.is_none()))
    }

    /// Calls a control-script event handler with a link token (under the control lock).
    pub fn event(&self, name: &str, token: u32) {
        if let Some(control) = self.control.lock().expect("control lock").as_ref() {
            control.script.event(name, token);
        }
    }

    /// `router.class(name)`: the class number, created (and announced to every node) if new.
    pub fn ensure_class(&self, name: &str) -> Result<u8, String> {
        if name.is_empty() || name.len() > 255 {
            return Err(format!("stage name '{name}' must be 1..255 bytes"));
        }
        let (class, created) = self.table.update(|t| t.ensure_class(name))?;
        if created {
            let frame = ClassMap {
                classes: vec![(name.to_owned(), class as u32)],
            }
            .to_frame();
            for link in self.links.lock().expect("links lock").values() {
                link.send(frame.raw.clone());
            }
        }
        Ok(class)
    }
}

/// Binds, loads the control script, applies `--mode`, and serves until the process ends.
pub async fn serve(
    listener: TcpListener,
    http: Option<TcpListener>,
    settings: Settings,
    script: (String, String),
    modes: Vec<(String, String)>,
) -> Result<(), String> {
    let listen = listener
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?;
    let router = Arc::new(Router {
        table: Snapshot::new(Table::default()),
        locks: Arc::default(),
        control: Mutex::new(None),
        links: Mutex::new(HashMap::new()),
        settings,
        listen,
        class_messages: ClassCounters::default(),
        started: std::time::Instant::now(),
        next_token: AtomicU32::new(1),
    });
    let loaded = Script::load(Arc::downgrade(&router), &script.0, &script.1)?;
    {
        let mut control = router.control.lock().expect("control lock");
        let control = control.insert(Control {
            script: loaded,
            instances: HashMap::new(),
        });
        for (name, mode) in modes {
            control.script.event("on_mode", (name, mode));
        }
    }
    log::info!("control script {}", script.0);
    tokio::spawn(crate::locks::run(router.locks.clone()));
    if let Some(http) = http {
        stage_observe::http::start("stage-router", http, router.clone())?;
    }
    // Not a log record: launchers and tests wait for this line whatever the log level.
    eprintln!("stage-router: listening on {listen}");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Running out of descriptors must not end the router; back off and retry.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        tokio::spawn(async move { session::run(router, stream, peer).await });
    }
}
