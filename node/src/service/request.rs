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
        check_depth(doc)?;
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

/// Refuses a payload nested deeper than Lua stages can send ([`crate::value::MAX_DEPTH`]):
/// converting it recurses, and a stack overflow cannot be caught. Walks without recursion.
fn check_depth(doc: &bson::RawDocument) -> Result<(), String> {
    use bson::raw::RawBsonRef;
    let mut stack = vec![doc.into_iter()];
    while let Some(top) = stack.last_mut() {
        let Some(element) = top.next() else {
            stack.pop();
            continue;
        };
        let (_, v) = element.map_err(|e| format!("payload: {e}"))?;
        let inner = match v {
            RawBsonRef::Document(d) => d,
            // An array is a document with keys "0", "1", ...
            RawBsonRef::Array(a) => {
                bson::RawDocument::from_bytes(a.as_bytes()).map_err(|e| format!("payload: {e}"))?
            }
            _ => continue,
        };
        if stack.len() > crate::value::MAX_DEPTH {
            return Err(format!(
                "payload nested deeper than {} tables",
                crate::value::MAX_DEPTH
            ));
        }
        stack.push(inner.into_iter());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` documents, each the element "a" of the previous one, around `{x: 1}`; built
    /// as bytes (building it as a `Document` would itself recurse).
    fn nested(depth: usize) -> Vec<u8> {
        let inner = bson::to_vec(&bson::doc! { "x": 1 }).unwrap();
        let mut out = Vec::new();
        for level in 0..depth {
            // Each level: length, type 0x03, key "a", ... , terminating 0.
            let len = (depth - level) * 8 + inner.len();
            out.extend_from_slice(&(len as i32).to_le_bytes());
            out.extend_from_slice(&[0x03, b'a', 0]);
        }
        out.extend_from_slice(&inner);
        out.resize(out.len() + depth, 0);
        out
    }

    #[test]
    fn deep_payloads_are_refused_without_recursing() {
        let ok = nested(crate::value::MAX_DEPTH / 2);
        assert!(check_depth(bson::RawDocument::from_bytes(&ok).unwrap()).is_ok());
        // Deep enough to overflow a recursive converter's stack.
        let deep = nested(100_000);
        let err = check_depth(bson::RawDocument::from_bytes(&deep).unwrap()).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
    }
}
