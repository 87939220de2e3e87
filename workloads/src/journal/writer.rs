//! The journal's writer thread (group commit: every command queued is
//! committed in one transaction, then its callbacks run in queue order) and
//! the lock file that keeps the journal to one process at a time.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc;

use super::store::Store;
use super::{Cmd, Counters, DurableState, JournalError, JournalFailed, MAX_BATCH};

pub(super) fn fail(cmd: Cmd, error: &JournalFailed) {
    match cmd {
        Cmd::Append { done, .. } | Cmd::Barrier(done) => done(Err(error.clone())),
        Cmd::Close => {}
    }
}

/// Take `PATH.lock` (waiting for it only if `wait`) and write our pid into it.
pub(super) fn lock(path: &Path, wait: bool) -> Result<File, JournalError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| JournalError::io(path, format!("cannot open its lock file {}: {e}", lock_path.display())))?;
    let locked = if wait {
        file.lock().map_err(std::fs::TryLockError::Error)
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(JournalError::Locked {
                path: path.to_owned(),
                holder: if holder.is_empty() {
                    "unknown".into()
                } else {
                    holder.into()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(JournalError::io(
                path,
                format!("cannot lock {}: {e}", lock_path.display()),
            ));
        }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

pub(super) struct Writer {
    pub(super) store: Store,
    /// The state after every committed event: what a snapshot stores.
    pub(super) shadow: DurableState,
    pub(super) next_seq: u64,
    pub(super) since_snapshot: u64,
    pub(super) snapshot_every: u64,
    pub(super) compact: bool,
    pub(super) counters: Arc<Counters>,
    pub(super) failed: Arc<OnceLock<String>>,
    pub(super) _lock: File,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            if let Some(close) = batch.iter().position(|cmd| matches!(cmd, Cmd::Close)) {
                let after = batch.split_off(close);
                self.commit(&mut batch);
                let closed = JournalFailed("the journal is closed (the server is stopping)".into());
                rx.close();
                after
                    .into_iter()
                    .chain(std::iter::from_fn(|| rx.try_recv().ok()))
                    .for_each(|cmd| fail(cmd, &closed));
                return;
            }
            self.commit(&mut batch);
        }
    }

    /// Write every event of `batch` in one transaction, then run the callbacks
    /// in queue order.
    fn commit(&mut self, batch: &mut Vec<Cmd>) {
        if let Some(e) = self.failed.get() {
            let error = JournalFailed(e.clone());
            batch.drain(..).for_each(|cmd| fail(cmd, &error));
            return;
        }
        let events: Vec<(&'static str, &str)> = batch
            .iter()
            .filter_map(|cmd| match cmd {
                Cmd::Append { event, body, .. } => Some((event.kind(), body.as_str())),
                Cmd::Barrier(_) | Cmd::Close => None,
            })
            .collect();
        let n = events.len() as u64;
        let mut result = Ok(());
        if n > 0 {
            let started = Instant::now();
            let mut shadow_after = None;
            for cmd in batch.iter() {
                if let Cmd::Append { event, .. } = cmd {
                    self.shadow.apply(event);
                }
            }
            self.since_snapshot += n;
            let snapshot_due = self.snapshot_every > 0 && self.since_snapshot >= self.snapshot_every;
            if snapshot_due {
                shadow_after = Some(&self.shadow);
            }
            result = self.store.append(self.next_seq, &events, shadow_after, self.compact);
            if result.is_ok() {
                self.next_seq += n;
                let c = &self.counters;
                c.appended.fetch_add(n, Ordering::Relaxed);
                c.commits.fetch_add(1, Ordering::Relaxed);
                c.largest_batch.fetch_max(n, Ordering::Relaxed);
                c.last_seq.store(self.next_seq - 1, Ordering::Relaxed);
                if snapshot_due {
                    self.since_snapshot = 0;
                    c.snapshots.fetch_add(1, Ordering::Relaxed);
                }
            }
            tracing::trace!(events = n, took = ?started.elapsed(), "journal commit");
        }
        drop(events);
        match result {
            Ok(()) => batch.drain(..).for_each(|cmd| match cmd {
                Cmd::Append { done, .. } | Cmd::Barrier(done) => done(Ok(())),
                Cmd::Close => {}
            }),
            Err(e) => {
                let message = format!("writing to {} failed: {e}", self.store.path().display());
                tracing::error!("{message}; state commands now get 503 until the server is restarted");
                let _ = self.failed.set(message.clone());
                let error = JournalFailed(message);
                batch.drain(..).for_each(|cmd| fail(cmd, &error));
            }
        }
    }
}
