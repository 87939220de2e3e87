//! `edge` (and `app`): the workload's axum router on hyper, facing clients
//! directly, like Kestrel without IIS in front. It runs the same connection
//! loop as the fronts (limits, timeouts, draining) without the front
//! pipeline layer.

use tokio::net::TcpListener;

use crate::front::{self, DrainSignal, FrontState};
use std::future::Future;
use std::net::SocketAddr;

use crate::lifecycle::{self, Server};
use crate::{ServeError, ServeOptions, bind_std, signals};
use hostlab_workloads::{AppState, Workload, app};

pub(crate) fn serve(options: &ServeOptions) -> Result<(), ServeError> {
    lifecycle::serve(options.model, || async {
        let workload = Workload::start(options.workload_config()).await?;
        let listener = TcpListener::from_std(bind_std(options.listen)?)?;
        let addr = listener.local_addr()?;
        signals::ignore_recycle_signal(options.model.name());
        let (drain, drain_rx) = DrainSignal::new();
        let router = app(workload.clone());
        let serving = tokio::spawn(front::serve(
            listener,
            FrontState::new(options.limits),
            move |_peer| router.clone(),
            drain_rx,
            options.policy.shutdown_limit,
        ));
        Ok(Edge {
            addr,
            workload,
            drain,
            serving,
        })
    })
}

struct Edge {
    addr: SocketAddr,
    workload: AppState,
    drain: DrainSignal,
    serving: tokio::task::JoinHandle<()>,
}

impl Server for Edge {
    fn addresses(&self) -> (SocketAddr, Option<SocketAddr>) {
        (self.addr, None)
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        shutdown.await;
        self.drain.drain();
        let _ = self.serving.await;
        self.workload.shutdown().await;
        Ok(())
    }
}
