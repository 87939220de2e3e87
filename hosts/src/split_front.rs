//! The split model's front worker: a worker (`worker.rs`) whose workload
//! sends every operation to the actor service over ractor_cluster instead of
//! hosting actors. Started by `serve split` it inherits the socket like an
//! `inprocess` worker; started by hand (`hostlab serve front --actors ADDR`)
//! it binds `--listen` itself and accepts at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hostlab_workloads::remote::RemoteActors;
use hostlab_workloads::{Backend, Workload};

use crate::{ServeError, ServeOptions};

/// Longest a split front waits for its actor-service link before it says it
/// is ready anyway (and answers 503 `backend_unavailable` until linked).
const FRONT_LINK_WAIT: Duration = Duration::from_secs(5);

/// The front's workload: the HTTP API with the actor service at `nodes`
/// (one address, or a sharded service's nodes in shard order) as its
/// backend, linked (or the wait bounded) before it returns. A node that
/// serves another shard than its place in the list is refused: an error.
pub(crate) async fn connect(options: &ServeOptions, nodes: &[SocketAddr]) -> Result<Arc<Workload>, ServeError> {
    // The reply deadline for the actor service is the split
    // front's upstream timeout (--upstream-timeout).
    let reply_timeout = options
        .limits
        .upstream_timeout
        .unwrap_or(options.workload_config().ask_timeout);
    let remote = RemoteActors::connect(nodes, reply_timeout)
        .await
        .map_err(hostlab_workloads::StartError::from)?;
    // A front is not ready before its link is: wait (bounded) so a
    // recycle never switches traffic to a front that answers 503.
    let deadline = tokio::time::Instant::now() + FRONT_LINK_WAIT;
    while !remote.is_linked() && tokio::time::Instant::now() < deadline {
        if let Some(mismatch) = remote.mismatch() {
            return Err(ServeError::ShardMismatch(mismatch));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !remote.is_linked() {
        let list: Vec<String> = nodes.iter().map(ToString::to_string).collect();
        tracing::warn!(
            "no session to every actor-service node ({}) yet; their shards answer 503 until there is",
            list.join(",")
        );
    }
    Ok(Workload::with_backend(
        options.workload_config(),
        Backend::Remote(remote),
    ))
}
