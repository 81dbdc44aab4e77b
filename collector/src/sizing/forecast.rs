//! The forecast: a Theil–Sen line through the daily peaks of a resource's utilisation over complete UTC
//! days, with a 90 % interval for its slope, and the days until it crosses the safe steady-state level,
//! which is the day the group stops surviving its worst loss. Theil–Sen (the median of all pairwise slopes)
//! ignores up to about 29 % of wild days, such as an incident or a load test, where least squares would
//! follow them. Where two weeks or more show a weekly pattern, the line goes through the peak weekday's
//! points only, so a Monday peak is forecast as a Monday peak rather than averaged away.

use serde::Serialize;

/// A straight line `utilisation = intercept + slope_per_day × days`, with days counted from the window's
/// end (so `intercept` is the trend's value now, and past days are negative).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrendLine {
    /// Change of utilisation per day, as a fraction.
    pub slope_per_day: f64,
    /// Utilisation the trend gives for the end of the window.
    pub intercept: f64,
}

impl TrendLine {
    /// The trend's value `days` after the end of the window.
    pub fn at(&self, days: f64) -> f64 {
        self.intercept + self.slope_per_day * days
    }
}

/// What the trend says about the safe level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ForecastOutcome {
    /// The trend crosses the safe level after this many days.
    Crosses {
        /// Days from the end of the window (the median slope).
        days: f64,
        /// The earliest crossing in the 90 % interval (the steepest slope).
        earliest_days: f64,
        /// The latest crossing in the interval; `None` when the shallowest slope never crosses.
        latest_days: Option<f64>,
    },
    /// The trend is already at or above the safe level.
    AlreadyOver,
    /// Flat, falling, or crossing only after the horizon.
    NotWithinHorizon,
    /// Fewer than [`MIN_DAYS`] complete days with data.
    NotEnoughHistory,
    /// The load is configured, not measured, so it has no trend.
    NotMeasured,
}

/// A weekly pattern in the daily peaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeeklyPattern {
    /// The weekday whose peaks are highest, like `monday`.
    pub peak_weekday: String,
    /// Share of the variation of the detrended daily peaks that the weekday explains (0 to 1).
    pub explained: f64,
}

/// A forecast and the points it was fitted to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Daily peaks of complete UTC days in the trend window as (day offset from the window's end,
    /// utilisation); offsets are the days' midpoints.
    pub daily_peaks: Vec<(f64, f64)>,
    /// The fitted line, when there were enough days.
    pub trend: Option<TrendLine>,
    /// The 90 % interval of the slope per day (Sen's rank method), when a line was fitted.
    pub slope_interval: Option<(f64, f64)>,
    /// The weekly pattern, when two weeks or more show one; the line then fits the peak weekday only.
    pub weekly_pattern: Option<WeeklyPattern>,
    /// The verdict against the safe level.
    #[serde(flatten)]
    pub outcome: ForecastOutcome,
}

/// Complete days needed before a trend is fitted.
pub const MIN_DAYS: usize = 7;

/// Complete days needed before a weekly pattern is looked for.
pub const WEEKLY_MIN_DAYS: usize = 14;

/// A weekly pattern is stated when the weekday explains at least this share of the detrended variation.
pub const WEEKLY_EXPLAINED: f64 = 0.5;

/// The normal quantile of a two-sided 90 % interval.
const Z_90: f64 = 1.644_854;

fn pairwise_slopes(points: &[(f64, f64)]) -> Vec<f64> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, (x_i, y_i)) in points.iter().enumerate() {
        for (x_j, y_j) in &points[i + 1..] {
            if x_j != x_i {
                slopes.push((y_j - y_i) / (x_j - x_i));
            }
        }
    }
    slopes.sort_by(f64::total_cmp);
    slopes
}

/// Fits the Theil–Sen line through `points` (x in days, y in utilisation). `None` for fewer than two points
/// with distinct x.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<TrendLine> {
    let mut slopes = pairwise_slopes(points);
    let slope_per_day = median(&mut slopes)?;
    let mut intercepts: Vec<f64> = points.iter().map(|(x, y)| y - slope_per_day * x).collect();
    let intercept = median(&mut intercepts)?;
    Some(TrendLine {
        slope_per_day,
        intercept,
    })
}

