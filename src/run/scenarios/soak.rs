//! Soak (opt-in, `--scenarios soak`; not in the default list, never in CI):
//! each overlapped model (proxy, inprocess, split) runs a small `POST /tasks`
//! at half its own measured capacity for the soak duration, with an
//! overlapped recycle (`POST /recycle`) every 30 s, while the RSS of every
//! server process (front, app or worker, actor service) is sampled. Pass:
//! no failed request and total RSS growth of at most 5 %. See docs/run.md.

use hostlab_hosts::Model;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http::Method;

use super::recycle::{KINDS, flags, trigger};
use super::{closed, load_entry, load_plan, open, task_body};
use crate::run::results::{RssSample, SoakFigures, SoakProcess};
use crate::run::servers::Server;
use crate::run::stats::generator_limited;
use crate::run::{Ctx, Measurement};

/// The request: a 10-row task under one id. It crosses every hop of every
/// model (in `split` it reaches the actor service, which `/ping` does not),
/// and it stores nothing new (the task record is replaced), so memory that
/// grows is not data the API was asked to keep.
pub(crate) const VARIANT: &str = "POST /tasks (10 rows)";
const TASK_ID: &str = "soak";
const TASK_ROWS: usize = 10;
/// Share of the model's measured capacity the soak runs at.
pub(crate) const FRACTION: f64 = 0.5;
/// Most RSS growth, start to end, for a pass.
pub(crate) const RSS_GROWTH_LIMIT_PERCENT: f64 = 5.0;
/// Longest capacity probe.
const PROBE_LIMIT: Duration = Duration::from_secs(5);
/// Connections of the fixed-rate run: enough in flight for tens of
/// thousands of requests per second at a few milliseconds each.
const CONNECTIONS: usize = 64;

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let models = ctx.models_for(
        "soak",
        Model::recycles,
        "no overlapped recycle (only proxy, inprocess and split soak)",
    );
    let (_, overlapped_flags) = KINDS[0];
    for model in models {
        let measurement = Measurement::new("soak", &model);
        ctx.with_server(measurement, &flags(overlapped_flags), async |ctx, server| {
            one(ctx, &model, server).await
        })
        .await?;
    }
    Ok(())
}

