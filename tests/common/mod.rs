//! Test harness: start a hosting model as a real process on 127.0.0.1:0, wait
//! for its ready line, and stop it again (checking that it exited).
//!
//! Every child is started through `hostlab::ready`: `PR_SET_PDEATHSIG =
//! SIGKILL`, the ready line read within a timeout, stderr captured, and the
//! guard kills it on drop, so no server outlives a failed or killed test run.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use hostlab::ready::{self, READY_TIMEOUT, Running};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a server may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a one-shot `hostlab` command may take on a busy machine.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// `hostlab` with the parent-death signal set (see `hostlab::ready`).
pub(crate) fn hostlab() -> Command {
    ready::command(env!("CARGO_BIN_EXE_hostlab"))
}

/// Runs `hostlab ARGS` to its end (killed after [`COMMAND_TIMEOUT`]).
pub(crate) fn run_hostlab(args: &[&str]) -> Output {
    output(hostlab().args(args))
}

/// Runs a command to its end (killed after [`COMMAND_TIMEOUT`]).
pub(crate) fn output(cmd: &mut Command) -> Output {
    ready::output_within(cmd, COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// A running `hostlab serve` process.
pub(crate) struct Server {
    child: Option<Running>,
    pub model: String,
    /// Base URL from the ready line, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub pid: u32,
    pub ready_line: String,
}

impl Server {
    /// `hostlab serve MODEL --listen 127.0.0.1:0 EXTRA...` (EXTRA may give
    /// its own `--listen`), ready to use.
    pub(crate) fn start(model: &str, extra: &[&str]) -> Server {
        Self::spawn(hostlab(), model, extra, None)
    }

    /// The same, with the server (and its children) allowed only on `cpu`.
    pub(crate) fn start_pinned(model: &str, extra: &[&str], cpu: usize) -> Server {
        Self::spawn(hostlab(), model, extra, Some(cpu))
    }

    /// The same, started from another path to the binary, `exe`.
    pub(crate) fn start_from(exe: &std::path::Path, model: &str, extra: &[&str]) -> Server {
        Self::spawn(ready::command(exe), model, extra, None)
    }

    fn spawn(mut command: Command, model: &str, extra: &[&str], cpu: Option<usize>) -> Server {
        if let Some(cpu) = cpu {
            // SAFETY: sched_setaffinity is async-signal-safe.
            #[allow(unsafe_code)]
            unsafe {
                command.pre_exec(move || {
                    let mut set = nix::sched::CpuSet::new();
                    set.set(cpu).map_err(std::io::Error::from)?;
                    nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
                });
            }
        }
        command.args(["serve", model]);
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command.args(extra).env(
            "RUST_LOG",
            std::env::var("TEST_SERVER_LOG").unwrap_or("warn,ractor_cluster=error".into()),
        );
        let (child, line) = ready::spawn_ready(&mut command, READY_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        let (url, pid) = parse_ready_line(&line, model);
        assert_eq!(pid, child.pid(), "ready line pid is the process's pid");
        Server {
            child: Some(child),
            model: model.to_owned(),
            url,
            pid,
            ready_line: line,
        }
    }

    /// The server's stderr so far (its last 64 KiB).
    pub(crate) fn stderr(&self) -> String {
        self.child.as_ref().map_or_else(String::new, Running::stderr)
    }

    /// The `admin=` URL of the ready line (fronts started with `--admin`).
    pub(crate) fn admin_url(&self) -> String {
        self.ready_line
            .split(' ')
            .find_map(|f| f.strip_prefix("admin="))
            .expect("ready line has admin=")
            .to_owned()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub(crate) fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid as i32), signal).expect("signal the server");
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(Running::is_running)
    }

    /// Send `signal` and wait for the process to exit; returns its status.
    pub(crate) fn stop_with(mut self, signal: Signal) -> ExitStatus {
        let child = self.child.take().unwrap();
        match child.stop_with(signal, EXIT_TIMEOUT) {
            Ok(output) => output.status,
            Err(e) => panic!("`hostlab serve {}` after {signal}: {e}", self.model),
        }
    }

    /// Graceful stop (SIGTERM); asserts a clean exit.
    pub(crate) fn stop(self) {
        let model = self.model.clone();
        let status = self.stop_with(Signal::SIGTERM);
        assert!(
            status.success(),
            "`hostlab serve {model}` exited with {status} after SIGTERM"
        );
    }
}

/// `hostlab ready model=<MODEL> url=http://<ADDR> pid=<PID>`, checked strictly.
pub(crate) fn parse_ready_line(line: &str, model: &str) -> (String, u32) {
    let mut fields = line.split(' ');
    assert_eq!(fields.next(), Some("hostlab"), "ready line: {line}");
    assert_eq!(fields.next(), Some("ready"), "ready line: {line}");
    assert_eq!(
        fields.next(),
        Some(format!("model={model}").as_str()),
        "ready line: {line}"
    );
    let url = fields.next().and_then(|f| f.strip_prefix("url=")).expect("url= field");
    assert!(url.starts_with("http://127.0.0.1:"), "ready line: {line}");
    let pid = fields
        .next()
        .and_then(|f| f.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .expect("pid= field");
    (url.to_owned(), pid)
}

/// Whether a process with this pid still exists (zombies count as gone).
pub(crate) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Wait (at most 20 s) for a process to be gone; true if it went.
pub(crate) async fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while process_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub ok: u64,
    pub failed: u64,
    pub failures: Vec<String>,
    pub max_latency: std::time::Duration,
}

/// `GET url` from `clients` looping clients until [`Load::stop`]: load that
/// is certainly running while a test recycles, however slow the machine.
/// Bounded all the same (each client stops after 200,000 requests or 5 min).
pub(crate) struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    clients: Vec<tokio::task::JoinHandle<(Vec<String>, Duration)>>,
}

impl Load {
    pub(crate) fn start(url: String, clients: usize) -> Load {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let client = reqwest::Client::new();
        let clients = (0..clients)
            .map(|_| {
                let (client, url, stop, ok) = (client.clone(), url.clone(), stop.clone(), ok.clone());
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    let mut max = Duration::ZERO;
                    let give_up = Instant::now() + Duration::from_secs(300);
                    for _ in 0..200_000 {
                        if stop.load(Ordering::Relaxed) || Instant::now() > give_up {
                            break;
                        }
                        let started = Instant::now();
                        match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failures.push(format!("status {}", r.status())),
                            Err(e) => failures.push(format!("{e:?}")),
                        }
                        max = max.max(started.elapsed());
                        // About 1 ms apart per client: steady, not a flood.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    (failures, max)
                })
            })
            .collect();
        Load { stop, ok, clients }
    }

    /// Successful requests so far.
    pub(crate) fn ok(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (at most 60 s) until at least `more` requests succeed after now.
    pub(crate) async fn wait_successes(&self, more: u64, what: &str) {
        let from = self.ok();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ok() < from + more {
            assert!(
                Instant::now() < deadline,
                "fewer than {more} successful requests {what} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) async fn stop(self) -> Seen {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut seen = Seen::default();
        for client in self.clients {
            let (failures, max) = client.await.unwrap();
            seen.failures.extend(failures);
            seen.max_latency = seen.max_latency.max(max);
        }
        seen.ok = self.ok.load(std::sync::atomic::Ordering::Relaxed);
        seen.failed = seen.failures.len() as u64;
        seen
    }
}
