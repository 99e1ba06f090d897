//! Medians and percentiles of the measurements.

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The `p` percentile (0 to 1, nearest rank) of `sorted` latencies in microseconds, in
/// milliseconds; NaN when empty.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::{median, percentile};

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn percentile_is_the_nearest_rank_in_milliseconds() {
        let sorted: Vec<u32> = (1..=1001).map(|v| v * 1000).collect();
        assert_eq!(percentile(&sorted, 0.5), 501.0);
        assert_eq!(percentile(&sorted, 0.99), 991.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
