//! CPU accounting of a model's server processes: precise per-thread counters
//! (`/proc/PID/task/TID/schedstat`, nanoseconds, through the `procfs` crate),
//! each process's role from its command line, the server cores' busy and
//! steal time from `/proc/stat`, and the model's idle cost.
//!
//! On loopback the kernel charges a packet's receive work to the sending
//! process (DESIGN.md "Loopback CPU accounting"), and part of it runs in
//! ksoftirqd, so the process sum and the core's busy time are both reported.

pub(super) mod cgroup;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use procfs::CurrentSI;
use procfs::process::Process;

use hostlab_hosts::{Model, Role};

use super::results::CpuFigures;

/// Steal time above this share of the window makes the figures suspect.
pub(super) const STEAL_WARN_PERCENT: f64 = 2.0;

/// The model or part a `hostlab serve MODEL ...` command line serves.
pub(super) fn served_model(cmdline: &[String]) -> Option<Model> {
    let serve = cmdline.iter().position(|a| a == "serve")?;
    cmdline.get(serve + 1)?.parse().ok()
}

/// The role of a process from its command line: nginx's master and workers
/// are [`Role::Nginx`]; a `hostlab serve MODEL` process has the role of the
/// part it serves, [`Model::process_role`]: `serve app|edge|edge-actix|baseline`
/// is `app`, `serve proxy|inprocess|split` `front` (the process clients talk
/// to, or its supervisor), `serve worker` and split's front workers (`serve
/// front`) `worker`, `serve actors` `actors`.
pub(super) fn role_from_cmdline(cmdline: &[String]) -> Option<Role> {
    let program = cmdline.first()?;
    let base = program.rsplit('/').next().unwrap_or(program);
    if base == "nginx" || base.starts_with("nginx:") {
        return Some(Role::Nginx);
    }
    served_model(cmdline)?.process_role()
}

/// The command line of a running process.
fn cmdline(pid: u32) -> Option<Vec<String>> {
    Process::new(pid as i32).ok()?.cmdline().ok()
}

/// The model or part a running `hostlab serve` process serves.
pub(super) fn served_by(pid: u32) -> Option<Model> {
    served_model(&cmdline(pid)?)
}

/// The role of a running process (nginx renames its processes to
/// `nginx: master process ...`, so the command name is checked too).
pub(super) fn role_of(pid: u32) -> Option<Role> {
    if let Some(role) = cmdline(pid).and_then(|c| role_from_cmdline(&c)) {
        return Some(role);
    }
    let comm = Process::new(pid as i32).ok()?.stat().ok()?.comm;
    (comm == "nginx").then_some(Role::Nginx)
}

/// CPU time of every thread of a process so far, in nanoseconds (the
/// scheduler's `sum_exec_runtime`). Threads that exited are not counted.
pub(super) fn process_cpu_ns(pid: u32) -> Option<u64> {
    let process = Process::new(pid as i32).ok()?;
    let tasks = process.tasks().ok()?;
    Some(
        tasks
            .flatten()
            .filter_map(|t| t.schedstat().ok())
            .map(|s| s.sum_exec_runtime)
            .sum(),
    )
}

/// Busy, steal and total time of some CPUs so far, from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct CoreTimes {
    /// user + nice + system + irq + softirq.
    pub busy: Duration,
    pub steal: Duration,
    /// Every state, idle and iowait included.
    pub total: Duration,
}

impl CoreTimes {
    /// The sum over `cpus` now.
    pub(super) fn now(cpus: &[usize]) -> Option<CoreTimes> {
        let stats = procfs::KernelStats::current().ok()?;
        let tick = 1.0 / procfs::ticks_per_second() as f64;
        let mut out = CoreTimes::default();
        for &cpu in cpus {
            let t = stats.cpu_time.get(cpu)?;
            let busy = t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0);
            let steal = t.steal.unwrap_or(0);
            let total = busy + steal + t.idle + t.iowait.unwrap_or(0);
            out.busy += Duration::from_secs_f64(busy as f64 * tick);
            out.steal += Duration::from_secs_f64(steal as f64 * tick);
            out.total += Duration::from_secs_f64(total as f64 * tick);
        }
        Some(out)
    }

    fn since(self, before: CoreTimes) -> CoreTimes {
        CoreTimes {
            busy: self.busy.saturating_sub(before.busy),
            steal: self.steal.saturating_sub(before.steal),
            total: self.total.saturating_sub(before.total),
        }
    }
}

