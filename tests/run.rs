//! `hostlab run`, `report` and `compare` end to end: a short run restricted
//! to baseline, edge and proxy, three scenarios and 1 s measurements, then checks on the
//! files it wrote (DESIGN.md "Results").

use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// A whole short run in a debug build on a busy machine: generous.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// `hostlab ARGS` to its end, with the parent-death signal, killed if it hangs.
fn hostlab(args: &[&str]) -> Output {
    hostlab::ready::output_within(
        hostlab::ready::command(env!("CARGO_BIN_EXE_hostlab")).args(args),
        RUN_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn check_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn charts_are_well_formed(dir: &Path) {
    let mut svgs = 0;
    let mut pngs = 0;
    for entry in std::fs::read_dir(dir.join("charts")).expect("charts/ exists") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 100, "{} is nearly empty", path.display());
        match path.extension().and_then(|e| e.to_str()) {
            Some("png") => {
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
                pngs += 1;
            }
            Some("svg") => {
                let text = String::from_utf8(bytes).unwrap();
                let start = text.trim_start().trim_start_matches(|c| c != '<');
                assert!(
                    start.starts_with("<svg") || start.starts_with("<?xml"),
                    "{} does not start like SVG",
                    path.display()
                );
                assert!(text.trim_end().ends_with("</svg>"), "{} is not closed", path.display());
                svgs += 1;
            }
            _ => {}
        }
    }
    assert!(
        svgs > 0 && svgs == pngs,
        "every chart in both formats ({svgs} SVG, {pngs} PNG)"
    );
}

