//! Multihost (issue 18, opt-in): the split model with its roles on separate
//! hosts. The load generator (`gen`), each front (`front1`, `front2`) and
//! each actor node (`node0`, `node1`) is a host: with `--hosts local` all
//! of them are this machine's loopback (the comparison), with `--hosts
//! netns` each is a network namespace of its own (`crate::netns`), and the
//! loopback comparison runs too. Every process is a child: `hostlab serve
//! actors|front` on the server CPUs and `hostlab load --json` on the
//! client CPUs (the run's own generator cannot reach the namespaces).
//!
//! Per configuration (fronts x actor nodes): closed-loop `GET /books/{id}`
//! over several seeded books through every front, and per host its CPU per
//! request, req/s and latency. Then an actor node is SIGKILLed under load
//! and restarted on its address: failures by class, the time from the
//! restart to the first answer of its shard, and whether the other shard
//! kept answering. Method: docs/multihost.md.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::HostsMode;
use crate::netns::{Host, Lab, NetnsError};
use crate::run::Ctx;
use crate::run::results::{
    Entry, ErrorClasses, HostFigures, Latency, MultihostFigures, NodeKillFigures, RequestCounts, StreamFigures,
};
use crate::run::servers::{Http, cpu_time};

const SCENARIO: &str = "multihost";
/// The model whose roles are spread over the hosts.
const MODEL: &str = "split";

/// The configurations, (fronts, actor nodes), in run order.
pub(crate) const CONFIGURATIONS: [(u32, u32); 4] = [(1, 1), (2, 1), (1, 2), (2, 2)];
/// Every host a configuration may use (the namespaces of `--hosts netns`).
const HOSTS: [&str; 5] = ["gen", "front1", "front2", "node0", "node1"];

/// Books seeded through the first front before the load.
const BOOKS: usize = 16;
/// Book ids loaded through each front (one `hostlab load` each), spread
/// over the seeded ones so that they fall on every shard.
const IDS_PER_FRONT: usize = 4;
/// Longest a server may take to print its ready line, or a front to answer
/// `GET /ping`, on a busy machine.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// Longest a server may take to exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The node kill: steady load first, then the SIGKILL, this pause, the
/// restart on the same address, and at most `RECOVERY_LIMIT` for the
/// killed shard to answer again.
const STEADY_BEFORE_KILL: Duration = Duration::from_secs(1);
const KILL_PAUSE: Duration = Duration::from_secs(1);
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);
/// Actor nodes of the node kill (one front): the last, node 1, is killed,
/// and node 0's shard must keep answering.
const KILL_NODES: u32 = 2;
/// Probe loops of the node kill, and the longest one probe waits.
const PROBES: usize = 4;
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a role runs: this host's loopback, or a namespace.
enum Place {
    Loopback,
    Netns(Host),
}

impl Place {
    fn addr(&self) -> IpAddr {
        match self {
            Place::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Place::Netns(host) => IpAddr::V4(host.addr),
        }
    }

    /// Makes `command` start inside this place.
    fn enter(&self, command: &mut std::process::Command) -> std::io::Result<()> {
        match self {
            Place::Loopback => Ok(()),
            Place::Netns(host) => host.enter(command),
        }
    }

    /// Runs the future `f` makes on a thread of its own inside this place
    /// (its sockets belong there), on a current-thread runtime.
    fn spawn<T, F, Fut>(&self, f: F) -> anyhow::Result<JoinHandle<std::io::Result<anyhow::Result<T>>>>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let body = move || -> anyhow::Result<T> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a runtime for the generator's host")?;
            runtime.block_on(f())
        };
        Ok(match self {
            Place::Loopback => std::thread::Builder::new()
                .name("multihost-gen".into())
                .spawn(move || Ok(body()))?,
            Place::Netns(host) => host.spawn_in(body)?,
        })
    }

    /// [`Place::spawn`], waited for without blocking the run's runtime.
    async fn call<T, F, Fut>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        join(self.spawn(f)?).await
    }
}

/// Waits for a [`Place::spawn`] thread.
async fn join<T: Send + 'static>(handle: JoinHandle<std::io::Result<anyhow::Result<T>>>) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(move || handle.join())
        .await?
        .map_err(|_| anyhow!("the generator's thread panicked"))?
        .context("cannot enter the generator's network namespace")?
}

/// The hosts of one kind: loopback, or a lab of namespaces (removed with it).
struct Hosts {
    mode: HostsMode,
    lab: Option<Lab>,
}