async fn one(ctx: &mut Ctx, model: &str, server: &Server) -> anyhow::Result<()> {
    let admin = server
        .admin
        .clone()
        .ok_or_else(|| anyhow!("{model} printed no admin URL"))?;
    let http = ctx.http.clone();
    let body = Bytes::from(serde_json::to_vec(&task_body(TASK_ID, TASK_ROWS))?);

    // Capacity for this very request on this model, closed loop (at most
    // 5 s: `--duration` also sets the soak's length).
    ctx.console.step("soak", model, "capacity probe");
    let probe = closed(
        load_plan(&server.url, Method::POST, "/tasks", Some(body.clone()))?,
        ctx.plan.connections,
        ctx.plan.duration.min(PROBE_LIMIT),
        ctx.plan.warmup,
    );
    let capacity_report = ctx.load(probe).await?;
    let capacity = capacity_report.measured.requests_per_sec;
    if capacity <= 0.0 {
        anyhow::bail!("{model} answered no {VARIANT} in the capacity probe, so there is no rate to soak at");
    }
    let capacity_limited = generator_limited(capacity_report.generator.cpu_percent, capacity_report.generator.cpus);
    ctx.push(load_entry(
        model,
        "soak",
        "capacity probe",
        1,
        &capacity_report,
        false,
        Vec::new(),
    ));

    let duration = ctx.plan.soak_duration;
    let every = ctx.plan.soak_recycle_every;
    let rate = (capacity * FRACTION).max(1.0);
    ctx.console.step(
        "soak",
        model,
        &format!("{rate:.0} req/s for {}", humantime::format_duration(duration)),
    );
    let mut plan = open(
        load_plan(&server.url, Method::POST, "/tasks", Some(body))?,
        CONNECTIONS,
        rate,
        duration,
        Duration::ZERO,
    );
    plan.interval = Duration::from_secs(1);
    let t0 = Instant::now();
    let load = tokio::spawn(async move { crate::load::run(&plan, None).await });

    // Recycle every `every` while the load runs, but not in the last half
    // interval; sample RSS just before each recycle and after the load, so
    // every sample sees an app that has run about `every` under load.
    let mut samples = Vec::new();
    let mut recycle_at_ms = Vec::new();
    let mut recycle_errors = Vec::new();
    let mut k = 1;
    while every * k + every / 2 <= duration {
        tokio::time::sleep_until((t0 + every * k).into()).await;
        samples.push(sample_rss(server, t0));
        recycle_at_ms.push(t0.elapsed().as_millis() as u64);
        if let Err(e) = trigger(&http, &admin, "overlapped").await {
            recycle_errors.push(format!("{e:#}"));
        }
        k += 1;
    }
    let report = load.await.context("the load task failed")??;
    samples.push(sample_rss(server, t0));
    let admin_status = http.get_json(&format!("{admin}/status")).await.ok();
    let recycles_seen = admin_status.as_ref().and_then(|s| s["recycles"].as_u64());

    let rss_start_bytes = samples.first().and_then(|s| s.total_bytes);
    let rss_end_bytes = samples.last().and_then(|s| s.total_bytes);
    let rss_growth_percent = growth_percent(rss_start_bytes, rss_end_bytes);
    let failed = report.measured.requests.errors;
    let recycles_requested = recycle_at_ms.len() as u64;
    let recycles = recycles_requested - recycle_errors.len() as u64;
    let (pass, verdict) = verdict(&SoakEvidence {
        answered: report.measured.requests.ok,
        failed: failed.total(),
        failed_classes: failed.describe(),
        recycles_requested,
        recycles_accepted: recycles,
        recycles_reported: recycles_seen,
        rss_growth_percent,
    });
    let mut entry = load_entry(model, "soak", VARIANT, 1, &report, true, Vec::new());
    entry.soak = Some(SoakFigures {
        capacity_per_sec: capacity,
        capacity_generator_limited: capacity_limited,
        fraction: FRACTION,
        rate_per_sec: rate,
        duration_s: duration.as_secs_f64(),
        recycle_every_s: every.as_secs_f64(),
        recycles_requested,
        recycles,
        recycles_reported: recycles_seen,
        recycle_at_ms,
        recycle_errors,
        failed,
        rss_start_bytes,
        rss_end_bytes,
        rss_growth_percent,
        rss_growth_limit_percent: RSS_GROWTH_LIMIT_PERCENT,
        rss_samples: samples,
        pass,
        verdict,
    });
    ctx.push(entry);
    Ok(())
}

/// RSS of every process of the model now, each with its role. A process
/// that cannot be read is listed in `unreadable` and leaves the total
/// unknown: a sum without it would look like a drop in memory.
fn sample_rss(server: &Server, t0: Instant) -> RssSample {
    let mut processes = Vec::new();
    let mut unreadable = Vec::new();
    for pid in server.pids() {
        match (role(pid), hostlab_workloads::rss_bytes(pid)) {
            (Some(role), Some(rss_bytes)) => processes.push(SoakProcess { pid, role, rss_bytes }),
            (None, _) => unreadable.push(format!("pid {pid}: no `hostlab serve ROLE` command line")),
            (_, None) => unreadable.push(format!("pid {pid}: RSS not readable")),
        }
    }
    RssSample {
        t_ms: t0.elapsed().as_millis() as u64,
        total_bytes: (unreadable.is_empty() && !processes.is_empty())
            .then(|| processes.iter().map(|p| p.rss_bytes).sum()),
        processes,
        unreadable,
    }
}

/// What a process is: the model or part its command line `hostlab serve
/// MODEL ...` serves, i.e. the model's own name for the first process (the
/// front or supervisor), `app`, `worker`, `front` or `actors` for the parts
/// it started.
fn role(pid: u32) -> Option<String> {
    crate::run::cpu::served_by(pid).map(|m| m.name().to_string())
}