#[test]
fn short_run_writes_results_report_and_charts_that_report_and_compare_read() {
    // --quick for the recovery scenario's smaller journals (10k and 100k events).
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let out_dir = tmp.join("a");
    let out = hostlab(&[
        "run",
        "--quick",
        "--models",
        "baseline,edge,proxy",
        "--scenarios",
        "throughput,state,recovery",
        "--duration",
        "1s",
        "--repeats",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    check_ok(&out, "hostlab run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("edge") && stdout.contains("proxy"),
        "summary names the models:\n{stdout}"
    );

    // results.json: the documented keys, one entry per model x scenario x variant.
    let text = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["finished"], true);
    for key in [
        "cpu_model",
        "cores",
        "client_cpus",
        "server_cpus",
        "kernel",
        "hostlab_version",
        "command_line",
        "started_utc",
    ] {
        assert!(!json["environment"][key].is_null(), "environment.{key} is missing");
    }
    let entries = json["entries"].as_array().unwrap();
    let ping: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["scenario"] == "throughput" && e["variant"] == "GET /ping")
        .collect();
    assert_eq!(
        ping.len(),
        9,
        "three GET /ping entries per model (the claim ratios need 3 repeats)"
    );
    // The floor answers GET /ping only: no other row, and the skip says why.
    assert!(
        entries
            .iter()
            .all(|e| e["model"] != "baseline" || (e["scenario"] == "throughput" && e["variant"] == "GET /ping")),
        "baseline measured beyond GET /ping"
    );
    for e in &ping {
        let load = &e["load"];
        assert!(load["requests"]["ok"].as_u64().unwrap() > 0);
        assert!(load["requests_per_sec"].as_f64().unwrap() > 0.0);
        for k in ["p50", "p90", "p99", "p99_9", "max"] {
            assert!(load["latency_us"][k].as_u64().is_some(), "latency_us.{k}");
        }
        for k in ["4xx", "5xx", "refused", "reset", "timeout", "io"] {
            assert!(load["requests"]["errors"][k].as_u64().is_some(), "errors.{k}");
        }
        assert!(
            !e["processes"].as_array().unwrap().is_empty(),
            "server CPU and RSS recorded"
        );
    }
    // Without a journal, a proxy terminate loses every book; a suspend keeps them.
    let state = |model: &str, kind: &str| {
        entries
            .iter()
            .find(|e| e["scenario"] == "state" && e["model"] == model && e["variant"] == kind)
            .map(|e| {
                (
                    e["state"]["books_before"].as_u64().unwrap(),
                    e["state"]["books_after"].as_u64().unwrap(),
                )
            })
    };
    assert_eq!(state("proxy", "idle-terminate"), Some((100, 0)));
    assert_eq!(state("proxy", "idle-suspend"), Some((100, 100)));
    assert_eq!(state("edge", "process restart"), Some((100, 0)));
    // The same document re-serialised by serde_json is the same value.
    let again: serde_json::Value = serde_json::from_str(&serde_json::to_string(&json).unwrap()).unwrap();
    assert_eq!(again, json);

    // report.md: a claims row per claim, each with one of the three verdicts.
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for id in 1..=8 {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| C{id} |")))
            .unwrap_or_else(|| panic!("no claims row for C{id}:\n{report}"));
        assert!(
            [
                "**holds**",
                "**does not hold here**",
                "**inconclusive**",
                "**not measured**"
            ]
            .iter()
            .any(|v| row.contains(v)),
            "C{id} has no verdict: {row}"
        );
    }
    assert!(report.contains("C4") && report.contains("Where are all my books?"));
    // What this run makes certain: proxy's idle terminate without a journal
    // lost its 100 books (asserted above), so C4 holds; every journal run
    // kept its books, both replays recovered all of them, and every accepted
    // task finished once (asserted below from results.json), so C7 holds
    // unless a replay was slower than the claimed 17k events/s.
    let claim = |id: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("| {id} |")))
            .unwrap()
            .to_string()
    };
    assert!(claim("C4").contains("**holds**"), "{}", claim("C4"));
    for e in entries
        .iter()
        .filter(|e| e["scenario"] == "state" && e["state"]["journal"] == true)
    {
        assert_eq!(
            e["state"]["books_before"], e["state"]["books_after"],
            "journal run lost books: {e}"
        );
    }
    let recovery: Vec<&serde_json::Value> = entries.iter().filter(|e| e["scenario"] == "recovery").collect();
    assert_eq!(recovery.len(), 6, "4 replays and 2 task restarts: {recovery:?}");
    let mut slowest_replay = f64::MAX;
    for e in &recovery {
        let r = &e["recovery"];
        assert_eq!(r["books_recovered"], r["books_expected"], "{e}");
        assert_eq!(r["tasks_done"], r["tasks_accepted"], "{e}");
        if r["snapshot"] == false && r["events_replayed"].as_u64().unwrap() > 0 && r["tasks_accepted"] == 0 {
            slowest_replay = slowest_replay.min(r["replay_events_per_sec"].as_f64().unwrap());
        }
    }
    let c7 = claim("C7");
    if slowest_replay >= 17_000.0 {
        assert!(c7.contains("**holds**"), "{c7}");
    } else {
        assert!(
            c7.contains("**does not hold here**") && c7.contains("below the claimed"),
            "{c7}"
        );
    }
    assert!(c7.contains("journal written by the tool"), "{c7}");
    // Models a scenario does not run are recorded, with the reason.
    let skipped = json["skipped"].as_array().unwrap();
    for scenario in ["throughput", "state", "recovery"] {
        assert!(
            skipped
                .iter()
                .any(|s| s["model"] == "baseline" && s["scenario"] == scenario),
            "baseline's skip of {scenario} is not recorded: {skipped:?}"
        );
    }
    assert!(
        skipped.iter().any(|s| s["model"] == "baseline"
            && s["scenario"] == "throughput"
            && s["reason"].as_str().unwrap().contains("GET /ping only")),
        "{skipped:?}"
    );
    // The CPU section shows each model over the floor, the floor at 1.00x.
    assert!(report.contains("× baseline"), "no × baseline column");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("| baseline |") && l.contains("1.00x") && l.contains("| app ")),
        "no baseline row at 1.00x, its process the app, in the CPU section:\n{report}"
    );
    assert!(
        skipped.iter().any(|s| s["model"] == "proxy"
            && s["scenario"] == "recovery"
            && s["reason"].as_str().unwrap().contains("edge only")),
        "{skipped:?}"
    );
    let csv = std::fs::read_to_string(out_dir.join("summary.csv")).unwrap();
    assert!(csv.lines().next().unwrap().starts_with("scenario,model,variant"));
    assert!(csv.lines().count() > 6);
    charts_are_well_formed(&out_dir);

    // `report` re-renders from results.json (reading it back through serde).
    std::fs::remove_file(out_dir.join("report.md")).unwrap();
    std::fs::remove_dir_all(out_dir.join("charts")).unwrap();
    check_ok(&hostlab(&["report", out_dir.to_str().unwrap()]), "hostlab report");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("report.md"))
            .unwrap()
            .lines()
            .count(),
        report.lines().count()
    );
    charts_are_well_formed(&out_dir);

    // `compare` of a run with itself: ratios of 1, nothing beyond noise.
    let cmp = hostlab(&["compare", out_dir.to_str().unwrap(), out_dir.to_str().unwrap()]);
    check_ok(&cmp, "hostlab compare");
    let text = String::from_utf8_lossy(&cmp.stdout);
    assert!(text.contains("1.00x"), "{text}");
    assert!(text.contains("0 of "), "{text}");

    // A folder without results is an error that says what is wrong.
    let bad = hostlab(&["report", tmp.join("missing").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("results.json"));
}

