//! Walker's alias method: draws from a fixed discrete distribution in O(1), with one
//! table read per draw.
//!
//! Used for Zipf key popularity, where a draw happens on every simulated read. Why
//! not `rand_distr`'s `WeightedAliasIndex`: it keeps the two halves of an entry (the
//! odds and the alias) in two arrays and draws the odds as a float, so a draw reads
//! two cache lines of a table that, for tens of thousands of keys, lives in L3.
//! Here an entry is 8 bytes (a 32-bit threshold and a 32-bit alias) and a draw is
//! one read: a long simulation spent measurably less time drawing keys.
//!
//! The table is built with Vose's stable variant: every column is filled to exactly
//! one unit by its own item and at most one alias. The threshold is the column's own
//! share in units of 2^-32, so the distribution is exact up to that rounding, far
//! below anything a simulation can observe.

use rand::Rng;

/// One column: keep the column's own index when the draw is below `threshold`,
/// otherwise take `alias`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Column {
    threshold: u32,
    alias: u32,
}

/// A discrete distribution over `0..len`, prepared for O(1) draws.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasTable {
    columns: Vec<Column>,
}

impl AliasTable {
    /// The distribution with `P(i) = weights[i] / sum(weights)`, or `None` when there are
    /// no weights, more than `u32::MAX` of them, a weight that is negative or not
    /// finite, or no positive weight.
    pub fn new(weights: &[f64]) -> Option<AliasTable> {
        let n = weights.len();
        if n == 0 || u32::try_from(n).is_err() {
            return None;
        }
        if !weights.iter().all(|w| w.is_finite() && *w >= 0.0) {
            return None;
        }
        let total: f64 = weights.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return None;
        }
        // Each column holds one unit: item i's share scaled so that the mean is 1.
        let scale = n as f64 / total;
        let mut share: Vec<f64> = weights.iter().map(|w| w * scale).collect();
        let mut columns: Vec<Column> = (0..n as u32)
            .map(|i| Column {
                threshold: u32::MAX,
                alias: i,
            })
            .collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..n as u32).partition(|&i| share[i as usize] < 1.0);
        // Pair a column short of one unit with an item that has more than one, which
        // tops the column up and gives away the difference.
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            let own = share[s as usize];
            columns[s as usize] = Column {
                threshold: threshold(own),
                alias: l,
            };
            share[l as usize] -= 1.0 - own;
            if share[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // What is left on either list is one unit up to rounding: the column keeps its
        // own item (threshold u32::MAX and alias itself, as initialised).
        Some(AliasTable { columns })
    }

    /// The number of outcomes.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the table has no outcomes (never true for a table `new` built).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Draws an index in `0..len`: a uniform column, then a 32-bit coin against its
    /// threshold.
    #[inline]
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let (column, coin) = self.draw(rng);
        self.resolve(column, coin)
    }

    /// The random part of [`AliasTable::sample`]: a column and a coin, drawn without
    /// reading the table. [`AliasTable::resolve`] reads the column; [`AliasTable::prefetch`]
    /// asks the CPU to start loading it in between.
    #[inline]
    pub fn draw(&self, rng: &mut impl Rng) -> (u32, u32) {
        // Drawn as u32 (the length fits, `new` checks it) so the draw is the same on
        // 32- and 64-bit machines.
        let column = rng.random_range(0..self.columns.len() as u32);
        (column, rng.next_u32())
    }

    /// Asks the CPU to start loading `column`, which [`AliasTable::resolve`] will read.
    #[inline]
    pub fn prefetch(&self, column: u32) {
        crate::prefetch::prefetch(&self.columns[column as usize]);
    }

    /// The index a draw of `column` and `coin` stands for.
    #[inline]
    pub fn resolve(&self, column: u32, coin: u32) -> usize {
        let i = column as usize;
        let column = self.columns[i];
        if coin < column.threshold {
            i
        } else {
            column.alias as usize
        }
    }
}

/// A share in `[0, 1)` as a threshold in units of 2^-32.
fn threshold(share: f64) -> u32 {
    // `as` saturates, and a share below 0 (rounding) becomes 0.
    (share * 4_294_967_296.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn frequencies(weights: &[f64], draws: usize) -> Vec<f64> {
        let table = AliasTable::new(weights).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = vec![0usize; weights.len()];
        for _ in 0..draws {
            counts[table.sample(&mut rng)] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn refuses_what_is_not_a_distribution() {
        assert!(AliasTable::new(&[]).is_none());
        assert!(AliasTable::new(&[0.0, 0.0]).is_none());
        assert!(AliasTable::new(&[1.0, -0.5]).is_none());
        assert!(AliasTable::new(&[1.0, f64::NAN]).is_none());
        assert!(AliasTable::new(&[1.0, f64::INFINITY]).is_none());
        assert!(
            AliasTable::new(&[f64::MAX, f64::MAX]).is_none(),
            "the sum overflows"
        );
    }

    #[test]
    fn every_column_holds_one_unit() {
        // Rebuild each item's probability from the columns: own share plus what other
        // columns give it as their alias, each column being worth 1/n.
        let weights = [5.0, 1.0, 0.0, 3.0, 0.5, 0.5];
        let table = AliasTable::new(&weights).unwrap();
        let n = weights.len() as f64;
        let mut p = [0.0f64; 6];
        for (i, c) in table.columns.iter().enumerate() {
            let own = f64::from(c.threshold) / 4_294_967_296.0;
            p[i] += own / n;
            p[c.alias as usize] += (1.0 - own) / n;
        }
        let total: f64 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            assert!(
                (p[i] - w / total).abs() < 1e-9,
                "item {i}: {} vs {}",
                p[i],
                w / total
            );
        }
    }

    #[test]
    fn draws_follow_the_weights() {
        let weights = [8.0, 4.0, 2.0, 1.0, 1.0];
        let freq = frequencies(&weights, 400_000);
        for (i, w) in weights.iter().enumerate() {
            let expected = w / 16.0;
            assert!(
                (freq[i] - expected).abs() < 0.005,
                "item {i}: {} vs {expected}",
                freq[i]
            );
        }
    }

    #[test]
    fn a_zero_weight_is_never_drawn_and_one_item_always_is() {
        assert_eq!(frequencies(&[0.0, 1.0, 0.0], 10_000), vec![0.0, 1.0, 0.0]);
        assert_eq!(frequencies(&[3.0], 1_000), vec![1.0]);
    }

    #[test]
    fn same_seed_same_draws() {
        let table = AliasTable::new(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..100).map(|_| table.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
