//! The one sort of the engine and its drivers: a heapsort.
//!
//! Why not `slice::sort_by`: it compiles its driftsort anew for every element type,
//! 3 to 4 KB of wasm each, and the package is downloaded by every page; this is a
//! few hundred bytes per use, in O(n log n) still. It is not stable, so it sorts
//! by a total order only: every list sorted with it has no two equal elements
//! (records and changes by key, members by rank then index, partitions by number).

use std::cmp::Ordering;

/// Sorts `v` ascending by `order`, which must be total on its elements.
pub fn sort_by<T>(v: &mut [T], mut order: impl FnMut(&T, &T) -> Ordering) {
    let len = v.len();
    // A max-heap first, then the largest moved to the end, one after another.
    for node in (0..len / 2).rev() {
        sift_down(v, node, len, &mut order);
    }
    for end in (1..len).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, &mut order);
    }
}

/// Moves `v[node]` down the heap `v[..end]` until neither child is greater.
fn sift_down<T>(v: &mut [T], mut node: usize, end: usize, order: &mut impl FnMut(&T, &T) -> Ordering) {
    loop {
        let mut child = 2 * node + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && order(&v[child], &v[child + 1]) == Ordering::Less {
            child += 1;
        }
        if order(&v[node], &v[child]) != Ordering::Less {
            return;
        }
        v.swap(node, child);
        node = child;
    }
}

#[cfg(test)]
mod tests {
    use super::sort_by;

    #[test]
    fn sorts_as_the_standard_sort_does() {
        let mut rng = crate::core::rng::Rng::new(11);
        for len in [0, 1, 2, 3, 7, 64, 1_000] {
            let mut v: Vec<u64> = (0..len).map(|_| rng.between(0, 50)).collect();
            let mut expected = v.clone();
            expected.sort();
            sort_by(&mut v, |a, b| a.cmp(b));
            assert_eq!(v, expected, "{len} elements");
        }
    }
}
