//! A CPU-capped control group for a model's server processes (the
//! server-bound mode, `hostlab run --server-cpu-quota F`): cgroup v2
//! `cpu.max` where the unified hierarchy has the cpu controller, else
//! cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.
//!
//! Every group made is registered so that [`remove_all`] (the Ctrl-C path)
//! can empty and remove it; [`CpuGroup`]'s `Drop` removes it on every other
//! path. Nothing is left under /sys/fs/cgroup.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

/// Quota period: short, so that a throttled group waits at most this long
/// (DESIGN.md "Control groups here").
pub(crate) const PERIOD: Duration = Duration::from_millis(10);

/// Groups made by this process and not yet removed.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Which cgroup interface a group uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// Where a CPU-capped group can be made on this machine: the cpu
/// controller's folder and its interface, or why none can be.
pub(crate) fn controller() -> Result<(PathBuf, Version), String> {
    let mounts = std::fs::read_to_string("/proc/mounts").map_err(|e| format!("cannot read /proc/mounts: {e}"))?;
    let mut v1 = None;
    let mut v2 = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, dir, fstype, options, ..] = f[..] else { continue };
        match fstype {
            "cgroup" if options.split(',').any(|o| o == "cpu") => v1 = Some(PathBuf::from(dir)),
            "cgroup2" => {
                let has_cpu = std::fs::read_to_string(Path::new(dir).join("cgroup.subtree_control"))
                    .is_ok_and(|s| s.split_whitespace().any(|c| c == "cpu"));
                if has_cpu {
                    v2 = Some(PathBuf::from(dir));
                }
            }
            _ => {}
        }
    }
    match (v2, v1) {
        (Some(dir), _) => Ok((dir, Version::V2)),
        (None, Some(dir)) => Ok((dir, Version::V1)),
        (None, None) => Err(
            "no cgroup cpu controller is mounted or enabled (v1 `cpu`, or v2 with `cpu` in \
                             cgroup.subtree_control)"
                .into(),
        ),
    }
}

/// Throttling counters of a group (`cpu.stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Throttling {
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled: Duration,
}

impl Throttling {
    pub(crate) fn since(self, before: Throttling) -> Throttling {
        Throttling {
            nr_periods: self.nr_periods.saturating_sub(before.nr_periods),
            nr_throttled: self.nr_throttled.saturating_sub(before.nr_throttled),
            throttled: self.throttled.saturating_sub(before.throttled),
        }
    }
}

/// Parses `cpu.stat` (v1: `throttled_time` in ns; v2: `throttled_usec`).
pub(crate) fn parse_cpu_stat(text: &str) -> Throttling {
    let mut t = Throttling::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<u64>() else { continue };
        match key {
            "nr_periods" => t.nr_periods = v,
            "nr_throttled" => t.nr_throttled = v,
            "throttled_time" => t.throttled = Duration::from_nanos(v),
            "throttled_usec" => t.throttled = Duration::from_micros(v),
            _ => {}
        }
    }
    t
}

/// One CPU-capped group; removed on drop.
#[derive(Debug)]
pub(crate) struct CpuGroup {
    dir: PathBuf,
    version: Version,
    /// Cores the group may use (quota / period).
    pub cores: f64,
}