/// `hostlab recycle`: one model, one kind, a result folder with its timeline.
#[test]
fn one_recycle_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rc");
    let run = hostlab(&[
        "recycle",
        "proxy",
        "--kind",
        "crash",
        "--rate",
        "300",
        "--duration",
        "2s",
        "--out",
        out.to_str().unwrap(),
        "--json",
        dir.path().join("rc.json").to_str().unwrap(),
    ]);
    check_ok(&run, "hostlab recycle");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let entries = results["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "the control and the experiment: {entries:?}");
    assert_eq!(entries[0]["recycle"]["kind"], "control");
    assert_eq!(entries[1]["recycle"]["kind"], "crash");
    // The run's window metrics, the threshold from the control's p99.9.
    let rc = &entries[1]["recycle"];
    for window in ["window_1s", "drain"] {
        for key in [
            "ok",
            "failed",
            "delayed",
            "downtime_ms",
            "delayed_at_least",
            "worst_interval_p99_us",
        ] {
            assert!(!rc[window][key].is_null(), "recycle.{window}.{key}: {rc}");
        }
        // The exact count is never below the quantile bound.
        assert!(rc[window]["delayed"].as_u64() >= rc[window]["delayed_at_least"].as_u64());
    }
    assert!(rc["downtime_ms"].is_u64());
    assert_eq!(rc["drain"]["downtime_ms"], rc["downtime_ms"]);
    assert_eq!(rc["delayed_threshold_us"], entries[0]["load"]["latency_us"]["p99_9"]);
    assert!(!entries[1]["load"]["timeline"].as_array().unwrap().is_empty());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("proxy crash"));
    // The same window metrics on stdout and in --json.
    assert!(stdout.contains("Window metrics of proxy crash"), "{stdout}");
    assert!(stdout.contains("control p99.9"), "{stdout}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("rc.json")).unwrap()).unwrap();
    assert_eq!(json["kind"], "crash");
    assert_eq!(json["delayed_threshold_from"], "control p99.9");
    assert_eq!(json["delayed_threshold_us"], rc["delayed_threshold_us"]);
    for (run, entry) in [("control", &entries[0]), ("recycle", &entries[1])] {
        for window in ["window_1s", "drain"] {
            assert_eq!(json[run][window], entry["recycle"][window], "{run}.{window}");
        }
        assert_eq!(json[run]["downtime_ms"], entry["recycle"]["downtime_ms"]);
    }
    let delayed_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("delayed to the end"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        delayed_line.ends_with(&format!(" {}", rc["drain"]["delayed"])),
        "{delayed_line} vs {}",
        rc["drain"]["delayed"]
    );

    // One fixed threshold for both runs instead of the control's p99.9.
    let fixed = dir.path().join("fixed");
    let run = hostlab(&[
        "recycle",
        "proxy",
        "--kind",
        "overlapped",
        "--rate",
        "300",
        "--duration",
        "2s",
        "--delayed-ms",
        "0.5",
        "--out",
        fixed.to_str().unwrap(),
    ]);
    check_ok(&run, "hostlab recycle --delayed-ms");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixed.join("results.json")).unwrap()).unwrap();
    for e in results["entries"].as_array().unwrap() {
        assert_eq!(e["recycle"]["delayed_threshold_us"], 500, "{e}");
    }
    assert!(String::from_utf8_lossy(&run.stdout).contains("0.500 ms, --delayed-ms"));

    let bad = hostlab(&["recycle", "edge"]);
    assert_eq!(bad.status.code(), Some(2), "edge has nothing to recycle");
    let bad = hostlab(&["recycle", "proxy", "--delayed-ms", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--delayed-ms"));
    let bad = hostlab(&["recycle", "proxy", "--kind", "reboot"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("stop-start"));
}

/// The opt-in soak, very briefly (one model, a few seconds, recycles every
/// third of it): results.json carries the soak figures and report.md the
/// verdict line. Whether it passes is the real soak's business (docs/run.md).
#[test]
fn brief_soak_writes_failures_rss_growth_and_a_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("soak");
    let out = hostlab(&[
        "run",
        "--models",
        "proxy",
        "--scenarios",
        "soak",
        "--duration",
        "3s",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    check_ok(&out, "hostlab run --scenarios soak");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["settings"]["soak_duration_s"], 3.0);
    assert_eq!(json["settings"]["soak_recycle_every_s"], 1.0);
    let entries = json["entries"].as_array().unwrap();
    let soak = entries
        .iter()
        .find(|e| e["scenario"] == "soak" && e["model"] == "proxy" && !e["soak"].is_null())
        .unwrap_or_else(|| panic!("no soak entry for proxy: {entries:?}"));
    let k = &soak["soak"];
    assert!(k["capacity_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(k["fraction"], 0.5);
    assert!(k["rate_per_sec"].as_f64().unwrap() > 0.0);
    assert!(k["recycles"].as_u64().unwrap() >= 1, "recycled during the soak: {k}");
    assert_eq!(k["recycles_requested"], k["recycles"], "every recycle accepted: {k}");
    for class in ["4xx", "5xx", "refused", "reset", "timeout", "io"] {
        assert!(k["failed"][class].as_u64().is_some(), "failed.{class}");
    }
    assert!(k["rss_start_bytes"].as_u64().unwrap() > 0);
    assert!(k["rss_end_bytes"].as_u64().unwrap() > 0);
    assert!(k["rss_growth_percent"].as_f64().is_some());
    assert_eq!(k["rss_growth_limit_percent"], 5.0);
    let samples = k["rss_samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "a sample before each recycle and one at the end");
    let roles: Vec<&str> = samples[0]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"proxy") && roles.contains(&"app"),
        "front and app sampled: {roles:?}"
    );
    let pass = k["pass"].as_bool().unwrap();
    let verdict = k["verdict"].as_str().unwrap();
    if pass {
        assert!(verdict.starts_with("pass"), "{verdict}");
        assert_eq!(
            k["recycles_reported"], k["recycles"],
            "a pass needs the manager's count: {k}"
        );
    } else {
        assert!(
            verdict.starts_with("fail") || verdict.starts_with("not measured"),
            "{verdict}"
        );
    }
    assert!(soak["load"]["requests"]["total"].as_u64().unwrap() > 0);
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        report.contains("## Soak") && report.contains("Soak verdict: **"),
        "{report}"
    );
}
