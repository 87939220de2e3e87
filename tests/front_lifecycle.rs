//! Behaviour of the front models' process management (proxy and inprocess):
//! recycles under load, crash restart, rapid-fail protection, idle terminate
//! and suspend, warm-up before the switch, and no orphans. Assertions are on
//! behaviour (counts, pids, phases), never on how fast a busy machine is.

mod common;
#[path = "common/front.rs"]
mod front;
#[path = "common/http.rs"]
mod http;

use std::time::{Duration, Instant};

use common::{Load, Server, wait_gone};
use front::Front;
use http::json_answer;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

impl Front {
    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(self.server.url(path)).await.unwrap()
    }
}

mod cases {
    use super::*;

    pub(crate) async fn overlapped_recycles_under_load_fail_no_request(model: &str) {
        let front = Front::start(model, &["--start-mode", "always-running", "--warmup", "/ping"]);
        let first_pid = front.app_pid().await.expect("always-running starts the app");
        // Load runs, with a stop flag, from before the first recycle until
        // after the last one completed, with successes in between.
        let load = Load::start(front.server.url("/ping"), 4);
        load.wait_successes(100, "before the first recycle").await;
        let mut pids = vec![first_pid];
        for n in 1..=3u64 {
            front.server.signal(Signal::SIGHUP);
            let status = front.wait_status("the recycle", |s| s["recycles"] == n).await;
            let report = &status["last_recycle"];
            assert_eq!(report["overlapped"], true, "{report}");
            assert_eq!(report["unavailable_ms"], 0, "{report}");
            assert_eq!(report["error"], Value::Null, "{report}");
            pids.push(status["pids"]["app"].as_u64().unwrap() as u32);
            load.wait_successes(100, &format!("after recycle {n}")).await;
        }
        let seen = load.stop().await;
        assert_eq!(seen.failed, 0, "overlapped recycles lost requests: {:?}", seen.failures);
        let distinct: std::collections::BTreeSet<_> = pids.iter().collect();
        assert_eq!(distinct.len(), 4, "each recycle started a new process: {pids:?}");
        for old in &pids[..3] {
            assert!(wait_gone(*old).await, "old app/worker {old} was stopped");
        }
        let last = pids[3];
        front.server.stop();
        assert!(wait_gone(last).await, "the app stops with the front");
    }

    pub(crate) async fn stop_then_start_recycle_leaves_a_gap(model: &str) {
        let front = Front::start(model, &["--start-mode", "always-running", "--overlap", "false"]);
        let load = Load::start(front.server.url("/ping"), 2);
        load.wait_successes(100, "before the recycle").await;
        front.server.signal(Signal::SIGHUP);
        let status = front.wait_status("the recycle", |s| s["recycles"] == 1).await;
        load.wait_successes(100, "after the recycle").await;
        let seen = load.stop().await;
        let report = &status["last_recycle"];
        assert_eq!(report["overlapped"], false, "{report}");
        let gap_ms = report["unavailable_ms"].as_u64().unwrap();
        assert!(gap_ms > 0, "stop-then-start has time with no process: {report}");
        // The lab can tell it from an overlapped recycle: requests failed, or
        // some waited through the gap.
        let waited = seen.max_latency >= Duration::from_millis(gap_ms / 2);
        assert!(
            seen.failed > 0 || waited,
            "no failure and no wait through a {gap_ms} ms gap: {seen:?}"
        );
        front.server.stop();
    }

    pub(crate) async fn killed_app_is_restarted(model: &str) {
        let front = Front::start(model, &["--start-mode", "always-running"]);
        let pid = front.app_pid().await.unwrap();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        let status = front
            .wait_status("the restart", |s| {
                s["restarts_after_crash"] == 1 && s["phase"] == "ready"
            })
            .await;
        let new_pid = status["pids"]["app"].as_u64().unwrap() as u32;
        assert_ne!(new_pid, pid);
        assert_eq!(front.get("/ping").await.status(), 200);
        front.server.stop();
        assert!(wait_gone(new_pid).await);
    }

