//! Consistent hashing of task ids onto a pool of actors.
//!
//! We use Lamping and Veach's *jump consistent hash* ("A Fast, Minimal Memory,
//! Consistent Hash Algorithm", 2014, arXiv:1406.2294): it needs no ring and no
//! memory, spreads keys evenly over `n` buckets, and when the pool grows from
//! `n` to `n + 1` only about `1 / (n + 1)` of the keys move (all of them to
//! the new bucket). ractor's factory routes by `hash % n` instead, which moves
//! almost every key when `n` changes, so it is not used here.
//!
//! The key is the id's xxh3 64-bit hash: stable across processes, builds and
//! platforms, unlike `std`'s `DefaultHasher`, so a task id lands on the same
//! actor in every hosting model and after every restart.
//!
//! The split model's sharded actor service uses the same jump hash to place
//! keys on nodes ([`Shard`]): books by id, tasks by task id, `POST /books`
//! with an `Idempotency-Key` by the key. Node placement hashes with a seed of
//! its own ([`SHARD_SEED`]): with the same hash for node and actor, the keys
//! of one node would reach only some of its pool's actors (a jump hash over
//! `m` and over `n` buckets of one key are correlated).

use serde::{Deserialize, Serialize};

/// Actor index in `0..buckets` for `id`.
///
/// # Panics
/// If `buckets` is zero (a pool always has at least one actor).
pub fn actor_for(id: &str, buckets: u32) -> u32 {
    jump_hash(xxhash_rust::xxh3::xxh3_64(id.as_bytes()), buckets)
}

/// Jump consistent hash of `key` onto `0..buckets` (the paper's Figure 1).
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    assert!(buckets > 0, "a pool needs at least one bucket");
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// Seed of the node-placement hash (any constant other than task routing's 0).
pub const SHARD_SEED: u64 = 0x686f_7374_6c61_6273; // "hostlabs"

/// Most nodes a sharded actor service may have.
pub const MAX_SHARDS: u32 = 1024;

/// Which part of the keys one actor-service node owns: node `index` of
/// `count` (`--shard I/M`). The whole service is `0/1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// One node owns everything.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether book `id` belongs to this node.
    pub fn owns_book(&self, id: u64) -> bool {
        shard_of_book(id, self.count) == self.index
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("`{s}` is not a shard: give I/M, node I of M nodes, 0 <= I < M (e.g. 0/2 and 1/2)");
        let (i, m) = s.split_once('/').ok_or_else(usage)?;
        let index: u32 = i.trim().parse().map_err(|_| usage())?;
        let count: u32 = m.trim().parse().map_err(|_| usage())?;
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("`{s}`: the number of nodes M must be 1 to {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!(
                "`{s}`: node I must be below M (nodes are numbered 0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

/// Node in `0..shards` that owns book `id`.
pub fn shard_of_book(id: u64, shards: u32) -> u32 {
    jump_hash(
        xxhash_rust::xxh3::xxh3_64_with_seed(&id.to_le_bytes(), SHARD_SEED),
        shards,
    )
}

/// Node in `0..shards` that owns a string key (a task id, an idempotency key).
pub fn shard_of_key(key: &str, shards: u32) -> u32 {
    jump_hash(xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), SHARD_SEED), shards)
}

/// Share of `keys` book ids (1..=keys) that change node when a service of
/// `shards` nodes gets one more node (the ideal is `1 / (shards + 1)`).
pub fn moved_share(keys: u64, shards: u32) -> f64 {
    let moved = (1..=keys)
        .filter(|&id| shard_of_book(id, shards) != shard_of_book(id, shards + 1))
        .count();
    moved as f64 / keys as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_or_say_why_not() {
        assert_eq!("1/2".parse::<Shard>(), Ok(Shard { index: 1, count: 2 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard::WHOLE));
        for bad in ["2/2", "1", "a/2", "0/0", "-1/2", "0/5000", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert_eq!(Shard { index: 1, count: 3 }.to_string(), "1/3");
    }

    /// Node placement and the pool's actor choice are independent: every
    /// actor of a node's pool gets keys.
    #[test]
    fn a_nodes_keys_reach_every_actor_of_its_pool() {
        for node in 0..2 {
            let mut seen = [false; 10];
            for id in ids(10_000).filter(|id| shard_of_key(id, 2) == node) {
                seen[actor_for(&id, 10) as usize] = true;
            }
            assert!(seen.iter().all(|s| *s), "node {node}: {seen:?}");
        }
    }

    /// Growing the service from M to M + 1 nodes moves about 1/(M + 1) of
    /// the keys (the figures in docs/split.md; print them with
    /// `cargo test -p hostlab-workloads --lib moved_keys -- --nocapture`).
    #[test]
    fn moved_keys_are_about_one_over_m_plus_one() {
        let keys = 1_000_000;
        for m in 1..=4 {
            let share = moved_share(keys, m);
            let ideal = 1.0 / f64::from(m + 1);
            eprintln!(
                "M = {m} -> {}: {:.2}% of {keys} keys moved (ideal {:.2}%)",
                m + 1,
                share * 100.0,
                ideal * 100.0
            );
            assert!((share - ideal).abs() < 0.005, "M = {m}: moved {share}, ideal {ideal}");
        }
    }

    fn ids(n: usize) -> impl Iterator<Item = String> {
        (0..n).map(|i| format!("task-{i}"))
    }

    #[test]
    fn one_bucket_takes_everything() {
        assert!(ids(1000).all(|id| actor_for(&id, 1) == 0));
    }

    #[test]
    fn same_id_same_actor() {
        assert_eq!(actor_for("task-42", 10), actor_for("task-42", 10));
    }

    #[test]
    fn matches_the_papers_reference_implementation() {
        // Expected values printed by the paper's C++ code (Figure 1) compiled
        // with gcc: keys x buckets 1, 10, 11, 1000.
        let expected: [(u64, [u32; 4]); 7] = [
            (0, [0, 0, 0, 0]),
            (1, [0, 6, 6, 549]),
            (2, [0, 6, 6, 338]),
            (3, [0, 8, 8, 961]),
            (42, [0, 2, 2, 571]),
            (0xDEAD_BEEF, [0, 5, 5, 285]),
            (u64::MAX, [0, 9, 10, 313]),
        ];
        for (key, buckets) in expected {
            let got = [1, 10, 11, 1000].map(|n| jump_hash(key, n));
            assert_eq!(got, buckets, "key {key}");
        }
    }

    #[test]
    fn spread_is_even_over_ten_actors() {
        let n = 100_000;
        let mut counts = [0usize; 10];
        for id in ids(n) {
            counts[actor_for(&id, 10) as usize] += 1;
        }
        let expected = n / 10;
        for (actor, c) in counts.iter().enumerate() {
            // 10,000 expected per actor; a fair spread stays within 5%.
            assert!(
                c.abs_diff(expected) < expected / 20,
                "actor {actor} got {c}, expected about {expected}: {counts:?}"
            );
        }
    }

    #[test]
    fn growing_the_pool_moves_few_ids_and_only_to_the_new_actor() {
        let n = 100_000;
        let mut moved = 0;
        for id in ids(n) {
            let before = actor_for(&id, 10);
            let after = actor_for(&id, 11);
            if before != after {
                assert_eq!(after, 10, "{id} moved between old actors");
                moved += 1;
            }
        }
        // Ideal: 1/11 of the ids (9.1%). `hash % n` would move about 91%.
        let share = moved as f64 / n as f64;
        assert!((0.08..0.10).contains(&share), "moved share {share}");
    }
}
