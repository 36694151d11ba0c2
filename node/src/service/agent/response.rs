//! The outcome of an exchange → the table a script receives (stage-spec §9.4):
//!
//! ```text
//! { url, effective_url, redirect_url (after a redirect), status (0: no response),
//!   cookie = { "Set-Cookie value", … } (when any), extra (as sent),
//!   data = { type, charset (and the content type's other parameters), length, content,
//!            time (s), bps (bytes/s; also as download_speed, the seed's name),
//!            result (0: ok, else a curl error code), message } }
//! ```
//!
//! `result` keeps curl's codes (the original was built on libcurl), so scripts written for it
//! still recognise a timeout (28) or an untrusted certificate (60).

use std::time::Duration;

use bson::{Bson, Document};

use crate::service::values::bytes;

/// curl's `CURLE_UNSUPPORTED_PROTOCOL`.
pub const UNSUPPORTED_PROTOCOL: i32 = 1;
/// curl's `CURLE_URL_MALFORMAT`.
pub const URL_MALFORMAT: i32 = 3;
/// curl's `CURLE_COULDNT_RESOLVE_HOST`.
pub const COULDNT_RESOLVE_HOST: i32 = 6;
/// curl's `CURLE_COULDNT_CONNECT`.
pub const COULDNT_CONNECT: i32 = 7;
/// curl's `CURLE_WEIRD_SERVER_REPLY`.
pub const WEIRD_SERVER_REPLY: i32 = 8;
/// curl's `CURLE_OPERATION_TIMEDOUT`.
pub const TIMEDOUT: i32 = 28;
/// curl's `CURLE_SSL_CONNECT_ERROR`.
pub const SSL_CONNECT_ERROR: i32 = 35;
/// curl's `CURLE_BAD_FUNCTION_ARGUMENT`: a request field of the wrong kind.
pub const BAD_ARGUMENT: i32 = 43;
/// curl's `CURLE_TOO_MANY_REDIRECTS`.
pub const TOO_MANY_REDIRECTS: i32 = 47;
/// curl's `CURLE_SEND_ERROR`.
pub const SEND_ERROR: i32 = 55;
/// curl's `CURLE_RECV_ERROR`.
pub const RECV_ERROR: i32 = 56;
/// curl's `CURLE_PEER_FAILED_VERIFICATION`.
pub const PEER_FAILED_VERIFICATION: i32 = 60;
/// curl's `CURLE_BAD_CONTENT_ENCODING`.
pub const BAD_CONTENT_ENCODING: i32 = 61;
/// curl's `CURLE_FILESIZE_EXCEEDED`: the body is larger than `--agent-max-body` (or the
/// answer than `--max-frame`).
pub const FILESIZE_EXCEEDED: i32 = 63;
/// curl's `CURLE_NO_CONNECTION_AVAILABLE`: the agent's queue is full.
pub const NO_CONNECTION_AVAILABLE: i32 = 89;

/// Why an exchange did not complete: a curl error code and a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// What an exchange came to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The URL as requested.
    pub url: String,
    /// The last URL asked for (after redirects).
    pub effective_url: String,
    /// Where the last redirect pointed.
    pub redirect_url: Option<String>,
    /// The last response's status; 0 when none came.
    pub status: u16,
    /// `Set-Cookie` values of every response, in order.
    pub cookies: Vec<String>,
    /// The last response's `Content-Type`.
    pub content_type: Option<String>,
    /// The last response's body, decoded (gzip).
    pub body: Vec<u8>,
    pub elapsed: Duration,
    pub failure: Option<Failure>,
}

impl Outcome {
    /// An exchange that could not start.
    pub fn failed(url: String, failure: Failure) -> Outcome {
        Outcome {
            effective_url: url.clone(),
            url,
            failure: Some(failure),
            ..Outcome::default()
        }
    }

