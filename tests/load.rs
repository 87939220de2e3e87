//! `hostlab load` as users run it: the real binary against small servers
//! this test starts on 127.0.0.1 (in-process, or `hostlab serve edge` as a
//! child for the stop-the-server calibration). Bounds are loose on purpose:
//! these must pass on a busy 2-core machine.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hostlab::ready;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal;
use serde_json::Value;
use tempfile::TempPath;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::task::{JoinHandle, JoinSet};

const HOSTLAB: &str = env!("CARGO_BIN_EXE_hostlab");

// ---------------------------------------------------------------- harness

/// A fresh temporary file name, removed when dropped (also when a test panics).
fn temp_path(ext: &str) -> TempPath {
    tempfile::Builder::new()
        .prefix("hostlab-load-test-")
        .suffix(&format!(".{ext}"))
        .tempfile()
        .expect("a temporary file")
        .into_temp_path()
}

/// How long a `hostlab load` run may take on a busy machine before it is
/// killed as hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// A finished `hostlab load` run.
struct LoadRun {
    status: ExitStatus,
    json: Value,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl LoadRun {
    fn errors(&self, class: &str) -> u64 {
        self.json["requests"]["errors"][class].as_u64().unwrap()
    }
    fn ok(&self) -> u64 {
        self.json["requests"]["ok"].as_u64().unwrap()
    }
    fn us(&self, group: &str, key: &str) -> u64 {
        self.json[group][key].as_u64().unwrap()
    }
}

/// A `hostlab load` child writing its JSON result to a temporary file;
/// killed when dropped.
struct LoadChild {
    child: ready::Running,
    json: TempPath,
    started: Instant,
}

fn spawn_load(args: &[&str]) -> LoadChild {
    let json = temp_path("json");
    let child = ready::spawn(
        ready::command(HOSTLAB)
            .arg("load")
            .args(args)
            .arg("--no-progress")
            .arg("--json")
            .arg(&*json),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    LoadChild {
        child,
        json,
        started: Instant::now(),
    }
}

impl LoadChild {
    fn pid(&self) -> i32 {
        self.child.pid() as i32
    }

    fn finish(self) -> LoadRun {
        let out = self.child.wait_within(RUN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        let elapsed = self.started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let text = std::fs::read_to_string(&self.json)
            .unwrap_or_else(|e| panic!("no JSON result ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
        LoadRun {
            status: out.status,
            json: serde_json::from_str(&text).expect("valid JSON"),
            stdout,
            stderr,
            elapsed,
        }
    }
}

fn load(args: &[&str]) -> LoadRun {
    spawn_load(args).finish()
}

/// Test endpoints: `/status/N` answers N, `/slow` answers after 1 s,
/// `/check` answers 200 only to `POST` with header `x-test: yes` and body
/// `hello body` (400 otherwise), anything else 200 `ok`.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let status = if let Some(code) = path.strip_prefix("/status/") {
        StatusCode::from_u16(code.parse().unwrap()).unwrap()
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(1)).await;
        StatusCode::OK
    } else if path == "/check" {
        let good_head = req.method() == hyper::Method::POST && req.headers().get("x-test").is_some_and(|v| v == "yes");
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        if good_head && body.is_ok_and(|b| b == "hello body") {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        }
    } else {
        StatusCode::OK
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = status;
    Ok(response)
}

/// What an in-process test server does with each connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Speak HTTP/1.1 with [`handle`].
    Http,
    /// Read the request, then reset the connection (SO_LINGER 0).
    Reset,
}

async fn accept_loop(listener: TcpListener, behaviour: Behaviour) {
    // Dropping this task (see `TestServer::stop`) drops the set, which
    // aborts every connection task and closes its socket.
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            match behaviour {
                Behaviour::Http => {
                    let service = hyper::service::service_fn(handle);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Behaviour::Reset => {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream.set_zero_linger();
                }
            }
        });
    }
}

/// A server on 127.0.0.1 with its own runtime, which can go away and come
/// back on the same port.
struct TestServer {
    runtime: Runtime,
    addr: SocketAddr,
    behaviour: Behaviour,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(behaviour: Behaviour) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = runtime.spawn(accept_loop(listener, behaviour));
        TestServer {
            runtime,
            addr,
            behaviour,
            accept: Some(accept),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops listening and closes every connection: new connects are refused.
    fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = self.runtime.block_on(accept);
        }
    }

    /// Listens again on the same address.
    fn restart(&mut self) {
        let listener = self.runtime.block_on(TcpListener::bind(self.addr)).unwrap();
        self.accept = Some(self.runtime.spawn(accept_loop(listener, self.behaviour)));
    }
}

/// A port with nothing listening on it.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

