//! The deploy kinds of the recycle scenario, which a file starts rather
//! than an admin call: `app-offline` (ANCM's `app_offline.htm`: the file
//! is created, the front stops the app, the file is removed, the front
//! starts it again) and `config-restart` / `config-restart-overlapped` (a
//! change to the `--watch` file restarts the app). The files live in a
//! folder of this driver process under the system's temp folder.
//!
//! A kind's flags name the file with [`DEPLOY_FILE`]; [`resolve`] turns it
//! into the path (and puts the file in the state the kind starts from).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::run::servers::Http;

/// Stands for the kind's file in a kind's flags (`--watch DEPLOY_FILE`).
pub(super) const DEPLOY_FILE: &str = "{deploy-file}";

/// What the page of `app-offline` says.
const OFFLINE_PAGE: &str = "<html><body><h1>Deploying: back in a moment</h1></body></html>\n";

/// How long a deploy step may take to be seen and acted on.
const STEP_LIMIT: Duration = Duration::from_secs(30);

/// Inside the run's scratch folder, so it goes with it (at the end, on
/// Ctrl-C, or swept by the next run after a kill).
fn folder() -> PathBuf {
    super::scratch_dir().join("deploy")
}

fn offline_file() -> PathBuf {
    folder().join("app_offline.htm")
}

fn watched_file() -> PathBuf {
    folder().join("app-config.toml")
}

/// A kind's flags with [`DEPLOY_FILE`] after `--app-offline` or `--watch`
/// replaced by the file's path. Puts the file in its starting state: no
/// `app_offline` file (the app would start offline), a watched file that
/// exists.
pub(super) fn resolve(kind_flags: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(kind_flags.len());
    let mut previous = "";
    for &flag in kind_flags {
        if flag != DEPLOY_FILE {
            out.push(flag.to_string());
            previous = flag;
            continue;
        }
        std::fs::create_dir_all(folder()).with_context(|| format!("cannot create {}", folder().display()))?;
        let path = match previous {
            "--app-offline" => {
                let path = offline_file();
                if path.exists() {
                    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                }
                path
            }
            "--watch" => {
                let path = watched_file();
                std::fs::write(&path, "generation = 0\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                path
            }
            other => bail!("{DEPLOY_FILE} follows `{other}`, not --app-offline or --watch"),
        };
        out.push(path.display().to_string());
    }
    Ok(out)
}

/// The deploy a kind stands for, if it is one.
pub(super) fn is_deploy(kind: &str) -> bool {
    matches!(kind, "app-offline" | "config-restart" | "config-restart-overlapped")
}

/// Run a deploy kind's event and wait until it is over: `app-offline`
/// until the app serves again, the config kinds until the restart is done.
pub(super) async fn trigger(http: &Http, admin: &str, kind: &str) -> anyhow::Result<()> {
    match kind {
        "app-offline" => {
            let path = offline_file();
            std::fs::write(&path, OFFLINE_PAGE).with_context(|| format!("cannot write {}", path.display()))?;
            let offline = wait_status(http, admin, "phase offline", |s| s["phase"] == "offline").await;
            // Removed whatever happened: a leftover file would keep the next server offline.
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            offline?;
            wait_status(http, admin, "phase ready", |s| s["phase"] == "ready").await?;
        }
        "config-restart" | "config-restart-overlapped" => {
            let before = http.get_json(&format!("{admin}/status")).await?["recycles"]
                .as_u64()
                .unwrap_or(0);
            let path = watched_file();
            std::fs::write(&path, format!("generation = {}\n", before + 1))
                .with_context(|| format!("cannot write {}", path.display()))?;
            let status = wait_status(http, admin, "the restart", |s| {
                s["recycles"].as_u64().is_some_and(|n| n > before)
            })
            .await?;
            if let Some(error) = status["last_recycle"]["error"].as_str() {
                bail!("the configuration restart failed: {error}");
            }
        }
        other => bail!("`{other}` is not a deploy kind"),
    }
    Ok(())
}

async fn wait_status(
    http: &Http,
    admin: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        let status = http.get_json(&format!("{admin}/status")).await?;
        if done(&status) {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!("{what} did not come within {STEP_LIMIT:?} (last status: {status})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_names_the_files_and_sets_their_start_state() {
        let flags = resolve(&["--app-offline", DEPLOY_FILE, "--overlap", "true"]).unwrap();
        assert_eq!(flags[1], offline_file().display().to_string());
        assert_eq!(flags[2..], ["--overlap", "true"]);
        assert!(!offline_file().exists(), "no app_offline file before the start");
        let flags = resolve(&["--watch", DEPLOY_FILE]).unwrap();
        assert_eq!(flags[1], watched_file().display().to_string());
        assert!(watched_file().exists(), "the watched file exists");
        assert!(resolve(&["--warmup", DEPLOY_FILE]).is_err());
        assert_eq!(resolve(&["--overlap", "false"]).unwrap(), ["--overlap", "false"]);
        let _ = std::fs::remove_dir_all(crate::run::scratch_dir());
    }

    #[test]
    fn the_deploy_kinds() {
        assert!(is_deploy("app-offline") && is_deploy("config-restart") && is_deploy("config-restart-overlapped"));
        assert!(!is_deploy("overlapped") && !is_deploy("crash"));
    }
}
