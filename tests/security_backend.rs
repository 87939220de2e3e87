//! Reliability and security behind the front door (docs/security.md): a
//! frozen upstream, overload of the actors, and the admin endpoint's access
//! rule; hostile HTTP and slow clients are in `security.rs`. Each test is
//! bounded in time and asserts behaviour (statuses, counts), never speed.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/serving.rs"]
mod serving;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use http::json_answer;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use serving::start;

/// An app that accepts but never answers (frozen with SIGSTOP): the proxy
/// answers 504 `gateway_timeout`, the split front 503 `backend_unavailable`,
/// each within its upstream timeout; both serve again once it thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_upstream_gets_an_answer_within_the_upstream_timeout() {
    for (model, pid_key, status, code) in [
        ("proxy", "app", 504, "gateway_timeout"),
        ("split", "actors", 503, "backend_unavailable"),
    ] {
        let server = start(model, &["--upstream-timeout", "2s"]);
        let admin = server.admin_url();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        // GET /books until it answers 200 (at most 20 s): on a busy machine
        // the app's first answer may itself miss the 2 s upstream timeout.
        let books_served = async |when: &str| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !client
                .get(server.url("/books"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                assert!(Instant::now() < deadline, "{model}: not serving {when}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        books_served("before the upstream froze").await;
        let s: Value = json_answer(client.get(format!("{admin}/status"))).await;
        let pid = Pid::from_raw(s["pids"][pid_key].as_u64().unwrap() as i32);
        kill(pid, Signal::SIGSTOP).unwrap();
        // Every thread must have stopped before the first frozen request:
        // a thread still running could answer it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid.as_raw() as u32) {
            assert!(Instant::now() < deadline, "{model}: SIGSTOP did not stop pid {pid}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..2 {
            let started = Instant::now();
            let r = client
                .get(server.url("/books"))
                .send()
                .await
                .expect("an answer, not a hang");
            assert_eq!(r.status(), status, "{model}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], code, "{model}: {v}");
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{model}: {:?}",
                started.elapsed()
            );
        }
        kill(pid, Signal::SIGCONT).unwrap();
        books_served("after the upstream thawed").await;
        server.stop();
    }
}

/// Whether every thread of `pid` is in state T (stopped).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| stat.rsplit(')').next()?.trim_start().chars().next())
            == Some('T')
    })
}

/// Well past what the actors can take: heavy 5,000-row tasks from 16
/// clients against 2 actors with 1-message mailboxes. Some requests get 503
/// `overloaded`, admitted ones finish within the ask timeout, memory stays
/// bounded, and the server serves normally once the burst ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_sheds_with_503_and_recovers() {
    let server = start("edge", &["--mailbox", "1", "--routing", "pool:2"]);
    let rss = |pid: u32| -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
        statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
    };
    let rows: Vec<Value> = (0..5000)
        .map(|i| serde_json::json!({"account": "4000-100", "debit_cents": if i % 2 == 0 { 100 } else { 0 }, "credit_cents": if i % 2 == 0 { 0 } else { 100 }}))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let task = |id: String| serde_json::json!({"id": id, "kind": "ledger", "rows": rows}).to_string();
    let post_task = |body: String| {
        client
            .post(server.url("/tasks"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(post_task(task("warm".into())).await.unwrap().status(), 200);
    let rss_before = rss(server.pid);

    let (ok, shed, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let max_ok_ms = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let bodies: Vec<Vec<String>> = (0..16)
        .map(|c| (0..2).map(|i| task(format!("t{c}-{i}"))).collect())
        .collect();
    let until = Instant::now() + Duration::from_secs(4);
    let mut clients = Vec::new();
    for bodies in bodies {
        let (client, url) = (client.clone(), server.url("/tasks"));
        let (ok, shed, other, max_ok_ms) = (ok.clone(), shed.clone(), other.clone(), max_ok_ms.clone());
        clients.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                let started = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(bodies[i % bodies.len()].clone())
                    .send()
                    .await;
                i += 1;
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        max_ok_ms.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                    Ok(503) => {
                        shed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let pid = server.pid;
    let sampler = {
        let peak_rss = peak_rss.clone();
        tokio::spawn(async move {
            while Instant::now() < until {
                peak_rss.fetch_max(rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    for c in clients {
        c.await.unwrap();
    }
    sampler.await.unwrap();
    let (ok, shed, other) = (
        ok.load(Ordering::Relaxed),
        shed.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    assert!(shed > 0, "no request was shed (ok {ok}): not overloaded?");
    assert!(ok > 0, "no request was admitted (shed {shed})");
    assert_eq!(other, 0, "requests neither served nor shed");
    let max_ok = Duration::from_millis(max_ok_ms.load(Ordering::Relaxed));
    assert!(
        max_ok < Duration::from_secs(10),
        "an admitted request took {max_ok:?}, past the ask timeout"
    );
    let peak = peak_rss.load(Ordering::Relaxed);
    assert!(
        peak < rss_before + 256 * 1024 * 1024,
        "RSS grew from {rss_before} to {peak} bytes under overload"
    );
    // Recovery: the next request after the burst is served.
    assert_eq!(post_task(task("after".into())).await.unwrap().status(), 200);
    eprintln!("overload: {ok} served (max {max_ok:?}), {shed} shed, RSS {rss_before} -> peak {peak}");
    server.stop();
}

/// The admin endpoint: a non-loopback address without a token is refused
/// at start (exit 2); with a token set, calls without it get 401 in the
/// API's error format, and calls with it work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_needs_loopback_or_a_token() {
    let out = common::output(
        common::hostlab()
            .args(["serve", "proxy", "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"])
            .env_remove("HOSTLAB_ADMIN_TOKEN"),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--admin-token"), "{stderr}");

    let server = Server::start("proxy", &["--admin", "127.0.0.1:0", "--admin-token", "s3cret-token"]);
    let admin = server.admin_url();
    let client = reqwest::Client::new();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-toke"),
        Some("s3cret-token"),
    ] {
        let mut r = client.get(format!("{admin}/status"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized", "{v}");
    }
    let r = client.post(format!("{admin}/recycle")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(format!("{admin}/status"))
        .header("authorization", "Bearer s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
}
