//! Build script: stamps the git commit and whether the tree was dirty into
//! the binary (`HOSTLAB_GIT_COMMIT`, `HOSTLAB_GIT_DIRTY`), so a result set
//! names the code that measured it wherever the binary runs. Without git or
//! outside a checkout both are `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty());
    // Tracked files only: results written into the checkout do not make it dirty.
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| if s.is_empty() { "false" } else { "true" });
    println!(
        "cargo:rustc-env=HOSTLAB_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rustc-env=HOSTLAB_GIT_DIRTY={}", dirty.unwrap_or("unknown"));
    // Re-stamp when HEAD moves or the index changes (a commit, a checkout),
    // and when any source file changes (the dirty flag).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
        if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
            println!("cargo:rerun-if-changed={common}/refs/heads");
            println!("cargo:rerun-if-changed={common}/packed-refs");
        }
    }
    for path in [
        "src",
        "hosts",
        "workloads",
        "benches",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
