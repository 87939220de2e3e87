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

mod cluster;
mod kill;
mod load;

use std::net::{IpAddr, Ipv4Addr};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::cli::HostsMode;
use crate::netns::{Host, Lab, NetnsError};
use crate::run::Ctx;

use kill::{KILL_NODES, node_kill};
use load::configuration;

const SCENARIO: &str = "multihost";
/// The model whose roles are spread over the hosts.
const MODEL: &str = "split";

/// The configurations, (fronts, actor nodes), in run order.
pub(crate) const CONFIGURATIONS: [(u32, u32); 4] = [(1, 1), (2, 1), (1, 2), (2, 2)];
/// Every host a configuration may use (the namespaces of `--hosts netns`).
const HOSTS: [&str; 5] = ["gen", "front1", "front2", "node0", "node1"];

/// Books seeded through the first front before the load.
const BOOKS: usize = 16;
/// Longest a server may take to print its ready line, or a front to answer
/// `GET /ping`, on a busy machine.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_named_by_their_fronts_and_nodes() {
        assert_eq!(configuration_name(2, 1), "2 fronts + 1 node");
        assert_eq!(configuration_name(1, 2), "1 front + 2 nodes");
    }
}