    pub(crate) async fn rapid_fail_protection_trips_until_recycled(model: &str) {
        let front = Front::start(model, &["--start-mode", "always-running", "--rapid-fail", "2/1m"]);
        let first = front.app_pid().await.unwrap();
        kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
        let status = front
            .wait_status("the restart", |s| {
                s["restarts_after_crash"] == 1 && s["phase"] == "ready"
            })
            .await;
        let second = status["pids"]["app"].as_u64().unwrap() as i32;
        kill(Pid::from_raw(second), Signal::SIGKILL).unwrap();
        front.wait_status("rapid-fail", |s| s["phase"] == "failed").await;
        let resp = front.get("/ping").await;
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "app_unavailable", "{body}");
        // An operator's recycle brings it back.
        let client = reqwest::Client::new();
        let report: Value = json_answer(client.post(format!("{}/recycle", front.admin))).await;
        assert_eq!(report["error"], Value::Null, "{report}");
        assert_eq!(front.get("/ping").await.status(), 200);
        front.server.stop();
    }

    pub(crate) async fn idle_terminate_cold_starts_the_next_request(model: &str) {
        let front = Front::start(model, &["--idle-timeout", "2s", "--idle-action", "terminate"]);
        assert_eq!(
            front.status().await["phase"],
            "stopped",
            "on-demand: nothing runs before a request"
        );
        // The pid comes from the answer itself: on a busy machine the app may
        // already be idle-stopped again by the time the status is read.
        let first = front.get("/healthz").await;
        assert_eq!(first.status(), 200, "the first request starts the app");
        let pid = first.json::<Value>().await.unwrap()["pid"].as_u64().unwrap() as u32;
        front.wait_status("the idle stop", |s| s["phase"] == "stopped").await;
        assert!(wait_gone(pid).await, "terminated on idle");
        let health: Value = front.get("/healthz").await.json().await.unwrap();
        assert_ne!(health["pid"].as_u64().unwrap() as u32, pid, "a new process served it");
        let status = front.status().await;
        assert!(status["cold_starts"].as_u64().unwrap() >= 2, "{status}");
        if model == "proxy" {
            // Both cold starts held their request until the app was ready.
            assert_eq!(status["held"]["requests"], status["cold_starts"], "{status}");
            assert!(status["held"]["total_delay_ms"].as_f64().unwrap() > 0.0, "{status}");
        }
        front.server.stop();
    }

    pub(crate) async fn idle_suspend_freezes_and_thaws(model: &str) {
        let front = Front::start(
            model,
            &[
                "--start-mode",
                "always-running",
                "--idle-timeout",
                "2s",
                "--idle-action",
                "suspend",
            ],
        );
        let pid = front.app_pid().await.unwrap();
        // One keep-alive client throughout: its pooled connection must not
        // be left hanging on the frozen process.
        let client = reqwest::Client::new();
        assert_eq!(
            client.get(front.server.url("/ping")).send().await.unwrap().status(),
            200
        );
        front.wait_status("the suspend", |s| s["phase"] == "suspended").await;
        // The stop takes effect when each thread next leaves the kernel: on
        // a busy machine the state may read R for a moment after the signal.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while process_state(pid) != Some('T') && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(process_state(pid), Some('T'), "the app is stopped (SIGSTOP)");
        let thawed = tokio::time::timeout(Duration::from_secs(10), client.get(front.server.url("/healthz")).send())
            .await
            .expect("a request on a kept-alive client thaws the app, it does not hang")
            .unwrap();
        let health: Value = thawed.json().await.unwrap();
        assert_eq!(health["pid"].as_u64().unwrap() as u32, pid, "the same process, thawed");
        // Read right after the answer: a new suspend needs another 2 s idle.
        assert_ne!(process_state(pid), Some('T'));
        assert_eq!(front.status().await["phase"], "ready");
        front.server.stop();
        assert!(wait_gone(pid).await, "a suspended app still stops with the front");
    }

    pub(crate) async fn warmup_runs_before_the_switch(model: &str) {
        let front = Front::start(model, &["--start-mode", "always-running", "--warmup", "/books,/ping"]);
        // `/healthz` does not warm a process; only the warm-up requests did.
        let health: Value = front.get("/healthz").await.json().await.unwrap();
        assert_eq!(
            health["warm"], true,
            "warm-up ran before the first client request: {health}"
        );
        front.server.signal(Signal::SIGHUP);
        let status = front.wait_status("the recycle", |s| s["recycles"] == 1).await;
        let new_pid = status["pids"]["app"].as_u64().unwrap();
        let health: Value = front.get("/healthz").await.json().await.unwrap();
        assert_eq!(health["pid"], new_pid);
        assert_eq!(
            health["warm"], true,
            "the new process was warmed before it took traffic: {health}"
        );
        front.server.stop();
    }

    pub(crate) async fn a_failed_start_answers_503_at_once(model: &str) {
        // The warm-up URL does not exist, so every start fails.
        let front = Front::start(model, &["--warmup", "/no-such-page", "--rapid-fail", "100/1m"]);
        let started = Instant::now();
        let resp = tokio::time::timeout(Duration::from_secs(20), front.get("/ping")).await;
        let resp = resp.expect("a failed start is answered, not left hanging");
        assert_eq!(resp.status(), 503);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "app_unavailable", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("no-such-page"),
            "{body}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(front.status().await["pids"]["app"], Value::Null, "no app runs");
        // A recycle with nothing running is refused, not counted.
        let client = reqwest::Client::new();
        let resp = client.post(format!("{}/recycle", front.admin)).send().await.unwrap();
        assert_eq!(resp.status(), 409);
        front.server.stop();
    }

    pub(crate) async fn an_abandoned_request_is_not_left_in_flight(model: &str) {
        use tokio::io::AsyncWriteExt;
        let front = Front::start(model, &["--start-mode", "always-running"]);
        let addr = front.server.url.trim_start_matches("http://").to_owned();
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /books HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"title\":"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(tcp);
        if model == "proxy" {
            front
                .wait_status("in-flight back to zero", |s| s["access"]["in_flight"] == 0)
                .await;
        }
        assert_eq!(front.get("/ping").await.status(), 200);
        front.server.stop();
    }

    pub(crate) async fn pinned_to_one_cpu_it_still_serves(model: &str) {
        // One CPU picks the current-thread runtime: the path every pinned
        // benchmark takes.
        let server = Server::start_pinned(model, &["--start-mode", "always-running"], 0);
        let resp = reqwest::get(server.url("/books")).await.unwrap();
        assert_eq!(resp.status(), 200);
        server.stop();
    }

    pub(crate) async fn killing_the_front_kills_its_children(model: &str) {
        let front = Front::start(model, &["--start-mode", "always-running"]);
        let app = front.app_pid().await.unwrap();
        let status = front.server.stop_with(Signal::SIGKILL);
        assert!(!status.success());
        assert!(wait_gone(app).await, "app {app} outlived its front (orphan)");
    }

    /// A rebuild during a long run deletes the binary a front was started
    /// from: its next app still starts, from the running image.
    pub(crate) async fn a_recycle_after_the_binary_was_deleted_starts_a_new_app(model: &str) {
        let original = std::path::Path::new(env!("CARGO_BIN_EXE_hostlab"));
        // Next to the original, so a hard link (no copy) is possible.
        let dir = tempfile::Builder::new()
            .prefix("deleted-bin")
            .tempdir_in(original.parent().unwrap())
            .unwrap();
        let exe = dir.path().join("hostlab");
        if std::fs::hard_link(original, &exe).is_err() {
            std::fs::copy(original, &exe).unwrap();
        }
        let server = Server::start_from(
            &exe,
            model,
            &["--admin", "127.0.0.1:0", "--start-mode", "always-running"],
        );
        let admin = server.admin_url();
        let front = Front { server, admin };
        let first = front.app_pid().await.expect("always-running starts the app");
        std::fs::remove_file(&exe).unwrap();
        front.server.signal(Signal::SIGHUP);
        let status = front.wait_status("the recycle", |s| s["recycles"] == 1).await;
        assert_eq!(status["last_recycle"]["error"], Value::Null, "{status}");
        let second = front::app_pid(&status).expect("a new app runs");
        assert_ne!(second, first);
        assert_eq!(front.get("/ping").await.status(), 200);
        front.server.stop();
        assert!(wait_gone(second).await, "the app {second} outlived its front (orphan)");
    }
}

