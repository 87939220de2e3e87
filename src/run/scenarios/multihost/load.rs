//! Multihost's load runs: one configuration's `hostlab load` children in
//! the generator's host, and the per-host figures (req/s, latency, CPU per
//! request) made of their reports and the servers' CPU.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

use super::cluster::{Cluster, child_command, log_tail, seed, spread};
use super::{BOOKS, Hosts, MODEL, Place, SCENARIO, STARTUP_LIMIT, configuration_name};
use crate::run::Ctx;
use crate::run::results::{Entry, HostFigures, Latency, MultihostFigures, RequestCounts, StreamFigures};
use crate::run::servers::cpu_time;

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
pub(super) async fn configuration(ctx: &mut Ctx, hosts: &Hosts, fronts: u32, nodes: u32) -> anyhow::Result<Vec<Entry>> {
    let cluster = Cluster::start(ctx, hosts, fronts, nodes, false).await?;
    let outcome = async {
        let ids = spread(&seed(hosts, cluster.fronts[0].addr, BOOKS).await?, nodes)?;
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
            acc.errors.merge(&s.requests.errors);
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
