//! The files of one run agree and draw properly: a short run of edge and
//! proxy through throughput, coldstart, recycle and state (2 repeats), then
//! - every SVG it wrote parses into tags whose sizes are finite and not negative;
//! - report.md opens with the decision matrix, before the claims;
//! - the same figure (cold start, GET /ping req/s, a recycle's downtime)
//!   reads the same in results.json, summary.csv and report.md: the median
//!   over the repeats;
//! - the run is stamped with its commit and dirty flag;
//! - every selected model with a recyclable part has its recycle figure.
//!
//! A measurement that failed is named before any figure is compared.

use std::path::Path;
use std::time::Duration;

/// A whole short run in a debug build on a busy machine: generous.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// The measurements a run recorded as failed (`skipped` reasons `FAILED: ...`).
fn failures(results: &serde_json::Value) -> Vec<String> {
    results["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["reason"].as_str().is_some_and(|r| r.starts_with("FAILED")))
        .map(|k| format!("{} / {}: {}", k["scenario"], k["model"], k["reason"]))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no value to take a median of");
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Every attribute of every tag, as (tag, name, value).
fn attributes(svg: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').expect("every tag is closed");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('/') || tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        let name = tag.split_whitespace().next().unwrap_or("").to_string();
        let mut attrs = &tag[name.len()..];
        while let Some(eq) = attrs.find("=\"") {
            let key = attrs[..eq].trim().rsplit(' ').next().unwrap_or("").to_string();
            let after = &attrs[eq + 2..];
            let close = after.find('"').expect("attribute value is closed");
            out.push((name.clone(), key, after[..close].to_string()));
            attrs = &after[close + 1..];
        }
    }
    out
}

fn svgs_have_sane_sizes(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("charts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("svg") {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.trim_end().ends_with("</svg>"), "{} is not closed", path.display());
        let attrs = attributes(&text);
        assert!(
            attrs.iter().any(|(t, _, _)| t == "svg"),
            "{} has no svg tag",
            path.display()
        );
        for (tag, key, value) in attrs {
            if matches!(key.as_str(), "width" | "height" | "r" | "rx" | "ry") {
                let v: f64 = value
                    .trim_end_matches("px")
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: <{tag} {key}=\"{value}\"> is not a number", path.display()));
                assert!(
                    v.is_finite() && v >= 0.0,
                    "{}: <{tag} {key}=\"{value}\">",
                    path.display()
                );
            }
            if matches!(
                key.as_str(),
                "x" | "y" | "x1" | "x2" | "y1" | "y2" | "cx" | "cy" | "points" | "d"
            ) {
                assert!(
                    !value.contains("NaN") && !value.contains("inf"),
                    "{}: <{tag} {key}=\"{value}\">",
                    path.display()
                );
            }
        }
    }
    n
}

/// The summary.csv row of a scenario, model and variant, by column name.
fn csv_row(dir: &Path, scenario: &str, model: &str, variant: &str) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let mut reader = csv_lines(&text);
    let header = reader.remove(0);
    reader
        .into_iter()
        .find(|r| r[0] == scenario && r[1] == model && r[2] == variant)
        .map(|r| header.iter().cloned().zip(r).collect())
        .unwrap_or_else(|| panic!("summary.csv has no row {scenario} / {model} / {variant}:\n{text}"))
}

/// summary.csv split into fields (quoted fields may hold commas).
fn csv_lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            let mut fields = Vec::new();
            let mut field = String::new();
            let mut quoted = false;
            for c in line.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut field)),
                    c => field.push(c),
                }
            }
            fields.push(field);
            fields
        })
        .collect()
}

