//! The link handshake and the cluster secret.
//!
//! ```text
//! router → node   Challenge { version, router, nonce, auth }
//! node → router   Hello     { version, node, pid, stages, instance, nonce, proof }
//! router → node   Welcome   { instance, stages: [[name, service id]], classes: [[name, class]], proof }
//!              or Refuse    { reason }   (then the link closes)
//! ```
//! With a secret, `Hello.proof = HMAC-SHA256(secret, "stage-hello" | router nonce | node nonce |
//! node name | instance | stage names...)` and `Welcome.proof = HMAC-SHA256(secret,
//! "stage-welcome" | node nonce | router nonce | instance)` (each part length-prefixed), so each
//! side proves the secret to the other without sending it, the claims cannot be rewritten on the
//! way, and a recorded handshake cannot be replayed against a fresh nonce. Frames after the
//! handshake are not authenticated: a network that can be tampered with needs TLS or a VPN
//! underneath (see docs/protocol.md). Handshake bodies are BSON documents: they
//! are rare, so clarity wins over speed here.

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::FrameError;
use crate::frame::Frame;
use crate::header::{Header, Kind};
use crate::PROTOCOL_VERSION;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a handshake nonce.
pub const NONCE_LEN: usize = 16;

/// A fresh random nonce.
pub fn nonce() -> [u8; NONCE_LEN] {
    rand::random()
}

fn mac(secret: &[u8], label: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(label);
    for p in parts {
        m.update(&(p.len() as u32).to_le_bytes());
        m.update(p);
    }
    m
}

/// What a `Hello` proof covers besides the nonces: who the node is and what it registers, so
/// none of it can be rewritten on the way without breaking the proof.
fn hello_parts<'a>(
    router_nonce: &'a [u8],
    node_nonce: &'a [u8],
    hello: &'a HelloClaims<'a>,
) -> Vec<&'a [u8]> {
    let mut parts = vec![
        router_nonce,
        node_nonce,
        hello.node.as_bytes(),
        &hello.instance[..],
    ];
    parts.extend(hello.stages.iter().map(|s| s.as_bytes()));
    parts
}

/// The fields of a `Hello` its proof covers.
pub struct HelloClaims<'a> {
    pub node: &'a str,
    pub stages: &'a [String],
    pub instance: [u8; 4],
}

impl<'a> HelloClaims<'a> {
    pub fn of(hello: &'a Hello) -> HelloClaims<'a> {
        HelloClaims {
            node: &hello.node,
            stages: &hello.stages,
            instance: hello.instance.to_le_bytes(),
        }
    }
}

/// The node's proof for a `Hello`.
pub fn hello_proof(
    secret: &[u8],
    router_nonce: &[u8],
    node_nonce: &[u8],
    claims: &HelloClaims,
) -> Vec<u8> {
    mac(
        secret,
        b"stage-hello",
        &hello_parts(router_nonce, node_nonce, claims),
    )
    .finalize()
    .into_bytes()
    .to_vec()
}

/// Checks a `Hello`'s proof in constant time.
pub fn verify_hello(secret: &[u8], router_nonce: &[u8], hello: &Hello) -> bool {
    let claims = HelloClaims::of(hello);
    mac(
        secret,
        b"stage-hello",
        &hello_parts(router_nonce, &hello.nonce, &claims),
    )
    .verify_slice(&hello.proof)
    .is_ok()
}

/// The router's proof for a `Welcome`: it knows the secret, and it gave this instance.
pub fn welcome_proof(
    secret: &[u8],
    node_nonce: &[u8],
    router_nonce: &[u8],
    instance: u32,
) -> Vec<u8> {
    mac(
        secret,
        b"stage-welcome",
        &[node_nonce, router_nonce, &instance.to_le_bytes()],
    )
    .finalize()
    .into_bytes()
    .to_vec()
}

/// Checks a `Welcome` proof in constant time.
pub fn verify_welcome(
    secret: &[u8],
    node_nonce: &[u8],
    router_nonce: &[u8],
    welcome: &Welcome,
) -> bool {
    mac(
        secret,
        b"stage-welcome",
        &[node_nonce, router_nonce, &welcome.instance.to_le_bytes()],
    )
    .verify_slice(&welcome.proof)
    .is_ok()
}

/// Reads a cluster secret file: its content with surrounding whitespace trimmed (so a trailing
/// newline from an editor does not change the secret). An empty file is an error: it would make
/// every proof trivially forgeable.
pub fn read_secret_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    let secret = raw.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(format!(
            "secret file {} is empty (put a long random string in it, e.g. `head -c 32 /dev/urandom | base64 > {}`)",
            path.display(),
            path.display()
        ));
    }
    if secret.len() < MIN_SECRET {
        log::warn!(
            "secret file {} holds only {} bytes; use at least {MIN_SECRET} random bytes, or a captured handshake can be brute-forced offline",
            path.display(),
            secret.len()
        );
    }
    Ok(secret)
}

