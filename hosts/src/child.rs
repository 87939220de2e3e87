//! Child processes of the front models: this same executable started again
//! as `hostlab serve app|worker ...`.
//!
//! Every child gets `PR_SET_PDEATHSIG = SIGKILL`, so it dies with its parent
//! even when the parent is SIGKILLed. The kernel ties that signal to the
//! *thread* that forked the child, so children are always spawned from a
//! tokio worker thread (which lives as long as the runtime), never from a
//! blocking-pool thread (which exits after 10 s idle).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::worker_protocol::Command as WorkerCommand;

/// What went wrong starting a child.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("`{command}` printed no ready line within the startup limit of {limit:?}")]
    StartupTimeout { command: String, limit: Duration },
    #[error("`{command}` exited before it was ready ({status})")]
    ExitedEarly { command: String, status: String },
    #[error("`{command}` printed `{line}` instead of a ready line")]
    BadReadyLine { command: String, line: String },
}

/// How to start one child.
pub struct ChildSpec {
    /// Arguments after the executable, e.g. `serve app --listen 127.0.0.1:0`.
    pub args: Vec<String>,
    /// A listening socket handed to the child as fd 3 (`LISTEN_FDS=1`).
    pub listener: Option<OwnedFd>,
    /// Longest wait for the ready line.
    pub startup_limit: Duration,
    /// CPUs the child (and its own children) may run on; `None` inherits ours.
    pub cpus: Option<Vec<usize>>,
}

impl ChildSpec {
    /// `hostlab ARGS...`, no socket, inheriting our CPUs.
    pub fn new(args: Vec<String>, startup_limit: Duration) -> ChildSpec {
        ChildSpec {
            args,
            listener: None,
            startup_limit,
            cpus: None,
        }
    }
}

/// A started child that printed its ready line.
pub struct ChildProcess {
    pub pid: u32,
    /// `url=` of the ready line.
    pub url: String,
    /// `admin=` of the ready line, if any.
    pub admin_url: Option<String>,
    /// Time from spawn to ready line.
    pub start_to_ready: Duration,
    process: Child,
    stdin: Option<ChildStdin>,
    /// Lines the child prints on stdout after its ready line.
    lines: mpsc::UnboundedReceiver<String>,
}

impl ChildProcess {
    /// Start the child and wait for its ready line.
    pub async fn start(spec: ChildSpec) -> Result<ChildProcess, ChildError> {
        let exe = own_executable().map_err(|source| ChildError::Spawn {
            command: "hostlab".into(),
            source,
        })?;
        let command_text = format!("hostlab {}", spec.args.join(" "));
        let mut cmd = Command::new(&exe.program);
        cmd.arg0(&exe.arg0)
            .args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(fd) = spec.listener {
            cmd.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
            cmd.fd_mappings(vec![FdMapping {
                parent_fd: fd,
                child_fd: 3,
            }])
            .expect("one mapping cannot collide");
        }
        let cpus = spec.cpus.as_deref().unwrap_or_default();
        tie_to_parent(cmd.as_std_mut(), Signal::SIGKILL, cpus).map_err(|e| ChildError::Spawn {
            command: command_text.clone(),
            source: std::io::Error::other(format!("CPUs {cpus:?}: {e}")),
        })?;
        let started = Instant::now();
        let mut process = cmd.spawn().map_err(|source| ChildError::Spawn {
            command: command_text.clone(),
            source,
        })?;
        let pid = process.id().unwrap_or_default();
        let stdout = process.stdout.take().expect("stdout is piped");
        let stdin = process.stdin.take();
        let mut reader = BufReader::new(stdout).lines();

        let first = tokio::time::timeout(spec.startup_limit, reader.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(_) => {
                let status = process.wait().await.map(|s| s.to_string()).unwrap_or_default();
                return Err(ChildError::ExitedEarly {
                    command: command_text,
                    status,
                });
            }
            Err(_) => {
                let _ = process.start_kill();
                let _ = process.wait().await;
                return Err(ChildError::StartupTimeout {
                    command: command_text,
                    limit: spec.startup_limit,
                });
            }
        };
        let Some(ready) = ReadyLine::parse(&line) else {
            let _ = process.start_kill();
            let _ = process.wait().await;
            return Err(ChildError::BadReadyLine {
                command: command_text,
                line,
            });
        };
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    // Nobody listens any more: keep draining so the child never blocks.
                    continue;
                }
            }
        });
        Ok(ChildProcess {
            pid,
            url: ready.url,
            admin_url: ready.admin,
            start_to_ready: started.elapsed(),
            process,
            stdin,
            lines,
        })
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), signal);
    }

    /// Write one command line to the worker's stdin ([`crate::worker_protocol`]).
    pub async fn tell(&mut self, command: WorkerCommand) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or(std::io::ErrorKind::BrokenPipe)?;
        stdin.write_all(format!("{command}\n").as_bytes()).await?;
        stdin.flush().await
    }

    /// The next line the child prints, or its exit.
    pub async fn next_event(&mut self) -> ChildEvent {
        let describe = |status: std::io::Result<ExitStatus>| status.map_or_else(|e| e.to_string(), |s| s.to_string());
        tokio::select! {
            status = self.process.wait() => ChildEvent::Exited(describe(status)),
            line = self.lines.recv() => match line {
                Some(line) => ChildEvent::Line(line),
                // stdout closed: only the exit is left to wait for.
                None => ChildEvent::Exited(describe(self.process.wait().await)),
            },
        }
    }

    /// Wait for the child to exit by itself.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.process.wait().await
    }

    /// SIGTERM, wait up to `limit`, then SIGKILL. Returns the exit status and
    /// whether it had to be killed.
    pub async fn stop(&mut self, limit: Duration) -> (Option<ExitStatus>, bool) {
        // A suspended child cannot handle SIGTERM until it runs again.
        self.signal(Signal::SIGCONT);
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(limit, self.process.wait()).await {
            Ok(status) => (status.ok(), false),
            Err(_) => {
                let _ = self.process.start_kill();
                (self.process.wait().await.ok(), true)
            }
        }
    }

    /// Resident set size of the child, from `/proc/PID/statm`.
    pub fn rss_bytes(&self) -> Option<u64> {
        hostlab_workloads::rss_bytes(self.pid)
    }
}

