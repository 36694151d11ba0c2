//! How a built-in service sends: answers, notices and passed-on requests, framed like any
//! stage's message so that Lua callbacks receive them as usual.

use std::sync::Arc;

use bson::{Bson, Document};
use stage_proto::{Flags, Mode};

use super::Request;
use crate::api::signal::Head;
use crate::node::{Node, Outgoing};

/// A service's way out; cheap to clone into helper threads (the `agent`'s HTTP pool).
#[derive(Clone)]
pub struct Outbox {
    node: Arc<Node>,
    name: Arc<str>,
}

/// Where a message goes: a stage on the node with `instance`.
#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    pub stage: &'a str,
    pub instance: u32,
}

/// The positional arguments of a message: `args([a, b])` arrives as `(a, b)`.
pub fn args(values: impl IntoIterator<Item = Bson>) -> Document {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| ((i + 1).to_string(), v))
        .collect()
}

impl Outbox {
    pub fn new(node: Arc<Node>, name: String) -> Outbox {
        Outbox {
            node,
            name: name.into(),
        }
    }

    /// The service stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node hosting the service.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Sends `payload` (see [`args`]) to callback `key` of `to`. A message that cannot go is
    /// logged: a service never waits for its receivers.
    pub fn send(&self, to: To<'_>, key: &str, head: Head, payload: &Document) {
        if let Err(why) = self.try_send(to, key, head, None, payload) {
            log::warn!(
                "stage {}: '{key}' to stage '{}' (instance {}) dropped: {why}",
                self.name,
                to.stage,
                to.instance
            );
        }
    }

    /// Sends like [`Outbox::send`]; `sender` names the stage answers go to when it is not
    /// this service (a request passed on: `head.origin` is then the sender's node).
    pub fn try_send(
        &self,
        to: To<'_>,
        key: &str,
        head: Head,
        sender: Option<&str>,
        payload: &Document,
    ) -> Result<(), String> {
        let mut buf = head
            .begin(key, sender.unwrap_or(&self.name))
            .map_err(|e| e.to_string())?;
        payload.to_writer(&mut buf).map_err(|e| e.to_string())?;
        let out = Outgoing {
            stage: to.stage,
            instance: to.instance,
            mode: Mode::Direct,
            flags: Flags::REPLY,
            key: 0,
            from_stage: &self.name,
            buf,
        };
        self.node.send_reply(out).map_err(|u| u.why)
    }

    /// Answers `req` at callback `cb` of its sender; settles the sender's request if it waits.
    /// The answer takes no answer back.
    pub fn answer(&self, req: &Request, cb: &str, payload: &Document) {
        self.send(req.reply_to(), cb, answer_head(req.corr), payload);
    }

    /// Settles `req`'s pending request without delivering anything: it was handled, so the
    /// sender's fail path must not run. Nothing is sent when the sender waits for nothing.
    pub fn acknowledge(&self, req: &Request) {
        self.settle(req.reply_to(), req.corr);
    }

    /// Settles request `corr` of `to` (see [`Outbox::acknowledge`]); nothing for 0.
    pub fn settle(&self, to: To<'_>, corr: u64) {
        if corr != 0 {
            self.send(to, "", answer_head(corr), &Document::new());
        }
    }

    /// Sends a notice (not an answer, and taking none) to callback `cb` of `req`'s sender.
    pub fn notify(&self, req: &Request, cb: &str, payload: &Document) {
        self.send(req.reply_to(), cb, notice_head(), payload);
    }
}

/// The head of a final answer to request `corr` (0: the message was no request): the
/// receiver cannot answer it back.
pub fn answer_head(corr: u64) -> Head {
    Head {
        corr,
        answer: corr != 0,
        ..notice_head()
    }
}

/// The head of a notice: a message that takes no answer (its callback's return values go
/// nowhere, so a callback returning something never starts a new request).
pub fn notice_head() -> Head {
    Head {
        no_reply: true,
        ..Head::default()
    }
}

impl Request {
    /// Where answers to this request go.
    pub fn reply_to(&self) -> To<'_> {
        To {
            stage: &self.sender,
            instance: self.instance,
        }
    }
}
