//! Command line of `stage-router`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Forwards messages between stage nodes by service id.
#[derive(Debug, Parser)]
#[command(
    name = "stage-router",
    version,
    after_help = "Examples:\n  stage-router --listen 127.0.0.1:7400\n  stage-router --listen 0.0.0.0:7400 --secret-file /etc/stage/secret --mode rank=hash\n  stage-router --listen 127.0.0.1:0 --script my-router.lua --log debug\n  stage-router --listen 127.0.0.1:7400 --http 127.0.0.1:9400    (then open http://127.0.0.1:9400/status)\n  stage-router --config /etc/stage/router.lua          (listen = \"0.0.0.0:7400\"  mode = { rank = \"hash\" } ...)"
)]
pub struct Args {
    /// Address to accept node links on (port 0 picks a free port; the log says which).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Control script (default: lua/router.lua if present, else the built-in copy).
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// Forwarding mode of a stage name: NAME=MODE with MODE one of direct, roundrobin,
    /// master, hash, random, broadcast. Repeatable; applied through the script's on_mode.
    #[arg(long = "mode", value_name = "NAME=MODE", value_parser = parse_mode)]
    pub modes: Vec<(String, String)>,
    /// File holding the cluster secret; nodes must prove it to link.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Accept unauthenticated links on a non-loopback address (no --secret-file).
    #[arg(long)]
    pub insecure: bool,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = stage_proto::DEFAULT_MAX_FRAME)]
    pub max_frame: usize,
    /// Milliseconds a node may stay silent (heartbeats go every fifth of it) before it gets no
    /// more traffic until it speaks again.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub heartbeat_window: u64,
    /// Bytes of messages that may wait for one node to read them; beyond that, messages to it
    /// are refused (NACK) and their senders get an overload signal.
    #[arg(long, value_name = "BYTES", default_value_t = stage_proto::writer::DEFAULT_LINK_BUFFER)]
    pub link_buffer: usize,
    /// Serve `GET /metrics` (Prometheus text), `/status` (a live page of the cluster) and
    /// `/status.json` on this address, e.g. 127.0.0.1:9400 (port 0 picks a free port; the log
    /// says which).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Read flags from a Lua file whose globals are long flags (`listen = "0.0.0.0:7400"`,
    /// `mode = { rank = "hash" }`, `insecure = true`); flags given here win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or env_logger syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
}

fn parse_mode(s: &str) -> Result<(String, String), String> {
    let (name, mode) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=MODE (e.g. --mode rank=hash)"))?;
    if name.is_empty() {
        return Err(format!(
            "'{s}' has an empty stage name (e.g. --mode rank=hash)"
        ));
    }
    if stage_proto::Mode::parse_class_mode(mode).is_none() {
        return Err(format!(
            "unknown mode '{mode}' (expected direct, roundrobin, master, hash, random or broadcast)"
        ));
    }
    Ok((name.to_owned(), mode.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_help_example_parses() {
        assert_eq!(
            stage_cli::check_help_examples::<super::Args>("stage-router"),
            5
        );
    }
}