impl Hosts {
    fn place(&self, role: &str) -> Place {
        match &self.lab {
            None => Place::Loopback,
            Some(lab) => Place::Netns(lab.host(role).clone()),
        }
    }
}

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    if !ctx.plan.has_model(MODEL) {
        ctx.skip(
            Some(MODEL),
            SCENARIO,
            "the multihost scenario spreads the split model's roles over hosts: add split to --models".into(),
        );
        return Ok(());
    }
    let mut modes = vec![HostsMode::Local];
    if ctx.plan.hosts == HostsMode::Netns {
        modes.push(HostsMode::Netns);
    }
    for mode in modes {
        let hosts = match mode {
            HostsMode::Local => Hosts { mode, lab: None },
            HostsMode::Netns => {
                ctx.console.step(SCENARIO, MODEL, "creating network namespaces");
                match Lab::create(&HOSTS) {
                    Ok(lab) => Hosts { mode, lab: Some(lab) },
                    Err(NetnsError::Unavailable(reason)) => {
                        ctx.skip(Some(MODEL), SCENARIO, format!("--hosts netns: {reason}"));
                        continue;
                    }
                    Err(e) => {
                        ctx.fail(
                            MODEL,
                            SCENARIO,
                            anyhow!(e).context("--hosts netns: cannot build the namespaces"),
                        );
                        continue;
                    }
                }
            }
        };
        for (fronts, nodes) in CONFIGURATIONS {
            let label = format!("{}: {}", mode.name(), configuration_name(fronts, nodes));
            ctx.console.step(SCENARIO, MODEL, &label);
            match configuration(ctx, &hosts, fronts, nodes).await {
                Ok(entries) => entries.into_iter().for_each(|e| ctx.push(e)),
                Err(e) => ctx.fail(MODEL, SCENARIO, e.context(label)),
            }
            ctx.save()?;
        }
        // The kill: one front and two nodes, node 1 killed.
        let label = format!("{}: node kill, {}", mode.name(), configuration_name(1, KILL_NODES));
        ctx.console.step(SCENARIO, MODEL, &label);
        match node_kill(ctx, &hosts, KILL_NODES).await {
            Ok(entry) => ctx.push(entry),
            Err(e) => ctx.fail(MODEL, SCENARIO, e.context(label)),
        }
        ctx.save()?;
        // Dropping the lab kills what still runs in it and removes its namespaces.
        drop(hosts);
    }
    Ok(())
}

/// `1 front + 2 nodes`.
fn configuration_name(fronts: u32, nodes: u32) -> String {
    format!(
        "{fronts} front{} + {nodes} node{}",
        if fronts == 1 { "" } else { "s" },
        if nodes == 1 { "" } else { "s" }
    )
}

/// A server this scenario started (killed when dropped, e.g. on an error).
struct Serving {
    host: String,
    role: &'static str,
    /// Its `serve` arguments (a restart reuses them with the same address).
    args: Vec<String>,
    addr: SocketAddr,
    pid: u32,
    child: tokio::process::Child,
    /// Held open: the server may write to its stdout after the ready line.
    _stdout: BufReader<tokio::process::ChildStdout>,
}

/// Processes started in the run's children: the parent-death signal (the
/// run's main thread spawns them and lives for the whole run), the CPUs,
/// and the place.
fn child_command(
    place: &Place,
    args: &[String],
    cpus: &[usize],
    log: &Path,
) -> anyhow::Result<tokio::process::Command> {
    let exe = std::env::current_exe().context("cannot find the hostlab binary")?;
    let mut command = std::process::Command::new(exe);
    command.args(args);
    place.enter(&mut command).context("cannot enter the host's namespace")?;
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    // SAFETY: prctl and sched_setaffinity are async-signal-safe and touch no
    // memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let stderr = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    command.stdin(Stdio::null()).stderr(stderr);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    Ok(command)
}

/// The last lines of a child's log, for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
    if tail.is_empty() {
        "(its stderr is empty)".into()
    } else {
        format!("its stderr ends:\n  {tail}")
    }
}

impl Serving {
    /// `hostlab serve ARGS` in `place`, once its ready line is printed.
    async fn start(
        ctx: &Ctx,
        place: &Place,
        host: &str,
        role: &'static str,
        args: Vec<String>,
    ) -> anyhow::Result<Serving> {
        let log = ctx
            .tmp
            .join(format!("multihost-{host}-{}.log", ctx.started.elapsed().as_micros()));
        let mut command = child_command(place, &args, &ctx.plan.server_cpus, &log)?;
        command.stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start `hostlab {}` on {host}", args.join(" ")))?;
        let pid = child.id().unwrap_or_default();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let read = tokio::time::timeout(STARTUP_LIMIT, stdout.read_line(&mut line)).await;
        let addr = match read {
            Ok(Ok(n)) if n > 0 => ready_addr(&line),
            _ => None,
        };
        let Some(addr) = addr else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            bail!(
                "`hostlab {}` on {host} printed no ready line within {STARTUP_LIMIT:?} (got {:?}); {}",
                args.join(" "),
                line.trim(),
                log_tail(&log)
            );
        };
        Ok(Serving {
            host: host.into(),
            role,
            args,
            addr,
            pid,
            child,
            _stdout: stdout,
        })
    }

    /// SIGTERM, then SIGKILL after the stop limit.
    async fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(STOP_LIMIT, self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    /// SIGKILL, and reaped.
    async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The address of a ready line's `url=http://ADDR`.
fn ready_addr(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("url=http://"))
        .and_then(|a| a.parse().ok())
}

