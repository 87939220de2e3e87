//! CPU accounting and the server-bound mode end to end: a short
//! `hostlab run --scenarios throughput` over proxy, inprocess, split (and
//! nginx when installed); every throughput entry must carry `cpu` whose
//! roles are exactly the processes the model started and sum to the total;
//! the CPU-capped control groups must be gone afterwards, also after Ctrl-C.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hostlab_hosts::Model;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The two runs share the server CPU: one at a time, so that neither
/// starves the other on a busy 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The cgroup folder where `hostlab run` makes its groups, if one can be
/// made here (found and probed the way the driver does).
fn cgroup_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let mut roots: Vec<PathBuf> = Vec::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let cpu_v2 = f[2] == "cgroup2"
            && std::fs::read_to_string(PathBuf::from(f[1]).join("cgroup.subtree_control"))
                .is_ok_and(|s| s.split_whitespace().any(|c| c == "cpu"));
        if cpu_v2 {
            roots.insert(0, PathBuf::from(f[1]));
        } else if f[2] == "cgroup" && f[3].split(',').any(|o| o == "cpu") {
            roots.push(PathBuf::from(f[1]));
        }
    }
    let root = roots.into_iter().next()?;
    let probe = root.join(format!("hostlab-test-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    std::fs::remove_dir(&probe).ok()?;
    Some(root)
}

/// Groups of driver `pid` still present.
fn groups_of(root: &PathBuf, pid: u32) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("hostlab-{pid}-")))
                .collect()
        })
        .unwrap_or_default()
}

/// The `cpu.by_role` keys of a model's entries: the roles of its processes.
fn expected_roles(model: &str) -> BTreeSet<&'static str> {
    let model: Model = model.parse().unwrap();
    model.roles().iter().map(|r| r.name()).collect()
}

#[test]
fn every_throughput_entry_has_cpu_by_role_summing_to_the_total() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // The models of several processes (several roles).
    let nginx = std::process::Command::new("nginx").arg("-v").output().is_ok()
        || std::path::Path::new("/usr/sbin/nginx").exists();
    if !nginx {
        println!("nginx is not installed: its roles are not checked");
    }
    let models: Vec<&str> = Model::top_level()
        .filter(|m| m.roles().len() > 1 && (nginx || !m.needs_nginx()))
        .map(Model::name)
        .collect();
    let child = common::hostlab()
        .args([
            "run",
            "--models",
            &models.join(","),
            "--scenarios",
            "throughput",
            "--duration",
            "1s",
            "--repeats",
            "1",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let driver = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "hostlab run failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let entries: Vec<&serde_json::Value> = results["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["scenario"] == "throughput")
        .collect();
    for model in &models {
        let mine: Vec<_> = entries.iter().filter(|e| e["model"] == *model).collect();
        // 3 claim repeats of GET /ping plus one each of the other endpoints
        // (the floor, nginx-baseline, answers GET /ping only).
        let expected = if model.parse::<Model>().unwrap().serves_workload() {
            5
        } else {
            3
        };
        assert_eq!(mine.len(), expected, "{model}: {} throughput entries", mine.len());
        for e in mine {
            let what = format!("{model} {} {}", e["variant"], e["repeat"]);
            let cpu = &e["cpu"];
            assert!(cpu.is_object(), "{what}: no cpu");
            let roles: BTreeSet<&str> = cpu["by_role"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
            assert_eq!(roles, expected_roles(model), "{what}: roles {roles:?}");
            // Every process of the model was counted under one of those roles.
            let processes = e["processes"].as_array().unwrap();
            assert!(processes.len() >= roles.len(), "{what}: {} processes", processes.len());
            let total = cpu["us_per_request"].as_f64().unwrap();
            let sum: f64 = cpu["by_role"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_f64().unwrap())
                .sum();
            assert!(total > 0.0, "{what}: no CPU counted");
            assert!(
                (sum - total).abs() <= 1e-6 * total,
                "{what}: roles sum to {sum}, total {total}"
            );
            for role in &roles {
                assert!(cpu["by_role"][role].as_f64().unwrap() >= 0.0, "{what}: {role}");
            }
            // GET /books crosses split's link: its actor service must have worked
            // (GET /ping never does).
            if model
                .parse()
                .is_ok_and(|m: Model| m.roles().contains(&hostlab_hosts::Role::Actors))
                && e["variant"].as_str().unwrap().starts_with("GET /books")
            {
                assert!(
                    cpu["by_role"]["actors"].as_f64().unwrap() > 0.0,
                    "{what}: actors used no CPU"
                );
            }
            assert!(
                cpu["core_busy_us_per_request"].as_f64().unwrap() > 0.0,
                "{what}: no core time"
            );
            assert!(cpu["idle_us_per_s"].as_f64().unwrap() >= 0.0);
            assert!(cpu["steal_percent"].as_f64().unwrap() >= 0.0);
        }
    }
    let claims = results["claims"].as_array().expect("claims in results.json");
    let c1 = claims.iter().find(|c| c["id"] == "C1").unwrap();
    assert_ne!(c1["verdict"], "not measured", "C1: {c1}");
    assert!(c1["ratio"]["low"].as_f64().unwrap() <= c1["ratio"]["high"].as_f64().unwrap());
    match cgroup_root() {
        Some(root) => {
            assert!(
                entries.iter().all(|e| e["cpu_cap"]["cores"].as_f64() == Some(0.5)),
                "every throughput run was capped"
            );
            assert_eq!(groups_of(&root, driver), Vec::<String>::new(), "groups left behind");
        }
        None => println!("SKIPPED the cgroup checks: no control group can be made here"),
    }
}

#[test]
fn ctrl_c_removes_the_control_group() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(root) = cgroup_root() else {
        println!("SKIPPED: no control group can be made here");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The run's scratch folder goes under this TMPDIR, to check it is removed.
    let scratch_root = dir.path().join("tmp");
    std::fs::create_dir(&scratch_root).unwrap();
    let mut child = common::hostlab()
        .env("TMPDIR", &scratch_root)
        .args([
            "run",
            "--models",
            "edge",
            "--scenarios",
            "throughput",
            "--duration",
            "20s",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while groups_of(&root, driver).is_empty() {
        assert!(Instant::now() < deadline, "no control group appeared within 120 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its group appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(driver as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "hostlab run did not exit after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(
        groups_of(&root, driver),
        Vec::<String>::new(),
        "groups left after Ctrl-C"
    );
    let left: Vec<_> = std::fs::read_dir(&scratch_root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "scratch files left after Ctrl-C: {left:?}");
}
