//! Test harness: start a hosting model as a real process on 127.0.0.1:0, wait
//! for its ready line, and stop it again (checking that it exited).
//!
//! Every child is started with `PR_SET_PDEATHSIG = SIGKILL`, and the guard
//! kills it on drop, so no server outlives a failed or killed test run.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a server may take to print its ready line on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

pub fn hostlab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostlab"));
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
    }
    cmd
}

/// A running `hostlab serve` process.
pub struct Server {
    child: Option<Child>,
    pub model: String,
    /// Base URL from the ready line, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub pid: u32,
    pub ready_line: String,
}

impl Server {
    /// `hostlab serve MODEL --listen 127.0.0.1:0 EXTRA...` (EXTRA may give
    /// its own `--listen`), ready to use.
    pub fn start(model: &str, extra: &[&str]) -> Server {
        Self::spawn(model, extra, None)
    }

    /// The same, with the server (and its children) allowed only on `cpu`.
    pub fn start_pinned(model: &str, extra: &[&str], cpu: usize) -> Server {
        Self::spawn(model, extra, Some(cpu))
    }

    fn spawn(model: &str, extra: &[&str], cpu: Option<usize>) -> Server {
        let mut command = hostlab();
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
        let mut child = command
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("TEST_SERVER_LOG").unwrap_or("warn,ractor_cluster=error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hostlab serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                panic!("`hostlab serve {model}` printed no ready line: {other:?}");
            }
        };
        let (url, pid) = parse_ready_line(&line, model);
        assert_eq!(pid, child.id(), "ready line pid is the process's pid");
        Server {
            child: Some(child),
            model: model.to_owned(),
            url,
            pid,
            ready_line: line,
        }
    }

    /// The `admin=` URL of the ready line (fronts started with `--admin`).
    pub fn admin_url(&self) -> String {
        self.ready_line
            .split(' ')
            .find_map(|f| f.strip_prefix("admin="))
            .expect("ready line has admin=")
            .to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid as i32), signal).expect("signal the server");
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Send `signal` and wait for the process to exit; returns its status.
    pub fn stop_with(mut self, signal: Signal) -> ExitStatus {
        self.signal(signal);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`hostlab serve {}` did not exit within {EXIT_TIMEOUT:?} of {signal}",
                    self.model
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop (SIGTERM); asserts a clean exit.
    pub fn stop(self) {
        let model = self.model.clone();
        let status = self.stop_with(Signal::SIGTERM);
        assert!(
            status.success(),
            "`hostlab serve {model}` exited with {status} after SIGTERM"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `hostlab ready model=<MODEL> url=http://<ADDR> pid=<PID>`, checked strictly.
pub fn parse_ready_line(line: &str, model: &str) -> (String, u32) {
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
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Wait (at most 20 s) for a process to be gone; true if it went.
pub async fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while process_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
