//! What differs between the hosting models the manager runs: how an app
//! process is started, admitted to traffic, frozen and drained, and how its
//! idleness is seen. Shared code asks the [`Hosting`]; it never matches on
//! the model.

use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::child::{ChildProcess, ChildSpec};
use crate::worker_protocol::Command;

/// How requests reach the app, which decides how a process is started and drained.
pub enum Hosting {
    /// `hostlab serve app` on its own loopback port per generation; the front
    /// forwards requests to it.
    Proxy { app_args: Vec<String> },
    /// `hostlab serve worker` processes that inherit the listening socket.
    /// `listener` is the supervisor's copy, duplicated for each worker.
    InProcess {
        listener: std::net::TcpListener,
        worker_args: Vec<String>,
    },
}

impl Hosting {
    /// How to start one app process.
    pub(super) fn spec(&self, startup_limit: Duration) -> ChildSpec {
        match self {
            Hosting::Proxy { app_args } => ChildSpec::new(app_args.clone(), startup_limit),
            Hosting::InProcess { listener, worker_args } => ChildSpec {
                args: worker_args.clone(),
                listener: listener.try_clone().ok().map(OwnedFd::from),
                startup_limit,
                cpus: None,
            },
        }
    }

    /// Let a warm process take traffic. A worker accepts from the shared
    /// socket only when told; an app process behind the proxy gets traffic
    /// when the front switches to it, so it needs no word.
    pub(super) async fn admit(&self, child: &mut ChildProcess) -> Result<(), String> {
        match self {
            Hosting::Proxy { .. } => Ok(()),
            Hosting::InProcess { .. } => child
                .tell(Command::Accept)
                .await
                .map_err(|e| format!("worker did not take the accept command: {e}")),
        }
    }

    /// Prepare a process to be frozen (idle action `suspend`). A worker owns
    /// its clients' keep-alive connections; frozen, it would leave a request
    /// sent on one of them hanging, so it closes its idle ones first. Behind
    /// the proxy the front owns the client connections.
    pub(super) async fn before_freeze(&self, child: &mut ChildProcess) {
        if let Hosting::InProcess { .. } = self {
            let _ = child.tell(Command::Quiesce).await;
            tokio::time::sleep(QUIESCE_TIME).await;
        }
    }

    /// Whether every request passes through this front on its way to the
    /// app (proxy): then the front sees idleness and in-flight requests
    /// itself. Workers accept their own connections and report instead.
    pub(super) fn front_sees_requests(&self) -> bool {
        matches!(self, Hosting::Proxy { .. })
    }
}

/// How long an inprocess worker gets to close its idle connections before
/// it is frozen.
const QUIESCE_TIME: Duration = Duration::from_millis(100);
