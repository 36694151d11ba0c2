//! A request value from Lua → an HTTP request (stage-spec §9.4).
//!
//! The value is a URL string, or a table:
//!
//! | field | meaning |
//! |---|---|
//! | `url` | the URL (http or https) |
//! | `header` | `{ Name = "value" }`; a value may be a list (the header repeated), and the whole field may be a list of `"Name: value"` lines |
//! | `data` | the body: a string is sent as it is; a table is encoded as a form, `k=v&…` (`application/x-www-form-urlencoded`; a nested table `{a=1, b=2}` becomes `k=a-1,b-2`), or as JSON when `header` sets a `Content-Type` naming json |
//! | `method` | GET, POST, PUT, DELETE, …; default GET, POST when `data` is present |
//! | `timeout` | ms for the whole exchange (redirects included) |
//! | `extra` | echoed in the answer |
//!
//! A string body without a `Content-Type` header goes out as a form, as curl sends it.

use std::time::Duration;

use bson::{Bson, Document};

use super::response::{Failure, BAD_ARGUMENT, URL_MALFORMAT};
use crate::service::values::{int, key_int, number, text};

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The URL as the script gave it.
    pub url: String,
    pub method: String,
    /// Extra request headers, in order.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// For the whole exchange, redirects included, when the script gave it.
    pub timeout: Option<Duration>,
    /// Given back with the answer.
    pub extra: Option<Bson>,
}

/// A request value that cannot be made: what can be said about it in the error answer.
#[derive(Debug)]
pub struct Refused {
    pub url: String,
    pub extra: Option<Bson>,
    pub failure: Failure,
}

const FORM: &str = "application/x-www-form-urlencoded";

impl Call {
    /// Reads a request value.
    pub fn parse(v: Bson) -> Result<Call, Box<Refused>> {
        let mut call = Call {
            url: String::new(),
            method: String::new(),
            headers: Vec::new(),
            body: None,
            timeout: None,
            extra: None,
        };
        let t = match v {
            Bson::Document(t) => t,
            v => match text(&v) {
                Some(url) => {
                    call.url = url.into_owned();
                    call.method = "GET".into();
                    return call.checked();
                }
                None => {
                    return Err(call.refuse(Failure::new(
                        URL_MALFORMAT,
                        "a request is a URL string or a table with url",
                    )))
                }
            },
        };
        call.extra = t.get("extra").cloned();
        if let Err(f) = call.read(&t) {
            return Err(call.refuse(f));
        }
        call.checked()
    }

    fn read(&mut self, t: &Document) -> Result<(), Failure> {
        self.url = match t.get("url") {
            Some(v) => text(v)
                .ok_or_else(|| bad("url must be a string"))?
                .into_owned(),
            None => String::new(),
        };
        if let Some(h) = t.get("header") {
            self.headers = headers(h)?;
        }
        if let Some(ms) = t.get("timeout") {
            let ms = number(ms).ok_or_else(|| bad("timeout must be a number of ms"))?;
            if ms > 0.0 {
                self.timeout = Some(Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
            }
        }
        if let Some(data) = t.get("data") {
            self.body = Some(self.encode(data)?);
        }
        self.method = match t.get("method") {
            Some(m) => text(m)
                .ok_or_else(|| bad("method must be a string"))?
                .to_ascii_uppercase(),
            None if self.body.is_some() => "POST".into(),
            None => "GET".into(),
        };
        Ok(())
    }

    /// The body for `data`, and the Content-Type it implies when the script set none.
    fn encode(&mut self, data: &Bson) -> Result<Vec<u8>, Failure> {
        let given = self.header("content-type").map(str::to_ascii_lowercase);
        let body = match data {
            Bson::Document(_) | Bson::Array(_) if given.as_deref().is_some_and(is_json) => {
                json(data).to_string().into_bytes()
            }
            Bson::Document(_) | Bson::Array(_) => form(data)?.into_bytes(),
            Bson::Binary(b) => b.bytes.clone(),
            v => scalar(v)
                .ok_or_else(|| bad("data must be a string or a table"))?
                .into_bytes(),
        };
        if given.is_none() {
            self.headers.push(("Content-Type".into(), FORM.into()));
        }
        Ok(body)
    }

    /// The value of header `name` (lowercase) the script set, if any.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn checked(self) -> Result<Call, Box<Refused>> {
        if self.url.is_empty() {
            return Err(self.refuse(Failure::new(URL_MALFORMAT, "the request has no url")));
        }
        Ok(self)
    }

