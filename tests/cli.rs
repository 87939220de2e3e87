//! Command-line contract: exit codes for bad arguments and help text.

mod common;

use common::run_hostlab;

/// Runs `hostlab ARGS` (killed if it hangs): exit code and stderr.
fn run(args: &[&str]) -> (i32, String) {
    let out = run_hostlab(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `serve` with `--listen 127.0.0.1:0` added unless the case sets its own:
/// a regression that accepts the arguments then binds a free port and is
/// killed at the command timeout, instead of binding 127.0.0.1:8080.
fn serve(args: &[&str]) -> (i32, String) {
    let mut all = args.to_vec();
    if !all.contains(&"--listen") {
        all.extend(["--listen", "127.0.0.1:0"]);
    }
    run(&all)
}

#[test]
fn bad_serve_arguments_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.db");
    let journal = journal.to_str().unwrap();
    let a_directory = dir.path().to_str().unwrap();
    for (args, says) in [
        (vec!["serve", "nosuchmodel"], "unknown model"),
        (vec!["serve", "edge", "--routing", "ring:3"], "pool:N"),
        (vec!["serve", "proxy", "--rapid-fail", "2/0s"], "rapid-fail"),
        (
            vec!["serve", "proxy", "--policy", "/nonexistent/policy.toml"],
            "/nonexistent/policy.toml",
        ),
        (vec!["serve", "proxy", "--warmup", "ping"], "starting with `/`"),
        (vec!["serve", "proxy", "--recycle-at", "25:00"], "HH:MM"),
        (vec!["serve", "edge", "--listen", "not-an-address"], "invalid"),
        (vec!["serve", "edge", "--journal-sync", "full"], "--journal"),
        (
            vec!["serve", "edge", "--journal", journal, "--journal-sync", "fast"],
            "full",
        ),
        (vec!["serve", "edge", "--journal", a_directory], "directory"),
        (
            vec!["serve", "proxy", "--journal", journal, "--warmup", "/ping,/books"],
            "/books reads the state",
        ),
    ] {
        let (code, stderr) = serve(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} should say {says:?}: {stderr}");
    }
}

#[test]
fn a_bad_policy_file_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, "idle-timout = \"5m\"\n").unwrap();
    let (code, stderr) = serve(&["serve", "proxy", "--policy", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("policy.toml") && stderr.contains("idle-timout"),
        "{stderr}"
    );
}

#[test]
fn a_worker_started_by_hand_explains_itself() {
    let (code, stderr) = serve(&["serve", "worker"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("serve inprocess"), "{stderr}");
}

#[test]
fn nginx_is_a_peer_not_a_served_model() {
    let (code, stderr) = run(&["serve", "nginx", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not built yet") || stderr.contains("nginx"), "{stderr}");
}

#[test]
fn serve_help_explains_the_ready_line_and_policies() {
    let out = run_hostlab(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "hostlab ready model=",
        "--idle-timeout",
        "--warmup",
        "--rapid-fail",
        "--admin",
    ] {
        assert!(help.contains(needle), "help lacks {needle}: {help}");
    }
}
