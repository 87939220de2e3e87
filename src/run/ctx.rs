//! [`Ctx`], one run in progress, and the per-model scenario loop written
//! once ([`Ctx::with_server`], [`Ctx::serving`], [`Ctx::models_for`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use hostlab_hosts::Model;

use super::console::Console;
use super::export;
use super::plan::RunPlan;
use super::results::{Entry, Results, Skipped};
use super::servers::{self, Http, Server};
use crate::load::{LoadPlan, LoadReport};

/// One run in progress: the plan, what has been measured, and the tools
/// every scenario uses.
pub struct Ctx {
    pub plan: RunPlan,
    pub results: Results,
    pub http: Http,
    pub console: Console,
    /// Scratch files (nginx configs) for this run.
    pub tmp: PathBuf,
    /// Measurements that failed (the run goes on, then exits 1).
    pub failures: Vec<String>,
    pub(super) started: Instant,
}

impl Ctx {
    /// Starts a model on the server CPUs.
    pub async fn start(&self, model: &str, extra: &[String]) -> anyhow::Result<Server> {
        Server::start(model, extra, &self.plan.server_cpus, &self.tmp).await
    }

    /// Starts `model` with `flags`, runs `body` on it once `GET /ping`
    /// answers 200, and stops it whatever the body returned: the start, wait
    /// and stop of every measurement, with no console step and no failure
    /// recorded (the caller decides; see [`Ctx::with_server`] for the loop).
    pub async fn serving<T>(
        &mut self,
        model: &str,
        flags: &[String],
        body: impl AsyncFnOnce(&mut Ctx, &Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.on_server(model, flags, true, body).await
    }

    /// [`Ctx::serving`], with `wait_serving` false: the body runs right after
    /// the ready line (coldstart measures the first request itself).
    async fn on_server<T>(
        &mut self,
        model: &str,
        flags: &[String],
        wait_serving: bool,
        body: impl AsyncFnOnce(&mut Ctx, &Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let server = self.start(model, flags).await?;
        let outcome = async {
            if wait_serving {
                server.wait_serving(&self.http).await?;
            }
            body(self, &server).await
        }
        .await;
        server.stop().await;
        outcome
    }

    /// One measurement of the per-model scenario loop, written once: the
    /// console step, a fresh server of `m.model` with `flags`, `body` once it
    /// answers `GET /ping` (unless [`Measurement::from_ready_line`]), the
    /// server stopped, and a failure (to start, to serve, or of the body)
    /// recorded with [`Ctx::fail`] so the loop goes on with the next model;
    /// results.json is rewritten either way. The body pushes its entries.
    /// `Ok(None)` means the measurement failed and was recorded; `Err` only
    /// that results.json could not be written.
    ///
    /// A scenario's loop becomes:
    ///
    /// ```text
    /// for model in ctx.plan.models.clone() {
    ///     let flags = steady_flags(&model);
    ///     ctx.with_server(Measurement::new("latency", &model), &flags, async |ctx, server| {
    ///         // measure against server.url, ctx.push(entry) ...
    ///         anyhow::Ok(())
    ///     })
    ///     .await?;
    /// }
    /// ```
    ///
    /// A nested start inside a measurement (a capacity probe, a restart)
    /// uses [`Ctx::serving`], which records nothing.
    pub async fn with_server<T>(
        &mut self,
        m: Measurement<'_>,
        flags: &[String],
        body: impl AsyncFnOnce(&mut Ctx, &Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        self.console
            .step(m.scenario, m.model, m.label.as_deref().unwrap_or("starting"));
        let outcome = self.on_server(m.model, flags, m.wait_serving, body).await;
        let done = match outcome {
            Ok(value) => Some(value),
            Err(e) => {
                let e = match &m.label {
                    Some(label) => e.context(label.clone()),
                    None => e,
                };
                self.fail(m.model, m.scenario, e);
                None
            }
        };
        self.save()?;
        Ok(done)
    }

    /// One load run on the generator's CPUs (this process is pinned to them).
    pub async fn load(&self, plan: LoadPlan) -> anyhow::Result<LoadReport> {
        let url = plan.target.url.clone();
        crate::load::run(&plan, None)
            .await
            .with_context(|| format!("load run against {url} failed"))
    }

    pub fn push(&mut self, entry: Entry) {
        self.results.entries.push(entry);
    }

    /// Records a failed measurement and goes on with the next one; the run
    /// exits 1 at the end, naming every failure.
    pub fn fail(&mut self, model: &str, scenario: &str, error: anyhow::Error) {
        let reason = format!("FAILED: {error:#}");
        self.console.note(&format!("{scenario} / {model}: {reason}"));
        self.failures.push(format!("{scenario} / {model}: {error:#}"));
        self.results.skipped.push(Skipped {
            model: Some(model.to_string()).filter(|m| m != "-"),
            scenario: Some(scenario.to_string()),
            reason,
        });
    }

    pub fn skip(&mut self, model: Option<&str>, scenario: &str, reason: String) {
        self.console.note(&format!(
            "skipped: {}{scenario}: {reason}",
            model.map_or(String::new(), |m| format!("{m} in "))
        ));
        self.results.skipped.push(Skipped {
            model: model.map(str::to_string),
            scenario: Some(scenario.to_string()),
            reason,
        });
    }

    /// Records a skip for every selected model the scenario does not run
    /// (those for which `runs` is false), so no model drops out of a
    /// scenario silently. A model already skipped in this scenario keeps its
    /// first, more specific reason.
    pub fn skip_models_outside(&mut self, scenario: &str, runs: impl Fn(Model) -> bool, reason: &str) {
        let already = |m: &str| {
            self.results
                .skipped
                .iter()
                .any(|s| s.model.as_deref() == Some(m) && s.scenario.as_deref() == Some(scenario))
        };
        let dropped: Vec<String> = self
            .plan
            .models
            .iter()
            .filter(|m| !m.parse().is_ok_and(&runs) && !already(m))
            .cloned()
            .collect();
        for model in dropped {
            self.skip(Some(&model), scenario, reason.to_string());
        }
    }

    /// The selected models a scenario runs (those `capable`), in report
    /// order. Every selected model it does not run is recorded as skipped
    /// with `outside`, and when none is left, the scenario itself is, naming
    /// the models that would have run: no model drops out silently.
    pub fn models_for(&mut self, scenario: &str, capable: impl Fn(Model) -> bool + Copy, outside: &str) -> Vec<String> {
        self.skip_models_outside(scenario, capable, outside);
        let models = self.plan.models_where(capable);
        if models.is_empty() {
            let names: Vec<&str> = servers::run_models().filter(|m| capable(*m)).map(Model::name).collect();
            self.skip(None, scenario, format!("none of {} was selected", names.join(", ")));
        }
        models
    }

    /// Rewrites results.json, so a failure later still leaves this data.
    pub fn save(&mut self) -> anyhow::Result<()> {
        self.results.environment.elapsed_s = self.started.elapsed().as_secs_f64();
        export::json::write(&self.plan.out, &self.results)
    }
}

/// What [`Ctx::with_server`] shows and records for one measurement.
#[derive(Debug, Clone)]
pub struct Measurement<'a> {
    pub scenario: &'a str,
    pub model: &'a str,
    /// The console step's text ("starting" when `None`) and the context of
    /// a failure (none when `None`), e.g. a variant: `pool:10`.
    pub label: Option<String>,
    /// Run the body once `GET /ping` answers 200 (the default), or right
    /// after the ready line.
    pub wait_serving: bool,
}

impl<'a> Measurement<'a> {
    pub fn new(scenario: &'a str, model: &'a str) -> Measurement<'a> {
        Measurement {
            scenario,
            model,
            label: None,
            wait_serving: true,
        }
    }

    /// Names the measurement on the console and in its failure.
    pub fn label(mut self, label: impl Into<String>) -> Measurement<'a> {
        self.label = Some(label.into());
        self
    }

    /// The body starts right after the ready line, without waiting for
    /// `GET /ping` to answer (it measures that first request itself).
    pub fn from_ready_line(mut self) -> Measurement<'a> {
        self.wait_serving = false;
        self
    }
}
