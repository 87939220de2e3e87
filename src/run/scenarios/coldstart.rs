//! Cold start: how long a freshly started model takes to answer its first
//! request, on demand (the first request starts the app) with and without
//! warm-up URLs, and always running; plus the process start-to-ready times.

use hostlab_hosts::Model;
use std::time::Instant;

use anyhow::bail;

use crate::run::results::{ColdstartFigures, Entry};
use crate::run::servers::{Http, PING_ONLY, Server};
use crate::run::{Ctx, Measurement};

/// Variants of the front models: (name, start mode, warm-up URLs).
const FRONT_VARIANTS: [(&str, &str, &str); 3] = [
    ("on-demand", "on-demand", ""),
    ("on-demand + warm-up", "on-demand", "/ping,/books"),
    ("always-running", "always-running", ""),
];

/// Cold starts are cheap: at least this many repeats whatever `--repeats` says.
const MIN_REPEATS: u32 = 3;

/// Models whose first request this scenario measures: ours (not nginx),
/// serving the workload, whose serving process starts with its actors
/// (split's front starts against an already running actor service).
pub(crate) fn measured(model: Model) -> bool {
    model.serves_workload() && !model.needs_nginx() && model.hosts_own_actors()
}

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    ctx.skip_models_outside("coldstart", Model::serves_workload, PING_ONLY);
    let models = ctx.models_for(
        "coldstart",
        measured,
        "cold start covers edge, edge-actix, proxy and inprocess: split's front starts against an \
         already running actor service, and nginx is the system's server, not ours",
    );
    let repeats = ctx.plan.repeats.max(MIN_REPEATS);
    for model in models {
        let variants: Vec<(&str, &str, &str)> = if !model.parse().is_ok_and(Model::has_policy) {
            vec![("process start", "", "")]
        } else {
            FRONT_VARIANTS.to_vec()
        };
        for (variant, start_mode, warmup) in variants {
            for repeat in 1..=repeats {
                // The first request is what is measured: no wait for `/ping`.
                let measurement = Measurement::new("coldstart", &model)
                    .label(format!("{variant} {repeat}/{repeats}"))
                    .from_ready_line();
                let flags = flags(start_mode, warmup);
                ctx.with_server(measurement, &flags, async |ctx, server| {
                    let coldstart = first_requests(server, start_mode, warmup).await?;
                    ctx.push(Entry {
                        model: model.clone(),
                        scenario: "coldstart".into(),
                        variant: variant.into(),
                        repeat,
                        startup_ms: Some(server.start_to_ready.as_secs_f64() * 1e3),
                        coldstart: Some(coldstart),
                        ..Entry::default()
                    });
                    anyhow::Ok(())
                })
                .await?;
            }
        }
    }
    Ok(())
}

/// The policy flags of a variant (none for a model without policies).
fn flags(start_mode: &str, warmup: &str) -> Vec<String> {
    let mut flags = Vec::new();
    if !start_mode.is_empty() {
        flags.extend([
            "--start-mode".to_string(),
            start_mode.to_string(),
            "--admin".into(),
            "127.0.0.1:0".into(),
        ]);
    }
    if !warmup.is_empty() {
        flags.extend(["--warmup".to_string(), warmup.to_string()]);
    }
    flags
}

/// Times the first and the second `GET /ping` of a fresh server.
async fn first_requests(server: &Server, start_mode: &str, warmup: &str) -> anyhow::Result<ColdstartFigures> {
    // A new client: the first request pays for its connection too, as a visitor's would.
    let http = Http::new();
    let url = format!("{}/ping", server.url);
    let t = Instant::now();
    let (first_status, _) = http.get(&url).await?;
    let first_request_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let (second, _) = http.get(&url).await?;
    let second_request_ms = t.elapsed().as_secs_f64() * 1e3;
    if second != 200 {
        bail!("the second GET /ping answered {second}");
    }
    let app_start_to_ready_ms = match &server.admin {
        Some(admin) => http.get_json(&format!("{admin}/status")).await?["last_start_to_ready_ms"].as_f64(),
        None => None,
    };
    Ok(ColdstartFigures {
        start_mode: if start_mode.is_empty() {
            "process".into()
        } else {
            start_mode.into()
        },
        warmup_urls: warmup.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        first_request_ms,
        first_status,
        second_request_ms,
        app_start_to_ready_ms,
    })
}
