//! Multihost's server processes: `hostlab serve actors|front` started as
//! children on their hosts, a configuration's cluster of them, and the
//! books seeded through a front.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};

use hostlab_workloads::hashing::shard_of_book;

use super::{Hosts, Place, STARTUP_LIMIT};
use crate::run::Ctx;
use crate::run::servers::Http;

/// Longest a server may take to exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// Book ids loaded through each front (one `hostlab load` each), spread
/// over the seeded ones so that they fall on every shard.
const IDS_PER_FRONT: usize = 4;

/// A server this scenario started (killed when dropped, e.g. on an error).
pub(super) struct Serving {
    pub(super) host: String,
    pub(super) role: &'static str,
    /// Its `serve` arguments (a restart reuses them with the same address).
    pub(super) args: Vec<String>,
    pub(super) addr: SocketAddr,
    pub(super) pid: u32,
    pub(super) child: tokio::process::Child,
    /// Held open: the server may write to its stdout after the ready line.
    pub(super) _stdout: BufReader<tokio::process::ChildStdout>,
}

/// Processes started in the run's children: the parent-death signal (the
/// run's main thread spawns them and lives for the whole run), the CPUs,
/// and the place.
pub(super) fn child_command(
    place: &Place,
    args: &[String],
    cpus: &[usize],
    log: &Path,
) -> anyhow::Result<tokio::process::Command> {
    // The running image, even if the binary was rebuilt during the run.
    let mut command = hostlab_hosts::child::own_command().context("cannot find the hostlab binary")?;
    command.args(args);
    place.enter(&mut command).context("cannot enter the host's namespace")?;
    // SIGKILL when the run dies: the run's main thread spawns these and
    // lives for the whole run.
    hostlab_hosts::child::tie_to_parent(&mut command, Signal::SIGKILL, cpus)?;
    let stderr = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    command.stdin(Stdio::null()).stderr(stderr);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    Ok(command)
}

/// The last lines of a child's log, for an error message.
pub(super) fn log_tail(log: &Path) -> String {
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
    pub(super) async fn start(
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
    pub(super) async fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(STOP_LIMIT, self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    /// SIGKILL, and reaped.
    pub(super) async fn kill(mut self) {
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
pub(super) struct Cluster {
    pub(super) nodes: Vec<Serving>,
    pub(super) fronts: Vec<Serving>,
}

impl Cluster {
    /// `nodes` actor nodes (sharded when more than one), then `fronts`
    /// fronts with the list of every node, each on its own host; waits
    /// until every front answers `GET /ping` from the generator's host.
    pub(super) async fn start(
        ctx: &Ctx,
        hosts: &Hosts,
        fronts: u32,
        nodes: u32,
        journal: bool,
    ) -> anyhow::Result<Cluster> {
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

    pub(super) async fn stop(self) {
        for front in self.fronts {
            front.stop().await;
        }
        for node in self.nodes {
            node.stop().await;
        }
    }

    pub(super) fn servers(&self) -> impl Iterator<Item = &Serving> {
        self.fronts.iter().chain(self.nodes.iter())
    }
}

/// Seeds `n` books through `front` from the generator's host; their ids.
pub(super) async fn seed(hosts: &Hosts, front: SocketAddr, n: usize) -> anyhow::Result<Vec<String>> {
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

/// `IDS_PER_FRONT` of the seeded ids, taken in turn from each of the
/// `nodes` shards (by the front's placement, `shard_of_book`), so that the
/// load reaches every node: seeding without a key goes to the nodes in
/// turn, so every other id is on the same shard.
pub(super) fn spread(ids: &[String], nodes: u32) -> anyhow::Result<Vec<String>> {
    let mut shards: Vec<Vec<&String>> = vec![Vec::new(); nodes as usize];
    for id in ids {
        let n: u64 = id.parse().with_context(|| format!("book id {id:?} is not a number"))?;
        shards[shard_of_book(n, nodes) as usize].push(id);
    }
    if let Some(empty) = shards.iter().position(Vec::is_empty) {
        bail!("none of the {} seeded books is on shard {empty}/{nodes}", ids.len());
    }
    let per_shard = IDS_PER_FRONT.div_ceil(nodes as usize);
    let mut out = Vec::with_capacity(IDS_PER_FRONT);
    for round in 0..per_shard {
        for shard in &shards {
            // Spread evenly over the shard's own ids.
            let step = (shard.len() / per_shard).max(1);
            if let Some(id) = shard.get(round * step)
                && out.len() < IDS_PER_FRONT
                && !out.contains(*id)
            {
                out.push((*id).clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_give_the_address_and_ids_spread_over_the_seeded_books() {
        let line = "hostlab ready model=front url=http://10.213.2.2:40111 pid=7";
        assert_eq!(ready_addr(line), Some("10.213.2.2:40111".parse().unwrap()));
        assert_eq!(ready_addr("hostlab ready model=front"), None);
        let ids: Vec<String> = (1..=16).map(|i| i.to_string()).collect();
        assert_eq!(spread(&ids, 1).unwrap(), ["1", "5", "9", "13"]);
        // Two nodes: two ids of each shard.
        let two = spread(&ids, 2).unwrap();
        assert_eq!(two.len(), IDS_PER_FRONT);
        for shard in 0..2 {
            let on = two.iter().filter(|id| shard_of_book(id.parse().unwrap(), 2) == shard);
            assert_eq!(on.count(), 2, "{two:?}");
        }
        // Every other id, as seeded in turn on two nodes, all on shard 0.
        let one_shard: Vec<String> = (1..=200u64)
            .filter(|&i| shard_of_book(i, 2) == 0)
            .map(|i| i.to_string())
            .collect();
        assert!(spread(&one_shard, 2).unwrap_err().to_string().contains("shard 1/2"));
    }
}
