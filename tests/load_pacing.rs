//! Open-loop pacing as users see it: `send_lag_us` reported as a
//! distribution, and only requests scheduled inside the measured window
//! counted (so no achieved rate ever exceeds the offered one), in
//! `hostlab load` and in the latency rows of `hostlab run`. Behaviour only,
//! never timing: these must pass on a busy 2-core machine.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::{Server, hostlab};

/// Held by the tests that saturate a CPU (the 500,000 req/s overload run)
/// and by those that need their server answered within the load's timeout:
/// run side by side on a busy 2-core machine, the overload run starved a
/// debug `serve edge` long enough for every request of the send-lag test
/// to time out.
static CPU_HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cpu_heavy() -> std::sync::MutexGuard<'static, ()> {
    CPU_HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A scratch folder, removed when dropped (also when an assertion fails).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("hostlab-pacing-test-{name}-"))
        .tempdir()
        .unwrap()
}

/// `hostlab load ARGS --json FILE`; the parsed JSON.
fn load(args: &[&str], dir: &std::path::Path) -> Value {
    let json = dir.join("load.json");
    let out = hostlab()
        .arg("load")
        .args(args)
        .args(["--no-progress", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hostlab load failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// A raw HTTP/1.1 server on 127.0.0.1:0 that answers every request
/// `delay` after reading it (one request per read: the generator never
/// pipelines), on its own runtime thread. Stops when the test process ends.
fn delayed_server(delay: Duration) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap()
}

fn lag(j: &Value, key: &str) -> u64 {
    j["send_lag_us"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("send_lag_us.{key} missing: {j}"))
}

#[test]
fn send_lag_is_a_distribution_and_cpu_per_request_is_reported() {
    let _heavy = cpu_heavy();
    let server = Server::start("edge", &[]);
    let scratch = temp_dir("lag");
    let dir = scratch.path();
    let url = server.url("/ping");
    let j = load(&[&url, "-r", "400", "-c", "8", "-d", "1s", "--warmup", "200ms"], dir);
    let (p50, p99, max) = (lag(&j, "p50"), lag(&j, "p99"), lag(&j, "max"));
    assert!(p50 <= p99 && p99 <= max, "send lag p50 {p50} <= p99 {p99} <= max {max}");
    assert_eq!(j["generator"]["max_send_lag_us"].as_u64(), Some(max));
    assert!(j["generator"]["cpu_us_per_request"].as_f64().unwrap() > 0.0);
    assert!(j["generator"]["pacing_wait_percent"].as_f64().is_some());
    // The machine's share of the lag: how long the generator waited for its CPU.
    assert!(j["generator"]["run_queue_wait_percent"].as_f64().unwrap() >= 0.0);
    assert!(j["generator"]["preemptions"].as_u64().is_some());
    assert!(j["generator"]["preemptions_per_sec"].as_f64().unwrap() >= 0.0);
    let spectrum = j["latency_spectrum_us"].as_array().unwrap();
    assert!(spectrum.len() > 10, "{spectrum:?}");

    // Closed loop: a request is due when sent, so no lag at all.
    let j = load(&[&url, "-c", "4", "-n", "200"], dir);
    assert_eq!((lag(&j, "p50"), lag(&j, "p99"), lag(&j, "max")), (0, 0, 0));
    assert!(j["generator"]["cpu_us_per_request"].as_f64().unwrap() > 0.0);
    server.stop();
}

/// Requests scheduled near the end of the warm-up finish after it (the
/// server takes 40 ms); they belong to the warm-up, so the measured phase
/// holds at most rate x window requests, and its rate is at most the
/// offered one.
#[test]
fn only_requests_scheduled_in_the_window_count() {
    let addr = delayed_server(Duration::from_millis(40));
    let scratch = temp_dir("window");
    let dir = scratch.path();
    let url = format!("http://{addr}/");
    let j = load(&[&url, "-r", "250", "-c", "32", "-d", "1s", "--warmup", "500ms"], dir);
    let total = j["requests"]["total"].as_u64().unwrap();
    assert!(total <= 250, "{total} requests counted in a 1 s window at 250 req/s");
    assert!(total >= 200, "{total} requests: most of the window's slots are counted");
    let achieved = j["requests_per_sec"].as_f64().unwrap();
    assert!(achieved <= 250.0, "achieved {achieved} req/s of 250 offered");
    let warm = j["warmup"]["requests"]["total"].as_u64().unwrap();
    assert!(warm <= 125, "{warm} warm-up requests at 250 req/s over 0.5 s");
    assert!(warm >= 100, "{warm}: late warm-up answers stay in the warm-up");
}

#[test]
fn latency_rows_never_exceed_their_offered_rate() {
    let _heavy = cpu_heavy();
    let scratch = temp_dir("run");
    let dir = scratch.path();
    let out = hostlab()
        .args([
            "run",
            "--models",
            "edge",
            "--scenarios",
            "latency",
            "--duration",
            "1s",
            "--repeats",
            "1",
            "--out",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hostlab run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let rows: Vec<&Value> = results["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["scenario"] == "latency" && e["variant"] != "capacity probe")
        .collect();
    // 25/50/75% of edge's own capacity and the common rate.
    assert_eq!(rows.len(), 4, "{rows:?}");
    for e in rows {
        let load = &e["load"];
        let number = |v: &Value| {
            v.as_f64()
                .unwrap_or_else(|| panic!("a latency row without its load figures: {e}"))
        };
        let offered = number(&load["rate_per_sec"]);
        let achieved = number(&load["requests_per_sec"]);
        let window = number(&load["duration_s"]);
        let counted = number(&load["requests"]["total"]);
        assert!(
            achieved <= offered,
            "{}: achieved {achieved} > offered {offered}",
            e["variant"]
        );
        assert!(
            counted <= (offered * window).floor(),
            "{}: {counted} requests counted in a {window} s window at {offered} req/s",
            e["variant"]
        );
        let spectrum = load["latency_spectrum_us"].as_array();
        assert!(
            spectrum.is_some_and(|s| !s.is_empty()),
            "a latency row without its spectrum: {e}"
        );
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("offered req/s"), "{report}");
    assert!(report.contains("% of capacity"), "{report}");
}

/// A generator that cannot keep the rate (far past its own capacity, as
/// at 75% of it on a busy machine) still ends: a slot it could not hand to
/// a connection within the timeout of its scheduled start is a timeout at
/// once, so the run lasts about its window plus the timeout, and every
/// slot of the window still gets exactly one outcome. The bound is loose
/// (a busy machine, a debug build).
#[test]
fn an_overloaded_generator_still_ends_and_counts_every_slot() {
    let _heavy = cpu_heavy();
    let addr = delayed_server(Duration::ZERO);
    let scratch = temp_dir("overload");
    let dir = scratch.path();
    let url = format!("http://{addr}/");
    let started = std::time::Instant::now();
    let j = load(
        &[&url, "-r", "500000", "-c", "32", "-d", "1s", "--timeout", "500ms"],
        dir,
    );
    let took = started.elapsed();
    let total = j["requests"]["total"].as_u64().unwrap();
    assert_eq!(total, 500_000, "every slot of the window has an outcome: {j}");
    assert!(j["requests"]["errors"]["timeout"].as_u64().unwrap() > 0, "{j}");
    let elapsed = j["elapsed_s"].as_f64().unwrap();
    assert!(
        elapsed < 1.5 + 8.0,
        "the run took {elapsed} s for a 1 s window and a 0.5 s timeout"
    );
    assert!(took < Duration::from_secs(30), "hostlab load took {took:?}");
}
