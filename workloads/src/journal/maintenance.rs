//! Working on a journal file with no server running: `hostlab journal
//! check` and `repair`, and the full replay tests compare recovery with.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::store::Store;
use super::{DurableState, JournalError, StateLimits, lock};

/// What `hostlab journal check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub path: String,
    pub events_stored: u64,
    pub last_seq: u64,
    pub snapshot_seq: Option<u64>,
    pub books: usize,
    pub tasks_done: u64,
    pub tasks_unfinished: usize,
    pub replay_micros: u64,
}

/// Check a journal without starting anything (`hostlab journal check`).
pub fn check(path: &Path) -> Result<CheckReport, JournalError> {
    let _lock = lock(path, false)?;
    let store = Store::open_for_check(path)?;
    let (events_stored, snapshot_seq) = store.counts()?;
    let loaded = store.load(StateLimits::default(), false)?;
    Ok(CheckReport {
        path: store.path().display().to_string(),
        events_stored,
        last_seq: loaded.last_seq,
        snapshot_seq,
        books: loaded.state.books.len(),
        tasks_done: loaded.state.tasks_done,
        tasks_unfinished: loaded.state.pending.len(),
        replay_micros: loaded.stats.micros,
    })
}

/// What `hostlab journal repair` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    pub path: String,
    /// Where the damaged original was moved.
    pub damaged_copy: String,
    pub events_kept: u64,
    pub last_seq: u64,
}

/// Keep the longest intact part of a damaged journal: the original (and its
/// `-wal`) is renamed to `PATH.damaged-<unix time>`, and a new journal with
/// what could be read takes its place. A journal that passes its check is
/// left alone.
pub fn repair(path: &Path) -> Result<RepairReport, JournalError> {
    let _lock = lock(path, false)?;
    if Store::open_for_check(path)
        .and_then(|s| s.load(StateLimits::default(), false))
        .is_ok()
    {
        return Err(JournalError::io(path, "passes its check; nothing to repair".into()));
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let with_suffix = |p: &Path, suffix: &str| {
        let mut s = p.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let damaged = with_suffix(path, &format!(".damaged-{stamp}"));
    for suffix in ["", "-wal", "-shm"] {
        let from = with_suffix(path, suffix);
        if from.exists() {
            std::fs::rename(&from, with_suffix(&damaged, suffix))
                .map_err(|e| JournalError::io(path, format!("cannot move {} aside: {e}", from.display())))?;
        }
    }
    let (events_kept, last_seq) = Store::salvage(&damaged, path, StateLimits::default())?;
    Ok(RepairReport {
        path: path.display().to_string(),
        damaged_copy: damaged.display().to_string(),
        events_kept,
        last_seq,
    })
}

/// Rebuild the state by replaying every stored event from the start,
/// ignoring snapshots (tests compare it with normal recovery).
pub fn replay_full_log(path: &Path, limits: StateLimits) -> Result<DurableState, JournalError> {
    let _lock = lock(path, false)?;
    let store = Store::open_for_check(path)?;
    Ok(store.load(limits, true)?.state)
}
