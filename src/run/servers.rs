//! Starting and stopping the hosting models for a scenario, pinned to the
//! server CPUs, plus the small HTTP calls the scenarios make (seeding,
//! `/stats`, the admin endpoint) and per-process CPU and memory from /proc.
//!
//! Every process is stopped: `stop` on the normal path, kill-on-drop on
//! error paths, and PR_SET_PDEATHSIG (set by `ChildProcess`, and here for
//! nginx) when the driver itself dies, e.g. on Ctrl-C. Children are spawned
//! from the driver's main thread (inside `block_on`), which lives for the
//! whole run, so the parent-death signal fires only when the driver exits.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hostlab_hosts::Model;
use hostlab_hosts::child::{ChildProcess, ChildSpec};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::results::ProcessFigures;

/// Longest a model may take to print its ready line.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// Longest a model may take to exit after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The models `hostlab run` knows, in report order: every top-level model,
/// the floor `baseline` first and nginx in front of it last. Those two answer
/// `/ping` only: the scenarios that need the workload skip them with
/// [`PING_ONLY`] as the reason, and no claim reads them.
pub(super) fn run_models() -> impl Iterator<Item = Model> {
    Model::top_level()
}

/// Why a scenario (or an endpoint) skips `baseline` and `nginx-baseline`.
pub(super) const PING_ONLY: &str =
    "the floor (a bare hyper server, alone or behind nginx) answers GET /ping only, not the workload API";

/// Why a model cannot run on this machine or in this build, if it cannot.
pub(super) fn unavailable(model: Model) -> Option<String> {
    if model.needs_nginx() && which("nginx").is_none() {
        return Some("nginx is not installed (scripts/install-peers.sh installs it)".into());
    }
    None
}

/// The path of a program on PATH.
pub(super) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// A running hosting model.
pub struct Server {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Admin endpoint (proxy, inprocess) if started with `--admin`.
    pub admin: Option<String>,
    /// Spawn to ready line of the model (nginx: of nginx answering).
    pub start_to_ready: Duration,
    child: ChildProcess,
    nginx: Option<Nginx>,
}

impl Server {
    /// Starts `model` with `extra` flags on `cpus`; `tmp` holds nginx's files.
    pub async fn start(model: &str, extra: &[String], cpus: &[usize], tmp: &Path) -> anyhow::Result<Server> {
        let kind: Model = model.parse().map_err(|e: String| anyhow!(e))?;
        let serve_as = kind.serve_as().name();
        let mut args = vec![
            "serve".to_string(),
            serve_as.to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().cloned());
        let spec = ChildSpec {
            args,
            listener: None,
            startup_limit: STARTUP_LIMIT,
            cpus: Some(cpus.to_vec()),
        };
        let started = Instant::now();
        let child = ChildProcess::start(spec)
            .await
            .with_context(|| format!("cannot start the {model} model"))?;
        let (url, nginx) = if kind.needs_nginx() {
            let nginx = Nginx::start(&child.url, cpus, tmp).await?;
            (nginx.url.clone(), Some(nginx))
        } else {
            (child.url.clone(), None)
        };
        Ok(Server {
            url,
            admin: child.admin_url.clone(),
            start_to_ready: if nginx.is_some() {
                started.elapsed()
            } else {
                child.start_to_ready
            },
            child,
            nginx,
        })
    }

    /// Waits until `GET /ping` answers 200 (a split front needs its actor
    /// session first; a front model's on-demand app starts on it).
    pub async fn wait_serving(&self, http: &Http) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_LIMIT;
        let url = format!("{}/ping", self.url);
        loop {
            let answer = http.get(&url).await;
            if answer.as_ref().is_ok_and(|(s, _)| *s == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("GET {url} did not answer 200 within {STARTUP_LIMIT:?} (last: {answer:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every process of the model now: the first process, nginx, and
    /// everything they started.
    pub fn pids(&self) -> Vec<u32> {
        let mut roots = vec![self.child.pid];
        if let Some(n) = &self.nginx {
            roots.push(n.pid());
        }
        let mut all = Vec::new();
        for root in roots {
            process_tree(root, &mut all);
        }
        all
    }

    /// SIGTERM, then SIGKILL after the stop limit; nginx first.
    pub async fn stop(mut self) {
        if let Some(n) = self.nginx.take() {
            n.stop().await;
        }
        self.child.stop(STOP_LIMIT).await;
    }
}

/// `root` and its descendants, from /proc/PID/task/*/children.
fn process_tree(root: u32, out: &mut Vec<u32>) {
    if out.contains(&root) {
        return;
    }
    out.push(root);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{root}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            process_tree(pid, out);
        }
    }
}

/// CPU time of a process so far: every thread's scheduler run time
/// (nanoseconds, /proc/PID/task/*/schedstat; see `run::cpu`).
pub(super) fn cpu_time(pid: u32) -> Option<Duration> {
    super::cpu::process_cpu_ns(pid).map(Duration::from_nanos)
}

fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

/// CPU use of a set of processes between two points in time.
#[derive(Debug)]
pub(super) struct CpuProbe {
    started: Instant,
    before: Vec<(u32, Duration)>,
}

impl CpuProbe {
    pub(super) fn start(pids: &[u32]) -> CpuProbe {
        CpuProbe {
            started: Instant::now(),
            before: pids.iter().filter_map(|&p| Some((p, cpu_time(p)?))).collect(),
        }
    }

