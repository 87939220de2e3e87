//! Child processes for tests and benches: spawn with the parent-death signal,
//! read the ready line (or wait for the exit) within a timeout, capture
//! stdout and stderr, and kill the process when its guard is dropped, also
//! when a test panics. The one place where tests and benches start `hostlab`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a server may take to print its ready line on a busy 2-core
/// machine (a debug build, other builds running).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Most stderr kept per process (the tail).
const STDERR_KEPT: usize = 64 * 1024;

/// What went wrong with a child.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{program} printed no ready line within {timeout:?} ({got}); stderr:\n{stderr}")]
    NoReadyLine {
        program: String,
        timeout: Duration,
        got: String,
        stderr: String,
    },
    #[error("{program} did not exit within {timeout:?} (killed); stderr:\n{stderr}")]
    Timeout {
        program: String,
        timeout: Duration,
        stderr: String,
    },
    #[error("waiting for {program}: {source}")]
    Wait { program: String, source: std::io::Error },
}

/// A command that gets SIGKILL when the thread that spawned it exits
/// (`PR_SET_PDEATHSIG`), so a killed test run leaves no process behind.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    hostlab_hosts::child::tie_to_parent(&mut cmd, Signal::SIGKILL, &[]).expect("no CPU set to build");
    cmd
}

/// A running child, killed (after a SIGCONT, in case it was stopped) and
/// reaped when dropped.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    program: String,
    pid: u32,
    first_line: mpsc::Receiver<Option<String>>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// Spawns `cmd` with stdout and stderr captured (stdin closed). Use a
/// command from [`command`] for the parent-death signal.
pub fn spawn(cmd: &mut Command) -> Result<Running, ChildError> {
    let program = format!("`{}`", describe(cmd));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ChildError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    let (tx, first_line) = mpsc::channel();
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let buf = stdout.clone();
        readers.push(std::thread::spawn(move || {
            let mut lines = BufReader::new(out);
            let mut first = true;
            loop {
                let mut line = String::new();
                match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                buf.lock().unwrap().extend_from_slice(line.as_bytes());
                if first {
                    first = false;
                    let _ = tx.send(Some(line.trim_end().to_string()));
                }
            }
            // No line at all: tell a waiting reader now rather than at its timeout.
            let _ = tx.send(None);
        }));
    }
    if let Some(mut err) = child.stderr.take() {
        let buf = stderr.clone();
        readers.push(std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut kept = buf.lock().unwrap();
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > STDERR_KEPT {
                    let cut = kept.len() - STDERR_KEPT;
                    kept.drain(..cut);
                }
            }
        }));
    }
    Ok(Running {
        child: Some(child),
        program,
        pid,
        first_line,
        stdout,
        stderr,
        readers,
    })
}

/// Spawns `cmd` and waits at most `timeout` for its first stdout line.
pub fn spawn_ready(cmd: &mut Command, timeout: Duration) -> Result<(Running, String), ChildError> {
    let mut running = spawn(cmd)?;
    let line = running.ready_line(timeout)?;
    Ok((running, line))
}

/// Runs `cmd` to its end, killing it after `timeout`.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Result<Output, ChildError> {
    spawn(cmd)?.wait_within(timeout)
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process's first stdout line, waiting at most `timeout`.
    pub fn ready_line(&mut self, timeout: Duration) -> Result<String, ChildError> {
        let got = match self.first_line.recv_timeout(timeout) {
            Ok(Some(line)) => return Ok(line),
            Ok(None) => "its stdout closed".to_string(),
            Err(mpsc::RecvTimeoutError::Timeout) => "nothing yet".into(),
            Err(mpsc::RecvTimeoutError::Disconnected) => "its stdout closed".into(),
        };
        self.kill();
        Err(ChildError::NoReadyLine {
            program: self.program.clone(),
            timeout,
            got,
            stderr: self.stderr(),
        })
    }

    /// Stderr so far (its last 64 KiB).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        kill(Pid::from_raw(self.pid as i32), signal)
    }

    /// Whether the process still runs (not yet reaped).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits at most `timeout` for the exit; on timeout kills the process
    /// and says so.
    pub fn wait_within(mut self, timeout: Duration) -> Result<Output, ChildError> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            let child = self.child.as_mut().expect("not yet reaped");
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    self.kill();
                    return Err(ChildError::Timeout {
                        program: self.program.clone(),
                        timeout,
                        stderr: self.stderr(),
                    });
                }
                Err(source) => {
                    return Err(ChildError::Wait {
                        program: self.program.clone(),
                        source,
                    });
                }
            }
        };
        self.child = None;
        // The pipes close with the process; a child it left behind may hold
        // them open, so wait a little for the readers, not forever.
        let drained = Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Output {
            status,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        })
    }

    /// Sends `signal`, then waits at most `timeout` for the exit.
    pub fn stop_with(self, signal: Signal, timeout: Duration) -> Result<Output, ChildError> {
        let _ = self.signal(signal);
        self.wait_within(timeout)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe(cmd: &Command) -> String {
    let program = std::path::Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("{program} {}", args.join(" ")).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_is_read_and_the_child_killed_on_drop() {
        let (running, line) = spawn_ready(
            command("sh").args(["-c", "echo hostlab ready; echo oops >&2; sleep 60"]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(line, "hostlab ready");
        let pid = running.pid();
        drop(running);
        assert!(
            kill(Pid::from_raw(pid as i32), None).is_err(),
            "the child is gone after the drop"
        );
    }

    #[test]
    fn no_ready_line_is_an_error_with_stderr() {
        let err = spawn_ready(
            command("sh").args(["-c", "echo broken >&2; sleep 60"]),
            Duration::from_millis(500),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no ready line") && text.contains("nothing yet"), "{text}");
        // The stderr reader may lag the timeout on a busy machine; the
        // message must at least name the program.
        assert!(text.contains("sh -c"), "{text}");
        let closed = spawn_ready(command("sh").args(["-c", "exit 3"]), Duration::from_secs(30)).unwrap_err();
        assert!(closed.to_string().contains("stdout closed"), "{closed}");
    }

    #[test]
    fn output_within_kills_a_hang() {
        let done = output_within(
            command("sh").args(["-c", "echo out; echo err >&2; exit 4"]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(done.status.code(), Some(4));
        assert_eq!((&done.stdout[..], &done.stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
        let hang = output_within(command("sleep").arg("60"), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(hang, ChildError::Timeout { .. }), "{hang}");
    }
}
