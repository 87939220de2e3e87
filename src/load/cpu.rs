//! The generator's own CPUs: pinning the process to a CPU list, reading
//! which CPUs it may use, and its CPU time (getrusage), so every report
//! says how busy the generator itself was.

use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::Pid;

/// Pins the calling thread, and so every thread it starts afterwards, to
/// `cpus`. Call it before building the tokio runtime.
pub fn pin(cpus: &[usize]) -> nix::Result<()> {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
}

/// The CPUs this process may run on now (its affinity mask).
pub fn allowed() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// User plus system CPU time this process has used so far.
pub(super) fn process_time() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) * 1000) as u32)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Times this process's threads were taken off their CPU while they could
/// still run (getrusage's involuntary context switches): another thread or
/// process ran on the generator's CPU meanwhile.
pub(super) fn preemptions() -> u64 {
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| u.involuntary_context_switches().max(0) as u64)
}

/// Time this process's threads spent runnable but waiting for a CPU,
/// summed over its threads (the second field of each
/// `/proc/self/task/*/schedstat`): the CPU was busy with another thread or
/// process. Zero where the kernel does not provide it.
pub(super) fn run_queue_wait() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// CPU time over wall time as a percentage of one core (200 = two cores busy).
pub(super) fn percent_of_one_core(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent() {
        let s = Duration::from_secs;
        assert_eq!(percent_of_one_core(s(1), s(2)), 50.0);
        assert_eq!(percent_of_one_core(s(4), s(2)), 200.0);
        assert_eq!(percent_of_one_core(s(1), Duration::ZERO), 0.0);
    }

    #[test]
    fn process_time_moves() {
        let before = process_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_time() > before);
        // Never negative; moves only when the CPU was contended.
        let wait = run_queue_wait();
        assert!(run_queue_wait() >= wait);
        assert!(!allowed().is_empty());
    }
}
