//! `edge` (and `app`): the workload's axum router on hyper, facing clients
//! directly, like Kestrel without IIS in front.

use tokio::net::TcpListener;

use crate::{ServeError, ServeOptions, announce_ready, bind_std, signals};
use axum::serve::ListenerExt;
use hostlab_workloads::{Workload, app};

pub(crate) fn serve(options: &ServeOptions) -> Result<(), ServeError> {
    let runtime = crate::server_runtime()?;
    runtime.block_on(async {
        let workload = Workload::start(options.workload_config()).await?;
        let listener = TcpListener::from_std(bind_std(options.listen)?)?;
        let addr = listener.local_addr()?;
        // Small responses must not wait for Nagle's algorithm.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        signals::ignore_recycle_signal(options.model.name());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shutdown = signals::shutdown_signal();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut stopping = stop_rx.clone();
        let server = axum::serve(listener, app(workload.clone()))
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|s| *s).await;
            })
            .into_future();
        announce_ready(options.model, addr, None);
        drain_within(server, stop_rx, options.shutdown_limit).await;
        workload.shutdown().await;
        Ok(())
    })
}

/// Run `server` to completion, but once shutdown has begun give in-flight
/// requests at most `limit` to finish.
async fn drain_within(
    server: impl std::future::Future<Output = std::io::Result<()>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    limit: std::time::Duration,
) {
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => {
            if let Err(e) = result {
                tracing::error!("server error: {e}");
            }
        }
        () = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(limit).await;
        } => tracing::warn!("drain took longer than {limit:?}; exiting with requests in flight"),
    }
}
