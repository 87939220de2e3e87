//! Multihost's node kill: an actor node SIGKILLed under probe load and
//! restarted on its address, and the analysis of what the probes saw
//! (failures by class, the killed shard, the time to recover).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::cluster::{Cluster, Serving, seed};
use super::{BOOKS, Hosts, MODEL, SCENARIO, configuration_name, join};
use crate::load::{Outcome, classify_io};
use crate::run::Ctx;
use crate::run::results::{Entry, ErrorClasses, NodeKillFigures, RequestCounts};
use crate::run::servers::Http;

/// The node kill: steady load first, then the SIGKILL, this pause, the
/// restart on the same address, and at most `RECOVERY_LIMIT` for the
/// killed shard to answer again.
const STEADY_BEFORE_KILL: Duration = Duration::from_secs(1);
const KILL_PAUSE: Duration = Duration::from_secs(1);
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);
/// Actor nodes of the node kill (one front): the last, node 1, is killed,
/// and node 0's shard must keep answering.
pub(super) const KILL_NODES: u32 = 2;
/// Probe loops of the node kill, and the longest one probe waits.
const PROBES: usize = 4;
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

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
                    Ok(Ok((status, _))) => Outcome::of_code(status),
                    // The load generator's classes, from the socket error under the client's.
                    Ok(Err(e)) => e
                        .chain()
                        .find_map(|cause| cause.downcast_ref::<std::io::Error>())
                        .map_or(Outcome::Io, classify_io),
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
            out.requests.errors.add(p.outcome, 1);
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
            out.failed_during_outage.add(p.outcome, 1);
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
pub(super) async fn node_kill(ctx: &mut Ctx, hosts: &Hosts, nodes: u32) -> anyhow::Result<Entry> {
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
}