/// The servers of one configuration.
struct Cluster {
    nodes: Vec<Serving>,
    fronts: Vec<Serving>,
}

impl Cluster {
    /// `nodes` actor nodes (sharded when more than one), then `fronts`
    /// fronts with the list of every node, each on its own host; waits
    /// until every front answers `GET /ping` from the generator's host.
    async fn start(ctx: &Ctx, hosts: &Hosts, fronts: u32, nodes: u32, journal: bool) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster {
            nodes: Vec::new(),
            fronts: Vec::new(),
        };
        for i in 0..nodes {
            let host = format!("node{i}");
            let place = hosts.place(&host);
            let mut args: Vec<String> = vec!["serve".into(), "actors".into(), "--listen".into()];
            args.push(SocketAddr::new(place.addr(), 0).to_string());
            if nodes > 1 {
                args.extend(["--shard".into(), format!("{i}/{nodes}")]);
            }
            if journal {
                let file = ctx.tmp.join(format!("multihost-{}-{host}.db", hosts.mode.name()));
                let _ = std::fs::remove_file(&file);
                args.extend(["--journal".into(), file.display().to_string()]);
                args.extend(["--journal-sync".into(), "normal".into()]);
            }
            cluster
                .nodes
                .push(Serving::start(ctx, &place, &host, "actors", args).await?);
        }
        let actors: Vec<String> = cluster.nodes.iter().map(|n| n.addr.to_string()).collect();
        for j in 1..=fronts {
            let host = format!("front{j}");
            let place = hosts.place(&host);
            let args: Vec<String> = vec![
                "serve".into(),
                "front".into(),
                "--listen".into(),
                SocketAddr::new(place.addr(), 0).to_string(),
                "--actors".into(),
                actors.join(","),
                "--upstream-timeout".into(),
                "2s".into(),
            ];
            cluster
                .fronts
                .push(Serving::start(ctx, &place, &host, "front", args).await?);
        }
        let urls: Vec<String> = cluster.fronts.iter().map(|f| format!("http://{}", f.addr)).collect();
        hosts
            .place("gen")
            .call(move || async move {
                let http = Http::new();
                for url in urls {
                    let deadline = Instant::now() + STARTUP_LIMIT;
                    loop {
                        let answer = http.get(&format!("{url}/ping")).await;
                        if answer.as_ref().is_ok_and(|(s, _)| *s == 200) {
                            break;
                        }
                        if Instant::now() > deadline {
                            bail!("GET {url}/ping did not answer 200 within {STARTUP_LIMIT:?} (last: {answer:?})");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(cluster)
    }

    async fn stop(self) {
        for front in self.fronts {
            front.stop().await;
        }
        for node in self.nodes {
            node.stop().await;
        }
    }

    fn servers(&self) -> impl Iterator<Item = &Serving> {
        self.fronts.iter().chain(self.nodes.iter())
    }
}

/// Seeds `n` books through `front` from the generator's host; their ids.
async fn seed(hosts: &Hosts, front: SocketAddr, n: usize) -> anyhow::Result<Vec<String>> {
    hosts
        .place("gen")
        .call(move || async move {
            let http = Http::new();
            let mut ids = Vec::with_capacity(n);
            for i in 0..n {
                let book = serde_json::json!({"title": format!("Multihost {i}"), "author": "hostlab"});
                let url = format!("http://{front}/books");
                let (status, body) = http.post_json(&url, &book).await?;
                if status != 201 {
                    bail!("POST {url} answered {status}: {body}");
                }
                ids.push(match &body["id"] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => bail!("POST {url} answered no id: {body}"),
                    other => other.to_string(),
                });
            }
            Ok(ids)
        })
        .await
}

/// `IDS_PER_FRONT` ids spread evenly over the seeded ones.
fn spread(ids: &[String]) -> Vec<String> {
    let step = (ids.len() / IDS_PER_FRONT).max(1);
    ids.iter().step_by(step).take(IDS_PER_FRONT).cloned().collect()
}

/// What a configuration's load runs request.
enum Request {
    /// `GET /books/{id}` over these ids: through the front to the actors.
    Books(Vec<String>),
    /// `GET /ping`: answered by the front alone (its own cost).
    Ping,
}

impl Request {
    fn name(&self) -> &'static str {
        match self {
            Request::Books(_) => "GET /books/{id}",
            Request::Ping => "GET /ping",
        }
    }

    /// (file-name label, path) of each load run per front.
    fn paths(&self) -> Vec<(String, String)> {
        match self {
            Request::Books(ids) => ids.iter().map(|id| (id.clone(), format!("/books/{id}"))).collect(),
            Request::Ping => vec![("ping".into(), "/ping".into())],
        }
    }
}

/// One configuration: start it, seed books, then `repeats` load runs of
/// `GET /books/{id}` and one of `GET /ping`; one entry each.
async fn configuration(ctx: &mut Ctx, hosts: &Hosts, fronts: u32, nodes: u32) -> anyhow::Result<Vec<Entry>> {
    let cluster = Cluster::start(ctx, hosts, fronts, nodes, false).await?;
    let outcome = async {
        let ids = spread(&seed(hosts, cluster.fronts[0].addr, BOOKS).await?);
        let mut entries = Vec::new();
        for repeat in 1..=ctx.plan.repeats {
            ctx.console.step(
                SCENARIO,
                MODEL,
                &format!(
                    "{}: {} {repeat}/{}",
                    hosts.mode.name(),
                    configuration_name(fronts, nodes),
                    ctx.plan.repeats
                ),
            );
            let books = Request::Books(ids.clone());
            let figures = load_run(ctx, hosts, &cluster, &books, fronts, nodes, repeat).await?;
            entries.push(Entry {
                model: MODEL.into(),
                scenario: SCENARIO.into(),
                variant: format!("{}: {}", hosts.mode.name(), configuration_name(fronts, nodes)),
                repeat,
                multihost: Some(figures),
                ..Entry::default()
            });
        }
        // The front's own cost: `GET /ping` never reaches the actors.
        ctx.console.step(
            SCENARIO,
            MODEL,
            &format!("{}: {} GET /ping", hosts.mode.name(), configuration_name(fronts, nodes)),
        );
        let figures = load_run(ctx, hosts, &cluster, &Request::Ping, fronts, nodes, 1).await?;
        entries.push(Entry {
            model: MODEL.into(),
            scenario: SCENARIO.into(),
            variant: format!(
                "{}: {}, GET /ping",
                hosts.mode.name(),
                configuration_name(fronts, nodes)
            ),
            repeat: 1,
            multihost: Some(figures),
            ..Entry::default()
        });
        anyhow::Ok(entries)
    }
    .await;
    cluster.stop().await;
    outcome
}

/// One load run: a `hostlab load` per front and path, all at once in the
/// generator's host, the servers' CPU counted over the measured phase.
async fn load_run(
    ctx: &Ctx,
    hosts: &Hosts,
    cluster: &Cluster,
    request: &Request,
    fronts: u32,
    nodes: u32,
    repeat: u32,
) -> anyhow::Result<MultihostFigures> {
    let gen_place = hosts.place("gen");
    let paths = request.paths();
    let streams = cluster.fronts.len() * paths.len();
    let connections = (ctx.plan.connections / streams).max(1);
    let (duration, warmup) = (ctx.plan.duration, ctx.plan.warmup);
    let mut loads = Vec::new();
    for front in &cluster.fronts {
        for (label, path) in &paths {
            let url = format!("http://{}{path}", front.addr);
            let stem = format!(
                "multihost-{}-{fronts}f{nodes}n-{repeat}-{}-{label}",
                hosts.mode.name(),
                front.host
            );
            let json = ctx.tmp.join(format!("{stem}.json"));
            let log = ctx.tmp.join(format!("{stem}.log"));
            let args: Vec<String> = vec![
                "load".into(),
                url.clone(),
                "-c".into(),
                connections.to_string(),
                "-d".into(),
                format!("{}ms", duration.as_millis()),
                "--warmup".into(),
                format!("{}ms", warmup.as_millis()),
                "--timeout".into(),
                "2s".into(),
                "--no-progress".into(),
                "--cpus".into(),
                cpu_list(&ctx.plan.client_cpus),
                "--json".into(),
                json.display().to_string(),
            ];
            let mut command = child_command(&gen_place, &args, &ctx.plan.client_cpus, &log)?;
            command.stdout(Stdio::null());
            let child = command.spawn().context("cannot start `hostlab load`")?;
            loads.push((front.host.clone(), url, json, log, child));
        }
    }
    // The measured phase starts after the warm-up.
    tokio::time::sleep(warmup).await;
    let before: Vec<(u32, Option<Duration>)> = cluster.servers().map(|s| (s.pid, cpu_time(s.pid))).collect();
    let limit = duration + warmup + STARTUP_LIMIT;
    let mut reports = Vec::new();
    for (front, url, json, log, mut child) in loads {
        let status = match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                let _ = child.start_kill();
                bail!(
                    "`hostlab load {url}` did not finish within {limit:?}; {}",
                    log_tail(&log)
                );
            }
        };
        if !status.success() {
            bail!("`hostlab load {url}` exited with {status}; {}", log_tail(&log));
        }
        let text = std::fs::read(&json).with_context(|| format!("`hostlab load` wrote no {}", json.display()))?;
        let report: serde_json::Value = serde_json::from_slice(&text)?;
        reports.push((front, url, connections, report));
    }
    let after: Vec<Option<Duration>> = cluster.servers().map(|s| cpu_time(s.pid)).collect();
    let server_cpu_us: Vec<Option<f64>> = before
        .iter()
        .zip(&after)
        .map(|((_, b), a)| Some(a.as_ref()?.saturating_sub((*b)?).as_secs_f64() * 1e6))
        .collect();
    let mut figures = figures_of(&reports, cluster, &server_cpu_us, &gen_place)?;
    figures.hosts_mode = hosts.mode.name().into();
    figures.fronts = fronts;
    figures.actor_nodes = nodes;
    figures.request = request.name().into();
    figures.book_ids = match request {
        Request::Books(ids) => ids.clone(),
        Request::Ping => Vec::new(),
    };
    figures.connections = connections * streams;
    figures.duration_s = duration.as_secs_f64();
    if figures.requests.ok == 0 {
        bail!(
            "no request succeeded ({} sent: {})",
            figures.requests.total,
            figures.requests.errors.describe()
        );
    }
    Ok(figures)
}

