//! The workload's cold start (docs/policies.md "Cold start"): real CPU work a
//! new process does before it answers its first request, and lazy per-key
//! caches its first requests fill, like an ASP.NET app's start-up code and
//! its JIT. It is what warm-up (`--warmup`) exists to hide.
//!
//! - **Start-up index:** at start the process builds an in-memory catalogue
//!   index of `init_entries` generated entries (each key stretched with
//!   SHA-256, the keys sorted, a lookup table built). It runs on its own
//!   thread from the moment the workload starts, so the ready line comes
//!   first (the process accepts connections) and every request but
//!   `GET /healthz` waits until the index is built, as requests wait for
//!   an ASP.NET app's start-up.
//! - **Lazy caches:** the first request on each route (`/ping`, `/books`,
//!   `/books/{id}`, `/tasks`, `/tasks/{id}`, `/stats`) and the first
//!   `GET /books/{id}` of each book compute a derived entry of
//!   `first_hit_rounds` SHA-256 rounds, then keep it; later requests only
//!   read it.
//!
//! `0` turns either cost off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How much cold-start work a process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdStartConfig {
    /// Entries of the start-up index; 0 = no start-up work.
    pub init_entries: u32,
    /// SHA-256 rounds of each lazy cache entry (first use of a route or a
    /// book); 0 = no first-hit cost.
    pub first_hit_rounds: u32,
}

/// The default start-up index size (about 150 ms of one core in a release
/// build on the development machine; docs/policies.md "Cold start").
pub const DEFAULT_INIT_ENTRIES: u32 = 40_000;
/// The default first-hit cost (about 1 ms of one core in a release build).
pub const DEFAULT_FIRST_HIT_ROUNDS: u32 = 4_000;

/// SHA-256 rounds each start-up index entry's key is stretched by.
const ROUNDS_PER_ENTRY: u32 = 8;

impl Default for ColdStartConfig {
    fn default() -> Self {
        Self {
            init_entries: DEFAULT_INIT_ENTRIES,
            first_hit_rounds: DEFAULT_FIRST_HIT_ROUNDS,
        }
    }
}

impl ColdStartConfig {
    /// No cold-start cost at all.
    pub const OFF: ColdStartConfig = ColdStartConfig {
        init_entries: 0,
        first_hit_rounds: 0,
    };
}

/// The routes with a lazy cache, in the order of [`ColdStart::routes`].
pub const ROUTES: [&str; 6] = ["/ping", "/books", "/books/{id}", "/tasks", "/tasks/{id}", "/stats"];

/// One process's cold-start state.
pub struct ColdStart {
    config: ColdStartConfig,
    built: AtomicBool,
    done: tokio::sync::watch::Receiver<bool>,
    /// How long the start-up index took to build, once built.
    init_time: OnceLock<Duration>,
    /// Entries the index holds (a check that the work was not optimised away).
    index_len: OnceLock<usize>,
    routes: [OnceLock<[u8; 32]>; ROUTES.len()],
    books: Mutex<HashMap<u64, [u8; 32]>>,
}

impl std::fmt::Debug for ColdStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStart")
            .field("config", &self.config)
            .field("built", &self.is_built())
            .finish()
    }
}

impl ColdStart {
    /// Start building the start-up index on its own thread (at once done
    /// with `init_entries = 0`).
    pub fn start(config: ColdStartConfig) -> Arc<ColdStart> {
        let (tx, done) = tokio::sync::watch::channel(false);
        let cold = Arc::new(ColdStart {
            config,
            built: AtomicBool::new(false),
            done,
            init_time: OnceLock::new(),
            index_len: OnceLock::new(),
            routes: Default::default(),
            books: Mutex::new(HashMap::new()),
        });
        if config.init_entries == 0 {
            cold.finish(Duration::ZERO, 0, &tx);
            return cold;
        }
        let building = cold.clone();
        let building_tx = tx.clone();
        let spawned = std::thread::Builder::new().name("hostlab-init".into()).spawn(move || {
            let started = Instant::now();
            let len = build_index(building.config.init_entries).len();
            let took = started.elapsed();
            tracing::info!("start-up index of {len} entries built in {took:?}");
            building.finish(took, len, &building_tx);
        });
        if let Err(e) = spawned {
            // No thread to spare: build it here rather than never.
            tracing::warn!("no thread for the start-up index ({e}); building it inline");
            let started = Instant::now();
            let len = build_index(cold.config.init_entries).len();
            cold.finish(started.elapsed(), len, &tx);
        }
        cold
    }

    fn finish(&self, took: Duration, len: usize, tx: &tokio::sync::watch::Sender<bool>) {
        let _ = self.init_time.set(took);
        let _ = self.index_len.set(len);
        self.built.store(true, Ordering::Release);
        tx.send_replace(true);
    }

    pub fn config(&self) -> ColdStartConfig {
        self.config
    }

