//! The remoting link alone (claim C8), as the `link` scenario measures it:
//! a `hostlab link-sink` process pinned to one CPU and this bench, pinned
//! to another, over one ractor_cluster session. `one_way`: messages cast in
//! windows of 10,000 (each closed by a count call); `round_trip`: calls with
//! 64 in flight. Criterion reports each as elements (messages) per second.
//! `cargo bench --bench link`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hostlab_workloads::link::LinkSender;
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

const ONE_WAY_IN_FLIGHT: u64 = 10_000;
const CALLS_IN_FLIGHT: usize = 64;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The sink process; killed on drop.
struct Sink {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The allowed CPUs: the bench takes the first, the sink the last.
fn cpus() -> (usize, usize) {
    let allowed = sched_getaffinity(Pid::from_raw(0)).expect("sched_getaffinity");
    let list: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| allowed.is_set(c).unwrap_or(false))
        .collect();
    (list[0], *list.last().expect("one CPU at least"))
}

fn pin(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu).expect("a valid CPU");
    set
}

fn start_sink(cpu: usize) -> Sink {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hostlab"));
    let mut cmd = Command::new(&exe);
    cmd.args(["link-sink", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn,ractor_cluster=error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let set = pin(cpu);
    // SAFETY: prctl and sched_setaffinity are async-signal-safe and touch no
    // parent memory.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Some(Ok(line))) => line,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`hostlab link-sink` printed no ready line within {READY_TIMEOUT:?}: {other:?}");
        }
    };
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("url=http://"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not a ready line: {line}"));
    Sink { child, addr }
}

fn link(c: &mut Criterion) {
    let (bench_cpu, sink_cpu) = cpus();
    sched_setaffinity(Pid::from_raw(0), &pin(bench_cpu)).expect("pin the bench");
    let sink = start_sink(sink_cpu);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let sender = rt
        .block_on(LinkSender::connect(sink.addr))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("link");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_way", |b| {
        b.iter_custom(|iters| {
            rt.block_on(sender.one_way_n(iters, ONE_WAY_IN_FLIGHT))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(sender.round_trips_n(iters, CALLS_IN_FLIGHT))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    group.finish();
    drop(sender);
    drop(sink);
}

criterion_group!(benches, link);
criterion_main!(benches);
