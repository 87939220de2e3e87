//! Summary of a result set: entries grouped by scenario, model and variant,
//! with medians and ranges over repeats and ratios to `edge` in the same
//! run. Every export (Markdown, CSV, console, compare, claims) reads this.

use std::collections::BTreeMap;

use super::results::{Entry, Results};
use super::stats::{Spread, generator_limited, is_noisy, ratio};

/// One model in one scenario variant, over its repeats.
#[derive(Debug, Clone)]
pub(super) struct SummaryRow {
    pub scenario: String,
    pub model: String,
    pub variant: String,
    pub repeats: usize,
    /// Successful requests per second (load runs only).
    pub rps: Option<Spread>,
    pub p50_us: Option<Spread>,
    pub p99_us: Option<Spread>,
    pub p99_9_us: Option<Spread>,
    pub max_us: Option<Spread>,
    /// Failed requests over every repeat.
    pub errors: u64,
    /// Some repeat's generator was busy enough to have been the limit.
    pub generator_limited: bool,
    /// Median req/s over edge's median for the same scenario and variant.
    pub ratio_to_edge: Option<f64>,
    /// Scenario-specific figures in words (books before/after, actors, ...).
    pub detail: String,
    /// CPU cost per request over the repeats (throughput runs).
    pub cpu: Option<CpuSummary>,
    /// The entries behind the row, in run order.
    pub entries: Vec<Entry>,
    /// Recycle rows: the window figures over the repeats.
    pub recycle: Option<RecycleSpread>,
}

/// A recycle kind (or its control) at one level, over its repeats: the
/// figures report.md, summary.csv and the decision matrix print.
#[derive(Debug, Clone)]
pub(super) struct RecycleSpread {
    pub kind: String,
    pub level: String,
    pub control: bool,
    /// Failed requests from the event to the end of the run.
    pub failed: Spread,
    /// Delayed requests from the event to the end of the run, counted
    /// exactly; `None` when no repeat had a threshold.
    pub delayed: Option<Spread>,
    /// Result sets older than the exact count: `delayed` is their lower
    /// bound from interval quantiles.
    pub delayed_is_lower_bound: bool,
    pub downtime_ms: Spread,
    /// p99 of every request in [event, event + 1 s] (older result sets:
    /// the worst 100 ms p99 there); `None` when no repeat had a success there.
    pub window_p99_us: Option<Spread>,
}

