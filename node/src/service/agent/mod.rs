//! `agent` (the original's `curl`): an HTTP(S) client for scripts (stage-spec §9.4, seed 001
//! "curl로 메시지 전달").
//!
//! ```lua
//! stage.waitfor("got", function(r) print(r.status, r.data.content) end)
//! stage.signal("agent:got", "http://example.org/")                 -- or "agent:any=got"
//! stage.signal("agent:got", { url = "http://example.org/api", data = { q = "x" },
//!                             header = { ["X-Token"] = "t" }, timeout = 2000, extra = 7 })
//! ```
//!
//! Each value of a message is one request (see [`request`]) and gets one answer, a table (see
//! [`response`]), at the callback after `=` (else the message id); a message id of `""`
//! answers nobody. The exchanges run on the agent's own threads ([`pool`]), so the service
//! keeps taking messages and no Lua thread waits. A failure — a bad request, refused
//! connection, unknown host, timeout, untrusted certificate, oversized body, full queue — is
//! an answer too, with `status` 0 (or the last status) and `data.result` ≠ 0.

mod fetch;
mod pool;
mod redirect;
pub mod request;
pub mod response;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bson::Bson;

use super::{answer_head, args, Outbox, Request, Service};
use fetch::Http;
use pool::Pool;
use request::Call;
use response::{Failure, Outcome, FILESIZE_EXCEEDED, NO_CONNECTION_AVAILABLE};

/// The agent's settings (`stage-node --help`: `--agent-*`, `--user-agent`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// A request's time when it names none (and its message's deadline is further away).
    pub timeout: Duration,
    /// The `User-Agent` header ("" sends none).
    pub user_agent: String,
    /// PEM certificates trusted besides Mozilla's roots.
    pub ca: Option<PathBuf>,
    pub threads: usize,
    /// Requests that may wait for a thread; more are answered with an error.
    pub queue: usize,
    /// Largest response body, in bytes.
    pub max_body: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: Duration::from_secs(10),
            user_agent: concat!("stage/", env!("CARGO_PKG_VERSION")).to_owned(),
            ca: None,
            threads: 4,
            queue: 256,
            max_body: 64 << 20,
        }
    }
}

/// The service: parses requests on its thread, runs them on its pool.
pub struct Agent {
    http: Arc<Http>,
    pool: Pool,
    timeout: Duration,
}

impl Agent {
    pub fn new(name: &str, s: &Settings) -> Result<Agent, String> {
        let client = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(s.user_agent.as_str())
            .tls_config(tls::config(s.ca.as_deref())?)
            .allow_non_standard_methods(true)
            .build()
            .new_agent();
        Ok(Agent {
            http: Arc::new(Http::new(client, s.max_body)),
            pool: Pool::new(&format!("agent:{name}"), s.threads, s.queue)?,
            timeout: s.timeout,
        })
    }
}

impl Service for Agent {
    fn handle(&mut self, out: &Outbox, mut req: Request) {
        let values = std::mem::take(&mut req.args);
        let cb = callback(&req.key).map(str::to_owned);
        let reply = Arc::new(Reply { req, cb });
        let values = if values.is_empty() {
            vec![Bson::Null]
        } else {
            values
        };
        for v in values {
            let call = match Call::parse(v) {
                Ok(c) => c,
                Err(r) => {
                    log::warn!(
                        "stage {}: request refused: {}",
                        out.name(),
                        r.failure.message
                    );
                    reply.send(out, Outcome::failed(r.url, r.failure), r.extra.as_ref());
                    continue;
                }
            };
            let (http, job_out, job_reply) = (self.http.clone(), out.clone(), reply.clone());
            let (url, extra, default) = (call.url.clone(), call.extra.clone(), self.timeout);
            let job = Box::new(move || {
                // Counted from now, not from the message's arrival: it may have waited.
                let Some(timeout) = job_reply.timeout(call.timeout, default) else {
                    log::debug!("agent: {} dropped: its message's deadline passed", call.url);
                    return;
                };
                let outcome = http.fetch(&call, timeout);
                job_reply.send(&job_out, outcome, call.extra.as_ref());
            });
            if let Err(why) = self.pool.submit(job) {
                log::warn!("stage {}: {why}", out.name());
                let failure = Failure::new(NO_CONNECTION_AVAILABLE, why);
                reply.send(out, Outcome::failed(url, failure), extra.as_ref());
            }
        }
    }
}

/// The callback of a message id: after `=` if any, else the id (`!fail` aside).
fn callback(key: &str) -> Option<&str> {
    let cb = crate::target::reply_id(key);
    (!cb.is_empty()).then_some(cb)
}

/// Where the answers to one message go.
struct Reply {
    req: Request,
    cb: Option<String>,
}

impl Reply {
    /// The time a request has: its own `timeout`, else `default`, but no longer than its
    /// message's deadline leaves (the answer is void after it). `None`: the deadline passed.
    fn timeout(&self, own: Option<Duration>, default: Duration) -> Option<Duration> {
        let left = match self.req.deadline_ms {
            0 => None,
            d => match d.saturating_sub(crate::api::waitfor::now_ms()) {
                0 => return None,
                ms => Some(Duration::from_millis(ms)),
            },
        };
        // Past the deadline the answer is void: no exchange may hold a thread longer.
        let wanted = own.unwrap_or(default);
        Some(left.map_or(wanted, |l| l.min(wanted)))
    }

    /// Answers with `outcome`; an answer too large to send (`--max-frame`) becomes an error
    /// answer without the body, so the script still hears what happened.
    fn send(&self, out: &Outbox, mut outcome: Outcome, extra: Option<&Bson>) {
        let Some(cb) = &self.cb else {
            // Nobody to answer; a waiting sender is still told the request was handled.
            out.acknowledge(&self.req);
            return;
        };
        let head = answer_head(self.req.corr);
        let length = outcome.body.len();
        let payload = args([Bson::Document(outcome.document(extra))]);
        let Err(why) = out.try_send(self.req.reply_to(), cb, head, None, &payload) else {
            return;
        };
        log::warn!("stage {}: answer to '{cb}' not sent: {why}", out.name());
        outcome.failure = Some(Failure::new(
            FILESIZE_EXCEEDED,
            format!("the response ({length} bytes) cannot be sent back: {why}"),
        ));
        let payload = args([Bson::Document(outcome.document(extra))]);
        out.send(self.req.reply_to(), cb, head, &payload);
    }
}

#[cfg(test)]
mod tests {
    use super::callback;

    #[test]
    fn the_callback_is_after_the_equals_sign() {
        assert_eq!(callback("cb"), Some("cb"));
        assert_eq!(callback("anything=cb"), Some("cb"));
        assert_eq!(callback("x=cb!fail"), Some("cb"));
        assert_eq!(callback("cb!fail"), Some("cb"));
        assert_eq!(callback(""), None);
        assert_eq!(callback("x="), None);
    }
}
