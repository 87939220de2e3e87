//! Command-line contract: exit codes for bad arguments and help text.

mod common;

use common::hostlab;

fn run(args: &[&str]) -> (i32, String) {
    let out = hostlab().args(args).output().expect("run hostlab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_serve_arguments_exit_2_with_a_message() {
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
            vec!["serve", "edge", "--journal", "/tmp/j.db", "--journal-sync", "fast"],
            "full",
        ),
        (vec!["serve", "edge", "--journal", "/tmp"], "directory"),
        (
            vec!["serve", "proxy", "--journal", "/tmp/j.db", "--warmup", "/ping,/books"],
            "/books reads the state",
        ),
    ] {
        let (code, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} should say {says:?}: {stderr}");
    }
}

#[test]
fn a_bad_policy_file_names_the_file_and_the_key() {
    let dir = std::env::temp_dir().join(format!("hostlab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, "idle-timout = \"5m\"\n").unwrap();
    let (code, stderr) = run(&["serve", "proxy", "--policy", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("policy.toml") && stderr.contains("idle-timout"),
        "{stderr}"
    );
}

#[test]
fn a_worker_started_by_hand_explains_itself() {
    let (code, stderr) = run(&["serve", "worker"]);
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
    let out = hostlab().args(["serve", "--help"]).output().unwrap();
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
