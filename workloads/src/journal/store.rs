//! The journal file: SQLite (bundled) in WAL mode. See `docs/journal.md`.
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value TEXT)            -- format = 'hostlab-journal 1'
//! events(seq INTEGER PRIMARY KEY, kind TEXT, body TEXT, checksum INTEGER)
//! snapshots(seq INTEGER PRIMARY KEY, body TEXT, checksum INTEGER)
//! ```
//!
//! `body` is JSON ([`Event`] or [`DurableState`]); `checksum` is the xxh3 of
//! kind and body, so a changed byte is found even where SQLite's own structure
//! is intact. Event numbers are contiguous after the latest snapshot; a gap is
//! damage too. Nothing here writes to a file that failed its checks.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{Durability, JournalError, RecoveryStats};
use crate::events::{DurableState, Event, StateLimits};

/// Written to `meta.format`; a file without it is not a journal.
pub const FORMAT: &str = "hostlab-journal 1";

pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
}

fn checksum(kind: &str, body: &str) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(kind.as_bytes());
    h.update(&[0]);
    h.update(body.as_bytes());
    h.digest() as i64
}

/// What reading the journal found.
pub(crate) struct Loaded {
    pub state: DurableState,
    pub last_seq: u64,
    pub stats: RecoveryStats,
}