/// A process's CPU over a window, with its role (`None`: not told from
/// its command line, counted as `?`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ProcessCpu {
    pub pid: u32,
    pub role: Option<Role>,
    pub cpu: Duration,
}

/// CPU of a set of processes and of the server cores over one window.
#[derive(Debug)]
pub(super) struct CpuWindow {
    started: Instant,
    cpus: Vec<usize>,
    core: Option<CoreTimes>,
    before: Vec<(u32, Option<Role>, u64)>,
}

/// What a [`CpuWindow`] measured.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WindowCpu {
    pub wall: Duration,
    pub processes: Vec<ProcessCpu>,
    /// The server cores over the window (`None` where /proc/stat is unreadable).
    pub core: Option<CoreTimes>,
    /// Processes whose role could not be told from their command line.
    pub unknown: Vec<u32>,
}

impl CpuWindow {
    /// Starts counting `pids` (a model's process tree) and the cores `cpus`.
    pub(super) fn start(pids: &[u32], cpus: &[usize]) -> CpuWindow {
        let before = pids
            .iter()
            .filter_map(|&pid| Some((pid, role_of(pid), process_cpu_ns(pid)?)))
            .collect();
        CpuWindow {
            started: Instant::now(),
            cpus: cpus.to_vec(),
            core: CoreTimes::now(cpus),
            before,
        }
    }

    pub(super) fn finish(self) -> WindowCpu {
        let core = match (CoreTimes::now(&self.cpus), self.core) {
            (Some(after), Some(before)) => Some(after.since(before)),
            _ => None,
        };
        let wall = self.started.elapsed();
        let mut unknown = Vec::new();
        let processes = self
            .before
            .iter()
            .filter_map(|&(pid, role, before)| {
                let after = process_cpu_ns(pid)?;
                if role.is_none() {
                    unknown.push(pid);
                }
                Some(ProcessCpu {
                    pid,
                    role,
                    cpu: Duration::from_nanos(after.saturating_sub(before)),
                })
            })
            .collect();
        WindowCpu {
            wall,
            processes,
            core,
            unknown,
        }
    }
}

