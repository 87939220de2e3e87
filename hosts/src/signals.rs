//! Process signals every hostlab server handles the same way.
//!
//! SIGTERM and SIGINT ask for a graceful shutdown. SIGHUP asks for an
//! overlapped recycle; models with nothing to recycle (`edge`) log that and
//! carry on instead of dying, which is SIGHUP's default action.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("a tokio runtime with signal support");
    let mut int = signal(SignalKind::interrupt()).expect("a tokio runtime with signal support");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
}

/// Answer SIGHUP with a log line for models that have nothing to recycle.
pub fn ignore_recycle_signal(model: &'static str) {
    let mut hup = signal(SignalKind::hangup()).expect("a tokio runtime with signal support");
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::warn!("SIGHUP: model `{model}` has no recyclable part; ignored");
        }
    });
}
