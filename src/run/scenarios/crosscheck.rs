//! Cross-check: edge's `GET /ping` measured by hostlab load and by wrk
//! (`-t1`) and oha when installed, on the same CPUs, with the ratio; a
//! check that the generator measures what established tools measure, and
//! what each generator's CPU costs per request (the tools' from getrusage
//! of the child, hostlab's from its own process CPU over the measured
//! phase).

use anyhow::Context;
use http::Method;

use super::{closed, load_entry, load_plan};
use crate::run::Ctx;
use crate::run::results::CrossCheckFigures;
use crate::run::servers::which;

const CONNECTIONS: usize = 64;

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    if !ctx.plan.has_model("edge") {
        ctx.skip(None, "crosscheck", "edge was not selected".into());
        return Ok(());
    }
    let tools: Vec<&str> = ["wrk", "oha"].into_iter().filter(|t| which(t).is_some()).collect();
    for missing in ["wrk", "oha"].iter().filter(|t| !tools.contains(t)) {
        ctx.skip(
            Some("edge"),
            "crosscheck",
            format!("{missing} is not installed (scripts/install-peers.sh)"),
        );
    }
    if tools.is_empty() {
        return Ok(());
    }
    ctx.console.step("crosscheck", "edge", "hostlab load");
    let server = ctx.start("edge", &[]).await?;
    let outcome = async {
        let url = format!("{}/ping", server.url);
        let plan = closed(
            load_plan(&server.url, Method::GET, "/ping", None)?,
            CONNECTIONS,
            ctx.plan.duration,
            ctx.plan.warmup,
        );
        let ours = ctx.load(plan).await?;
        let ours_rps = ours.measured.requests_per_sec;
        ctx.push(load_entry(
            "edge",
            "crosscheck",
            "hostlab load",
            1,
            &ours,
            false,
            Vec::new(),
        ));
        let secs = ctx.plan.duration.as_secs().max(1);
        for tool in tools {
            ctx.console.step("crosscheck", "edge", tool);
            // The tools inherit this process's CPUs: the generator's.
            let (args, version_args): (Vec<String>, &[&str]) = match tool {
                "wrk" => (
                    vec![
                        "-t1".into(),
                        format!("-c{CONNECTIONS}"),
                        format!("-d{secs}s"),
                        url.clone(),
                    ],
                    &["-v"],
                ),
                _ => (
                    vec![
                        "--no-tui".into(),
                        "--output-format".into(),
                        "json".into(),
                        "-z".into(),
                        format!("{secs}s"),
                        "-c".into(),
                        CONNECTIONS.to_string(),
                        url.clone(),
                    ],
                    &["--version"],
                ),
            };
            // The CPU of the children this process has waited for, before
            // and after: the difference is the tool's (the server is a
            // child too, but it is not waited for until it stops).
            let children_before = children_cpu();
            let out = tokio::process::Command::new(tool)
                .args(&args)
                .kill_on_drop(true)
                .output()
                .await
                .with_context(|| format!("cannot run {tool}"))?;
            let tool_cpu = children_cpu().saturating_sub(children_before);
            let text = String::from_utf8_lossy(&out.stdout);
            let (rps, requests) = if tool == "wrk" {
                (parse_wrk(&text), parse_wrk_requests(&text))
            } else {
                (parse_oha(&text), parse_oha_requests(&text))
            };
            let Some(rps) = rps else {
                anyhow::bail!("{tool} printed no requests/s ({}): {text}", out.status);
            };
            let cpu_us_per_request = requests.filter(|n| *n > 0.0).map(|n| tool_cpu.as_secs_f64() * 1e6 / n);
            let version = tokio::process::Command::new(tool)
                .args(version_args)
                .output()
                .await
                .ok()
                .map_or_else(String::new, |o| {
                    let all = [o.stdout, o.stderr].concat();
                    let line = String::from_utf8_lossy(&all).lines().next().unwrap_or("").to_string();
                    // `wrk debian/4.1.0 [epoll] Copyright ...` -> `wrk debian/4.1.0`
                    line.split(" [").next().unwrap_or("").trim().to_string()
                });
            let mut entry = load_entry("edge", "crosscheck", tool, 1, &ours, false, Vec::new());
            entry.load = None;
            entry.crosscheck = Some(CrossCheckFigures {
                tool: tool.into(),
                tool_version: version,
                command: format!("{tool} {}", args.join(" ")),
                requests_per_sec: rps,
                hostlab_over_tool: ours_rps / rps,
                cpu_us_per_request,
            });
            ctx.push(entry);
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await;
    outcome
}

/// `Requests/sec: 12345.67` from wrk's output.
pub(crate) fn parse_wrk(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `158345 requests in 5.04s, ...` from wrk's output: requests completed.
pub(crate) fn parse_wrk_requests(text: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (n, rest) = l.trim().split_once(' ')?;
        rest.starts_with("requests in").then(|| n.parse().ok())?
    })
}

/// Requests oha completed: its rate times its run time (`summary.total`, s).
pub(crate) fn parse_oha_requests(text: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(v["summary"]["requestsPerSec"].as_f64()? * v["summary"]["total"].as_f64()?)
}

/// User + system CPU of the waited-for children of this process so far.
fn children_cpu() -> std::time::Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(u) = getrusage(UsageWho::RUSAGE_CHILDREN) else {
        return std::time::Duration::ZERO;
    };
    let tv = |t: nix::sys::time::TimeVal| {
        std::time::Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) * 1000) as u32)
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// `summary.requestsPerSec` from oha's JSON output.
pub(crate) fn parse_oha(text: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v["summary"]["requestsPerSec"].as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tool_outputs() {
        let wrk = "Running 3s test\n  1 threads\nRequests/sec:  98765.43\nTransfer/sec: 10MB\n";
        assert_eq!(parse_wrk(wrk), Some(98765.43));
        let wrk_full = "  158345 requests in 5.04s, 18.12MB read\nRequests/sec:  31441.18\n";
        assert_eq!(parse_wrk_requests(wrk_full), Some(158345.0));
        assert_eq!(parse_wrk_requests(wrk), None);
        let oha = r#"{"summary":{"requestsPerSec":1000.0,"total":2.5}}"#;
        assert_eq!(parse_oha_requests(oha), Some(2500.0));
        assert_eq!(parse_oha(r#"{"summary":{"requestsPerSec":1234.5}}"#), Some(1234.5));
        assert_eq!(parse_wrk("nothing"), None);
        assert_eq!(parse_oha("{}"), None);
    }
}