impl CpuGroup {
    /// Makes a group `name` capped at `cores` (e.g. 0.5) with [`PERIOD`].
    pub(crate) fn create(name: &str, cores: f64) -> anyhow::Result<CpuGroup> {
        if !(cores.is_finite() && cores > 0.0) {
            bail!("the CPU quota must be a positive number of cores, not {cores}");
        }
        let (root, version) = controller().map_err(|e| anyhow!(e))?;
        let dir = root.join(name);
        std::fs::create_dir(&dir).with_context(|| format!("cannot create the control group {}", dir.display()))?;
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(dir.clone());
        let group = CpuGroup { dir, version, cores };
        let period = PERIOD.as_micros() as u64;
        let quota = ((cores * period as f64).round() as u64).max(1000);
        match version {
            Version::V1 => {
                group.write("cpu.cfs_period_us", &period.to_string())?;
                group.write("cpu.cfs_quota_us", &quota.to_string())?;
            }
            Version::V2 => group.write("cpu.max", &format!("{quota} {period}"))?,
        }
        Ok(group)
    }

    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, file: &str, value: &str) -> anyhow::Result<()> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).with_context(|| format!("cannot write {value} to {}", path.display()))
    }

    /// Moves a process (every thread of it) into the group; its later
    /// children start in it.
    pub(crate) fn add(&self, pid: u32) -> anyhow::Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// The processes in the group now.
    #[cfg(test)]
    pub(crate) fn pids(&self) -> Vec<u32> {
        read_pids(&self.dir)
    }

    pub(crate) fn throttling(&self) -> Throttling {
        std::fs::read_to_string(self.dir.join("cpu.stat"))
            .map_or_else(|_| Throttling::default(), |s| parse_cpu_stat(&s))
    }

    pub(crate) fn version(&self) -> Version {
        self.version
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        remove(&self.dir);
    }
}

fn read_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Removes a group: processes still in it go back to the root group first
/// (they are the model's and are stopped by their owner), then rmdir,
/// retried for a moment while exiting processes leave.
fn remove(dir: &Path) {
    let root_procs = dir.parent().map(|p| p.join("cgroup.procs"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(root) = &root_procs {
            for pid in read_pids(dir) {
                let _ = std::fs::write(root, pid.to_string());
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                eprintln!(
                    "hostlab: warning: cannot remove the control group {}: {e}",
                    dir.display()
                );
                break;
            }
        }
    }
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|d| d != dir);
}

/// Removes every group this process made (the Ctrl-C path).
pub(crate) fn remove_all() {
    let dirs: Vec<PathBuf> = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for dir in dirs {
        remove(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_stat_both_versions() {
        let v1 = parse_cpu_stat("nr_periods 10\nnr_throttled 4\nthrottled_time 2000000\nnr_bursts 0\n");
        assert_eq!(
            v1,
            Throttling {
                nr_periods: 10,
                nr_throttled: 4,
                throttled: Duration::from_millis(2)
            }
        );
        let v2 = parse_cpu_stat("usage_usec 5\nnr_periods 3\nnr_throttled 1\nthrottled_usec 700\n");
        assert_eq!(v2.nr_throttled, 1);
        assert_eq!(v2.throttled, Duration::from_micros(700));
    }

    #[test]
    fn a_bad_quota_is_refused() {
        assert!(CpuGroup::create("hostlab-test-bad", 0.0).is_err());
        assert!(CpuGroup::create("hostlab-test-bad", f64::NAN).is_err());
    }

    /// Creates a group, caps a busy child in it, sees it throttled, and
    /// removes the group, child still running or not. Skips (saying so)
    /// where no group can be made.
    #[test]
    fn group_is_made_throttles_and_is_removed() {
        let name = format!("hostlab-test-{}", std::process::id());
        let group = match CpuGroup::create(&name, 0.1) {
            Ok(g) => g,
            Err(e) => {
                println!("SKIPPED: no control group can be made here: {e:#}");
                return;
            }
        };
        let dir = group.dir().to_path_buf();
        assert!(dir.is_dir());
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        group.add(child.id()).unwrap();
        assert_eq!(group.pids(), vec![child.id()]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while group.throttling().nr_throttled == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let throttled = group.throttling().nr_throttled;
        drop(group);
        let _ = child.kill();
        let _ = child.wait();
        assert!(throttled > 0, "a busy loop capped at 0.1 core was never throttled");
        assert!(!dir.exists(), "{} was left behind", dir.display());
        assert!(!LIVE.lock().unwrap().contains(&dir));
    }
}