/// `hostlab serve edge` as a child process; killed (after a SIGCONT, in
/// case the test stopped it) when dropped, also when the test panics.
struct EdgeServer {
    child: ready::Running,
    url: String,
}

impl EdgeServer {
    fn start() -> Self {
        let (child, line) = ready::spawn_ready(
            ready::command(HOSTLAB).args(["serve", "edge", "--listen", "127.0.0.1:0"]),
            ready::READY_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let url = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("url="))
            .unwrap_or_else(|| panic!("no ready line, got {line:?}"))
            .to_string();
        EdgeServer { child, url }
    }

    fn signal(&self, signal: Signal) {
        self.child.signal(signal).unwrap();
    }
}

/// User + system CPU time of a process, from /proc/PID/stat.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap() as u64;
    Duration::from_millis(ticks * 1000 / per_sec)
}

// ------------------------------------------------------------------ tests

#[test]
fn open_loop_keeps_the_requested_rate() {
    let server = TestServer::start(Behaviour::Http);
    let timeline = temp_path("csv");
    let run = load(&[
        &server.url("/"),
        "-r",
        "200",
        "-c",
        "8",
        "-d",
        "2s",
        "--warmup",
        "500ms",
        "--timeline",
        timeline.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let j = &run.json;
    assert_eq!(j["mode"], "open");
    assert_eq!(j["rate_per_sec"], 200.0);
    let rate = j["requests_per_sec"].as_f64().unwrap();
    assert!((170.0..=230.0).contains(&rate), "achieved {rate} req/s of 200");
    // 2 s at 200/s is 400 requests; each gets exactly one outcome.
    let total = j["requests"]["total"].as_u64().unwrap();
    assert!((340..=460).contains(&total), "{total} requests");
    assert_eq!(run.ok(), total, "errors against a healthy server");
    // The warm-up (0.5 s = ~100 requests) is reported on its own.
    let warm = j["warmup"]["requests"]["ok"].as_u64().unwrap();
    assert!((70..=130).contains(&warm), "{warm} warm-up requests");
    assert!(j["latency_us"]["p50"].as_u64().unwrap() > 0);
    assert!(j["generator"]["cpu_percent"].as_f64().unwrap() > 0.0);
    assert!(j["environment"]["kernel"].as_str().unwrap().len() > 1);

    let csv = std::fs::read_to_string(&timeline).unwrap();
    let _ = std::fs::remove_file(&timeline);
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("t_ms,duration_ms,phase,ok,4xx,5xx,refused,reset,timeout,io"));
    let rows: Vec<&str> = lines.collect();
    // 2.5 s in 100 ms intervals, plus the last partial one; on a busy
    // machine the last in-flight requests can end later, adding rows, so
    // only a gross overrun (more than twice the run) fails here.
    assert!((24..=50).contains(&rows.len()), "{} rows", rows.len());
    assert!(rows[0].contains(",warmup,") && rows[rows.len() - 1].contains(",measure,"));
    let summed: u64 = rows
        .iter()
        .filter(|r| r.contains(",measure,"))
        .map(|r| r.split(',').nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(summed, run.ok(), "timeline rows add up to the total");
}

#[test]
fn closed_loop_sends_method_headers_body_and_stops_after_n() {
    let server = TestServer::start(Behaviour::Http);
    let body = temp_path("body");
    std::fs::write(&body, "hello body").unwrap();
    let run = load(&[
        &server.url("/check"),
        "-c",
        "4",
        "-n",
        "50",
        "-m",
        "post",
        "-H",
        "X-Test: yes",
        "-b",
        &format!("@{}", body.display()),
    ]);
    let _ = std::fs::remove_file(&body);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json["mode"], "closed");
    assert_eq!(run.ok(), 50, "{}", run.stdout);
    assert_eq!(run.errors("4xx"), 0, "server rejected method, header or body");
    assert!(run.stdout.contains("req/s"), "{}", run.stdout);
}

#[test]
fn http_error_statuses_are_counted_by_class() {
    let server = TestServer::start(Behaviour::Http);
    let run = load(&[&server.url("/status/503"), "-c", "2", "-d", "500ms"]);
    assert_eq!(run.status.code(), Some(1), "no success is a failed run");
    assert!(run.errors("5xx") > 0);
    assert_eq!(run.ok(), 0);
    assert_eq!(run.json["requests_per_sec"], 0.0, "errors are not throughput");
    assert_eq!(run.us("latency_us", "max"), 0, "errors stay out of latency");

    let run = load(&[&server.url("/status/404"), "-c", "2", "-d", "500ms"]);
    assert!(run.errors("4xx") > 0);
    assert_eq!(run.errors("5xx"), 0);
}

#[test]
fn nothing_listening_is_refused_without_spinning() {
    let run = load(&[&closed_port_url(), "-c", "2", "-d", "1s"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("no request succeeded"), "{}", run.stderr);
    let refused = run.errors("refused");
    // Backoff (1 ms doubling to 100 ms) allows ~16 attempts per connection
    // per second; a spinning client would make thousands.
    assert!((2..=100).contains(&refused), "{refused} refused");
    assert_eq!(run.json["requests"]["total"].as_u64().unwrap(), refused);
}

#[test]
fn reset_connections_are_counted_as_reset() {
    let server = TestServer::start(Behaviour::Reset);
    let run = load(&[&server.url("/"), "-c", "2", "-d", "500ms"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.errors("reset") > 0, "{}", run.stdout);
    assert_eq!(run.ok(), 0);
}

#[test]
fn slow_answers_time_out() {
    let server = TestServer::start(Behaviour::Http);
    let run = load(&[&server.url("/slow"), "-c", "2", "-d", "1s", "--timeout", "200ms"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.errors("timeout") >= 2, "{}", run.stdout);
    assert_eq!(run.ok(), 0);
    // The run ends by itself: duration plus at most one timeout.
    assert!(run.elapsed < Duration::from_secs(4), "took {:?}", run.elapsed);
}

#[test]
fn outage_mid_run_backs_off_and_recovers() {
    let mut server = TestServer::start(Behaviour::Http);
    let child = spawn_load(&[&server.url("/"), "-c", "8", "-d", "4s", "--timeout", "500ms"]);
    std::thread::sleep(Duration::from_secs(1));
    server.stop();
    // Measure the generator's CPU over most of the 1.5 s outage.
    std::thread::sleep(Duration::from_millis(200));
    let (cpu_before, wall_before) = (cpu_time(child.pid()), Instant::now());
    std::thread::sleep(Duration::from_millis(1200));
    let cpu = cpu_time(child.pid()) - cpu_before;
    let wall = wall_before.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    server.restart();
    let run = child.finish();

    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    assert!(
        share < 0.5,
        "generator used {:.0}% CPU while the server was down",
        share * 100.0
    );
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert!(run.errors("refused") > 0, "{}", run.stdout);
    assert!(run.ok() > 0);
    // 4 s of load, then at most one 500 ms timeout, plus process start.
    assert!(run.elapsed < Duration::from_secs(7), "took {:?}", run.elapsed);
}

/// Gil Tene's "^Z test": stop the server for part of a fixed-rate run. A
/// generator that corrects for coordinated omission reports a maximum near
/// the pause and a high p90/p99; the service time (from the actual send)
/// stays low for all but the few requests in flight when it stopped.
#[test]
fn stopped_server_shows_in_corrected_latency() {
    let server = EdgeServer::start();
    let url = format!("{}/ping", server.url);
    let child = spawn_load(&[&url, "-r", "200", "-c", "4", "-d", "3s", "--timeout", "5s"]);
    std::thread::sleep(Duration::from_secs(1));
    server.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    server.signal(Signal::SIGCONT);
    let pause_us = stopped.elapsed().as_micros() as u64;
    let run = child.finish();

    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.errors("timeout"), 0);
    let max = run.us("latency_us", "max");
    let p99 = run.us("latency_us", "p99");
    let p90 = run.us("latency_us", "p90");
    let service_p90 = run.us("service_time_us", "p90");
    let report = format!("pause {pause_us} us\n{}", run.stdout);
    assert!(max * 10 >= pause_us * 7, "max {max} us below 0.7 x pause; {report}");
    assert!(p99 * 10 >= pause_us * 6, "p99 {p99} us; {report}");
    // A third of the run was paused, so ~30% of requests waited over
    // 0.7 x pause: p90 is far above anything uncorrected.
    assert!(p90 * 10 >= pause_us * 3, "p90 {p90} us; {report}");
    assert!(service_p90 * 5 < p90, "service p90 {service_p90} us; {report}");
    assert!(run.json["generator"]["max_send_lag_us"].as_u64().unwrap() > 0);
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        vec!["http://127.0.0.1:1/", "-H", "NoColon"],
        vec!["http://127.0.0.1:1/", "-b", "@/nonexistent/hostlab-body"],
        vec!["http://127.0.0.1:1/", "--cpus", "4096"],
        vec!["http://127.0.0.1:1/", "-r", "0"],
        vec!["https://127.0.0.1:1/"],
        vec!["http://127.0.0.1:1/", "-d", "ten seconds"],
    ] {
        let out = ready::output_within(ready::command(HOSTLAB).arg("load").args(&args), RUN_TIMEOUT).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid value"), "{args:?}: {stderr}");
    }
}

#[test]
fn unresolvable_host_fails_with_exit_1() {
    let out = ready::output_within(
        ready::command(HOSTLAB).args(["load", "http://nonexistent.invalid/", "-d", "100ms", "--no-progress"]),
        RUN_TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot resolve"));
}