/// `0,1`.
fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

/// The load reports (front, url, connections, `hostlab load --json`) and
/// the servers' CPU over the measured phase (in `cluster.servers()` order)
/// as per-host figures.
fn figures_of(
    reports: &[(String, String, usize, serde_json::Value)],
    cluster: &Cluster,
    server_cpu_us: &[Option<f64>],
    gen_place: &Place,
) -> anyhow::Result<MultihostFigures> {
    let mut streams = Vec::new();
    for (front, url, connections, r) in reports {
        let requests = &r["requests"];
        streams.push(StreamFigures {
            front: front.clone(),
            url: url.clone(),
            connections: *connections,
            requests: RequestCounts {
                ok: requests["ok"].as_u64().context("a load report without requests.ok")?,
                errors: serde_json::from_value(requests["errors"].clone()).context("requests.errors")?,
                total: requests["total"].as_u64().context("requests.total")?,
            },
            requests_per_sec: r["requests_per_sec"].as_f64().context("requests_per_sec")?,
            latency_us: serde_json::from_value::<Latency>(r["latency_us"].clone()).context("latency_us")?,
            generator_cpu_percent: r["generator"]["cpu_percent"]
                .as_f64()
                .context("generator.cpu_percent")?,
            warnings: serde_json::from_value(r["warnings"].clone()).unwrap_or_default(),
        });
    }
    let duration_s = reports
        .first()
        .and_then(|(_, _, _, r)| r["duration_s"].as_f64())
        .unwrap_or(0.0);
    let sum = |s: &[&StreamFigures]| {
        s.iter().fold(RequestCounts::default(), |mut acc, s| {
            acc.ok += s.requests.ok;
            acc.total += s.requests.total;
            add_errors(&mut acc.errors, &s.requests.errors);
            acc
        })
    };
    let all: Vec<&StreamFigures> = streams.iter().collect();
    let requests = sum(&all);
    let requests_per_sec: f64 = streams.iter().map(|s| s.requests_per_sec).sum();
    let per_request = |cpu_us: f64| cpu_us / requests.total.max(1) as f64;
    let mut host_rows = vec![HostFigures {
        host: "gen".into(),
        role: "generator".into(),
        address: gen_place.addr().to_string(),
        pids: Vec::new(),
        cpu_us: streams
            .iter()
            .map(|s| s.generator_cpu_percent / 100.0 * duration_s * 1e6)
            .sum(),
        cpu_us_per_request: 0.0,
        requests: Some(requests),
        requests_per_sec: Some(requests_per_sec),
        latency_p50_us: None,
        latency_p99_max_us: None,
    }];
    host_rows[0].cpu_us_per_request = per_request(host_rows[0].cpu_us);
    for (server, cpu_us) in cluster.servers().zip(server_cpu_us) {
        let cpu_us =
            cpu_us.with_context(|| format!("cannot read the CPU time of {} (pid {})", server.host, server.pid))?;
        let mine: Vec<&StreamFigures> = streams.iter().filter(|s| s.front == server.host).collect();
        let front = server.role == "front";
        let p50s = mine.iter().map(|s| s.latency_us.p50);
        host_rows.push(HostFigures {
            host: server.host.clone(),
            role: server.role.into(),
            address: server.addr.ip().to_string(),
            pids: vec![server.pid],
            cpu_us,
            cpu_us_per_request: per_request(cpu_us),
            requests: front.then(|| sum(&mine)),
            requests_per_sec: front.then(|| mine.iter().map(|s| s.requests_per_sec).sum()),
            latency_p50_us: front.then(|| (p50s.clone().min().unwrap_or(0), p50s.max().unwrap_or(0))),
            latency_p99_max_us: front.then(|| mine.iter().map(|s| s.latency_us.p99).max().unwrap_or(0)),
        });
    }
    Ok(MultihostFigures {
        requests_per_sec,
        requests,
        hosts: host_rows,
        streams,
        ..MultihostFigures::default()
    })
}