#[test]
fn one_run_one_figure_in_every_file_and_charts_with_sane_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = hostlab::ready::output_within(
        hostlab::ready::command(env!("CARGO_BIN_EXE_hostlab")).args([
            "run",
            "--quick",
            "--models",
            "edge,proxy",
            "--scenarios",
            "throughput,coldstart,recycle,state",
            "--duration",
            "1s",
            "--repeats",
            "2",
            "--out",
            dir.to_str().unwrap(),
        ]),
        RUN_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A failed measurement exits 1 but still writes every file; the checks
    // below need the entries they read, and name what is missing.
    assert!(
        dir.join("report.md").exists(),
        "the run wrote no report:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let entries = results["entries"].as_array().unwrap();

    // Charts: all with sane sizes. A recycle figure for proxy whatever
    // happened (its data, or a note saying why there is none).
    assert!(svgs_have_sane_sizes(&dir) >= 3, "charts written: {report}");
    assert!(
        dir.join("charts/recycle-proxy.svg").exists(),
        "charts/recycle-proxy.svg: {report}"
    );
    assert!(report.contains("](charts/recycle-proxy.svg)"), "{report}");
    // The figures compared below need every measurement: a failed one is
    // named here, with its reason, rather than as a missing figure later.
    let failed = failures(&results);
    assert!(
        failed.is_empty() && out.status.success(),
        "the run failed measurements ({}):\n  {}\nstderr:\n{}",
        out.status,
        failed.join("\n  "),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("charts/state.svg").exists(), "charts/state.svg");
    assert!(
        !report.contains("no recycle data"),
        "proxy's recycles ran, so its figure has data: {report}"
    );

    // The decision matrix first, then the claims.
    let matrix = report.find("## Decision matrix").expect("a decision matrix");
    let claims = report.find("## Claims").expect("a claims table");
    assert!(matrix < claims, "the matrix comes before the claims");
    assert!(
        report[..matrix].lines().filter(|l| l.starts_with("## ")).count() == 0,
        "nothing but the title before the matrix"
    );
    let proxy_row = report[matrix..claims]
        .lines()
        .find(|l| l.starts_with("| proxy |"))
        .expect("a proxy row in the matrix");
    assert!(
        proxy_row.contains("control"),
        "recycle cells next to the control: {proxy_row}"
    );

    // Provenance: commit and dirty flag in results.json and report.md.
    let env = &results["environment"];
    let commit = env["git_commit"]
        .as_str()
        .expect("the build stamped a commit (tests run in a checkout)");
    assert_eq!(commit.len(), 40, "{commit}");
    assert!(env["git_dirty"].is_boolean());
    assert!(report.contains(commit));

    // Cold start: the median of the repeats, in all three files.
    let cold: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["scenario"] == "coldstart" && e["model"] == "proxy")
        .collect();
    let variant = cold[0]["variant"].as_str().unwrap();
    let startups: Vec<f64> = cold
        .iter()
        .filter(|e| e["variant"] == variant)
        .map(|e| e["startup_ms"].as_f64().unwrap())
        .collect();
    assert!(startups.len() >= 2, "repeats of {variant}: {startups:?}");
    let text = format!("{:.1}", median(startups));
    assert_eq!(csv_row(&dir, "coldstart", "proxy", variant)["startup_ms"], text);
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("| proxy | {variant} |")))
        .expect("a cold start row");
    assert!(line.contains(&format!("| {text} |")), "report.md shows {text}: {line}");

    // GET /ping throughput: the csv median, the report's tables and the matrix.
    let rps: Vec<f64> = entries
        .iter()
        .filter(|e| e["scenario"] == "throughput" && e["model"] == "proxy" && e["variant"] == "GET /ping")
        .map(|e| e["load"]["requests_per_sec"].as_f64().unwrap())
        .collect();
    let m = median(rps);
    let csv = csv_row(&dir, "throughput", "proxy", "GET /ping");
    assert_eq!(csv["requests_per_sec_median"], format!("{m:.1}"));
    assert!(
        csv["ratio_to_edge"].parse::<f64>().is_ok(),
        "throughput rows have a ratio"
    );
    assert!(
        report.contains(&format!("| proxy | {:.0}", m)),
        "the throughput table shows {m:.0}"
    );
    assert!(
        proxy_row.contains(&thousands(m)),
        "the matrix shows {}: {proxy_row}",
        thousands(m)
    );

    // A recycle's downtime: the median of its repeats in the three files.
    let variant = "stop-start @ 50%";
    let downtimes: Vec<f64> = entries
        .iter()
        .filter(|e| e["model"] == "proxy" && e["variant"] == variant)
        .map(|e| e["recycle"]["downtime_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(downtimes.len(), 2, "two repeats of {variant}");
    let d = format!("{:.0}", median(downtimes));
    let detail = &csv_row(&dir, "recycle", "proxy", variant)["detail"];
    assert!(detail.contains(&format!("downtime {d}")), "summary.csv: {detail}");
    let line = report
        .lines()
        .find(|l| l.starts_with("| proxy | 50% ") && l.contains("| stop-start |"))
        .expect("a stop-start row in the recycle table");
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    // | model | level | kind | repeats | failed | control | delayed | control | downtime | ...
    assert!(cells[9].starts_with(&d), "report.md downtime {d}: {line}");
    // Every kind ran next to a control with the same load.
    assert!(
        entries
            .iter()
            .any(|e| e["model"] == "proxy" && e["variant"] == "control @ 50%")
    );
}

fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
