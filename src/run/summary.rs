//! Summary of a result set: entries grouped by scenario, model and variant,
//! with medians and ranges over repeats and ratios to `edge` in the same
//! run. Every export (Markdown, CSV, console, compare, claims) reads this.

use std::collections::BTreeMap;

use super::results::{Entry, Results};
use super::stats::{Spread, generator_limited, is_noisy, ratio};

/// One model in one scenario variant, over its repeats.
#[derive(Debug, Clone)]
pub struct SummaryRow {
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
}

/// CPU cost per request of one model and endpoint, over its repeats.
#[derive(Debug, Clone)]
pub struct CpuSummary {
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
    pub fn core_is_clean(&self, entries: &[Entry]) -> bool {
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
    pub fn noisy(&self) -> bool {
        self.rps.as_ref().is_some_and(is_noisy)
    }
}

/// Rows in run order of first appearance.
pub fn summarize(results: &Results) -> Vec<SummaryRow> {
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
    SummaryRow {
        repeats: entries.len(),
        rps: spread(&|l| l.requests_per_sec),
        p50_us: spread(&|l| l.latency_us.p50 as f64),
        p99_us: spread(&|l| l.latency_us.p99 as f64),
        p99_9_us: spread(&|l| l.latency_us.p99_9 as f64),
        max_us: spread(&|l| l.latency_us.max as f64),
        errors: loads.iter().map(|l| l.requests.errors.total()).sum(),
        generator_limited: loads
            .iter()
            .any(|l| l.mode == "closed" && generator_limited(l.generator_cpu_percent, l.generator_cpus)),
        ratio_to_edge: None,
        cpu: cpu_summary(&entries),
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
    if let Some(r) = &e.recycle {
        let a = &r.analysis;
        return format!(
            "failed {} ({}), gap {} ms, p99 {:.1} -> {:.1} ms, recovered in {} ms",
            a.failed_requests,
            r.failed.describe(),
            a.longest_gap_no_success_ms,
            a.baseline_p99_us as f64 / 1e3,
            a.peak_p99_us as f64 / 1e3,
            a.time_to_recover_ms
        );
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
    if let Some(c) = &e.crosscheck {
        return format!(
            "{}: {:.0} req/s, hostlab/{} = {:.2}",
            c.tool, c.requests_per_sec, c.tool, c.hostlab_over_tool
        );
    }
    String::new()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A figure that may be missing, in MiB with one decimal, or `-`.
pub fn mib_text(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.1}", mib(b)))
}

/// The row of a scenario, model and variant.
pub fn find<'a>(rows: &'a [SummaryRow], scenario: &str, model: &str, variant: &str) -> Option<&'a SummaryRow> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.model == model && r.variant == variant)
}