/// Growth from `start` to `end` in percent of `start`; `None` without
/// both figures or from a zero start (no base to grow from).
pub(crate) fn growth_percent(start: Option<u64>, end: Option<u64>) -> Option<f64> {
    let (start, end) = (start.filter(|s| *s > 0)?, end?);
    Some((end as f64 - start as f64) / start as f64 * 100.0)
}

/// What one model's soak measured, as the verdict needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SoakEvidence {
    /// Requests answered successfully over the run.
    pub answered: u64,
    pub failed: u64,
    /// The failed requests by class, in words.
    pub failed_classes: String,
    /// `POST /recycle` sent, accepted, and the manager's own count.
    pub recycles_requested: u64,
    pub recycles_accepted: u64,
    pub recycles_reported: Option<u64>,
    pub rss_growth_percent: Option<f64>,
}

/// Pass when requests were answered, no request failed, every recycle
/// requested was accepted and counted by the manager, and RSS grew at most
/// [`RSS_GROWTH_LIMIT_PERCENT`]. A broken rule fails the soak; missing
/// evidence (no request answered, no recycle, no manager count, no RSS
/// figure) makes it "not measured", never a pass. The text names each.
pub(crate) fn verdict(e: &SoakEvidence) -> (bool, String) {
    let mut broken = Vec::new();
    let mut missing = Vec::new();
    if e.failed > 0 {
        broken.push(format!("{} failed requests ({})", e.failed, e.failed_classes));
    }
    if e.recycles_accepted < e.recycles_requested {
        broken.push(format!(
            "{} of {} recycles refused",
            e.recycles_requested - e.recycles_accepted,
            e.recycles_requested
        ));
    }
    match e.recycles_reported {
        Some(reported) if reported != e.recycles_requested => broken.push(format!(
            "the manager counted {reported} recycles, {} were requested",
            e.recycles_requested
        )),
        Some(_) => {}
        None => missing.push("no recycle count from the manager".to_string()),
    }
    match e.rss_growth_percent {
        Some(g) if g > RSS_GROWTH_LIMIT_PERCENT => {
            broken.push(format!("RSS grew {g:+.1} % (limit {RSS_GROWTH_LIMIT_PERCENT} %)"))
        }
        Some(_) => {}
        None => missing.push("no RSS growth (a process's memory could not be read)".to_string()),
    }
    if e.answered == 0 {
        missing.push("no request answered".into());
    }
    if e.recycles_requested == 0 {
        missing.push("no recycle in the soak (shorter than its recycle interval)".into());
    }
    if !broken.is_empty() {
        broken.extend(missing);
        return (false, format!("fail: {}", broken.join("; ")));
    }
    if !missing.is_empty() {
        return (false, format!("not measured: {}", missing.join("; ")));
    }
    let g = e.rss_growth_percent.unwrap_or_default();
    (
        true,
        format!(
            "pass: {} answered, 0 failed, {} of {} recycles, RSS {g:+.1} % (limit {RSS_GROWTH_LIMIT_PERCENT} %)",
            e.answered, e.recycles_accepted, e.recycles_requested
        ),
    )
}

/// The models of a run's selection that soak (in selection order).
pub(crate) fn wanted(selected: &[String]) -> Vec<String> {
    selected
        .iter()
        .filter(|m| m.parse().is_ok_and(Model::recycles))
        .cloned()
        .collect()
}

