//! Delta debugging (Zeller and Hildebrandt's ddmin): the smallest subset of a list
//! that still passes a test, found by removing chunks, then smaller chunks.
//!
//! The result is 1-minimal when the test is deterministic and the budget lasts:
//! removing any single remaining item makes the test fail. It takes `O(n^2)` tests at
//! worst and `O(log n)` when one item alone matters.

/// The subset of `items` (in their order) that `test` was last true for: `test(keep)`
/// says whether keeping only `keep` still shows the failure. `test(items)` is assumed
/// true and never asked.
pub(super) fn ddmin<T: Clone + PartialEq>(
    items: &[T],
    mut test: impl FnMut(&[T]) -> bool,
) -> Vec<T> {
    if items.is_empty() || test(&[]) {
        return Vec::new();
    }
    let mut current = items.to_vec();
    let mut n = 2;
    while current.len() >= 2 {
        let chunks = split(&current, n);
        let mut reduced = false;
        // With two chunks each subset is the other's complement: test them once.
        if n > 2 {
            for chunk in &chunks {
                if test(chunk) {
                    current = chunk.clone();
                    n = 2;
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            for i in 0..chunks.len() {
                let complement: Vec<T> = chunks
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .flat_map(|(_, c)| c.iter().cloned())
                    .collect();
                if test(&complement) {
                    current = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (n * 2).min(current.len());
        }
    }
    current
}

/// `items` in `n` chunks of near-equal size, in order.
fn split<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.min(items.len()).max(1);
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = start + (items.len() - start) / (n - i);
        chunks.push(items[start..end].to_vec());
        start = end;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failure needs items 3 and 7 together.
    #[test]
    fn finds_the_pair_that_matters() {
        let items: Vec<u32> = (0..16).collect();
        let mut tests = 0;
        let kept = ddmin(&items, |keep| {
            tests += 1;
            keep.contains(&3) && keep.contains(&7)
        });
        assert_eq!(kept, vec![3, 7]);
        assert!(tests < 60, "{tests} tests");
    }

    #[test]
    fn everything_can_go_or_nothing_can() {
        assert_eq!(ddmin(&[1, 2, 3], |_| true), Vec::<i32>::new());
        assert_eq!(ddmin(&[1, 2, 3], |keep| keep.len() == 3), vec![1, 2, 3]);
        assert_eq!(ddmin(&[5], |keep| keep == [5]), vec![5]);
    }

    /// Whatever the failure needs, the result is 1-minimal and still fails.
    #[test]
    fn the_result_is_one_minimal() {
        for mask in 1u32..64 {
            let needed: Vec<u32> = (0..6).filter(|i| mask & (1 << i) != 0).collect();
            let items: Vec<u32> = (0..9).collect();
            let fails = |keep: &[u32]| needed.iter().all(|n| keep.contains(n));
            let kept = ddmin(&items, fails);
            assert_eq!(kept, needed);
        }
    }

    #[test]
    fn chunks_cover_the_items_in_order() {
        let items: Vec<u32> = (0..7).collect();
        assert_eq!(
            split(&items, 3),
            vec![vec![0, 1], vec![2, 3], vec![4, 5, 6]]
        );
        assert_eq!(split(&items, 7).len(), 7);
        assert_eq!(split(&items, 9).len(), 7);
    }
}