    /// The table a script receives, with the request's `extra`; the body moves into it (a
    /// body can be large: it is not copied).
    pub fn document(&mut self, extra: Option<&Bson>) -> Document {
        let mut d = Document::new();
        d.insert("url", self.url.as_str());
        d.insert("effective_url", self.effective_url.as_str());
        if let Some(r) = &self.redirect_url {
            d.insert("redirect_url", r.as_str());
        }
        d.insert("status", i32::from(self.status));
        if !self.cookies.is_empty() {
            d.insert("cookie", self.cookies.clone());
        }
        if let Some(x) = extra {
            d.insert("extra", x.clone());
        }
        d.insert("data", self.data());
        d
    }

    fn data(&mut self) -> Document {
        let mut d = Document::new();
        if let Some(ct) = &self.content_type {
            let mut parts = ct.split(';');
            d.insert("type", parts.next().unwrap_or_default().trim());
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let k = k.trim().to_ascii_lowercase();
                if !k.is_empty() && !FIXED.contains(&k.as_str()) {
                    d.insert(k, v.trim().trim_matches('"'));
                }
            }
        }
        let secs = self.elapsed.as_secs_f64();
        let bps = if secs > 0.0 {
            self.body.len() as f64 / secs
        } else {
            0.0
        };
        d.insert("length", self.body.len() as i64);
        d.insert("content", bytes(std::mem::take(&mut self.body)));
        d.insert("time", secs);
        d.insert("bps", bps);
        d.insert("download_speed", bps);
        let (code, message) = match &self.failure {
            Some(f) => (f.code, f.message.as_str()),
            None => (0, "No error"),
        };
        d.insert("result", code);
        d.insert("message", message);
        d
    }
}

/// Keys of `data` a content-type parameter may not replace.
const FIXED: [&str; 9] = [
    "type",
    "length",
    "content",
    "time",
    "bps",
    "download_speed",
    "result",
    "message",
    "",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_as_the_script_sees_it() {
        let mut o = Outcome {
            url: "http://a/".into(),
            effective_url: "http://b/".into(),
            redirect_url: Some("http://b/".into()),
            status: 200,
            cookies: vec!["s=1; Path=/".into()],
            content_type: Some("text/html; charset=\"UTF-8\"; length=9; boundary=x".into()),
            body: b"hi".to_vec(),
            elapsed: Duration::from_millis(500),
            failure: None,
        };
        let d = o.document(Some(&Bson::Int64(5)));
        assert_eq!(d.get_str("redirect_url").unwrap(), "http://b/");
        assert_eq!(d.get_i32("status").unwrap(), 200);
        assert_eq!(d.get_array("cookie").unwrap().len(), 1);
        assert_eq!(d.get_i64("extra").unwrap(), 5);
        let data = d.get_document("data").unwrap();
        assert_eq!(data.get_str("type").unwrap(), "text/html");
        assert_eq!(data.get_str("charset").unwrap(), "UTF-8");
        assert_eq!(data.get_str("boundary").unwrap(), "x");
        assert_eq!(
            data.get_i64("length").unwrap(),
            2,
            "a parameter cannot replace length"
        );
        assert_eq!(data.get_str("content").unwrap(), "hi");
        assert_eq!(data.get_f64("bps").unwrap(), 4.0);
        assert_eq!(data.get_i32("result").unwrap(), 0);
    }

    #[test]
    fn a_failure_has_status_0_and_a_message() {
        let d = Outcome::failed("x".into(), Failure::new(TIMEDOUT, "timed out")).document(None);
        assert_eq!(d.get_i32("status").unwrap(), 0);
        assert!(!d.contains_key("extra") && !d.contains_key("cookie"));
        let data = d.get_document("data").unwrap();
        assert_eq!(data.get_i32("result").unwrap(), TIMEDOUT);
        assert_eq!(data.get_str("message").unwrap(), "timed out");
        assert!(!data.contains_key("type"));
    }
}