    /// The start-up index is built (one atomic load).
    pub fn is_built(&self) -> bool {
        self.built.load(Ordering::Acquire)
    }

    /// Wait until the start-up index is built.
    pub async fn built(&self) {
        if self.is_built() {
            return;
        }
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// How long the start-up index took, once built.
    pub fn init_time(&self) -> Option<Duration> {
        self.init_time.get().copied()
    }

    /// Entries in the start-up index, once built.
    pub fn index_len(&self) -> Option<usize> {
        self.index_len.get().copied()
    }

    /// The lazy cache of route `i` of [`ROUTES`]: computed by the first
    /// request (concurrent first requests wait for it), read by later ones.
    pub fn route(&self, i: usize) -> [u8; 32] {
        *self.routes[i].get_or_init(|| stretch(ROUTES[i].as_bytes(), self.config.first_hit_rounds))
    }

    /// Whether route `i` has its cache entry yet.
    pub fn route_is_cached(&self, i: usize) -> bool {
        self.routes[i].get().is_some()
    }

    /// The lazy cache entry of book `id`, computed on its first request.
    pub fn book(&self, id: u64) -> [u8; 32] {
        if self.config.first_hit_rounds == 0 {
            return [0; 32];
        }
        if let Some(entry) = self.books.lock().unwrap().get(&id) {
            return *entry;
        }
        // Computed outside the lock: other books' requests do not wait.
        let entry = stretch(&id.to_le_bytes(), self.config.first_hit_rounds);
        *self.books.lock().unwrap().entry(id).or_insert(entry)
    }

    /// Book cache entries held.
    pub fn books_cached(&self) -> usize {
        self.books.lock().unwrap().len()
    }
}

/// SHA-256 of `key`, then of the digest again, `rounds` times in all
/// (0 rounds: no work, zeros).
pub fn stretch(key: &[u8], rounds: u32) -> [u8; 32] {
    if rounds == 0 {
        return [0; 32];
    }
    let mut digest: [u8; 32] = Sha256::digest(key).into();
    for _ in 1..rounds {
        digest = Sha256::digest(digest).into();
    }
    digest
}

/// The start-up index: `entries` generated catalogue keys, each stretched
/// by [`ROUNDS_PER_ENTRY`] SHA-256 rounds, sorted, and a table from each
/// key's first 8 bytes to its position.
pub fn build_index(entries: u32) -> HashMap<u64, u32> {
    let mut keys: Vec<[u8; 32]> = (0..entries)
        .map(|i| stretch(format!("catalogue-entry-{i}").as_bytes(), ROUNDS_PER_ENTRY))
        .collect();
    keys.sort_unstable();
    keys.iter()
        .enumerate()
        .map(|(pos, key)| {
            let prefix = u64::from_le_bytes(key[..8].try_into().expect("32 bytes"));
            (prefix, pos as u32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretch_is_deterministic_and_depends_on_rounds() {
        assert_eq!(stretch(b"k", 3), stretch(b"k", 3));
        assert_ne!(stretch(b"k", 3), stretch(b"k", 4));
        assert_eq!(stretch(b"k", 0), [0; 32]);
        let one: [u8; 32] = Sha256::digest(b"k").into();
        assert_eq!(stretch(b"k", 1), one);
    }

    #[test]
    fn the_index_holds_every_entry() {
        let index = build_index(1000);
        assert_eq!(index.len(), 1000, "no two keys share an 8-byte prefix");
        let mut positions: Vec<_> = index.values().copied().collect();
        positions.sort_unstable();
        assert_eq!(positions, (0..1000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_index_is_built_in_the_background_and_waited_for() {
        let cold = ColdStart::start(ColdStartConfig {
            init_entries: 2000,
            first_hit_rounds: 10,
        });
        cold.built().await;
        assert!(cold.is_built());
        assert_eq!(cold.index_len(), Some(2000));
        assert!(cold.init_time().is_some());
        let off = ColdStart::start(ColdStartConfig::OFF);
        assert!(off.is_built(), "no start-up work: built at once");
        assert_eq!(off.index_len(), Some(0));
    }

    #[test]
    fn lazy_caches_fill_on_first_use() {
        let cold = ColdStart::start(ColdStartConfig {
            init_entries: 0,
            first_hit_rounds: 5,
        });
        assert!(!cold.route_is_cached(0));
        let first = cold.route(0);
        assert!(cold.route_is_cached(0));
        assert_eq!(cold.route(0), first);
        assert_eq!(first, stretch(b"/ping", 5));
        assert_eq!(cold.books_cached(), 0);
        assert_eq!(cold.book(7), stretch(&7u64.to_le_bytes(), 5));
        cold.book(7);
        assert_eq!(cold.books_cached(), 1);
        let off = ColdStart::start(ColdStartConfig::OFF);
        off.book(1);
        assert_eq!(off.books_cached(), 0, "0 rounds: no cache");
    }
}