impl WindowCpu {
    /// CPU of every counted process per second of the window, in µs.
    pub(super) fn us_per_s(&self) -> f64 {
        let total: Duration = self.processes.iter().map(|p| p.cpu).sum();
        total.as_secs_f64() * 1e6 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The `cpu` object of an entry: figures per request over `requests`
    /// (every request with an outcome in the window), `idle_us_per_s` from a
    /// separate idle window of the same model.
    pub(super) fn figures(&self, requests: u64, idle_us_per_s: f64) -> CpuFigures {
        let n = requests.max(1) as f64;
        let mut by_role: BTreeMap<String, f64> = BTreeMap::new();
        for p in &self.processes {
            *by_role.entry(p.role.map_or("?", Role::name).to_string()).or_default() += p.cpu.as_secs_f64() * 1e6 / n;
        }
        let us_per_request = by_role.values().sum();
        let (core_busy_us_per_request, steal_percent) = match self.core {
            Some(c) => (
                c.busy.as_secs_f64() * 1e6 / n,
                if c.total.is_zero() {
                    0.0
                } else {
                    c.steal.as_secs_f64() / c.total.as_secs_f64() * 100.0
                },
            ),
            None => (f64::NAN, f64::NAN),
        };
        CpuFigures {
            us_per_request,
            core_busy_us_per_request,
            by_role,
            idle_us_per_s,
            steal_percent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn roles_from_command_lines() {
        let r = |s| role_from_cmdline(&args(s)).map(Role::name);
        assert_eq!(r("/x/hostlab serve edge --listen 127.0.0.1:0"), Some("app"));
        assert_eq!(r("hostlab serve edge-actix"), Some("app"));
        assert_eq!(r("hostlab serve baseline --listen 127.0.0.1:0"), Some("app"));
        assert_eq!(r("hostlab serve app --listen 127.0.0.1:0"), Some("app"));
        assert_eq!(r("hostlab serve proxy --admin 127.0.0.1:0"), Some("front"));
        assert_eq!(r("hostlab serve inprocess"), Some("front"));
        assert_eq!(r("hostlab serve split"), Some("front"));
        // split's front workers call the router in-process, as inprocess's workers do.
        assert_eq!(r("hostlab serve front --actors 127.0.0.1:5"), Some("worker"));
        assert_eq!(r("hostlab serve worker"), Some("worker"));
        assert_eq!(r("hostlab serve actors"), Some("actors"));
        assert_eq!(r("/usr/sbin/nginx -p /tmp/x -c /tmp/x/nginx.conf"), Some("nginx"));
        assert_eq!(r("nginx: worker process"), Some("nginx"));
        assert_eq!(r("hostlab serve teapot"), None);
        assert_eq!(r("bash -c true"), None);
        assert_eq!(r(""), None);
    }

    /// Every process a model runs has one of the model's roles, and
    /// together they have them all (what `cpu.by_role` of its entries holds).
    #[test]
    fn the_processes_of_a_model_have_its_roles() {
        let processes = |model: Model| -> Vec<Model> {
            let mut parts = vec![model.serve_as(), model.serving_part()];
            if model == Model::Split {
                parts.push(Model::Actors);
            }
            parts
        };
        for model in Model::top_level() {
            let mut roles: Vec<Role> = processes(model)
                .into_iter()
                .filter_map(|part| role_from_cmdline(&args(&format!("hostlab serve {part}"))))
                .collect();
            if model.needs_nginx() {
                roles.push(role_from_cmdline(&args("nginx: master process")).unwrap());
            }
            roles.sort();
            roles.dedup();
            assert_eq!(roles, model.roles(), "{model}");
        }
    }

    #[test]
    fn a_busy_process_is_counted_in_nanoseconds() {
        // A single-threaded child: this test process's own thread set changes
        // as other tests finish, so its live-thread sum is not monotonic.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let before = process_cpu_ns(pid).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut after = before;
        while after <= before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            after = process_cpu_ns(pid).unwrap();
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(after > before, "a busy loop used no CPU in 20 s");
        assert!(CoreTimes::now(&[0]).is_some_and(|c| c.total > Duration::ZERO));
    }

    #[test]
    fn figures_sum_roles_to_the_total() {
        let w = WindowCpu {
            wall: Duration::from_secs(1),
            processes: vec![
                ProcessCpu {
                    pid: 1,
                    role: Some(Role::Front),
                    cpu: Duration::from_millis(300),
                },
                ProcessCpu {
                    pid: 2,
                    role: Some(Role::App),
                    cpu: Duration::from_millis(200),
                },
                ProcessCpu {
                    pid: 3,
                    role: Some(Role::App),
                    cpu: Duration::from_millis(100),
                },
            ],
            core: Some(CoreTimes {
                busy: Duration::from_millis(700),
                steal: Duration::from_millis(10),
                total: Duration::from_millis(1000),
            }),
            unknown: Vec::new(),
        };
        let f = w.figures(1000, 5.0);
        assert!((f.us_per_request - 600.0).abs() < 1e-9);
        assert!((f.by_role["front"] - 300.0).abs() < 1e-9);
        assert!((f.by_role["app"] - 300.0).abs() < 1e-9);
        assert!(!f.by_role.contains_key("worker"));
        assert!((f.core_busy_us_per_request - 700.0).abs() < 1e-9);
        assert!((f.steal_percent - 1.0).abs() < 1e-9);
        assert!((w.us_per_s() - 600_000.0).abs() < 1.0);
    }
}