    fn refuse(self, failure: Failure) -> Box<Refused> {
        Box::new(Refused {
            url: self.url,
            extra: self.extra,
            failure,
        })
    }
}

fn bad(why: &str) -> Failure {
    Failure::new(BAD_ARGUMENT, why)
}

fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().ends_with("json"))
}

/// `{ Name = "value" | {"v1", "v2"} }` or `{ "Name: value", … }`.
fn headers(h: &Bson) -> Result<Vec<(String, String)>, Failure> {
    let mut out = Vec::new();
    match h {
        Bson::Document(d) => {
            for (name, v) in d {
                match v {
                    Bson::Array(vs) => {
                        for v in vs {
                            out.push((name.clone(), header_value(name, v)?));
                        }
                    }
                    v => out.push((name.clone(), header_value(name, v)?)),
                }
            }
        }
        Bson::Array(lines) => {
            for line in lines {
                let line = text(line).ok_or_else(|| bad("a header line must be a string"))?;
                let (name, v) = line
                    .split_once(':')
                    .ok_or_else(|| bad(&format!("header line '{line}' is not 'Name: value'")))?;
                out.push((name.trim().to_owned(), v.trim().to_owned()));
            }
        }
        _ => return Err(bad("header must be a table { Name = \"value\" }")),
    }
    Ok(out)
}

fn header_value(name: &str, v: &Bson) -> Result<String, Failure> {
    scalar(v).ok_or_else(|| bad(&format!("header '{name}' must be a string or a number")))
}

/// A string, number or boolean as text (a Lua integer key `"#n"` is the caller's business).
fn scalar(v: &Bson) -> Option<String> {
    if let Some(s) = text(v) {
        return Some(s.into_owned());
    }
    match v {
        Bson::Boolean(b) => Some(b.to_string()),
        Bson::Null => Some(String::new()),
        v => int(v)
            .map(|i| i.to_string())
            .or_else(|| number(v).map(|f| f.to_string())),
    }
}

/// The bytes of a string value (binary-safe), or the text of a number or boolean.
fn raw(v: &Bson) -> Option<Vec<u8>> {
    match v {
        Bson::Binary(b) => Some(b.bytes.clone()),
        v => scalar(v).map(String::into_bytes),
    }
}

/// A Lua table key as it was in Lua (`"#3"` → `3`).
fn lua_key(k: &str) -> String {
    key_int(k).map_or_else(|| k.to_owned(), |i| i.to_string())
}

/// The entries of a table value: a document's keys, or a sequence's 1-based positions.
fn entries(t: &Bson) -> Vec<(String, &Bson)> {
    match t {
        Bson::Document(d) => d.iter().map(|(k, v)| (lua_key(k), v)).collect(),
        Bson::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| ((i + 1).to_string(), v))
            .collect(),
        _ => Vec::new(),
    }
}

/// `k=v&…`, each part percent-encoded; a nested table is `k=a-1,b-2` (stage-spec §9.4).
fn form(data: &Bson) -> Result<String, Failure> {
    let mut out = String::new();
    for (k, v) in entries(data) {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&escape(k.as_bytes()));
        out.push('=');
        match v {
            Bson::Document(_) | Bson::Array(_) => {
                for (i, (sk, sv)) in entries(v).into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let sv = raw(sv).ok_or_else(|| {
                        bad(&format!("form field '{k}.{sk}': only one level of tables"))
                    })?;
                    out.push_str(&escape(sk.as_bytes()));
                    out.push('-');
                    out.push_str(&escape(&sv));
                }
            }
            v => {
                let v =
                    raw(v).ok_or_else(|| bad(&format!("form field '{k}': unsupported value")))?;
                out.push_str(&escape(&v));
            }
        }
    }
    Ok(out)
}

