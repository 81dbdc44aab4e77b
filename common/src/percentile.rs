//! The two percentile definitions headroom uses, each for one purpose (ARCHITECTURE.md, "Percentiles").
//!
//! - **Nearest rank** for everything a person reads or defends in a review: fleet and window views, the
//!   sizing model's peaks, benchmark figures. The result is the value at rank ⌈q × n⌉, so it is always a value
//!   some host or some reading actually had: p50 of 1..=100 is 50, p99 is 99.
//! - **Linear interpolation between closest ranks** for alarm rules (`kind = "percentile"`), the definition of
//!   Prometheus' `quantile_over_time`, so a rule carried over from Prometheus fires at the same value.
//!
//! The median of the robust statistics (outlier scores, Theil–Sen slopes) is the linear definition at 0.5:
//! the mean of the two middle values for an even count.
//!
//! `q` is a fraction in 0..=1 in both.

/// Tolerance on q × n, so floating-point noise (0.07 × 100 = 7.000000000000001) does not skip a rank.
const RANK_TOLERANCE: f64 = 1e-9;

/// The 0-based index of the nearest-rank percentile `q` among `count` sorted values; `None` for no values or
/// a `q` outside 0..=1.
pub fn nearest_rank_index(count: usize, q: f64) -> Option<usize> {
    if count == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = ((q * count as f64 - RANK_TOLERANCE).ceil() as usize).clamp(1, count);
    Some(rank - 1)
}

/// Nearest-rank percentile `q` of values already sorted ascending.
pub fn nearest_rank_sorted<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    nearest_rank_index(sorted.len(), q).map(|index| sorted[index])
}

/// Nearest-rank percentile `q` of unsorted values, by selection (reorders them; no NaN among them).
pub fn nearest_rank(values: &mut [f64], q: f64) -> Option<f64> {
    let index = nearest_rank_index(values.len(), q)?;
    let (_, value, _) = values.select_nth_unstable_by(index, f64::total_cmp);
    Some(*value)
}

/// Where the linearly interpolated percentile `q` of `count` values lies: the 0-based lower rank and the
/// fraction of the way to the next one. `q` is clamped to 0..=1; `None` for no values.
pub fn linear_rank(count: usize, q: f64) -> Option<(usize, f64)> {
    if count == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * (count - 1) as f64;
    let lower = rank.floor() as usize;
    Some((lower, rank - lower as f64))
}

/// Linearly interpolated percentile `q` of unsorted values, by selection (reorders them; no NaN among them).
pub fn linear(values: &mut [f64], q: f64) -> Option<f64> {
    let (lower_rank, fraction) = linear_rank(values.len(), q)?;
    let (_, lower, above) = values.select_nth_unstable_by(lower_rank, f64::total_cmp);
    let lower = *lower;
    if fraction == 0.0 || above.is_empty() {
        return Some(lower);
    }
    let upper = above.iter().copied().fold(f64::INFINITY, f64::min);
    Some(lower + (upper - lower) * fraction)
}

/// The median (mean of the two middle values for an even count), reordering `values`; `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    linear(values, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_to_hundred() -> Vec<f64> {
        (1..=100).map(f64::from).collect()
    }

    #[test]
    fn nearest_rank_is_a_value_that_occurred() {
        let sorted = one_to_hundred();
        assert_eq!(nearest_rank_sorted(&sorted, 0.5), Some(50.0));
        assert_eq!(nearest_rank_sorted(&sorted, 0.99), Some(99.0));
        assert_eq!(nearest_rank_sorted(&sorted, 0.999), Some(100.0));
        assert_eq!(nearest_rank_sorted(&sorted, 0.0), Some(1.0));
        assert_eq!(nearest_rank_sorted(&sorted, 1.0), Some(100.0));
        // 0.07 × 100 is 7.000000000000001 in floating point: still rank 7.
        assert_eq!(nearest_rank_sorted(&sorted, 0.07), Some(7.0));
        assert_eq!(nearest_rank_sorted::<f64>(&[], 0.5), None);
        assert_eq!(nearest_rank_sorted(&sorted, 1.5), None);
        let mut shuffled: Vec<f64> = sorted.iter().rev().copied().collect();
        assert_eq!(nearest_rank(&mut shuffled, 0.99), Some(99.0));
        assert_eq!(nearest_rank_sorted(&[3u32, 7, 9], 0.5), Some(7));
    }

    #[test]
    fn linear_interpolates_between_closest_ranks() {
        let mut values = vec![40.0, 10.0, 30.0, 20.0];
        assert_eq!(linear(&mut values, 0.5), Some(25.0));
        assert_eq!(linear(&mut values, 1.0), Some(40.0));
        assert_eq!(linear(&mut values, 0.0), Some(10.0));
        let p99 = linear(&mut one_to_hundred(), 0.99).unwrap();
        assert!((p99 - 99.01).abs() < 1e-9, "{p99}");
        assert_eq!(linear(&mut [], 0.5), None);
        assert_eq!(linear_rank(5, 0.5), Some((2, 0.0)));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