/// Something a running child did.
pub enum ChildEvent {
    /// It exited, with this status.
    Exited(String),
    /// It printed this line on stdout.
    Line(String),
}

/// `hostlab ready model=<MODEL> url=http://<ADDR> pid=<PID> [admin=http://<ADDR>]`
/// (DESIGN.md "Command line"): parsed here, printed by its `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyLine {
    pub model: String,
    pub url: String,
    pub pid: u32,
    pub admin: Option<String>,
}

impl ReadyLine {
    pub fn parse(line: &str) -> Option<ReadyLine> {
        let rest = line.strip_prefix("hostlab ready ")?;
        let (mut model, mut url, mut pid, mut admin) = (None, None, None, None);
        for field in rest.split(' ') {
            let (key, value) = field.split_once('=')?;
            match key {
                "model" => model = Some(value.to_owned()),
                "url" => url = Some(value.to_owned()),
                "pid" => pid = value.parse().ok(),
                "admin" => admin = Some(value.to_owned()),
                _ => {}
            }
        }
        Some(ReadyLine {
            model: model?,
            url: url?,
            pid: pid?,
            admin,
        })
    }
}

impl std::fmt::Display for ReadyLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "hostlab ready model={} url={} pid={}",
            self.model, self.url, self.pid
        )?;
        match &self.admin {
            Some(admin) => write!(f, " admin={admin}"),
            None => Ok(()),
        }
    }
}

/// What a child is started from: this process's own executable.
struct OwnExecutable {
    /// The file executed.
    program: PathBuf,
    /// The child's `argv[0]`: the executable's path as we were started from
    /// it, whichever file `program` is.
    arg0: PathBuf,
}