/// Secrets shorter than this get a warning.
const MIN_SECRET: usize = 16;

fn bin(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn bad(what: impl Into<String>) -> FrameError {
    FrameError::BadHandshake(what.into())
}

fn to_frame(kind: Kind, d: &Document) -> Frame {
    let mut body = Vec::new();
    // Writing a document we built into a Vec cannot fail.
    d.to_writer(&mut body).expect("BSON into a Vec");
    Frame::new(Header::new(kind), &body)
}

fn document(frame: &Frame, kind: Kind) -> Result<Document, FrameError> {
    if frame.header.kind != kind {
        return Err(bad(format!(
            "expected {kind:?}, got {:?}",
            frame.header.kind
        )));
    }
    Document::from_reader(&mut frame.body()).map_err(|e| bad(format!("{kind:?} body: {e}")))
}

fn get_u32(d: &Document, key: &str) -> Result<u32, FrameError> {
    match d.get(key) {
        Some(Bson::Int32(v)) => u32::try_from(*v).map_err(|_| bad(format!("{key} is negative"))),
        Some(Bson::Int64(v)) => u32::try_from(*v).map_err(|_| bad(format!("{key} out of range"))),
        _ => Err(bad(format!("missing integer field {key}"))),
    }
}

fn get_str(d: &Document, key: &str) -> Result<String, FrameError> {
    d.get_str(key)
        .map(str::to_owned)
        .map_err(|_| bad(format!("missing string field {key}")))
}

fn get_bin(d: &Document, key: &str) -> Result<Vec<u8>, FrameError> {
    d.get_binary_generic(key)
        .cloned()
        .map_err(|_| bad(format!("missing binary field {key}")))
}

fn pairs(d: &Document, key: &str) -> Result<Vec<(String, u32)>, FrameError> {
    let arr = d
        .get_array(key)
        .map_err(|_| bad(format!("missing array field {key}")))?;
    arr.iter()
        .map(|p| match p {
            Bson::Array(p) => match p.as_slice() {
                [Bson::String(n), Bson::Int64(v)] => u32::try_from(*v)
                    .map(|v| (n.clone(), v))
                    .map_err(|_| bad(format!("{key}: number out of range"))),
                _ => Err(bad(format!("{key}: expected [name, number] pairs"))),
            },
            _ => Err(bad(format!("{key}: expected [name, number] pairs"))),
        })
        .collect()
}

fn pairs_bson(pairs: &[(String, u32)]) -> Bson {
    Bson::Array(
        pairs
            .iter()
            .map(|(n, v)| Bson::Array(vec![Bson::String(n.clone()), Bson::Int64(*v as i64)]))
            .collect(),
    )
}

/// Router → node, first frame on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub version: u32,
    /// The router's listen address, for the node's logs.
    pub router: String,
    pub nonce: Vec<u8>,
    /// Whether the router checks proofs (it has a secret).
    pub auth: bool,
}

impl Challenge {
    pub fn to_frame(&self) -> Frame {
        to_frame(
            Kind::Challenge,
            &doc! { "version": self.version as i64, "router": &self.router,
            "nonce": bin(&self.nonce), "auth": self.auth },
        )
    }

    pub fn from_frame(f: &Frame) -> Result<Challenge, FrameError> {
        let d = document(f, Kind::Challenge)?;
        Ok(Challenge {
            version: get_u32(&d, "version")?,
            router: get_str(&d, "router")?,
            nonce: get_bin(&d, "nonce")?,
            auth: d.get_bool("auth").unwrap_or(false),
        })
    }
}

/// Node → router: who it is and which stages it hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    /// The node's name (for logs and the router script's `info.node`).
    pub node: String,
    pub pid: u32,
    pub stages: Vec<String>,
    /// The instance number its stages want, or 0 to have the router assign one.
    pub instance: u32,
    pub nonce: Vec<u8>,
    pub proof: Vec<u8>,
}

impl Hello {
    pub fn to_frame(&self) -> Frame {
        let stages: Vec<Bson> = self
            .stages
            .iter()
            .map(|s| Bson::String(s.clone()))
            .collect();
        to_frame(
            Kind::Hello,
            &doc! { "version": self.version as i64, "node": &self.node, "pid": self.pid as i64,
            "stages": stages, "instance": self.instance as i64,
            "nonce": bin(&self.nonce), "proof": bin(&self.proof) },
        )
    }