impl RecycleSpread {
    fn of(entries: &[Entry]) -> Option<RecycleSpread> {
        // Result sets older than the recycle windows: computed from their timeline.
        let upgraded: Vec<super::results::RecycleFigures> = entries
            .iter()
            .filter_map(|e| {
                let mut r = e.recycle.clone()?;
                if r.window_1s.is_none() {
                    let timeline = e.load.as_ref().map_or(&[][..], |l| &l.timeline[..]);
                    let (w, d, down) = super::stats::recycle_windows(timeline, r.event_ms, None);
                    (r.window_1s, r.drain, r.downtime_ms) = (Some(w), Some(d), down);
                    if r.level.is_empty() {
                        r.level = e
                            .load
                            .as_ref()
                            .and_then(|l| l.rate_per_sec)
                            .map_or("-".into(), |x| format!("{x:.0}/s"));
                    }
                }
                Some(r)
            })
            .collect();
        let rs: Vec<_> = upgraded.iter().collect();
        let first = rs.first()?;
        let of = |f: &dyn Fn(&super::results::RecycleFigures) -> Option<f64>| {
            Spread::of(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
        };
        // Exact figures where every repeat has them, else the older ones.
        let exact = rs.iter().all(|r| {
            r.drain
                .is_some_and(|d| d.delayed.is_some() || d.delayed_at_least.is_none())
        });
        let exact_p99 = rs
            .iter()
            .all(|r| r.window_1s.is_some_and(|w| w.p99_us.is_some() || w.ok == 0));
        // A window without a success has no p99 (older sets recorded 0).
        let with_success = |w: &super::results::WindowMetrics| w.ok > 0;
        Some(RecycleSpread {
            kind: first.kind.clone(),
            level: first.level.clone(),
            control: first.control,
            failed: of(&|r| Some(r.drain.map_or(r.failed.total(), |d| d.failed.total()) as f64))?,
            delayed: of(&|r| {
                r.drain
                    .and_then(|d| if exact { d.delayed } else { d.delayed_at_least })
                    .map(|d| d as f64)
            }),
            delayed_is_lower_bound: !exact,
            downtime_ms: of(&|r| Some(r.downtime_ms as f64))?,
            window_p99_us: of(&|r| {
                r.window_1s.filter(with_success).and_then(|w| {
                    if exact_p99 {
                        w.p99_us
                    } else {
                        Some(w.worst_interval_p99_us)
                    }
                    .map(|p| p as f64)
                })
            }),
        })
    }

    /// `failed 3, delayed 40, downtime 200 ms, window p99 12.3 ms`
    /// (medians; `(min..max)` after each when repeats differ; `delayed >=`
    /// for older result sets, whose count is a lower bound).
    pub(super) fn text(&self) -> String {
        format!(
            "failed {}, delayed {}, downtime {} ms, window p99 {} ms",
            range_text(&self.failed, 0, 1.0),
            self.delayed_text(),
            range_text(&self.downtime_ms, 0, 1.0),
            self.window_p99_text(),
        )
    }

    /// The delayed median (and range), `>= ` before a lower bound, `-` without a threshold.
    pub(super) fn delayed_text(&self) -> String {
        self.delayed.as_ref().map_or("-".into(), |d| {
            format!(
                "{}{}",
                if self.delayed_is_lower_bound { ">= " } else { "" },
                range_text(d, 0, 1.0)
            )
        })
    }

    /// The window p99 in ms (and range), `-` when nothing succeeded in the window.
    pub(super) fn window_p99_text(&self) -> String {
        self.window_p99_us
            .as_ref()
            .map_or("-".into(), |p| range_text(p, 1, 1e3))
    }
}

/// A median with its range when the repeats differ, e.g. `12 (10..15)`;
/// values divided by `unit` (1e3 for µs -> ms) with `digits` decimals.
pub(super) fn range_text(s: &Spread, digits: usize, unit: f64) -> String {
    let v = |x: f64| format!("{:.digits$}", x / unit);
    if s.n > 1 && s.min != s.max {
        format!("{} ({}..{})", v(s.median), v(s.min), v(s.max))
    } else {
        v(s.median)
    }
}

/// CPU cost per request of one model and endpoint, over its repeats.
#[derive(Debug, Clone)]
pub(super) struct CpuSummary {
    /// Every server process, µs per request.
    pub processes_us: Spread,
    /// The server cores' busy time, µs per request.
    pub core_us: Spread,
    /// Median µs per request of each role (each role's own median, so the
    /// medians need not add up to `processes_us.median` exactly).
    pub by_role: BTreeMap<String, f64>,
    pub idle_us_per_s: f64,
    /// Highest steal share of any repeat, percent.
    pub steal_percent_max: f64,
    /// Capped repeats, and how many of them were checked server-bound.
    pub capped: usize,
    pub server_bound: usize,
}

impl CpuSummary {
    /// Whether the server core ran little but the model (its busy time at
    /// most [`super::claims::CORE_EXTRA_SHARE`] above the processes' sum in
    /// every repeat), so that the core figure is the model's cost.
    pub(super) fn core_is_clean(&self, entries: &[Entry]) -> bool {
        entries.iter().filter_map(|e| e.cpu.as_ref()).all(|c| {
            c.core_busy_us_per_request.is_finite()
                && c.core_busy_us_per_request <= c.us_per_request * (1.0 + super::claims::CORE_EXTRA_SHARE)
        })
    }
}

fn cpu_summary(entries: &[Entry]) -> Option<CpuSummary> {
    let cpus: Vec<_> = entries.iter().filter_map(|e| e.cpu.as_ref()).collect();
    if cpus.is_empty() {
        return None;
    }
    let mut roles: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for c in &cpus {
        for (role, us) in &c.by_role {
            roles.entry(role.clone()).or_default().push(*us);
        }
    }
    Some(CpuSummary {
        processes_us: Spread::of(&cpus.iter().map(|c| c.us_per_request).collect::<Vec<_>>())?,
        core_us: Spread::of(&cpus.iter().map(|c| c.core_busy_us_per_request).collect::<Vec<_>>()).unwrap_or(Spread {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            n: 0,
        }),
        by_role: roles
            .into_iter()
            .filter_map(|(role, v)| Some((role, Spread::of(&v)?.median)))
            .collect(),
        idle_us_per_s: Spread::of(&cpus.iter().map(|c| c.idle_us_per_s).collect::<Vec<_>>()).map_or(0.0, |s| s.median),
        steal_percent_max: cpus
            .iter()
            .map(|c| c.steal_percent)
            .filter(|s| s.is_finite())
            .fold(0.0, f64::max),
        capped: entries.iter().filter(|e| e.cpu_cap.is_some()).count(),
        server_bound: entries
            .iter()
            .filter(|e| e.cpu_cap.as_ref().is_some_and(|c| c.server_bound))
            .count(),
    })
}

impl SummaryRow {
    /// Whether the repeats disagreed by more than the noise threshold.
    pub(super) fn noisy(&self) -> bool {
        self.rps.as_ref().is_some_and(is_noisy)
    }
}

/// Rows in run order of first appearance.
pub(super) fn summarize(results: &Results) -> Vec<SummaryRow> {
    let mut order: Vec<(String, String, String)> = Vec::new();
    let mut groups: BTreeMap<(String, String, String), Vec<Entry>> = BTreeMap::new();
    for e in &results.entries {
        let key = (e.scenario.clone(), e.model.clone(), e.variant.clone());
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(e.clone());
    }
    let mut rows: Vec<SummaryRow> = order
        .into_iter()
        .map(|key| {
            let entries = groups.remove(&key).unwrap_or_default();
            row(key, entries)
        })
        .collect();
    let edge: BTreeMap<(String, String), f64> = rows
        .iter()
        .filter(|r| r.model == "edge")
        .filter_map(|r| Some(((r.scenario.clone(), r.variant.clone()), r.rps?.median)))
        .collect();
    for r in &mut rows {
        // Latency rows run every model at the same rates: a req/s ratio
        // says nothing there.
        if r.scenario == "latency" {
            continue;
        }
        let base = edge.get(&(r.scenario.clone(), r.variant.clone())).copied();
        r.ratio_to_edge = ratio(r.rps.map(|s| s.median), base);
    }
    rows
}

fn row((scenario, model, variant): (String, String, String), entries: Vec<Entry>) -> SummaryRow {
    let loads: Vec<_> = entries.iter().filter_map(|e| e.load.as_ref()).collect();
    let spread =
        |f: &dyn Fn(&super::results::LoadFigures) -> f64| Spread::of(&loads.iter().map(|l| f(l)).collect::<Vec<_>>());
    let detail = detail(&entries);
    // Multihost rows carry their figures in `multihost` / `node_kill`, not `load`.
    let multihost: Vec<_> = entries.iter().filter_map(|e| e.multihost.as_ref()).collect();
    let other_errors: u64 = multihost.iter().map(|m| m.requests.errors.total()).sum::<u64>()
        + entries
            .iter()
            .filter_map(|e| e.node_kill.as_ref())
            .map(|k| k.requests.errors.total())
            .sum::<u64>();
    SummaryRow {
        repeats: entries.len(),
        rps: spread(&|l| l.requests_per_sec)
            .or_else(|| Spread::of(&multihost.iter().map(|m| m.requests_per_sec).collect::<Vec<_>>())),
        p50_us: spread(&|l| l.latency_us.p50 as f64),
        p99_us: spread(&|l| l.latency_us.p99 as f64),
        p99_9_us: spread(&|l| l.latency_us.p99_9 as f64),
        max_us: spread(&|l| l.latency_us.max as f64),
        errors: loads.iter().map(|l| l.requests.errors.total()).sum::<u64>() + other_errors,
        generator_limited: loads
            .iter()
            .any(|l| l.mode == "closed" && generator_limited(l.generator_cpu_percent, l.generator_cpus)),
        ratio_to_edge: None,
        cpu: cpu_summary(&entries),
        recycle: RecycleSpread::of(&entries),
        scenario,
        model,
        variant,
        detail,
        entries,
    }
}

/// The scenario-specific figures of the first entry, in words.
fn detail(entries: &[Entry]) -> String {
    let Some(e) = entries.first() else { return String::new() };
    if let Some(f) = &e.inflight {
        return format!(
            "tasks {} accepted, {} finished, {} lost",
            f.tasks_accepted, f.tasks_finished, f.tasks_lost
        );
    }
    if let Some(s) = &e.state {
        return format!("books {} -> {}", s.books_before, s.books_after);
    }
    if let Some(r) = &e.routing {
        return format!(
            "{} live actors, RSS {} -> {} MiB, {:.0} tasks/s",
            r.live_actors,
            mib_text(r.rss_before_bytes),
            mib_text(r.rss_after_bytes),
            r.tasks_per_sec
        );
    }
    if let Some(r) = RecycleSpread::of(entries) {
        return r.text();
    }
    if let Some(c) = &e.coldstart {
        let first = Spread::of(
            &entries
                .iter()
                .filter_map(|e| Some(e.coldstart.as_ref()?.first_request_ms))
                .collect::<Vec<_>>(),
        );
        return format!(
            "first request {:.1} ms (min {:.1}, max {:.1}), second {:.1} ms",
            first.map_or(c.first_request_ms, |s| s.median),
            first.map_or(c.first_request_ms, |s| s.min),
            first.map_or(c.first_request_ms, |s| s.max),
            c.second_request_ms
        );
    }
    if let Some(k) = &e.soak {
        return format!(
            "{:.0} req/s for {:.0} s, {} recycles, failed {} ({}), RSS {} -> {} MiB ({} %): {}",
            k.rate_per_sec,
            k.duration_s,
            k.recycles,
            k.failed.total(),
            k.failed.describe(),
            mib_text(k.rss_start_bytes),
            mib_text(k.rss_end_bytes),
            k.rss_growth_percent.map_or("-".into(), |g| format!("{g:+.1}")),
            k.verdict
        );
    }
    if e.link.is_some() {
        let links: Vec<_> = entries.iter().filter_map(|e| e.link.as_ref()).collect();
        let one = Spread::of(&links.iter().map(|l| l.one_way_per_sec).collect::<Vec<_>>());
        let rt = Spread::of(&links.iter().map(|l| l.round_trips_per_sec).collect::<Vec<_>>());
        let show = |s: Option<Spread>| s.map_or("-".into(), |s| format!("{:.0} ({:.0}-{:.0})", s.median, s.min, s.max));
        return format!(
            "one-way {} msg/s ({} in flight), round trips {} /s ({} calls in flight)",
            show(one),
            links[0].in_flight,
            show(rt),
            links[0].calls_in_flight
        );
    }
    if let Some(m) = &e.multihost {
        let per_request: f64 = m.hosts.iter().map(|h| h.cpu_us_per_request).sum();
        return format!(
            "{}: {:.0} req/s, {per_request:.1} CPU µs per request on all hosts, {} errors",
            m.request,
            m.requests_per_sec,
            m.requests.errors.total()
        );
    }
    if let Some(k) = &e.node_kill {
        return format!(
            "{} killed: {} failed during the outage, recovery {}, other shard kept answering: {}",
            k.killed,
            k.failed_during_outage.total(),
            k.recovery_ms
                .map_or("none within the limit".into(), |r| format!("{r:.0} ms")),
            k.other_shard_kept_answering
                .map_or("-", |b| if b { "yes" } else { "no" })
        );
    }
    if let Some(c) = &e.crosscheck {
        return format!(
            "{}: {:.0} req/s, hostlab/{} = {:.2}",
            c.tool, c.requests_per_sec, c.tool, c.hostlab_over_tool
        );
    }
    String::new()
}

/// Summed CPU percent of a row's server processes, over the repeats that
/// measured processes.
pub(super) fn server_cpu_percent(r: &SummaryRow) -> Option<Spread> {
    let v: Vec<f64> = r
        .entries
        .iter()
        .filter(|e| !e.processes.is_empty())
        .map(|e| e.processes.iter().map(|p| p.cpu_percent).sum())
        .collect();
    Spread::of(&v)
}

/// Summed RSS of a row's server processes at the end of each repeat.
pub(super) fn server_rss_bytes(r: &SummaryRow) -> Option<Spread> {
    let v: Vec<f64> = r
        .entries
        .iter()
        .filter(|e| !e.processes.is_empty())
        .map(|e| e.processes.iter().map(|p| p.rss_bytes).sum::<u64>() as f64)
        .collect();
    Spread::of(&v)
}

/// Spawn-to-ready of the model's first process, over the repeats.
pub(super) fn startup_ms(r: &SummaryRow) -> Option<Spread> {
    Spread::of(&r.entries.iter().filter_map(|e| e.startup_ms).collect::<Vec<_>>())
}

pub(super) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A figure that may be missing, in MiB with one decimal, or `-`.
pub(super) fn mib_text(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.1}", mib(b)))
}

/// The distinct variants of `rows`, in their first-seen order (one table
/// or chart per endpoint or rate).
pub(super) fn variants_in_order<'a>(rows: impl IntoIterator<Item = &'a SummaryRow>) -> Vec<&'a str> {
    let mut variants: Vec<&str> = Vec::new();
    for r in rows {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    variants
}

/// The row of a scenario, model and variant.
pub(super) fn find<'a>(rows: &'a [SummaryRow], scenario: &str, model: &str, variant: &str) -> Option<&'a SummaryRow> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.model == model && r.variant == variant)
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