/// Ties `command`'s process to the thread that spawns it: it gets `signal`
/// when that thread exits (`PR_SET_PDEATHSIG`, so a killed hostlab leaves no
/// process behind), and runs only on `cpus` (all CPUs when empty). The CPU
/// set is built here, before the fork.
pub fn tie_to_parent(command: &mut std::process::Command, signal: Signal, cpus: &[usize]) -> nix::Result<()> {
    use std::os::unix::process::CommandExt;
    let set = if cpus.is_empty() {
        None
    } else {
        let mut set = nix::sched::CpuSet::new();
        for &cpu in cpus {
            set.set(cpu)?;
        }
        Some(set)
    };
    // SAFETY: prctl and sched_setaffinity are async-signal-safe and touch no
    // memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from)?;
            if let Some(set) = &set {
                nix::sched::sched_setaffinity(Pid::from_raw(0), set).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    Ok(())
}

/// A command that runs this process's own image (see [`own_executable`]),
/// for callers that start hostlab children themselves.
pub fn own_command() -> std::io::Result<std::process::Command> {
    use std::os::unix::process::CommandExt;
    let exe = own_executable()?;
    let mut command = std::process::Command::new(&exe.program);
    command.arg0(&exe.arg0);
    Ok(command)
}

/// The running image, even when its file was replaced since we started.
///
/// [`std::env::current_exe`] is a path: when the binary is rebuilt or
/// replaced during a run (a `cargo build` while a long test or run goes on),
/// it names a deleted file or another build, and every later start fails.
/// On Linux `/proc/self/exe` always opens the image this process runs,
/// deleted or not; a process executed through it is named `exe`, though (in
/// /proc/PID/comm, which the run's CPU tables show), so the path is kept
/// while it still is that same file and `/proc/self/exe` used only when it
/// no longer is. Elsewhere: [`std::env::current_exe`].
fn own_executable() -> std::io::Result<OwnExecutable> {
    let current = std::env::current_exe();
    #[cfg(target_os = "linux")]
    if let Some(program) = running_image(current.as_deref().ok(), Path::new("/proc/self/exe")) {
        let arg0 = current.unwrap_or_else(|_| PathBuf::from("hostlab"));
        return Ok(OwnExecutable { program, arg0 });
    }
    let path = current?;
    Ok(OwnExecutable {
        program: path.clone(),
        arg0: path,
    })
}

/// `path` while it is the same file (device and inode) as `image`, else
/// `image`; `path` as it is when `image` cannot be read (no /proc).
#[cfg(target_os = "linux")]
fn running_image(path: Option<&Path>, image: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let file_id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    match (path, file_id(image)) {
        (Some(path), Some(id)) if file_id(path) == Some(id) => Some(path.to_path_buf()),
        (_, Some(_)) => Some(image.to_path_buf()),
        (path, None) => path.map(Path::to_path_buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_parses_with_and_without_admin() {
        let r = ReadyLine::parse("hostlab ready model=app url=http://127.0.0.1:4000 pid=12").unwrap();
        assert_eq!(
            (r.model.as_str(), r.url.as_str(), r.pid, r.admin),
            ("app", "http://127.0.0.1:4000", 12, None)
        );
        let r =
            ReadyLine::parse("hostlab ready model=worker url=http://[::1]:80 pid=3 admin=http://127.0.0.1:9").unwrap();
        assert_eq!(r.admin.as_deref(), Some("http://127.0.0.1:9"));
        assert!(ReadyLine::parse("hostlab ready model=app pid=1").is_none());
        assert!(ReadyLine::parse("listening on 8080").is_none());
    }

    #[test]
    fn ready_line_prints_what_it_parses() {
        for line in [
            "hostlab ready model=app url=http://127.0.0.1:4000 pid=12",
            "hostlab ready model=worker url=http://[::1]:80 pid=3 admin=http://127.0.0.1:9",
        ] {
            assert_eq!(ReadyLine::parse(line).unwrap().to_string(), line);
        }
    }

    #[test]
    fn children_start_from_the_running_image() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let exe = own_executable().unwrap();
        let chosen = std::fs::metadata(&exe.program).unwrap();
        let running = std::fs::metadata("/proc/self/exe").unwrap();
        assert!(chosen.is_file());
        assert_ne!(
            chosen.permissions().mode() & 0o111,
            0,
            "{} is not executable",
            exe.program.display()
        );
        assert_eq!((chosen.dev(), chosen.ino()), (running.dev(), running.ino()));
        assert_eq!(exe.arg0, std::env::current_exe().unwrap());
    }

    #[test]
    fn a_replaced_or_deleted_binary_falls_back_to_proc_self_exe() {
        let image = Path::new("/proc/self/exe");
        let current = std::env::current_exe().unwrap();
        // Still the running file: its path, so the child keeps its name.
        assert_eq!(running_image(Some(&current), image), Some(current.clone()));
        // Replaced by another file, deleted, or unknown: the running image.
        let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert_eq!(running_image(Some(&other), image), Some(image.to_path_buf()));
        let deleted = PathBuf::from(format!("{} (deleted)", current.display()));
        assert_eq!(running_image(Some(&deleted), image), Some(image.to_path_buf()));
        assert_eq!(running_image(None, image), Some(image.to_path_buf()));
        // No /proc: the path as it is.
        let no_proc = Path::new("/nonexistent/proc/self/exe");
        assert_eq!(running_image(Some(&current), no_proc), Some(current));
        assert_eq!(running_image(None, no_proc), None);
    }
}
