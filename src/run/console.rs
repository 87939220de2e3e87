//! Everything `hostlab run` prints: the live progress line (scenario, model,
//! ETA) on a terminal, one plain line per step otherwise, and the
//! hyperfine-style summary at the end.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use super::claims::ClaimRow;
use super::scenarios::throughput::PING;
use super::summary::{SummaryRow, find};

/// Progress of a run.
#[derive(Debug)]
pub struct Console {
    live: bool,
    started: Instant,
    total_estimate_s: f64,
    done_estimate_s: f64,
    scenario_started: Instant,
    scenario_estimate_s: f64,
}

impl Console {
    pub fn new(total_estimate_s: f64) -> Console {
        Console {
            live: std::io::stdout().is_terminal(),
            started: Instant::now(),
            total_estimate_s,
            done_estimate_s: 0.0,
            scenario_started: Instant::now(),
            scenario_estimate_s: 0.0,
        }
    }

    pub fn begin_scenario(&mut self, estimate_s: f64) {
        self.scenario_started = Instant::now();
        self.scenario_estimate_s = estimate_s;
    }

    pub fn end_scenario(&mut self) {
        self.done_estimate_s += self.scenario_estimate_s;
        self.scenario_estimate_s = 0.0;
    }

    /// Estimated seconds left: what the remaining scenarios should take,
    /// minus what the current one has used of its share.
    fn eta_s(&self) -> f64 {
        let in_scenario = self
            .scenario_started
            .elapsed()
            .as_secs_f64()
            .min(self.scenario_estimate_s);
        (self.total_estimate_s - self.done_estimate_s - in_scenario).max(0.0)
    }

    /// One step: scenario, model and what is measured.
    pub fn step(&self, scenario: &str, model: &str, what: &str) {
        let eta = self.eta_s() as u64;
        let elapsed = self.started.elapsed().as_secs();
        let line = format!(
            "[{:>2}:{:02}] {scenario:<10} {model:<10} {what}  (ETA {}:{:02})",
            elapsed / 60,
            elapsed % 60,
            eta / 60,
            eta % 60
        );
        let mut out = std::io::stdout().lock();
        if self.live {
            let _ = write!(out, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// A message that stays (clears the live line first).
    pub fn note(&self, message: &str) {
        let mut out = std::io::stdout().lock();
        if self.live {
            let _ = write!(out, "\r\x1b[2K");
        }
        let _ = writeln!(out, "{message}");
    }

    /// Clears the live line.
    pub fn finish(&self) {
        if self.live {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
        }
    }
}

/// The summary printed at the end, hyperfine style: the fastest model
/// first, every other one as a multiple of a baseline.
pub(super) fn summary(rows: &[SummaryRow], claims: &[ClaimRow]) -> String {
    let mut out = String::new();
    let mut ping: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| r.scenario == "throughput" && r.variant == PING && r.rps.is_some())
        .collect();
    ping.sort_by(|a, b| {
        b.rps
            .map(|s| s.median)
            .unwrap_or(0.0)
            .total_cmp(&a.rps.map(|s| s.median).unwrap_or(0.0))
    });
    if !ping.is_empty() {
        out.push_str("Throughput, GET /ping (closed loop, median req/s [min .. max]):\n");
        for r in &ping {
            let s = r.rps.expect("filtered");
            out.push_str(&format!(
                "  {:<11} {:>9.0} req/s [{:.0} .. {:.0}]{}{}\n",
                r.model,
                s.median,
                s.min,
                s.max,
                r.ratio_to_edge.map_or(String::new(), |x| format!("  {x:.2}x edge")),
                if r.generator_limited {
                    "  (generator-limited)"
                } else {
                    ""
                }
            ));
        }
        let rps = |m: &str| find(rows, "throughput", m, PING).and_then(|r| r.rps.map(|s| s.median));
        for (a, b) in [
            ("inprocess", "proxy"),
            ("nginx", "proxy"),
            ("edge", "proxy"),
            ("edge-actix", "edge"),
        ] {
            if let (Some(x), Some(y)) = (rps(a), rps(b)) {
                out.push_str(&format!("  {a}: {:.2}x {b} throughput\n", x / y));
            }
        }
    }
    let recycles: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "recycle").collect();
    if !recycles.is_empty() {
        out.push_str("Recycles under fixed-rate load:\n");
        for r in recycles {
            out.push_str(&format!("  {} {}: {}\n", r.model, r.variant, r.detail));
        }
    }
    let states: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "state").collect();
    if !states.is_empty() {
        out.push_str("Where are all my books?\n");
        for r in states {
            out.push_str(&format!("  {} {}: {}\n", r.model, r.variant, r.detail));
        }
    }
    let soaks: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| r.scenario == "soak" && r.variant != "capacity probe")
        .collect();
    if !soaks.is_empty() {
        out.push_str("Soak:\n");
        for r in soaks {
            out.push_str(&format!("  {}: {}\n", r.model, r.detail));
        }
    }
    if !claims.is_empty() {
        out.push_str("Claims:\n");
        for c in claims {
            out.push_str(&format!("  {}: {} ({})\n", c.id, c.verdict.text(), c.measured));
        }
    }
    out
}
