//! The multihost section: split with its roles on separate hosts, per host
//! and configuration, and the node kill.

use super::*;
use crate::run::results::{HostFigures, MultihostFigures, NodeKillFigures};

/// `12.3 µs` figures: one decimal.
fn us(v: f64) -> String {
    format!("{v:.1}")
}

/// Per host and configuration, then the node kill (scenario `multihost`).
pub(super) fn multihost(out: &mut String, results: &Results) {
    let runs: Vec<(&str, u32, &MultihostFigures)> = results
        .entries
        .iter()
        .filter(|e| e.scenario == "multihost")
        .filter_map(|e| Some((e.variant.as_str(), e.repeat, e.multihost.as_ref()?)))
        .collect();
    let kills: Vec<&NodeKillFigures> = results
        .entries
        .iter()
        .filter(|e| e.scenario == "multihost")
        .filter_map(|e| e.node_kill.as_ref())
        .collect();
    if runs.is_empty() && kills.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Multihost: split with its roles on separate hosts\n");
    let _ = writeln!(
        out,
        "Closed-loop `GET /books/{{id}}` over several seeded books through every front (one `hostlab load` \
         per front and book, run in the generator's host); `local`: every host is this machine's loopback, \
         `netns`: one network namespace per host, joined by veths. CPU µs per request is each host's CPU \
         over the measured phase divided by every request of the configuration, so a configuration's hosts \
         add up to the whole cost of one request. A front's p50 is the range over its load runs and its p99 \
         the largest (an upper bound of the p99 of all its requests). See docs/multihost.md.\n"
    );
    if !runs.is_empty() {
        let _ = writeln!(
            out,
            "| configuration | repeat | req/s | failed (by class) | host | role | address | host req/s | p50 ms | p99 ms (max) | CPU µs/request |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for (variant, repeat, m) in &runs {
            for (i, h) in m.hosts.iter().enumerate() {
                let (first, rps, failed) = if i == 0 {
                    (
                        format!("{variant} | {repeat}"),
                        format!("{:.0}", m.requests_per_sec),
                        m.requests.errors.describe(),
                    )
                } else {
                    (" | ".into(), String::new(), String::new())
                };
                let _ = writeln!(
                    out,
                    "| {first} | {rps} | {failed} | {} | {} | {} | {} | {} | {} | {} |",
                    h.host,
                    h.role,
                    h.address,
                    h.requests_per_sec.map_or("-".into(), |r| format!("{r:.0}")),
                    p50(h),
                    h.latency_p99_max_us.map_or("-".into(), |p| ms(p as f64)),
                    us(h.cpu_us_per_request)
                );
            }
            let total: f64 = m.hosts.iter().map(|h| h.cpu_us_per_request).sum();
            let _ = writeln!(out, "| | | | | all hosts | | | | | | {} |", us(total));
        }
        out.push('\n');
    }
    if !kills.is_empty() {
        let _ = writeln!(
            out,
            "### An actor node killed under load\n\n\
             Probe loops of `GET /books/{{id}}` over every seeded book through one front; the node is \
             SIGKILLed, restarted on its address (with its journal) after the pause, and the recovery is \
             the time from the restart to the first success on its shard (the ids that got no answer \
             between kill and restart).\n\n\
             | hosts | nodes | killed | pause ms | requests | failed from kill to recovery (by class) | \
             restart to ready ms | recovery ms | other shard kept answering |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        for k in &kills {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                k.hosts_mode,
                k.actor_nodes,
                k.killed,
                k.pause_ms,
                k.requests.total,
                k.failed_during_outage.describe(),
                k.ready_at_ms
                    .map_or("-".into(), |r| format!("{:.0}", r - k.restart_at_ms)),
                k.recovery_ms.map_or_else(
                    || format!("none within {:.0} s", k.recovery_limit_ms / 1e3),
                    |r| format!("{r:.0}")
                ),
                match k.other_shard_kept_answering {
                    Some(true) => "yes".to_string(),
                    Some(false) => format!("no ({} failed)", k.other_shard_failed),
                    None => "- (one node)".into(),
                }
            );
        }
        out.push('\n');
    }
}

fn p50(h: &HostFigures) -> String {
    match h.latency_p50_us {
        Some((lo, hi)) if lo == hi => ms(lo as f64),
        Some((lo, hi)) => format!("{} .. {}", ms(lo as f64), ms(hi as f64)),
        None => "-".into(),
    }
}