/// The soak verdict over every model that should have soaked: a model
/// without an entry (it failed to start, or its run errored) fails it, as
/// does any model's own failure; a model not measured leaves it not
/// measured. `results`: (model, pass, verdict text) of each soak entry.
pub(crate) fn overall_verdict(wanted: &[String], results: &[(String, bool, String)]) -> (&'static str, String) {
    if wanted.is_empty() {
        return (
            "not measured",
            "no model with an overlapped recycle was selected".into(),
        );
    }
    let mut parts = Vec::new();
    let (mut failed, mut missing) = (false, false);
    for model in wanted {
        match results.iter().find(|(m, _, _)| m == model) {
            None => {
                failed = true;
                parts.push(format!("{model}: no soak result (see Not measured)"));
            }
            Some((_, pass, text)) => {
                failed |= !pass && text.starts_with("fail");
                missing |= !pass && !text.starts_with("fail");
                parts.push(format!("{model}: {}", text.split(':').next().unwrap_or(text)));
            }
        }
    }
    let word = if failed {
        "fail"
    } else if missing {
        "not measured"
    } else {
        "pass"
    };
    (word, parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_relative_to_the_start() {
        assert_eq!(growth_percent(Some(100), Some(105)), Some(5.0));
        assert_eq!(growth_percent(Some(200), Some(100)), Some(-50.0));
    }

    #[test]
    fn growth_without_a_base_is_unknown_not_zero() {
        assert_eq!(growth_percent(Some(0), Some(100)), None);
        assert_eq!(growth_percent(None, Some(100)), None);
        assert_eq!(growth_percent(Some(100), None), None);
    }

    fn good() -> SoakEvidence {
        SoakEvidence {
            answered: 1000,
            failed: 0,
            failed_classes: "none".into(),
            recycles_requested: 19,
            recycles_accepted: 19,
            recycles_reported: Some(19),
            rss_growth_percent: Some(5.0),
        }
    }

    #[test]
    fn verdict_passes_only_with_all_evidence() {
        let (pass, text) = verdict(&good());
        assert!(pass, "5 % is within the limit: {text}");
        assert!(text.starts_with("pass") && text.contains("19 of 19"), "{text}");
        assert!(
            verdict(&SoakEvidence {
                rss_growth_percent: Some(-2.0),
                ..good()
            })
            .0
        );
    }

    #[test]
    fn verdict_names_each_broken_rule() {
        let (pass, text) = verdict(&SoakEvidence {
            failed: 3,
            failed_classes: "3 5xx".into(),
            recycles_accepted: 18,
            rss_growth_percent: Some(7.5),
            ..good()
        });
        assert!(!pass);
        assert!(
            text.starts_with("fail")
                && text.contains("3 failed")
                && text.contains("1 of 19 recycles")
                && text.contains("+7.5 %"),
            "{text}"
        );
        let (pass, text) = verdict(&SoakEvidence {
            recycles_reported: Some(18),
            ..good()
        });
        assert!(
            !pass && text.contains("counted 18 recycles, 19 were requested"),
            "{text}"
        );
    }

    #[test]
    fn missing_or_zero_evidence_is_not_measured() {
        for (evidence, missing) in [
            (
                SoakEvidence {
                    rss_growth_percent: None,
                    ..good()
                },
                "no RSS growth",
            ),
            (
                SoakEvidence {
                    recycles_reported: None,
                    ..good()
                },
                "no recycle count",
            ),
            (SoakEvidence { answered: 0, ..good() }, "no request answered"),
            (
                SoakEvidence {
                    recycles_requested: 0,
                    recycles_accepted: 0,
                    recycles_reported: Some(0),
                    ..good()
                },
                "no recycle in the soak",
            ),
        ] {
            let (pass, text) = verdict(&evidence);
            assert!(!pass, "{text}");
            assert!(text.starts_with("not measured") && text.contains(missing), "{text}");
        }
    }

    #[test]
    fn a_model_without_an_entry_fails_the_soak() {
        let wanted: Vec<String> = ["proxy", "inprocess"].map(String::from).to_vec();
        let ok = |m: &str| (m.to_string(), true, "pass: fine".to_string());
        assert_eq!(overall_verdict(&wanted, &[ok("proxy"), ok("inprocess")]).0, "pass");
        let (word, text) = overall_verdict(&wanted, &[ok("proxy")]);
        assert_eq!(word, "fail");
        assert!(text.contains("inprocess: no soak result"), "{text}");
        let unmeasured = ("inprocess".to_string(), false, "not measured: no RSS".to_string());
        assert_eq!(overall_verdict(&wanted, &[ok("proxy"), unmeasured]).0, "not measured");
        assert_eq!(overall_verdict(&[], &[]).0, "not measured");
    }
}
