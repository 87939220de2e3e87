//! Process signals every hostlab server handles the same way.
//!
//! SIGTERM and SIGINT ask for a graceful shutdown. SIGHUP asks for an
//! overlapped recycle; models with nothing to recycle (`edge`) log that and
//! carry on instead of dying, which is SIGHUP's default action.
//!
//! Handlers are registered when these functions are *called*, not when their
//! futures are first polled: a server calls them before it prints its ready
//! line, so a signal sent right after the ready line is never fatal.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};

/// Register for SIGTERM and SIGINT now; the future resolves on the first one.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut term = signal(SignalKind::terminate()).expect("a tokio runtime with signal support");
    let mut int = signal(SignalKind::interrupt()).expect("a tokio runtime with signal support");
    async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
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

/// Recycle the managed app on every SIGHUP (an overlapped recycle unless the
/// policy says `overlap = false`).
pub fn recycle_on_sighup(manager: crate::manager::Manager) {
    let mut hup = signal(SignalKind::hangup()).expect("a tokio runtime with signal support");
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: recycling the app");
            manager.recycle_in_background(crate::manager::RecycleReason::Signal);
        }
    });
}
