//! The manager's file triggers, seen through `notify` (inotify on Linux):
//! ANCM's `app_offline` file (while it exists the app is stopped and every
//! request gets the file's content with 503) and the `--watch`
//! configuration file (a change restarts the app, as ASP.NET restarts on a
//! `web.config` change). Each file's folder is watched, so a file that does
//! not exist yet is seen when it is created.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::RecycleReason;
use super::handle::Command;
use crate::policy::Policy;

/// Events closer together than this are one change: an editor's save or a
/// deploy script's copy is several file events.
const SETTLE: Duration = Duration::from_millis(50);

/// How often the polling fallback looks at the files (when inotify cannot
/// be used, e.g. its watch limit is reached).
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The `app_offline` page, if the file exists: its content (an unreadable
/// file still takes the app offline, with an empty page).
pub(super) fn read_page(path: &Path) -> Option<bytes::Bytes> {
    if !path.exists() {
        return None;
    }
    Some(std::fs::read(path).map(bytes::Bytes::from).unwrap_or_else(|e| {
        tracing::warn!("app_offline file {} exists but cannot be read: {e}", path.display());
        bytes::Bytes::new()
    }))
}

/// Watch the policy's `app-offline` and `watch` files (if any) and send the
/// supervisor what their changes mean, until the manager is gone.
pub(super) fn spawn(policy: &Policy, commands: mpsc::UnboundedSender<Command>) {
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let offline = policy.app_offline.as_ref().map(absolute);
    let watched = policy.watch.as_ref().map(absolute);
    if offline.is_none() && watched.is_none() {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |event: notify::Result<notify::Event>| {
        // Reads (ours included) are not changes.
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    };
    let folders: Vec<PathBuf> = offline
        .iter()
        .chain(watched.iter())
        .map(|p| p.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf))
        .collect();
    let watcher: Box<dyn Watcher + Send> = match notify::recommended_watcher(handler.clone()) {
        Ok(w) => Box::new(w),
        Err(e) => {
            tracing::warn!("cannot use inotify ({e}); polling the watched files every {POLL_INTERVAL:?}");
            let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
            match notify::PollWatcher::new(handler, config) {
                Ok(w) => Box::new(w),
                Err(e) => {
                    tracing::error!("cannot watch the app_offline or --watch file: {e}");
                    return;
                }
            }
        }
    };
    let mut watcher = watcher;
    for folder in &folders {
        if let Err(e) = watcher.watch(folder, RecursiveMode::NonRecursive) {
            tracing::error!("cannot watch {}: {e}", folder.display());
        }
    }
    let overlap = policy.watch_overlapped;
    tokio::spawn(run(watcher, rx, offline, watched.map(|w| (w, overlap)), commands));
}

async fn run(
    // Kept alive: dropping it stops the watching.
    _watcher: Box<dyn Watcher + Send>,
    mut changes: mpsc::UnboundedReceiver<PathBuf>,
    offline: Option<PathBuf>,
    // The watched file and whether its restarts are overlapped.
    watched: Option<(PathBuf, bool)>,
    commands: mpsc::UnboundedSender<Command>,
) {
    while let Some(first) = changes.recv().await {
        let mut changed = vec![first];
        loop {
            match tokio::time::timeout(SETTLE, changes.recv()).await {
                Ok(Some(path)) => changed.push(path),
                Ok(None) => return,
                Err(_) => break,
            }
        }
        if let Some(path) = offline.as_ref().filter(|p| changed.contains(p)) {
            let command = match read_page(path) {
                Some(page) => Command::Offline(page),
                None => Command::Online,
            };
            if commands.send(command).is_err() {
                return;
            }
        }
        if let Some((path, overlap)) = watched.as_ref().filter(|(p, _)| changed.contains(p)) {
            tracing::info!("{} changed: restarting the app", path.display());
            let restart = Command::Recycle {
                reason: RecycleReason::ConfigChange,
                overlap: Some(*overlap),
                reply: None,
            };
            if commands.send(restart).is_err() {
                return;
            }
        }
    }
}