    pub fn from_frame(f: &Frame) -> Result<Hello, FrameError> {
        let d = document(f, Kind::Hello)?;
        let stages = d
            .get_array("stages")
            .map_err(|_| bad("missing array field stages"))?
            .iter()
            .map(|s| match s {
                Bson::String(s) => Ok(s.clone()),
                _ => Err(bad("stages must be strings")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Hello {
            version: get_u32(&d, "version")?,
            node: get_str(&d, "node")?,
            pid: get_u32(&d, "pid")?,
            stages,
            instance: get_u32(&d, "instance")?,
            nonce: get_bin(&d, "nonce")?,
            proof: get_bin(&d, "proof")?,
        })
    }

    /// A hello for `stages`, proving `secret` (if any) against the router's challenge.
    pub fn answer(
        challenge: &Challenge,
        node: &str,
        stages: Vec<String>,
        instance: u32,
        secret: Option<&[u8]>,
    ) -> Hello {
        let mut hello = Hello {
            version: PROTOCOL_VERSION,
            node: node.to_owned(),
            pid: std::process::id(),
            stages,
            instance,
            nonce: nonce().to_vec(),
            proof: Vec::new(),
        };
        if let Some(s) = secret {
            hello.proof = hello_proof(s, &challenge.nonce, &hello.nonce, &HelloClaims::of(&hello));
        }
        hello
    }
}

/// Router → node: registration accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub instance: u32,
    /// Each of the node's stages with the service id this router gave it.
    pub stages: Vec<(String, u32)>,
    /// Every stage name this router knows, with its class number on this router.
    pub classes: Vec<(String, u32)>,
    pub proof: Vec<u8>,
}

impl Welcome {
    pub fn to_frame(&self) -> Frame {
        to_frame(
            Kind::Welcome,
            &doc! { "instance": self.instance as i64, "stages": pairs_bson(&self.stages),
            "classes": pairs_bson(&self.classes), "proof": bin(&self.proof) },
        )
    }

    pub fn from_frame(f: &Frame) -> Result<Welcome, FrameError> {
        let d = document(f, Kind::Welcome)?;
        Ok(Welcome {
            instance: get_u32(&d, "instance")?,
            stages: pairs(&d, "stages")?,
            classes: pairs(&d, "classes")?,
            proof: get_bin(&d, "proof")?,
        })
    }
}

/// Either side: the handshake failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    pub reason: String,
}

impl Refuse {
    pub fn to_frame(&self) -> Frame {
        to_frame(Kind::Refuse, &doc! { "reason": &self.reason })
    }

    pub fn from_frame(f: &Frame) -> Result<Refuse, FrameError> {
        Ok(Refuse {
            reason: get_str(&document(f, Kind::Refuse)?, "reason")?,
        })
    }
}

/// Router → node: new stage names got class numbers on this router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMap {
    pub classes: Vec<(String, u32)>,
}

impl ClassMap {
    pub fn to_frame(&self) -> Frame {
        to_frame(
            Kind::ClassMap,
            &doc! { "classes": pairs_bson(&self.classes) },
        )
    }

    pub fn from_frame(f: &Frame) -> Result<ClassMap, FrameError> {
        Ok(ClassMap {
            classes: pairs(&document(f, Kind::ClassMap)?, "classes")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_proof() {
        let c = Challenge {
            version: PROTOCOL_VERSION,
            router: "127.0.0.1:1".into(),
            nonce: nonce().to_vec(),
            auth: true,
        };
        assert_eq!(Challenge::from_frame(&c.to_frame()).unwrap(), c);
        let h = Hello::answer(&c, "alpha", vec!["ping".into()], 3, Some(b"s3cret"));
        let got = Hello::from_frame(&h.to_frame()).unwrap();
        assert_eq!(got, h);
        assert!(verify_hello(b"s3cret", &c.nonce, &got));
        assert!(!verify_hello(b"wrong", &c.nonce, &got));
        // Every claim is covered: rewriting any of them breaks the proof.
        let mut forged = got.clone();
        forged.node = "beta".into();
        assert!(!verify_hello(b"s3cret", &c.nonce, &forged));
        let mut forged = got.clone();
        forged.instance = 4;
        assert!(!verify_hello(b"s3cret", &c.nonce, &forged));
        let mut forged = got.clone();
        forged.stages.push("extra".into());
        assert!(!verify_hello(b"s3cret", &c.nonce, &forged));
    }

    #[test]
    fn welcome_and_refuse_round_trip() {
        let w = Welcome {
            instance: 7,
            stages: vec![("ping".into(), 0x0100_0007)],
            classes: vec![("ping".into(), 1), ("pong".into(), 2)],
            proof: welcome_proof(b"k", b"n1", b"n2", 7),
        };
        assert_eq!(Welcome::from_frame(&w.to_frame()).unwrap(), w);
        assert!(verify_welcome(b"k", b"n1", b"n2", &w));
        let mut forged = w.clone();
        forged.instance = 8;
        assert!(!verify_welcome(b"k", b"n1", b"n2", &forged));
        let r = Refuse {
            reason: "bad proof".into(),
        };
        assert_eq!(Refuse::from_frame(&r.to_frame()).unwrap(), r);
        assert!(Welcome::from_frame(&r.to_frame()).is_err());
    }
}