impl Store {
    /// Open (or create) the journal at `path`, check it and rebuild its state.
    /// An existing file is only read until every check has passed.
    pub(super) fn open(
        path: &Path,
        durability: Durability,
        limits: StateLimits,
    ) -> Result<(Store, Loaded), JournalError> {
        let exists = path.exists();
        let sqlite = |e: rusqlite::Error| JournalError::damaged(path, describe(&e));
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let flags = if exists {
            flags
        } else {
            flags | OpenFlags::SQLITE_OPEN_CREATE
        };
        let conn = Connection::open_with_flags(path, flags).map_err(|e| JournalError::io(path, describe(&e)))?;
        // A clean close would checkpoint the WAL into the main file: not while
        // the file is unchecked.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(sqlite)?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        if exists {
            store.check_structure()?;
        } else {
            store.create().map_err(sqlite)?;
        }
        let loaded = store.load(limits, false)?;
        store.conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite)?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        store.conn.pragma_update(None, "synchronous", sync).map_err(sqlite)?;
        store
            .conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
            .map_err(sqlite)?;
        Ok((store, loaded))
    }

    /// Open an existing journal only to read it (`hostlab journal check`).
    pub(super) fn open_for_check(path: &Path) -> Result<Store, JournalError> {
        if !path.exists() {
            return Err(JournalError::io(path, "no such file".into()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| JournalError::io(path, describe(&e)))?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(|e| JournalError::damaged(path, describe(&e)))?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store.check_structure()?;
        Ok(store)
    }

    fn create(&self) -> rusqlite::Result<()> {
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE events (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL, checksum INTEGER NOT NULL);
             CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, checksum INTEGER NOT NULL);
             INSERT INTO meta (key, value) VALUES ('format', '{FORMAT}');
             COMMIT;"
        ))
    }

    /// SQLite's own structure check, then the journal's format marker.
    fn check_structure(&self) -> Result<(), JournalError> {
        let damaged = |detail: String| JournalError::damaged(&self.path, detail);
        let quick: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| damaged(describe(&e)))?;
        if quick != "ok" {
            return Err(damaged(format!("SQLite found damage: {quick}")));
        }
        let format: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| r.get(0))
            .optional()
            .map_err(|e| {
                damaged(format!(
                    "it is not a hostlab journal, or an empty or truncated one ({})",
                    describe(&e)
                ))
            })?;
        match format.as_deref() {
            Some(FORMAT) => Ok(()),
            Some(other) => Err(damaged(format!("format `{other}` is not `{FORMAT}`"))),
            None => Err(damaged("its format marker is missing".into())),
        }
    }

    /// Rebuild the state: latest snapshot plus every newer event, checking
    /// checksums and that event numbers are contiguous. `ignore_snapshots`
    /// replays the whole log instead (tests compare the two).
    pub(super) fn load(&self, limits: StateLimits, ignore_snapshots: bool) -> Result<Loaded, JournalError> {
        let started = Instant::now();
        let damaged = |detail: String| JournalError::damaged(&self.path, detail);
        let snapshot: Option<(i64, String, i64)> = if ignore_snapshots {
            None
        } else {
            self.conn
                .query_row(
                    "SELECT seq, body, checksum FROM snapshots ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|e| damaged(describe(&e)))?
        };
        let (mut state, snapshot_seq) = match snapshot {
            None => (DurableState::new(limits), 0),
            Some((seq, body, sum)) => {
                if checksum("snapshot", &body) != sum {
                    return Err(damaged(format!("snapshot {seq} fails its checksum")));
                }
                let mut state: DurableState =
                    serde_json::from_str(&body).map_err(|e| damaged(format!("snapshot {seq} cannot be read: {e}")))?;
                state.limits = limits;
                (state, seq as u64)
            }
        };
        let mut stmt = self
            .conn
            .prepare("SELECT seq, kind, body, checksum FROM events WHERE seq > ?1 ORDER BY seq")
            .map_err(|e| damaged(describe(&e)))?;
        let mut rows = stmt
            .query(params![snapshot_seq as i64])
            .map_err(|e| damaged(describe(&e)))?;
        let mut last = snapshot_seq;
        let mut replayed = 0u64;
        while let Some(row) = rows.next().map_err(|e| damaged(describe(&e)))? {
            let read = |e: rusqlite::Error| damaged(format!("event after {last} cannot be read: {}", describe(&e)));
            let seq = row.get::<_, i64>(0).map_err(read)? as u64;
            let kind = row.get_ref(1).and_then(|v| Ok(v.as_str()?)).map_err(read)?;
            let body = row.get_ref(2).and_then(|v| Ok(v.as_str()?)).map_err(read)?;
            let sum: i64 = row.get(3).map_err(read)?;
            if seq != last + 1 && !(ignore_snapshots && last == 0) {
                return Err(damaged(format!(
                    "events {} to {} are missing (the log jumps from {last} to {seq})",
                    last + 1,
                    seq - 1
                )));
            }
            if checksum(kind, body) != sum {
                return Err(damaged(format!("event {seq} ({kind}) fails its checksum")));
            }
            let event: Event =
                serde_json::from_str(body).map_err(|e| damaged(format!("event {seq} cannot be read: {e}")))?;
            state.apply(&event);
            last = seq;
            replayed += 1;
        }
        Ok(Loaded {
            state,
            last_seq: last,
            stats: RecoveryStats {
                snapshot_seq,
                events_replayed: replayed,
                micros: started.elapsed().as_micros() as u64,
                tasks_resumed: 0,
            },
        })
    }

    /// Append events (numbered from `first_seq`) in one transaction, plus a
    /// snapshot of `snapshot` at the last event if given. `compact` deletes
    /// the events and snapshots the new snapshot replaces.
    pub(super) fn append(
        &mut self,
        first_seq: u64,
        events: &[(&'static str, &str)],
        snapshot: Option<&DurableState>,
        compact: bool,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO events (seq, kind, body, checksum) VALUES (?1, ?2, ?3, ?4)")?;
            for (i, (kind, body)) in events.iter().enumerate() {
                insert.execute(params![(first_seq + i as u64) as i64, kind, body, checksum(kind, body)])?;
            }
        }
        if let Some(state) = snapshot {
            let seq = (first_seq + events.len() as u64 - 1) as i64;
            let body = serde_json::to_string(state).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
            tx.execute(
                "INSERT OR REPLACE INTO snapshots (seq, body, checksum) VALUES (?1, ?2, ?3)",
                params![seq, body, checksum("snapshot", &body)],
            )?;
            tx.execute("DELETE FROM snapshots WHERE seq < ?1", params![seq])?;
            if compact {
                tx.execute("DELETE FROM events WHERE seq <= ?1", params![seq])?;
            }
        }
        tx.commit()
    }

    /// Events and snapshots stored, for `hostlab journal check`.
    pub(super) fn counts(&self) -> Result<(u64, Option<u64>), JournalError> {
        let damaged = |e: rusqlite::Error| JournalError::damaged(&self.path, describe(&e));
        let events: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(damaged)?;
        let snapshot: Option<i64> = self
            .conn
            .query_row("SELECT max(seq) FROM snapshots", [], |r| r.get(0))
            .map_err(damaged)?;
        Ok((events as u64, snapshot.map(|s| s as u64)))
    }

    /// Copy the longest intact part of a damaged journal into a new file at
    /// `to`: the latest snapshot that passes its checksum, then events in
    /// order up to the first one that is missing or damaged. Returns the
    /// events kept and the last event number kept.
    pub(super) fn salvage(from: &Path, to: &Path, limits: StateLimits) -> Result<(u64, u64), JournalError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let src = Connection::open_with_flags(from, flags).map_err(|e| JournalError::io(from, describe(&e)))?;
        let (mut out, _) = Store::open(to, Durability::Full, limits)?;
        let mut state = DurableState::new(limits);
        let mut last = 0u64;
        let snapshot: Option<(i64, String, i64)> = src
            .query_row(
                "SELECT seq, body, checksum FROM snapshots ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        if let Some((seq, body, sum)) = snapshot
            && checksum("snapshot", &body) == sum
            && let Ok(s) = serde_json::from_str::<DurableState>(&body)
        {
            state = s;
            state.limits = limits;
            last = seq as u64;
        }
        let mut kept: Vec<(&'static str, String)> = Vec::new();
        if let Ok(mut stmt) = src.prepare("SELECT seq, kind, body, checksum FROM events WHERE seq > ?1 ORDER BY seq")
            && let Ok(mut rows) = stmt.query(params![last as i64])
        {
            while let Ok(Some(row)) = rows.next() {
                let (Ok(seq), Ok(kind), Ok(body), Ok(sum)) = (
                    row.get::<_, i64>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, i64>(3),
                ) else {
                    break;
                };
                if seq as u64 != last + 1 || checksum(&kind, &body) != sum {
                    break;
                }
                let Ok(event) = serde_json::from_str::<Event>(&body) else {
                    break;
                };
                state.apply(&event);
                kept.push((event.kind(), body));
                last = seq as u64;
            }
        }
        // The salvaged journal starts from a snapshot of everything kept, so
        // its numbering continues where the intact part ended.
        let events = kept.len() as u64;
        let tail: Vec<(&'static str, &str)> = kept.iter().map(|(k, b)| (*k, b.as_str())).collect();
        out.write_salvaged(last, &state, &tail)
            .map_err(|e| JournalError::io(to, describe(&e)))?;
        Ok((events, last))
    }

    fn write_salvaged(
        &mut self,
        last: u64,
        state: &DurableState,
        tail: &[(&'static str, &str)],
    ) -> rusqlite::Result<()> {
        if last == 0 {
            return Ok(());
        }
        let first = last + 1 - tail.len() as u64;
        let tx = self.conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO events (seq, kind, body, checksum) VALUES (?1, ?2, ?3, ?4)")?;
            for (i, (kind, body)) in tail.iter().enumerate() {
                insert.execute(params![(first + i as u64) as i64, kind, body, checksum(kind, body)])?;
            }
        }
        let body = serde_json::to_string(state).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        tx.execute(
            "INSERT INTO snapshots (seq, body, checksum) VALUES (?1, ?2, ?3)",
            params![last as i64, body, checksum("snapshot", &body)],
        )?;
        tx.commit()
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

/// SQLite's error in words a user can act on.
fn describe(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "it is not an SQLite database (damaged header or another kind of file)".into()
        }
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => format!("SQLite reports it damaged ({e})"),
        _ => e.to_string(),
    }
}
