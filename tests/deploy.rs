//! Deploy switches of the front models (proxy and inprocess): ANCM's
//! `app_offline` file (503 with the file's content while it exists, served
//! again once it is removed, no orphan process) and the restart on a
//! watched configuration change, stop-then-start by default and overlapped
//! with `--watch-overlapped`. Assertions are on behaviour (status, body,
//! pids, the recycle report), never on timing.

mod common;
#[path = "common/front.rs"]
mod front;

use std::path::Path;
use std::time::{Duration, Instant};

use common::wait_gone;
use front::{Front, app_pid};
use serde_json::Value;

/// How long a change may take to be seen and acted on, on a busy machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// A front of `model` that starts its app at once.
fn start(model: &str, extra: &[&str]) -> Front {
    let mut args = vec!["--start-mode", "always-running"];
    args.extend_from_slice(extra);
    Front::start(model, &args)
}

impl Front {
    /// GET /ping until it answers `status` (a fresh connection each time);
    /// the response's content type and body.
    async fn wait_ping(&self, status: u16, what: &str) -> (String, String) {
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(resp) = client.get(self.server.url("/ping")).send().await
                && resp.status().as_u16() == status
            {
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .map_or(String::new(), |v| v.to_str().unwrap().to_owned());
                return (content_type, resp.text().await.unwrap());
            }
            assert!(Instant::now() < deadline, "GET /ping never answered {status} ({what})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const PAGE: &str = "<html><body><h1>Down for a deploy</h1></body></html>\n";

mod cases {
    use super::*;

    pub(crate) async fn app_offline_answers_its_page_then_serves_again(model: &str) {
        let dir = tempfile::tempdir().unwrap();
        let offline = dir.path().join("app_offline.htm");
        let front = start(model, &["--app-offline", offline.to_str().unwrap()]);
        let (_, body) = front.wait_ping(200, "before the deploy").await;
        assert_eq!(body, "pong");
        let first = front.app_pid().await.expect("always-running starts the app");

        std::fs::write(&offline, PAGE).unwrap();
        let (content_type, body) = front.wait_ping(503, "while app_offline exists").await;
        assert_eq!(body, PAGE, "the file's content is the page");
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let status = front.wait_status("phase offline", |s| s["phase"] == "offline").await;
        assert_eq!(app_pid(&status), None, "no app runs while offline: {status}");
        assert!(wait_gone(first).await, "the app {first} was stopped");
        // Every request, whatever its path, gets the page.
        let resp = reqwest::get(front.server.url("/books")).await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.text().await.unwrap(), PAGE);

        std::fs::remove_file(&offline).unwrap();
        let (_, body) = front.wait_ping(200, "after app_offline was removed").await;
        assert_eq!(body, "pong");
        let status = front.wait_status("phase ready", |s| s["phase"] == "ready").await;
        let second = app_pid(&status).expect("the app runs again");
        assert_ne!(second, first, "a new app process");
        front.server.stop();
        assert!(wait_gone(second).await, "the app {second} outlived its front (orphan)");
    }

    pub(crate) async fn app_offline_present_at_start_keeps_the_app_down(model: &str) {
        let dir = tempfile::tempdir().unwrap();
        let offline = dir.path().join("app_offline.htm");
        std::fs::write(&offline, PAGE).unwrap();
        let front = start(model, &["--app-offline", offline.to_str().unwrap()]);
        let (_, body) = front.wait_ping(503, "app_offline before the start").await;
        assert_eq!(body, PAGE);
        assert_eq!(front.status().await["phase"], "offline");
        std::fs::remove_file(&offline).unwrap();
        front.wait_ping(200, "after app_offline was removed").await;
        let app = front.app_pid().await.expect("the app runs");
        front.server.stop();
        assert!(wait_gone(app).await, "the app {app} outlived its front (orphan)");
    }

    pub(crate) async fn a_watched_change_restarts_the_app(model: &str, overlapped: bool) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("app.toml");
        std::fs::write(&config, "greeting = \"hello\"\n").unwrap();
        let mut extra = vec!["--watch", config.to_str().unwrap()];
        if overlapped {
            extra.push("--watch-overlapped");
        }
        let front = start(model, &extra);
        front.wait_ping(200, "before the change").await;
        let first = front.app_pid().await.expect("always-running starts the app");
        change(&config, "greeting = \"hi\"\n");
        let status = front.wait_status("the restart", |s| s["recycles"] == 1).await;
        let report = &status["last_recycle"];
        assert_eq!(report["reason"], "config_change", "{report}");
        assert_eq!(report["overlapped"], overlapped, "{report}");
        assert_eq!(report["error"], Value::Null, "{report}");
        let second = app_pid(&status).expect("a new app runs");
        assert_ne!(second, first);
        assert!(wait_gone(first).await, "the old app {first} was stopped");
        let (_, body) = front.wait_ping(200, "after the restart").await;
        assert_eq!(body, "pong");
        front.server.stop();
        assert!(wait_gone(second).await, "the app {second} outlived its front (orphan)");
    }
}

/// Rewrite a file the way an editor saves it.
fn change(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
}

macro_rules! deploy {
    ($($module:ident => $model:literal),* $(,)?) => {$(
        mod $module {
            use super::cases;
            #[tokio::test] async fn app_offline_answers_its_page_then_serves_again() { cases::app_offline_answers_its_page_then_serves_again($model).await }
            #[tokio::test] async fn app_offline_present_at_start_keeps_the_app_down() { cases::app_offline_present_at_start_keeps_the_app_down($model).await }
            #[tokio::test] async fn a_watched_change_restarts_the_app_stop_then_start() { cases::a_watched_change_restarts_the_app($model, false).await }
            #[tokio::test] async fn a_watched_change_restarts_the_app_overlapped() { cases::a_watched_change_restarts_the_app($model, true).await }
        }
    )*};
}

deploy! {
    proxy => "proxy",
    inprocess => "inprocess",
}
