//! The forecast: a Theil–Sen line through the daily peaks of a resource's utilisation, and the days until
//! it crosses the safe steady-state level. Theil–Sen (the median of all pairwise slopes) ignores up to about
//! 29 % of wild days, such as an incident or a load test, where least squares would follow them.

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
        /// Days from the end of the window.
        days: f64,
    },
    /// The trend is already at or above the safe level.
    AlreadyOver,
    /// Flat, falling, or crossing only after the horizon.
    NotWithinHorizon,
    /// Fewer than [`MIN_DAYS`] days with data.
    NotEnoughHistory,
    /// The load is configured (Little's law), not measured, so it has no trend.
    NotMeasured,
}

/// A forecast and the points it was fitted to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Daily peaks as (day offset from the window's end, utilisation); offsets are the days' midpoints.
    pub daily_peaks: Vec<(f64, f64)>,
    /// The fitted line, when there were enough days.
    pub trend: Option<TrendLine>,
    /// The verdict against the safe level.
    #[serde(flatten)]
    pub outcome: ForecastOutcome,
}

/// Days with data needed before a trend is fitted; two points always give "a trend", three give a median.
pub const MIN_DAYS: usize = 3;

/// Fits the Theil–Sen line through `points` (x in days, y in utilisation). `None` for fewer than two points
/// with distinct x.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<TrendLine> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, (x_i, y_i)) in points.iter().enumerate() {
        for (x_j, y_j) in &points[i + 1..] {
            if x_j != x_i {
                slopes.push((y_j - y_i) / (x_j - x_i));
            }
        }
    }
    let slope_per_day = headroom_common::percentile::median(&mut slopes)?;
    let mut intercepts: Vec<f64> = points.iter().map(|(x, y)| y - slope_per_day * x).collect();
    let intercept = headroom_common::percentile::median(&mut intercepts)?;
    Some(TrendLine {
        slope_per_day,
        intercept,
    })
}

/// Fits the daily peaks and tells when the trend reaches `safe_level`, looking `horizon_days` ahead.
pub fn forecast(daily_peaks: Vec<(f64, f64)>, safe_level: f64, horizon_days: f64) -> Forecast {
    if daily_peaks.len() < MIN_DAYS {
        return Forecast {
            daily_peaks,
            trend: None,
            outcome: ForecastOutcome::NotEnoughHistory,
        };
    }
    let trend = theil_sen(&daily_peaks);
    let outcome = match trend {
        None => ForecastOutcome::NotEnoughHistory,
        Some(line) if line.intercept >= safe_level => ForecastOutcome::AlreadyOver,
        Some(line) if line.slope_per_day <= 0.0 => ForecastOutcome::NotWithinHorizon,
        Some(line) => {
            let days = (safe_level - line.intercept) / line.slope_per_day;
            if days <= horizon_days {
                ForecastOutcome::Crosses { days }
            } else {
                ForecastOutcome::NotWithinHorizon
            }
        }
    };
    Forecast {
        daily_peaks,
        trend,
        outcome,
    }
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

    #[test]
    fn days_until_the_safe_level() {
        // Rising one point a day from 0.40 now; the safe level 0.5333 is 13.33 days away.
        let points: Vec<(f64, f64)> = (0..10).map(|d| (-(d as f64), 0.40 - 0.01 * d as f64)).collect();
        let result = forecast(points.clone(), 0.8 * 2.0 / 3.0, 90.0);
        match result.outcome {
            ForecastOutcome::Crosses { days } => assert!((days - 13.333_333).abs() < 1e-4, "{days}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            forecast(points.clone(), 0.8 * 2.0 / 3.0, 10.0).outcome,
            ForecastOutcome::NotWithinHorizon
        );
        assert_eq!(forecast(points, 0.35, 90.0).outcome, ForecastOutcome::AlreadyOver);
        let falling: Vec<(f64, f64)> = (0..10).map(|d| (-(d as f64), 0.2 + 0.01 * d as f64)).collect();
        assert_eq!(
            forecast(falling, 0.5, 90.0).outcome,
            ForecastOutcome::NotWithinHorizon
        );
        assert_eq!(
            forecast(vec![(-1.0, 0.1), (0.0, 0.2)], 0.5, 90.0).outcome,
            ForecastOutcome::NotEnoughHistory
        );
    }
}
