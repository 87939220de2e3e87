//! Per-request cost of each hosting path, one criterion group per endpoint
//! (`ping`: `GET /ping`; `books`: `GET /books` listing 100 books): the
//! router called in-process (no socket), then `baseline` (a bare hyper
//! server answering `/ping` only: the floor of the socket paths, in the
//! `ping` group), `edge`, `inprocess`, `proxy` and `split` over one
//! keep-alive loopback connection. Run one group with
//! `cargo bench --bench hosting -- ping`; method and figures in docs/benches.md.
//!
//! Each server is the built `hostlab` binary (`serve MODEL --listen
//! 127.0.0.1:0 --start-mode always-running`), started on the first call of
//! its bench (so a filtered-out bench starts nothing) and stopped (SIGTERM,
//! then SIGKILL) right after it, also when a bench panics; PR_SET_PDEATHSIG
//! covers a killed bench process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use hostlab::ready;
use hostlab_workloads::{AppState, Workload, WorkloadConfig, app};
use http::header::{CONTENT_TYPE, HOST};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// The hosting paths measured over a socket, in report order (the floor
/// first). `baseline` serves `/ping` only, so it runs in the `ping` group.
const MODELS: [&str; 5] = ["baseline", "edge", "inprocess", "proxy", "split"];

/// Whether `model` serves `path` (the baseline answers nothing but `/ping`).
fn serves(model: &str, path: &str) -> bool {
    model != "baseline" || path == "/ping"
}
/// Books listed by the `books` group, as in `hostlab run`'s throughput scenario.
const BOOKS: usize = 100;
/// Longest a server may take to print its ready line on a busy machine.
const READY_TIMEOUT: Duration = ready::READY_TIMEOUT;
/// Longest a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The endpoints, one criterion group each: (group name, path, books to seed).
const ENDPOINTS: [(&str, &str, usize); 2] = [("ping", "/ping", 0), ("books", "/books", BOOKS)];

/// The `hostlab` binary cargo built for this bench (same profile). Cargo
/// sets `CARGO_BIN_EXE_<name>` for benches as for integration tests and
/// builds the binary before it runs them.
fn hostlab_exe() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hostlab"));
    assert!(
        exe.is_file(),
        "{} is missing: run the benches through `cargo bench`, which builds it (or `cargo build --release`)",
        exe.display()
    );
    exe
}

/// A running `hostlab serve MODEL`; stopped on drop.
struct ServerProcess {
    model: &'static str,
    /// Taken by `drop` for the graceful stop; the guard kills it otherwise.
    child: Option<ready::Running>,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(model: &'static str) -> ServerProcess {
        let mut cmd = ready::command(hostlab_exe());
        cmd.args([
            "serve",
            model,
            "--listen",
            "127.0.0.1:0",
            "--start-mode",
            "always-running",
        ])
        .env("RUST_LOG", "warn,ractor_cluster=error");
        let (child, line) = ready::spawn_ready(&mut cmd, READY_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        let addr = ready_addr(&line).unwrap_or_else(|| panic!("not a ready line: {line}"));
        ServerProcess {
            model,
            child: Some(child),
            addr,
        }
    }
}

/// The address of `hostlab ready model=.. url=http://ADDR pid=..`.
fn ready_addr(line: &str) -> Option<SocketAddr> {
    if !line.starts_with("hostlab ready ") {
        return None;
    }
    line.split(' ')
        .find_map(|f| f.strip_prefix("url=http://"))?
        .parse()
        .ok()
}

impl Drop for ServerProcess {
    /// SIGTERM (the front stops its own children), wait, SIGKILL after the
    /// limit; then check that no process the server started outlived it.
    fn drop(&mut self) {
        let Some(child) = self.child.take() else { return };
        let pid = child.pid();
        let mut tree = Vec::new();
        descendants(pid, &mut tree);
        if let Err(e) = child.stop_with(Signal::SIGTERM, STOP_TIMEOUT) {
            eprintln!("hostlab serve {}: {e}", self.model);
        }
        // Children die with the front (PR_SET_PDEATHSIG); give them a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while tree.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for &p in tree.iter().filter(|&&p| alive(p)) {
            eprintln!("hostlab serve {}: child pid {p} outlived it: killing it", self.model);
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
    }
}

/// Every descendant of `pid`, from /proc/PID/task/*/children.
fn descendants(pid: u32, out: &mut Vec<u32>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            if !out.contains(&child) {
                out.push(child);
                descendants(child, out);
            }
        }
    }
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

/// One HTTP/1.1 keep-alive connection (hyper's client connection, no pool),
/// so a figure is the cost of one request, not of connecting.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Connection {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the server");
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        Connection {
            sender,
            host: addr.to_string(),
        }
    }

    /// Sends one request and reads the whole body; panics unless `expect` answers.
    async fn send(&mut self, request: http::request::Builder, body: Bytes, expect: u16) -> Bytes {
        let request = request.header(HOST, &self.host).body(Full::new(body)).unwrap();
        self.sender.ready().await.expect("connection still open");
        let response = self.sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(status, expect, "unexpected answer: {}", String::from_utf8_lossy(&body));
        body
    }

    async fn get(&mut self, path: &str) -> Bytes {
        self.send(http::Request::get(path), Bytes::new(), 200).await
    }

    async fn add_books(&mut self, n: usize) {
        for i in 0..n {
            let book = format!(r#"{{"title":"Book {i}","author":"Author {i}","year":2000}}"#);
            let request = http::Request::post("/books").header(CONTENT_TYPE, "application/json");
            self.send(request, Bytes::from(book), 201).await;
        }
    }
}

/// A model under test: its server and the bench's connection to it.
struct Target {
    conn: Connection,
    _server: ServerProcess,
}