/// Percent-encodes all but the unreserved characters (RFC 3986), as `curl_easy_escape`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Lua value as JSON: tables with `"#n"` keys become objects keyed `"n"`, sequences arrays,
/// binary strings text (lossy), values JSON cannot hold (NaN) null.
fn json(v: &Bson) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Bson::Document(d) => J::Object(d.iter().map(|(k, v)| (lua_key(k), json(v))).collect()),
        Bson::Array(a) => J::Array(a.iter().map(json).collect()),
        Bson::Boolean(b) => J::Bool(*b),
        Bson::Double(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Bson::Null => J::Null,
        v => match int(v) {
            Some(i) => J::from(i),
            None => text(v).map_or(J::Null, |s| J::String(s.into_owned())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn a_string_is_a_get() {
        let c = Call::parse(Bson::String("http://x/".into())).unwrap();
        assert_eq!((c.url.as_str(), c.method.as_str()), ("http://x/", "GET"));
        assert_eq!((c.body, c.timeout), (None, None));
    }

    #[test]
    fn a_form_table_is_encoded_as_in_the_spec() {
        let c = Call::parse(Bson::Document(doc! {
            "url": "http://x/", "timeout": 250_i64, "extra": { "n": 1 },
            "data": { "name": "a b&c", "#2": 5_i64, "pos": { "x": 1_i64, "y": "é" } },
        }))
        .unwrap();
        assert_eq!(c.method, "POST");
        assert_eq!(c.timeout, Some(Duration::from_millis(250)));
        assert_eq!(
            String::from_utf8(c.body.unwrap()).unwrap(),
            "name=a%20b%26c&2=5&pos=x-1,y-%C3%A9"
        );
        assert_eq!(c.headers, vec![("Content-Type".into(), FORM.into())]);
        assert_eq!(c.extra, Some(Bson::Document(doc! { "n": 1 })));
    }

    #[test]
    fn a_json_content_type_sends_the_table_as_json() {
        let c = Call::parse(Bson::Document(doc! {
            "url": "http://x/", "method": "put",
            "header": { "Content-Type": "application/json; charset=utf-8" },
            "data": { "a": [1_i64, "two"], "#7": true },
        }))
        .unwrap();
        assert_eq!(c.method, "PUT");
        let v: serde_json::Value = serde_json::from_slice(&c.body.unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({ "a": [1, "two"], "7": true }));
        assert_eq!(c.headers.len(), 1, "no form content type added");
    }

    #[test]
    fn header_forms() {
        let c = Call::parse(Bson::Document(
            doc! { "url": "u", "header": { "X-A": ["1", "2"], "X-B": 3_i64 } },
        ))
        .unwrap();
        let h = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        assert_eq!(c.headers, vec![h("X-A", "1"), h("X-A", "2"), h("X-B", "3")]);
        let c = Call::parse(Bson::Document(
            doc! { "url": "u", "header": ["X-C: four", "X-D:5"] },
        ))
        .unwrap();
        assert_eq!(c.headers, vec![h("X-C", "four"), h("X-D", "5")]);
    }

    #[test]
    fn bad_requests_are_refused_with_what_is_known() {
        let r = Call::parse(Bson::Int64(3)).unwrap_err();
        assert_eq!(r.failure.code, URL_MALFORMAT);
        let r = Call::parse(Bson::Document(doc! { "extra": "x" })).unwrap_err();
        assert!(r.failure.message.contains("no url"));
        assert_eq!(r.extra, Some(Bson::String("x".into())));
        let r = Call::parse(Bson::Document(
            doc! { "url": "u", "data": { "a": { "b": { "c": 1 } } } },
        ))
        .unwrap_err();
        assert_eq!((r.failure.code, r.url.as_str()), (BAD_ARGUMENT, "u"));
        let r = Call::parse(Bson::Document(doc! { "url": "u", "header": 5_i64 })).unwrap_err();
        assert!(
            r.failure.message.contains("header"),
            "{}",
            r.failure.message
        );
    }
}
