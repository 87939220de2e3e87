//! `edge` (and `app`): the workload's axum router on hyper, facing clients
//! directly, like Kestrel without IIS in front. It runs the same connection
//! loop as the fronts (limits, timeouts, draining) without the front
//! pipeline layer.

use tokio::net::TcpListener;

use crate::front::{self, DrainSignal, FrontState};
use crate::{ServeError, ServeOptions, announce_ready, bind_std, signals};
use hostlab_workloads::{Workload, app};

pub(crate) fn serve(options: &ServeOptions) -> Result<(), ServeError> {
    let runtime = crate::server_runtime()?;
    runtime.block_on(async {
        let workload = Workload::start(options.workload_config()).await?;
        let listener = TcpListener::from_std(bind_std(options.listen)?)?;
        let addr = listener.local_addr()?;
        signals::ignore_recycle_signal(options.model.name());
        let shutdown = signals::shutdown_signal();
        let (drain, drain_rx) = DrainSignal::new();
        let router = app(workload.clone());
        let serving = tokio::spawn(front::serve(
            listener,
            FrontState::new(options.limits),
            move |_peer| router.clone(),
            drain_rx,
            options.policy.shutdown_limit,
        ));
        announce_ready(options.model, addr, None);
        shutdown.await;
        drain.drain();
        let _ = serving.await;
        workload.shutdown().await;
        Ok(())
    })
}
