//! The one lifecycle every `hostlab serve` process goes through (DESIGN.md
//! "Command line"): the server runtime; SIGTERM/SIGINT registered before
//! anything else, so a signal sent right after the ready line always drains;
//! the model's start (bind, start what it serves); exactly one ready line;
//! then the model serves until the signal, drains and stops. What differs
//! between models is a [`Server`]: its start and its run.

use std::future::Future;
use std::net::SocketAddr;

use crate::{Model, ServeError, announce_ready, signals};

/// A started server, before its ready line.
pub(crate) trait Server {
    /// The address clients use (the ready line's `url`) and the admin (or,
    /// for a worker, warm-up) address, if any.
    fn addresses(&self) -> (SocketAddr, Option<SocketAddr>);

    /// After the ready line: serve until `shutdown` resolves (SIGTERM or
    /// SIGINT), then drain within the shutdown limit and stop.
    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError>;
}

/// The lifecycle inside a runtime the caller runs (actix runs its own).
pub(crate) async fn lifecycle<S: Server>(
    model: Model,
    start: impl Future<Output = Result<S, ServeError>>,
) -> Result<(), ServeError> {
    let shutdown = signals::shutdown_signal();
    let server = start.await?;
    let (addr, admin) = server.addresses();
    announce_ready(model, addr, admin);
    server.run(shutdown).await
}

/// The lifecycle on [`crate::server_runtime`]. `start` is a function of
/// nothing so that it runs inside the runtime.
pub(crate) fn serve<S: Server, F: Future<Output = Result<S, ServeError>>>(
    model: Model,
    start: impl FnOnce() -> F,
) -> Result<(), ServeError> {
    let runtime = crate::server_runtime()?;
    let result = runtime.block_on(lifecycle(model, start()));
    // Every server has stopped what it started by now (drained, workload
    // and manager shut down). What may be left is a background loop, or
    // tokio's stdin reader on a blocking thread that returns only when a
    // line arrives: do not wait for it.
    runtime.shutdown_background();
    result
}