fn start_target(runtime: &Runtime, model: &'static str, books: usize) -> Target {
    let server = ServerProcess::start(model);
    let mut conn = runtime.block_on(Connection::open(server.addr));
    runtime.block_on(async {
        // A split front answers once its actor session is up.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let request = http::Request::get("/ping")
                .header(HOST, &conn.host)
                .body(Full::default())
                .unwrap();
            conn.sender.ready().await.expect("connection still open");
            let response = conn.sender.send_request(request).await.expect("response");
            let status = response.status();
            let _ = response.into_body().collect().await;
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{model} answered {status} to GET /ping for {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        conn.add_books(books).await;
    });
    Target { conn, _server: server }
}

/// The workload and its router in this process (no socket, no server).
struct InProcess {
    router: axum::Router,
    workload: AppState,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.workload.stop();
    }
}

async fn in_process(books: usize) -> InProcess {
    let workload = Workload::start(WorkloadConfig::new("bench")).await.unwrap();
    let router = app(workload.clone());
    for i in 0..books {
        let book = format!(r#"{{"title":"Book {i}","author":"Author {i}","year":2000}}"#);
        let request = http::Request::post("/books")
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(book))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 201);
    }
    InProcess { router, workload }
}

/// The client side runs on one thread: its own scheduling adds as little as
/// possible to each figure. The in-process router's actors run on it too.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn hosting(c: &mut Criterion) {
    let runtime = runtime();
    for (group_name, path, books) in ENDPOINTS {
        let mut group = c.benchmark_group(group_name);
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));

        let mut router: Option<InProcess> = None;
        group.bench_function("router", |b| {
            let inproc = router.get_or_insert_with(|| runtime.block_on(in_process(books)));
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let request = http::Request::get(path).body(Body::empty()).unwrap();
                        let response = inproc.router.clone().oneshot(request).await.unwrap();
                        assert!(response.status().is_success());
                        std::hint::black_box(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
        drop(router);

        for model in MODELS.into_iter().filter(|m| serves(m, path)) {
            // Started on the first call (never when the filter skips this
            // bench), stopped when `target` drops after the bench.
            let mut target: Option<Target> = None;
            group.bench_function(model, |b| {
                let t = target.get_or_insert_with(|| start_target(&runtime, model, books));
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            std::hint::black_box(t.conn.get(path).await);
                        }
                        start.elapsed()
                    })
                })
            });
            drop(target);
        }
        group.finish();
    }
}

/// Criterion's folder: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else `criterion/` in the target folder this bench was built in (as
/// criterion itself decides).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(&target).join("criterion");
    }
    // target/<profile>/hostlab -> target/criterion
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hostlab"));
    exe.ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("criterion")
}

/// The estimate criterion prints as `time:` (slope, else mean), in ns, if
/// this process measured it (the file is newer than `since`).
fn estimate_ns(group: &str, bench: &str, since: SystemTime) -> Option<f64> {
    let file = criterion_dir().join(group).join(bench).join("new/estimates.json");
    if std::fs::metadata(&file).ok()?.modified().ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()?;
    json["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| json["mean"]["point_estimate"].as_f64())
}

/// A table of what this run measured: per-request cost, its cost over the
/// floor (the baseline's `GET /ping`: what the hosting path and the app's
/// work add to a bare server's round trip), and ratios to the router call,
/// the baseline (`/ping` only) and edge.
fn print_summary(since: SystemTime) {
    let mut lines = Vec::new();
    let floor = estimate_ns("ping", "baseline", since);
    for (group, path, _) in ENDPOINTS {
        let router = estimate_ns(group, "router", since);
        let edge = estimate_ns(group, "edge", since);
        let baseline = estimate_ns(group, "baseline", since);
        for bench in std::iter::once("router").chain(MODELS) {
            let Some(ns) = estimate_ns(group, bench, since) else {
                continue;
            };
            let ratio = |base: Option<f64>| base.map_or("-".to_string(), |b| format!("{:.1}x", ns / b));
            let over_floor = floor.map_or("-".to_string(), |f| format!("{:+.1}", (ns - f) / 1000.0));
            lines.push(format!(
                "| GET {path} | {bench} | {:.1} | {over_floor} | {} | {} | {} |",
                ns / 1000.0,
                ratio(router),
                ratio(baseline),
                ratio(edge)
            ));
        }
    }
    if !lines.is_empty() {
        println!(
            "\n| endpoint | hosting path | us/request | us over the floor | x router | x baseline | x edge |\n|---|---|---|---|---|---|---|"
        );
        for l in lines {
            println!("{l}");
        }
    }
}

criterion_group!(benches, hosting);

/// Pin this process, and so every server it starts (children inherit the
/// affinity), to one CPU: `HOSTLAB_BENCH_CPU`, else the last one allowed.
/// On one CPU a request's round trip is the CPU time of its whole path
/// (client, server hops, kernel), with no cross-CPU wake-ups: on an idle VM
/// those added 50-90 us to every figure and swamped the differences.
fn pin_to_one_cpu() -> usize {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    let allowed = sched_getaffinity(Pid::from_raw(0)).expect("sched_getaffinity");
    let last = (0..CpuSet::count())
        .rev()
        .find(|&c| allowed.is_set(c).unwrap_or(false))
        .unwrap_or(0);
    let cpu = std::env::var("HOSTLAB_BENCH_CPU")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(last);
    let mut set = CpuSet::new();
    set.set(cpu).expect("a valid CPU number in HOSTLAB_BENCH_CPU");
    sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
    cpu
}

fn main() {
    let started = SystemTime::now();
    let cpu = pin_to_one_cpu();
    eprintln!("hosting bench: client and servers pinned to CPU {cpu}");
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_summary(started);
}
