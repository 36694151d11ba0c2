//! stage-router: forwards frames between stage nodes by service id.
//!
//! Links from nodes are authenticated ([`session`]), registered through the Lua control script
//! ([`script`]), which keeps the forwarding [`table`]; every message is then forwarded by
//! [`forward`] without touching its payload.

pub mod batch;
pub mod cli;
pub mod counters;
pub mod forward;
pub mod inbound;
pub mod link;
pub mod locks;
pub mod metrics;
pub mod ring;
pub mod script;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod status;
pub mod table;

use std::ffi::OsString;

/// Runs the router with command-line `args` (program name first); returns the exit code.
pub fn run_cli(args: Vec<OsString>) -> i32 {
    stage_cli::run(args, |a: &cli::Args| &a.log, run)
}

fn run(args: cli::Args) -> Result<(), String> {
    let secret = args
        .secret_file
        .as_deref()
        .map(stage_proto::handshake::read_secret_file)
        .transpose()?;
    if secret.is_none() {
        if !args.listen.ip().is_loopback() && !args.insecure {
            return Err(format!(
                "refusing to listen on {} without a cluster secret: pass --secret-file FILE, or --insecure to accept unauthenticated links",
                args.listen
            ));
        }
        log::warn!("no --secret-file: links are not authenticated");
    }
    let script = script::Script::source(args.script.as_deref())?;
    let settings = server::Settings {
        secret,
        max_frame: args.max_frame,
        heartbeat_window: std::time::Duration::from_millis(args.heartbeat_window),
        link_buffer: args.link_buffer,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let http = match args.http {
            Some(addr) => Some(stage_observe::http::bind(addr).await?),
            None => None,
        };
        tokio::select! {
            r = server::serve(listener, http, settings, script, args.modes) => r,
            s = stage_proto::shutdown::quit_signal() => {
                log::info!("{s}: stopping");
                Ok(())
            }
        }
    });
    // Sessions still running are cut off rather than waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}
