//! A message as a built-in service sees it.

use bson::Bson;
use stage_proto::Envelope;

use crate::inbound::Delivery;

/// One message to a service: who sent it, where answers go, and its values.
#[derive(Debug, Clone)]
pub struct Request {
    /// The message id after the service's name (`"cat=cb?fb"` of `"ticket:cat=cb?fb"`),
    /// `=ret` and `!fail` included.
    pub key: String,
    /// The sending stage (answers go to it).
    pub sender: String,
    /// The node answers go to.
    pub instance: u32,
    /// Unix ms after which the message is void (0: never).
    pub deadline_ms: u64,
    /// The request id the sender waits on (0: it waits for nothing); answering it settles it.
    pub corr: u64,
    /// The values sent, in order (`stage.signal(t, a, b)` → `[a, b]`).
    pub args: Vec<Bson>,
}

impl Request {
    /// Parses a delivery: its envelope and its BSON payload.
    pub fn parse(d: &Delivery) -> Result<Request, String> {
        let (env, payload) = Envelope::parse(&d.body).map_err(|e| e.to_string())?;
        let doc = bson::RawDocument::from_bytes(payload).map_err(|e| format!("payload: {e}"))?;
        let mut args = Vec::new();
        for element in doc {
            let (_, v) = element.map_err(|e| format!("payload: {e}"))?;
            let v = v
                .to_raw_bson()
                .try_into()
                .map_err(|e| format!("payload: {e}"))?;
            args.push(v);
        }
        Ok(Request {
            key: String::from_utf8_lossy(env.msgid).into_owned(),
            sender: String::from_utf8_lossy(env.sender).into_owned(),
            instance: if env.origin != 0 {
                env.origin
            } else {
                d.from_instance
            },
            deadline_ms: env.deadline_ms,
            corr: if env.answer { 0 } else { env.corr },
            args,
        })
    }

    /// Whether the message's deadline passed at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.deadline_ms != 0 && now_ms > self.deadline_ms
    }

    /// The first value, or null when none was sent.
    pub fn value(&self) -> &Bson {
        self.args.first().unwrap_or(&Bson::Null)
    }
}