fn add_errors(to: &mut ErrorClasses, from: &ErrorClasses) {
    to.status_4xx += from.status_4xx;
    to.status_5xx += from.status_5xx;
    to.refused += from.refused;
    to.reset += from.reset;
    to.timeout += from.timeout;
    to.io += from.io;
}

/// What one probe request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Status4xx,
    Status5xx,
    Refused,
    Reset,
    Timeout,
    Io,
}

impl Outcome {
    fn add_to(self, errors: &mut ErrorClasses) {
        match self {
            Outcome::Ok => {}
            Outcome::Status4xx => errors.status_4xx += 1,
            Outcome::Status5xx => errors.status_5xx += 1,
            Outcome::Refused => errors.refused += 1,
            Outcome::Reset => errors.reset += 1,
            Outcome::Timeout => errors.timeout += 1,
            Outcome::Io => errors.io += 1,
        }
    }
}

/// One probe request of the node kill: when it was sent and answered
/// (ms from the probes' start), which book id, and what it got.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Probe {
    sent_ms: f64,
    done_ms: f64,
    id: usize,
    outcome: Outcome,
}

/// Shared between the probe loops and the kill's driver.
struct Probing {
    started: Instant,
    /// ms from `started`; `u64::MAX` until set.
    kill_at_ms: AtomicU64,
    restart_at_ms: AtomicU64,
    stop: AtomicBool,
    /// Set by a probe once an id that failed during the outage answers
    /// after the restart.
    recovered: AtomicBool,
    next: AtomicUsize,
}

