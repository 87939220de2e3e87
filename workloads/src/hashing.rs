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

#[cfg(test)]
mod tests {
    use super::*;

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
