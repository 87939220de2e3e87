//! A front model (proxy, inprocess) started with an admin endpoint, and its
//! admin status polled: the harness of the deploy and lifecycle tests.
//! Declared with `#[path]` by the test crates that use it.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::Server;

/// How long a status change may take to show, on a busy machine.
const STATUS_DEADLINE: Duration = Duration::from_secs(30);

/// A front started with `--admin 127.0.0.1:0`.
pub(crate) struct Front {
    pub server: Server,
    /// The `admin=` URL of its ready line.
    pub admin: String,
}

impl Front {
    /// `hostlab serve MODEL --admin 127.0.0.1:0 EXTRA...`, ready to use.
    pub(crate) fn start(model: &str, extra: &[&str]) -> Front {
        let mut args = vec!["--admin", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let server = Server::start(model, &args);
        let admin = server.admin_url();
        Front { server, admin }
    }

    /// `GET /status` of the admin endpoint.
    pub(crate) async fn status(&self) -> Value {
        reqwest::get(format!("{}/status", self.admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The app's pid now.
    pub(crate) async fn app_pid(&self) -> Option<u32> {
        app_pid(&self.status().await)
    }

    /// Polls the admin status until `done` holds (at most 30 s).
    pub(crate) async fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + STATUS_DEADLINE;
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The app's pid in an admin status (`None`: no app runs).
pub(crate) fn app_pid(status: &Value) -> Option<u32> {
    status["pids"]["app"].as_u64().map(|p| p as u32)
}
