//! Fault injection under light load: SIGKILL the app (proxy), the worker
//! (inprocess) or the actor service (split) at random moments, three times.
//! No request hangs (each gets an answer, an error status or a closed
//! connection, within its timeout), the supervisor recovers, and no process
//! is left behind after the model stops. The model runs with `--journal`
//! and one client keeps adding books: every book acknowledged (201) before,
//! between and after the kills is there at the end, and the journal passes
//! `hostlab journal check`.

mod common;
#[path = "common/http.rs"]
mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::{Server, wait_gone};
use http::json_answer;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Longest any one request may take before it counts as hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

async fn status(client: &reqwest::Client, admin: &str) -> Option<Value> {
    client
        .get(format!("{admin}/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The pid under `pids.<key>` once it is a running process other than `not`.
async fn wait_pid(client: &reqwest::Client, admin: &str, key: &str, not: Option<u32>) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = status(client, admin).await
            && let Some(pid) = s["pids"][key].as_u64().map(|p| p as u32)
            && Some(pid) != not
            && common::process_alive(pid)
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no new `{key}` process within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A pseudo-random delay of 200-1200 ms (no rand dependency for this).
fn random_delay(seed: &mut u64) -> Duration {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Duration::from_millis(200 + (*seed >> 33) % 1000)
}

async fn kill_under_load(model: &str, key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db").display().to_string();
    let server = Server::start(
        model,
        &[
            "--start-mode",
            "always-running",
            "--admin",
            "127.0.0.1:0",
            "--journal",
            &journal,
        ],
    );
    let admin = server.admin_url();
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, hung) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let acked = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    {
        let (client, url, stop, acked) = (client.clone(), server.url("/books"), stop.clone(), acked.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let book = serde_json::json!({"title": "Kept through faults", "author": "A"});
                if client
                    .post(&url)
                    .json(&book)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 201)
                {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for _ in 0..3 {
        let (client, url, stop) = (client.clone(), server.url("/books"), stop.clone());
        let (ok, failed, hung) = (ok.clone(), failed.clone(), hung.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) if e.is_timeout() => hung.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut killed = Vec::new();
    let mut pid = wait_pid(&client, &admin, key, None).await;
    for _ in 0..3 {
        tokio::time::sleep(random_delay(&mut seed)).await;
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        killed.push(pid);
        pid = wait_pid(&client, &admin, key, Some(pid)).await;
    }
    // Recovered: requests succeed again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(server.url("/books"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "{model}: not serving after the kills");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (ok, failed, hung) = (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        hung.load(Ordering::Relaxed),
    );
    let acked = acked.load(Ordering::Relaxed);
    eprintln!("{model}: {ok} ok, {failed} failed during the kills, {hung} hung, {acked} books acknowledged");
    assert_eq!(hung, 0, "{model}: requests hung");
    assert!(ok > 0, "{model}");
    let stats: Value = json_answer(client.get(server.url("/stats"))).await;
    // A book whose 201 was lost with its connection may be there too.
    assert!(
        stats["books"].as_u64().unwrap() >= acked,
        "{model}: acknowledged books lost: {stats}"
    );
    let front = server.pid;
    server.stop();
    for p in killed.into_iter().chain([pid, front]) {
        assert!(wait_gone(p).await, "{model}: process {p} outlived the model");
    }
    let check = common::output(common::hostlab().args(["journal", "check", &journal]));
    assert!(
        check.status.success(),
        "{model}: the journal is damaged after the kills: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_app_behind_the_proxy() {
    kill_under_load("proxy", "app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_inprocess_worker() {
    kill_under_load("inprocess", "app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_split_actor_service() {
    kill_under_load("split", "actors").await;
}