impl Probing {
    fn ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }
}

/// `PROBES` closed loops of `GET /books/{id}` over `ids` through `front`
/// until told to stop; every request's outcome.
async fn probe_loops(front: SocketAddr, ids: Vec<String>, shared: Arc<Probing>) -> anyhow::Result<Vec<Probe>> {
    let http = Http::new();
    let records = Arc::new(Mutex::new(Vec::new()));
    let failed_in_outage = Arc::new(Mutex::new(vec![false; ids.len()]));
    let ids = Arc::new(ids);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..PROBES {
        let (http, records, failed, ids, shared) = (
            http.clone(),
            records.clone(),
            failed_in_outage.clone(),
            ids.clone(),
            shared.clone(),
        );
        loops.spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                let id = shared.next.fetch_add(1, Ordering::Relaxed) % ids.len();
                let url = format!("http://{front}/books/{}", ids[id]);
                let sent_ms = shared.ms();
                let outcome = match tokio::time::timeout(PROBE_TIMEOUT, http.get(&url)).await {
                    Err(_) => Outcome::Timeout,
                    Ok(Ok((200..=299, _))) => Outcome::Ok,
                    Ok(Ok((400..=499, _))) => Outcome::Status4xx,
                    Ok(Ok(_)) => Outcome::Status5xx,
                    Ok(Err(e)) => {
                        let text = format!("{e:#}").to_lowercase();
                        if text.contains("refused") {
                            Outcome::Refused
                        } else if text.contains("reset") {
                            Outcome::Reset
                        } else {
                            Outcome::Io
                        }
                    }
                };
                let done_ms = shared.ms();
                let kill_at = shared.kill_at_ms.load(Ordering::Relaxed) as f64;
                let restart_at = shared.restart_at_ms.load(Ordering::Relaxed) as f64;
                if outcome != Outcome::Ok && sent_ms >= kill_at && sent_ms < restart_at {
                    failed.lock().unwrap()[id] = true;
                }
                if outcome == Outcome::Ok && sent_ms >= restart_at && failed.lock().unwrap()[id] {
                    shared.recovered.store(true, Ordering::Relaxed);
                }
                records.lock().unwrap().push(Probe {
                    sent_ms,
                    done_ms,
                    id,
                    outcome,
                });
                if outcome != Outcome::Ok {
                    // A dead shard answers 503 at once: do not flood it.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
    }
    while let Some(done) = loops.join_next().await {
        done.context("a probe loop panicked")?;
    }
    let records = std::mem::take(&mut *records.lock().unwrap());
    Ok(records)
}

/// What the probes saw around a node kill.
#[derive(Debug, Clone, PartialEq, Default)]
struct KillAnalysis {
    requests: RequestCounts,
    failed_during_outage: ErrorClasses,
    /// Per id: no answer between the kill and the restart (its shard died).
    killed: Vec<bool>,
    recovery_ms: Option<f64>,
    other_failed: u64,
}

/// Classifies the probes: an id is on the killed shard when a request to
/// it sent between the kill and the restart failed and none succeeded; the
/// outage lasts from the kill to the first success on such an id sent
/// after the restart (the recovery, measured from the restart); other ids'
/// failures in that time count against the other shard.
fn analyse(probes: &[Probe], ids: usize, kill_at_ms: f64, restart_at_ms: f64) -> KillAnalysis {
    let mut out = KillAnalysis {
        killed: vec![false; ids],
        ..KillAnalysis::default()
    };
    let mut answered = vec![false; ids];
    for p in probes {
        out.requests.total += 1;
        if p.outcome == Outcome::Ok {
            out.requests.ok += 1;
        } else {
            p.outcome.add_to(&mut out.requests.errors);
        }
        if p.sent_ms >= kill_at_ms && p.sent_ms < restart_at_ms {
            if p.outcome == Outcome::Ok {
                answered[p.id] = true;
            } else {
                out.killed[p.id] = true;
            }
        }
    }
    for (killed, answered) in out.killed.iter_mut().zip(&answered) {
        *killed &= !answered;
    }
    let recovered_at = probes
        .iter()
        .filter(|p| p.outcome == Outcome::Ok && p.sent_ms >= restart_at_ms && out.killed[p.id])
        .map(|p| p.done_ms)
        .fold(None, |min: Option<f64>, t| Some(min.map_or(t, |m| m.min(t))));
    out.recovery_ms = recovered_at.map(|t| t - restart_at_ms);
    let outage_end = recovered_at.unwrap_or(f64::INFINITY);
    for p in probes {
        if p.outcome != Outcome::Ok && p.sent_ms >= kill_at_ms && p.sent_ms <= outage_end {
            p.outcome.add_to(&mut out.failed_during_outage);
            if !out.killed[p.id] {
                out.other_failed += 1;
            }
        }
    }
    out
}

/// The node kill under load: `nodes` actor nodes with journals behind one
/// front, probe loops from the generator's host, node `nodes - 1` SIGKILLed
/// and restarted on its address after `KILL_PAUSE`.
async fn node_kill(ctx: &mut Ctx, hosts: &Hosts, nodes: u32) -> anyhow::Result<Entry> {
    let mut cluster = Cluster::start(ctx, hosts, 1, nodes, true).await?;
    let outcome = async {
        let front = cluster.fronts[0].addr;
        let ids = seed(hosts, front, BOOKS).await?;
        let shared = Arc::new(Probing {
            started: Instant::now(),
            kill_at_ms: AtomicU64::new(u64::MAX),
            restart_at_ms: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            recovered: AtomicBool::new(false),
            next: AtomicUsize::new(0),
        });
        let probes = {
            let (ids, shared) = (ids.clone(), shared.clone());
            hosts.place("gen").spawn(move || probe_loops(front, ids, shared))?
        };
        let stop_probes = |shared: &Probing| shared.stop.store(true, Ordering::Relaxed);
        let driven = async {
            tokio::time::sleep(STEADY_BEFORE_KILL).await;
            let victim = cluster.nodes.pop().expect("at least one node");
            let (host, args) = (victim.host.clone(), victim.args.clone());
            let addr = victim.addr;
            victim.kill().await;
            let kill_at = shared.ms();
            shared.kill_at_ms.store(kill_at as u64, Ordering::Relaxed);
            tokio::time::sleep(KILL_PAUSE).await;
            // The same arguments: the same address (port included) and journal.
            let args: Vec<String> = args
                .iter()
                .map(|a| if a.ends_with(":0") { addr.to_string() } else { a.clone() })
                .collect();
            let restart_at = shared.ms();
            shared.restart_at_ms.store(restart_at as u64, Ordering::Relaxed);
            let restarted = Serving::start(ctx, &hosts.place(&host), &host, "actors", args).await?;
            let ready_at = shared.ms();
            cluster.nodes.push(restarted);
            let deadline =
                Instant::now() + RECOVERY_LIMIT.saturating_sub(Duration::from_secs_f64((ready_at - restart_at) / 1e3));
            while !shared.recovered.load(Ordering::Relaxed) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // A little steady state after the recovery.
            tokio::time::sleep(Duration::from_millis(300)).await;
            anyhow::Ok((host, kill_at.floor(), restart_at.floor(), ready_at))
        }
        .await;
        stop_probes(&shared);
        let records = join(probes).await?;
        let (host, kill_at, restart_at, ready_at) = driven?;
        let a = analyse(&records, ids.len(), kill_at, restart_at);
        let pick = |killed: bool| -> Vec<String> {
            ids.iter()
                .zip(&a.killed)
                .filter(|(_, k)| **k == killed)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let figures = NodeKillFigures {
            hosts_mode: hosts.mode.name().into(),
            fronts: 1,
            actor_nodes: nodes,
            killed: host,
            probes: PROBES,
            book_ids: ids.clone(),
            kill_at_ms: kill_at,
            restart_at_ms: restart_at,
            ready_at_ms: Some(ready_at),
            pause_ms: KILL_PAUSE.as_secs_f64() * 1e3,
            requests: a.requests,
            failed_during_outage: a.failed_during_outage,
            killed_shard_ids: pick(true),
            other_ids: pick(false),
            recovery_ms: a.recovery_ms,
            recovery_limit_ms: RECOVERY_LIMIT.as_secs_f64() * 1e3,
            other_shard_kept_answering: (nodes > 1).then_some(a.other_failed == 0),
            other_shard_failed: a.other_failed,
        };
        anyhow::Ok(Entry {
            model: MODEL.into(),
            scenario: SCENARIO.into(),
            variant: format!("{}: node kill, {}", hosts.mode.name(), configuration_name(1, nodes)),
            repeat: 1,
            node_kill: Some(figures),
            ..Entry::default()
        })
    }
    .await;
    cluster.stop().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(sent_ms: f64, id: usize, outcome: Outcome) -> Probe {
        Probe {
            sent_ms,
            done_ms: sent_ms + 1.0,
            id,
            outcome,
        }
    }

    #[test]
    fn the_killed_shard_is_the_ids_that_got_no_answer_between_kill_and_restart() {
        use Outcome::*;
        // Ids 0 and 2 on the killed node, 1 and 3 on the other; kill at
        // 100 ms, restart at 200 ms, id 0 answers again at 251 ms.
        let probes = [
            probe(50.0, 0, Ok),
            probe(50.0, 1, Ok),
            probe(110.0, 0, Status5xx),
            probe(110.0, 1, Ok),
            probe(120.0, 2, Reset),
            probe(130.0, 3, Ok),
            probe(150.0, 2, Status5xx),
            probe(210.0, 0, Status5xx),
            probe(220.0, 3, Timeout),
            probe(250.0, 0, Ok),
            probe(300.0, 2, Ok),
        ];
        let a = analyse(&probes, 4, 100.0, 200.0);
        assert_eq!(a.killed, [true, false, true, false]);
        assert_eq!(a.recovery_ms, Some(51.0));
        assert_eq!(a.requests.total, 11);
        assert_eq!(a.requests.ok, 6);
        // 110, 120, 150, 210 on the killed shard, 220 on the other.
        assert_eq!(a.failed_during_outage.total(), 5);
        assert_eq!(a.failed_during_outage.status_5xx, 3);
        assert_eq!(a.other_failed, 1);
    }

    #[test]
    fn no_recovery_when_the_killed_shard_never_answers_again() {
        use Outcome::*;
        let probes = [probe(110.0, 0, Status5xx), probe(250.0, 0, Status5xx)];
        let a = analyse(&probes, 1, 100.0, 200.0);
        assert_eq!(a.killed, [true]);
        assert_eq!(a.recovery_ms, None);
        assert_eq!(a.failed_during_outage.status_5xx, 2);
    }

    #[test]
    fn ready_lines_give_the_address_and_ids_spread_over_the_seeded_books() {
        let line = "hostlab ready model=front url=http://10.213.2.2:40111 pid=7";
        assert_eq!(ready_addr(line), Some("10.213.2.2:40111".parse().unwrap()));
        assert_eq!(ready_addr("hostlab ready model=front"), None);
        let ids: Vec<String> = (1..=16).map(|i| i.to_string()).collect();
        assert_eq!(spread(&ids), ["1", "5", "9", "13"]);
        assert_eq!(configuration_name(2, 1), "2 fronts + 1 node");
    }
}
