//! Console output of `hostlab load`: the live progress bar and the human
//! summary (wrk/oha style). Everything the load command prints to the
//! terminal is here; the core returns data only.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::collector::Live;
use super::report::{LoadReport, PhaseReport};
use super::stats::LatencySummary;

/// A bar over the planned run time (warm-up + duration), drawn on stderr.
pub(super) fn progress_bar(planned: Duration) -> ProgressBar {
    let bar = ProgressBar::new(planned.as_millis() as u64);
    let style = ProgressStyle::with_template("{spinner} [{elapsed}] {wide_bar} {msg}").expect("constant template");
    bar.set_style(style);
    bar
}

/// Updates `bar` from the live counters until the task is dropped.
pub(super) async fn follow(bar: ProgressBar, live: Arc<Live>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let ok = live.ok.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        bar.set_position(start.elapsed().as_millis() as u64);
        bar.set_message(format!("{ok} ok, {errors} errors"));
    }
}

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1e3)
}

fn latency_row(label: &str, s: &LatencySummary) -> String {
    format!(
        "  {label:<18}{:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        ms(s.mean),
        ms(s.p50 as f64),
        ms(s.p90 as f64),
        ms(s.p99 as f64),
        ms(s.p99_9 as f64),
        ms(s.max as f64)
    )
}

pub(super) fn errors_line(p: &PhaseReport) -> String {
    let e = &p.requests.errors;
    format!(
        "4xx {}, 5xx {}, refused {}, reset {}, timeout {}, io {}",
        e.status_4xx, e.status_5xx, e.refused, e.reset, e.timeout, e.io
    )
}

/// The human summary of a run.
pub(super) fn summary(r: &LoadReport) -> String {
    let mut s = String::new();
    let pacing = match r.rate_per_sec {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_string(),
    };
    let _ = writeln!(s, "hostlab load {} {}", r.method, r.url);
    let _ = write!(
        s,
        "  {pacing}, {} connections, {:.1} s measured",
        r.connections, r.duration_s
    );
    if r.warmup_s > 0.0 {
        let _ = write!(s, " after {:.1} s warm-up", r.warmup_s);
    }
    let _ = writeln!(s, " (run took {:.2} s)\n", r.elapsed_s);
    let m = &r.measured;
    let errors = m.requests.total - m.requests.ok;
    let _ = writeln!(
        s,
        "  requests          {} ok, {errors} errors, {:.1} req/s (successes only)",
        m.requests.ok, m.requests_per_sec
    );
    let _ = writeln!(s, "  errors            {}\n", errors_line(m));
    let _ = writeln!(
        s,
        "  latency (ms)      {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    if r.rate_per_sec.is_some() {
        s += &latency_row("from schedule", &m.latency_us);
        s += &latency_row("service time", &m.service_time_us);
    } else {
        s += &latency_row("response", &m.latency_us);
    }
    let g = &r.generator;
    let _ = writeln!(
        s,
        "\n  generator         {:.0}% CPU of one core ({} CPU(s), {} worker thread(s)), \
         {:.2} us CPU per request",
        g.cpu_percent, g.cpus, g.worker_threads, g.cpu_us_per_request,
    );
    if r.rate_per_sec.is_some() {
        let lag = &r.send_lag_us;
        let _ = writeln!(
            s,
            "  send lag (us)     p50 {}, p99 {}, max {}; waiting for slots {:.0}% of the time; \
             waiting for its CPU {:.1}% (preempted {} times)",
            lag.p50, lag.p99, lag.max, g.pacing_wait_percent, g.run_queue_wait_percent, g.preemptions
        );
        let (wait, own) = (&r.connection_wait_us, &r.generator_lag_us);
        let _ = writeln!(
            s,
            "    of which       waiting for an idle connection p50 {}, p99 {}, max {}; \
             the generator's own p50 {}, p99 {}, max {} (pacer p99 {})",
            wait.p50, wait.p99, wait.max, own.p50, own.p99, own.max, r.pacer_lag_us.p99
        );
    }
    if let Some(w) = &r.warmup {
        let _ = writeln!(
            s,
            "  warm-up           {} ok, {} errors, {:.1} req/s, p99 {} ms (not in the figures above)",
            w.requests.ok,
            w.requests.total - w.requests.ok,
            w.requests_per_sec,
            ms(w.latency_us.p99 as f64)
        );
    }
    for warning in &r.warnings {
        let _ = writeln!(s, "  warning: {warning}");
    }
    s
}
