//! The quit signals both daemons stop on.

/// Resolves on SIGINT or SIGTERM with the signal's name. If the handlers cannot be installed it
/// never resolves, and the signals' default action (exit) still stops the process.
pub async fn quit_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