/// The 90 % interval of the Theil–Sen slope by Sen's method: with N pairwise slopes sorted and
/// C = z·sqrt(n(n−1)(2n+5)/18), the bounds are the slopes of rank round((N − C)/2) and
/// round((N + C)/2) + 1 (1-based), clamped to the list.
pub fn slope_interval(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let slopes = pairwise_slopes(points);
    if slopes.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    let count = slopes.len() as f64;
    let spread = Z_90 * (n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt();
    let lower_rank = ((count - spread) / 2.0).round().max(1.0) as usize;
    let upper_rank = (((count + spread) / 2.0).round() as usize + 1).min(slopes.len());
    Some((slopes[lower_rank.min(slopes.len()) - 1], slopes[upper_rank - 1]))
}

/// Weekday of a UTC day number (days since 1970-01-01, a Thursday): 0 is Monday.
pub fn weekday(day: u64) -> usize {
    ((day + 3) % 7) as usize
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Looks for a weekly pattern in `days` (UTC day number, peak): the share of the variation around the
/// trend that the weekday means explain. `None` below [`WEEKLY_MIN_DAYS`] or [`WEEKLY_EXPLAINED`].
pub fn weekly_pattern(days: &[(u64, f64)], line: &TrendLine, end_day: f64) -> Option<(usize, f64)> {
    if days.len() < WEEKLY_MIN_DAYS {
        return None;
    }
    let residuals: Vec<(usize, f64)> = days
        .iter()
        .map(|&(day, peak)| (weekday(day), peak - line.at(day as f64 + 0.5 - end_day)))
        .collect();
    let mean = residuals.iter().map(|(_, r)| r).sum::<f64>() / residuals.len() as f64;
    let total: f64 = residuals.iter().map(|(_, r)| (r - mean).powi(2)).sum();
    if total <= 1e-18 {
        return None;
    }
    let mut sums = [(0.0, 0usize); 7];
    for &(weekday, residual) in &residuals {
        sums[weekday].0 += residual;
        sums[weekday].1 += 1;
    }
    let means: Vec<Option<f64>> = sums
        .iter()
        .map(|&(sum, count)| (count > 0).then(|| sum / count as f64))
        .collect();
    let between: f64 = sums
        .iter()
        .zip(&means)
        .filter_map(|(&(_, count), weekday_mean)| weekday_mean.map(|m| count as f64 * (m - mean).powi(2)))
        .sum();
    let explained = between / total;
    let peak = (0..7)
        .filter(|&d| means[d].is_some())
        .max_by(|&a, &b| means[a].unwrap_or(0.0).total_cmp(&means[b].unwrap_or(0.0)))?;
    (explained >= WEEKLY_EXPLAINED).then_some((peak, explained))
}

/// Fits the daily peaks (UTC day number, utilisation) of complete days, looks for a weekly pattern, and
/// tells when the trend reaches `safe_level`, looking `horizon_days` ahead of `end_day` (the window's end
/// in days since the epoch).
pub fn forecast(days: &[(u64, f64)], end_day: f64, safe_level: f64, horizon_days: f64) -> Forecast {
    let daily_peaks: Vec<(f64, f64)> = days
        .iter()
        .map(|&(day, peak)| (day as f64 + 0.5 - end_day, peak))
        .collect();
    let not_enough = |daily_peaks| Forecast {
        daily_peaks,
        trend: None,
        slope_interval: None,
        weekly_pattern: None,
        outcome: ForecastOutcome::NotEnoughHistory,
    };
    if days.len() < MIN_DAYS {
        return not_enough(daily_peaks);
    }
    let Some(mut line) = theil_sen(&daily_peaks) else {
        return not_enough(daily_peaks);
    };
    let mut fitted: Vec<(f64, f64)> = daily_peaks.clone();
    let mut pattern = None;
    if let Some((peak_weekday, explained)) = weekly_pattern(days, &line, end_day) {
        let peaks: Vec<(f64, f64)> = days
            .iter()
            .zip(&daily_peaks)
            .filter(|((day, _), _)| weekday(*day) == peak_weekday)
            .map(|(_, point)| *point)
            .collect();
        if let Some(weekly) = theil_sen(&peaks) {
            line = weekly;
            fitted = peaks;
            pattern = Some(WeeklyPattern {
                peak_weekday: WEEKDAYS[peak_weekday].to_string(),
                explained,
            });
        }
    }
    let interval = slope_interval(&fitted);
    let crossing =
        |slope: f64| -> Option<f64> { (slope > 0.0).then(|| (safe_level - line.intercept) / slope) };
    let outcome = if line.intercept >= safe_level {
        ForecastOutcome::AlreadyOver
    } else {
        match crossing(line.slope_per_day) {
            Some(days) if days <= horizon_days => ForecastOutcome::Crosses {
                days,
                earliest_days: interval
                    .and_then(|(_, steep)| crossing(steep))
                    .unwrap_or(days)
                    .min(days),
                latest_days: interval
                    .and_then(|(shallow, _)| crossing(shallow))
                    .map(|d| d.max(days)),
            },
            _ => ForecastOutcome::NotWithinHorizon,
        }
    };
    Forecast {
        daily_peaks,
        trend: Some(line),
        slope_interval: interval,
        weekly_pattern: pattern,
        outcome,
    }
}

/// The median, averaging the middle pair for an even count; `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theil_sen_ignores_an_outlier_day() {
        // y = 0.30 + 0.01·x on five days, but day -2 had an incident at 0.90.
        // Pairwise slopes without the outlier are all 0.01; the outlier adds four wild slopes out of ten,
        // and the median of the ten is still 0.01.
        let points = [
            (-4.0, 0.26),
            (-3.0, 0.27),
            (-2.0, 0.90),
            (-1.0, 0.29),
            (0.0, 0.30),
        ];
        let line = theil_sen(&points).unwrap();
        assert!((line.slope_per_day - 0.01).abs() < 1e-12, "{line:?}");
        // Intercepts y - 0.01x: 0.30, 0.30, 0.92, 0.30, 0.30; the median is 0.30.
        assert!((line.intercept - 0.30).abs() < 1e-12, "{line:?}");
        assert!((line.at(10.0) - 0.40).abs() < 1e-12);
    }

    /// Seven days ending on UTC day 19,676 + 6 whose peaks zigzag: 0.06 + 0.01·i + 0.02·(i mod 2).
    fn zigzag() -> (Vec<(u64, f64)>, f64) {
        let first = 19_676u64;
        let days = (0..7u64)
            .map(|i| (first + i, 0.06 + 0.01 * i as f64 + 0.02 * (i % 2) as f64 - 0.06))
            .collect();
        (days, (first + 7) as f64)
    }

    #[test]
    fn a_crossing_is_a_range_from_the_slope_interval() {
        // Points at x = -6.5 … -0.5 (day midpoints before the end), y = 0.01(i) + 0.02(i mod 2) for i = 0..6.
        // The 21 pairwise slopes, sorted: -0.01 ×3, 0.00333 ×2, 0.006, 0.01 ×9, 0.014, 0.01667 ×2, 0.03 ×3.
        // The median (rank 11) is 0.01. Sen's 90 % ranks: C = 1.645·sqrt(7·6·19/18) = 10.95, so
        // round((21 − 10.95)/2) = 5 and round((21 + 10.95)/2) + 1 = 17: slopes 0.00333 and 0.01667.
        // Intercepts y − 0.01x = 0.065 + 0.02(i mod 2): median 0.065. Safe level 0.105:
        // (0.105 − 0.065)/0.01 = 4 days, between 0.04/0.01667 = 2.4 and 0.04/0.00333 = 12 days.
        let (days, end_day) = zigzag();
        let result = forecast(&days, end_day, 0.105, 90.0);
        let line = result.trend.unwrap();
        assert!((line.slope_per_day - 0.01).abs() < 1e-12, "{line:?}");
        assert!((line.intercept - 0.065).abs() < 1e-12, "{line:?}");
        let (low, high) = result.slope_interval.unwrap();
        assert!(
            (low - 0.01 / 3.0).abs() < 1e-12 && (high - 0.05 / 3.0).abs() < 1e-12,
            "{low} {high}"
        );
        match result.outcome {
            ForecastOutcome::Crosses {
                days,
                earliest_days,
                latest_days,
            } => {
                assert!((days - 4.0).abs() < 1e-9, "{days}");
                assert!((earliest_days - 2.4).abs() < 1e-9, "{earliest_days}");
                assert!((latest_days.unwrap() - 12.0).abs() < 1e-9, "{latest_days:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            forecast(&days[..6], end_day, 0.105, 90.0).outcome,
            ForecastOutcome::NotEnoughHistory
        );
        assert_eq!(
            forecast(&days, end_day, 0.05, 90.0).outcome,
            ForecastOutcome::AlreadyOver
        );
        assert_eq!(
            forecast(&days, end_day, 0.105, 3.0).outcome,
            ForecastOutcome::NotWithinHorizon
        );
    }

    #[test]
    fn a_weekly_peak_is_forecast_as_a_weekly_peak() {
        // 28 days from a Monday (UTC day 19,674 is Monday 2023-11-13): 0.30 every day, 0.60 on Mondays,
        // and Mondays rise 0.01 a week. The weekday explains nearly all the variation; the line goes
        // through the four Mondays: slope 0.01/7 per day.
        assert_eq!(weekday(19_674), 0);
        let days: Vec<(u64, f64)> = (0..28u64)
            .map(|i| {
                let day = 19_674 + i;
                let peak = if i % 7 == 0 {
                    0.60 + 0.01 * (i / 7) as f64
                } else {
                    0.30
                };
                (day, peak)
            })
            .collect();
        let result = forecast(&days, (19_674 + 28) as f64, 0.9, 365.0);
        let pattern = result.weekly_pattern.expect("a weekly pattern");
        assert_eq!(pattern.peak_weekday, "monday");
        assert!(pattern.explained > 0.9, "{pattern:?}");
        let line = result.trend.unwrap();
        assert!((line.slope_per_day - 0.01 / 7.0).abs() < 1e-12, "{line:?}");
        // Flat days without a weekly shape: no pattern is claimed.
        let flat: Vec<(u64, f64)> = (0..28u64).map(|i| (19_674 + i, 0.3 + 0.001 * i as f64)).collect();
        assert_eq!(
            forecast(&flat, (19_674 + 28) as f64, 0.9, 365.0).weekly_pattern,
            None
        );
    }
}