/// The process's state letter from /proc (R, S, T, Z...), if it exists.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

macro_rules! lifecycle {
    ($($module:ident => $model:literal),* $(,)?) => {$(
        mod $module {
            use super::cases;
            #[tokio::test] async fn overlapped_recycles_under_load_fail_no_request() { cases::overlapped_recycles_under_load_fail_no_request($model).await }
            #[tokio::test] async fn stop_then_start_recycle_leaves_a_gap() { cases::stop_then_start_recycle_leaves_a_gap($model).await }
            #[tokio::test] async fn killed_app_is_restarted() { cases::killed_app_is_restarted($model).await }
            #[tokio::test] async fn rapid_fail_protection_trips_until_recycled() { cases::rapid_fail_protection_trips_until_recycled($model).await }
            #[tokio::test] async fn idle_terminate_cold_starts_the_next_request() { cases::idle_terminate_cold_starts_the_next_request($model).await }
            #[tokio::test] async fn idle_suspend_freezes_and_thaws() { cases::idle_suspend_freezes_and_thaws($model).await }
            #[tokio::test] async fn warmup_runs_before_the_switch() { cases::warmup_runs_before_the_switch($model).await }
            #[tokio::test] async fn killing_the_front_kills_its_children() { cases::killing_the_front_kills_its_children($model).await }
            #[tokio::test] async fn a_failed_start_answers_503_at_once() { cases::a_failed_start_answers_503_at_once($model).await }
            #[tokio::test] async fn an_abandoned_request_is_not_left_in_flight() { cases::an_abandoned_request_is_not_left_in_flight($model).await }
            #[tokio::test] async fn pinned_to_one_cpu_it_still_serves() { cases::pinned_to_one_cpu_it_still_serves($model).await }
            #[tokio::test] async fn a_recycle_after_the_binary_was_deleted_starts_a_new_app() { cases::a_recycle_after_the_binary_was_deleted_starts_a_new_app($model).await }
        }
    )*};
}

lifecycle! {
    proxy => "proxy",
    inprocess => "inprocess",
}
