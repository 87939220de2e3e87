//! Maps bounded in entries that forget their oldest insertion first: the
//! idempotency keys of the book store, the task records of a task actor and
//! of the rebuilt state. One eviction rule, [`insert`], for all of them (the
//! rebuilt state keeps its map and order as two fields of its snapshot, so
//! the rule works on the two collections rather than owning them).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Insert `key` into `map` (whose keys `order` holds, oldest first), then
/// forget the oldest entries beyond `capacity` (at least 1). Replacing the
/// value of a key already present keeps its place. Returns the value the key
/// had.
pub fn insert<K: Hash + Eq + Clone, V>(
    map: &mut HashMap<K, V>,
    order: &mut VecDeque<K>,
    capacity: usize,
    key: K,
    value: V,
) -> Option<V> {
    let old = map.insert(key.clone(), value);
    if old.is_none() {
        order.push_back(key);
        while order.len() > capacity.max(1) {
            if let Some(oldest) = order.pop_front() {
                map.remove(&oldest);
            }
        }
    }
    old
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};

    use super::insert;

    #[test]
    fn forgets_the_oldest_first() {
        let (mut m, mut order) = (HashMap::new(), VecDeque::new());
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            insert(&mut m, &mut order, 2, k, v);
        }
        assert_eq!((m.get("a"), m.get("b"), m.get("c")), (None, Some(&2), Some(&3)));
        assert_eq!(order, ["b", "c"]);
    }

    #[test]
    fn replacing_keeps_the_place() {
        let (mut m, mut order) = (HashMap::new(), VecDeque::new());
        insert(&mut m, &mut order, 2, "a", 1);
        insert(&mut m, &mut order, 2, "b", 2);
        assert_eq!(insert(&mut m, &mut order, 2, "a", 10), Some(1));
        insert(&mut m, &mut order, 2, "c", 3);
        assert_eq!(m.get("a"), None, "`a` was still the oldest insertion");
        assert_eq!(m.get("b"), Some(&2));
    }

    #[test]
    fn capacity_zero_keeps_one() {
        let (mut m, mut order) = (HashMap::new(), VecDeque::new());
        insert(&mut m, &mut order, 0, 1, ());
        insert(&mut m, &mut order, 0, 2, ());
        assert_eq!((m.len(), m.get(&2)), (1, Some(&())));
    }
}