    /// CPU percent and RSS of each process still alive.
    pub(super) fn finish(self) -> Vec<ProcessFigures> {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        self.before
            .iter()
            .filter_map(|&(pid, before)| {
                let after = cpu_time(pid)?;
                Some(ProcessFigures {
                    pid,
                    name: process_name(pid),
                    cpu_percent: after.saturating_sub(before).as_secs_f64() / wall * 100.0,
                    rss_bytes: hostlab_workloads::rss_bytes(pid).unwrap_or(0),
                })
            })
            .collect()
    }
}

/// nginx in front of an app: one worker, keep-alive upstream, its files in
/// the run's temporary folder.
struct Nginx {
    url: String,
    process: tokio::process::Child,
}

impl Nginx {
    async fn start(app_url: &str, cpus: &[usize], tmp: &Path) -> anyhow::Result<Nginx> {
        let exe = which("nginx").ok_or_else(|| anyhow!("nginx is not installed"))?;
        let dir = tmp.join(format!("nginx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // A free port: bind port 0, note it, let go (nginx binds it a moment later).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let upstream = app_url.trim_start_matches("http://");
        let d = dir.display();
        let config = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               client_max_body_size 8m;\n  keepalive_requests 1000000;\n\
               upstream app {{ server {upstream}; keepalive 128; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://app;\n\
                   proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SIGTERM (not SIGKILL) on parent death, so the nginx master still
        // stops its worker.
        hostlab_hosts::child::tie_to_parent(cmd.as_std_mut(), Signal::SIGTERM, cpus)?;
        let process = cmd.spawn().context("cannot start nginx")?;
        let nginx = Nginx {
            url: format!("http://127.0.0.1:{port}"),
            process,
        };
        let deadline = Instant::now() + STARTUP_LIMIT;
        let http = Http::new();
        loop {
            if http
                .get(&format!("{}/ping", nginx.url))
                .await
                .is_ok_and(|(s, _)| s == 200)
            {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                nginx.stop().await;
                bail!("nginx did not answer GET /ping within {STARTUP_LIMIT:?}; see {d}/error.log");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.process.id().unwrap_or_default()
    }

    async fn stop(mut self) {
        self.term();
        if tokio::time::timeout(STOP_LIMIT, self.process.wait()).await.is_err() {
            let _ = self.process.start_kill();
            let _ = self.process.wait().await;
        }
    }

    fn term(&self) {
        if let Some(pid) = self.process.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
}

impl Drop for Nginx {
    /// On error paths: SIGTERM lets the master stop its worker too.
    fn drop(&mut self) {
        self.term();
    }
}

/// A small HTTP/1.1 client for the scenarios' own calls (not for load).
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Longest one of the scenarios' own calls may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Http {
    pub fn new() -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Http {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    pub async fn request(
        &self,
        method: http::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, Bytes)> {
        self.request_with(method, url, body, &[]).await
    }

    /// [`Http::request`] with extra headers.
    pub async fn request_with(
        &self,
        method: http::Method,
        url: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut builder = http::Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some(v) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(v)?))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body)?;
        let call = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| anyhow!("{method} {url} got no answer within {CALL_TIMEOUT:?}"))?
            .with_context(|| format!("{method} {url} failed"))
    }

    pub async fn get(&self, url: &str) -> anyhow::Result<(u16, Bytes)> {
        self.request(http::Method::GET, url, None).await
    }

    /// GET a JSON document that must answer 200.
    pub async fn get_json(&self, url: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.get(url).await?;
        if status != 200 {
            bail!("GET {url} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {url} did not answer JSON"))
    }

    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> anyhow::Result<(u16, serde_json::Value)> {
        let (status, bytes) = self.request(http::Method::POST, url, Some(body)).await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }
}

/// Adds `n` books through `POST /books` (201 each, or an error naming the status).
pub(super) async fn seed_books(http: &Http, base: &str, n: u64) -> anyhow::Result<()> {
    for i in 0..n {
        let book = serde_json::json!({"title": format!("Book {i}"), "author": "hostlab", "year": 2000});
        let (status, body) = http.post_json(&format!("{base}/books"), &book).await?;
        if status != 201 {
            bail!("POST {base}/books answered {status} ({body}) while seeding books");
        }
    }
    Ok(())
}

/// `books` from `GET /stats`.
pub(super) async fn book_count(http: &Http, base: &str) -> anyhow::Result<u64> {
    let stats = http.get_json(&format!("{base}/stats")).await?;
    stats["books"]
        .as_u64()
        .ok_or_else(|| anyhow!("GET {base}/stats has no `books` count: {stats}"))
}
